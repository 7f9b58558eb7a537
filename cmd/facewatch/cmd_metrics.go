package main

// A stage's own Prometheus endpoint (--metrics): loopback without a
// token by default; beyond loopback only with a bearer token and HTTPS.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/facewatch/facewatch/alert"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/httpserve"
)

// minMetricsToken is the shortest bearer token accepted: a scraper's
// secret, not a password a person types.
const minMetricsToken = 16

// metricsServer is how a stage serves /metrics: where, the token it
// requires (nil: none, loopback only) and its TLS (nil: plain HTTP).
type metricsServer struct {
	addr  string
	token []byte
	tls   *tls.Config
}

// readMetricsToken reads --metrics-token-file: nil when path is empty.
// The file must not be readable by group or others (it is a credential)
// and must hold at least minMetricsToken characters.
func readMetricsToken(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--metrics-token-file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("--metrics-token-file %s: mode %04o lets other users read the token; chmod 600 it", path, st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--metrics-token-file: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if len(tok) < minMetricsToken {
		return nil, fmt.Errorf("--metrics-token-file %s: the token has %d characters, want at least %d", path, len(tok), minMetricsToken)
	}
	return []byte(tok), nil
}

// checkMetricsAddr refuses a --metrics address that other hosts can reach
// unless a token guards it (the TLS half is checked once the config is
// read, by useTLS).
func checkMetricsAddr(addr string, token bool) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usageErrorf("--metrics %q: want host:port: %v", addr, err)
	}
	if isLoopback(host) || token {
		return nil
	}
	return usageErrorf("--metrics %q: without --metrics-token-file it serves without a token, so it listens on loopback only (127.0.0.1:PORT or [::1]:PORT); give --metrics-token-file (and alert.tls) to serve other hosts, or scrape the alert API's /metrics with an integrator token", addr)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// useTLS serves over HTTPS with alert.tls's certificate when it is set.
// An address beyond loopback must have it: the token would otherwise
// cross the network in clear.
func (m *metricsServer) useTLS(t config.HTTPTLS, log *slog.Logger) error {
	if m.addr == "" {
		return nil
	}
	if t.Enabled() {
		rel, err := alert.NewCertReloader(t.CertFile, t.KeyFile, log)
		if err != nil {
			return fmt.Errorf("--metrics: loading alert.tls: %w", err)
		}
		m.tls = rel.TLSConfig()
		return nil
	}
	host, _, err := net.SplitHostPort(m.addr)
	if err == nil && !isLoopback(host) {
		return usageErrorf("--metrics %q: beyond loopback the metrics (and their token) are served over HTTPS only; set alert.tls.cert_file and key_file", m.addr)
	}
	return nil
}

// serve serves reg on m.addr until ctx ends (nothing when addr is empty).
func (m metricsServer) serve(ctx context.Context, reg *prometheus.Registry, log *slog.Logger) error {
	if m.addr == "" {
		return nil
	}
	if err := checkMetricsAddr(m.addr, m.token != nil); err != nil {
		return err
	}
	var h http.Handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if m.token != nil {
		h = requireBearer(m.token, h)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	srv, err := httpserve.Listen(m.addr, mux, httpserve.Limits{MaxConns: 16})
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	srv.HTTP().ErrorLog = slogErrorLog(log)
	scheme := "http"
	if m.tls != nil {
		srv.UseTLS(m.tls)
		scheme = "https"
	}
	log.Info("metrics listening", "url", scheme+"://"+srv.Addr().String()+"/metrics", "token", m.token != nil)
	if err := srv.Serve(ctx, time.Second); err != nil {
		return fmt.Errorf("serving metrics: %w", err)
	}
	return nil
}

// requireBearer answers 401 to a request without "Authorization: Bearer
// <token>". Both sides are hashed before the constant-time comparison, so
// the time taken says nothing about the token, its length included.
func requireBearer(token []byte, h http.Handler) http.Handler {
	want := sha256.Sum256(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="facewatch metrics"`)
			http.Error(w, "metrics: a valid bearer token is required (--metrics-token-file)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
