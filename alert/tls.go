package alert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/facewatch/facewatch/internal/config"
)

// CertReloader serves the API's TLS certificate from cert and key files
// and reads them again when they change (checked at most once a second,
// on a handshake) or when Reload is called (on SIGHUP), so a renewed
// certificate takes effect without a restart. A renewal that cannot be
// loaded (a half-written file) keeps the previous certificate and is
// logged.
type CertReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu sync.Mutex
	// Guarded by mu: the certificate served, the files' modification
	// times it was loaded at, and when they were last looked at.
	cert    *tls.Certificate
	certMod time.Time
	keyMod  time.Time
	checked time.Time
}

// NewCertReloader loads the files; an unreadable pair is an error.
func NewCertReloader(certFile, keyFile string, log *slog.Logger) (*CertReloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &CertReloader{certFile: certFile, keyFile: keyFile, log: log.With("component", "alert")}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the certificate and key files now.
func (r *CertReloader) Reload() error {
	cm, km := modTime(r.certFile), modTime(r.keyFile)
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("loading alert.tls certificate: %w", err)
	}
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		cert.Leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	r.mu.Lock()
	r.cert, r.certMod, r.keyMod, r.checked = &cert, cm, km, time.Now()
	r.mu.Unlock()
	if cert.Leaf != nil {
		r.log.Info("https certificate loaded", "file", r.certFile, "subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

func modTime(path string) time.Time {
	st, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}

// GetCertificate is tls.Config.GetCertificate.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	stale := time.Since(r.checked) >= time.Second
	if stale {
		r.checked = time.Now()
		stale = !modTime(r.certFile).Equal(r.certMod) || !modTime(r.keyFile).Equal(r.keyMod)
	}
	r.mu.Unlock()
	if stale {
		if err := r.Reload(); err != nil {
			r.log.Warn("https certificate changed but cannot be loaded; serving the previous one", "err", err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cert, nil
}

// TLSConfig is the server configuration for r.
func (r *CertReloader) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
}

// ListenHTTP opens cfg.Listen for the API: over TLS when cfg.TLS is set
// (a plain HTTP request there is answered 400 by net/http and goes no
// further). The reloader is nil without TLS. The URL is what to print.
func ListenHTTP(cfg config.Alert, log *slog.Logger) (ln net.Listener, rel *CertReloader, url string, err error) {
	ln, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, nil, "", fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	if !cfg.TLS.Enabled() {
		return ln, nil, "http://" + ln.Addr().String(), nil
	}
	rel, err = NewCertReloader(cfg.TLS.CertFile, cfg.TLS.KeyFile, log)
	if err != nil {
		ln.Close()
		return nil, nil, "", err
	}
	return ln, rel, "https://" + ln.Addr().String(), nil
}

// ServeRedirect answers every request on cfg.TLS.RedirectListen with a
// permanent redirect to the same path on httpsAddr, until ctx ends. It
// does nothing when no redirect address is configured.
func ServeRedirect(ctx context.Context, cfg config.Alert, httpsAddr string, log *slog.Logger) error {
	if cfg.TLS.RedirectListen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", cfg.TLS.RedirectListen)
	if err != nil {
		return fmt.Errorf("listening for http redirects on %s: %w", cfg.TLS.RedirectListen, err)
	}
	_, port, _ := net.SplitHostPort(httpsAddr)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "" {
			host = "localhost"
		}
		target := "https://" + net.JoinHostPort(host, port) + r.URL.RequestURI()
		http.Redirect(w, r, target, http.StatusPermanentRedirect)
	})}
	if log != nil {
		log.Info("redirecting plain http to https", "component", "alert", "listen", ln.Addr().String())
	}
	go func() { // ends when ctx does
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving http redirects: %w", err)
	}
	return nil
}
