package camera

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"
)

// ErrUntrusted is wrapped when an rtsps camera's certificate does not
// verify.
var ErrUntrusted = errors.New("camera certificate not trusted")

// TLSVerify says how an rtsps camera's certificate is checked.
type TLSVerify struct {
	// CAFile holds the certificates (PEM) trusted for the camera besides
	// the system's: a private CA, or the camera's own self-signed
	// certificate.
	CAFile string
	// InsecureSkipVerify turns the check off for this camera (the
	// explicit, per-camera opt-out).
	InsecureSkipVerify bool
}

// verifyRTSPS checks, for an rtsps:// source, that the server at its
// address presents a certificate valid for its host name and chained to
// the system roots or v.CAFile, on a connection of its own made just
// before FFmpeg opens the stream. FFmpeg's RTSP client (as OpenCV uses
// it) does not verify certificates and cannot be told to, so this check
// is what stands between the camera URL's password and a server that
// merely answers at the camera's address. Other schemes pass.
func verifyRTSPS(ctx context.Context, rawURL string, v TLSVerify, timeout time.Duration) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "rtsps" || v.InsecureSkipVerify {
		return nil
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "322")
	}
	cfg := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	if v.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(v.CAFile)
		if err != nil {
			return fmt.Errorf("%w: reading tls_ca_file: %v", ErrUntrusted, err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%w: tls_ca_file %s holds no PEM certificate", ErrUntrusted, v.CAFile)
		}
		cfg.RootCAs = pool
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		var cv *tls.CertificateVerificationError
		var he x509.HostnameError
		if errors.As(err, &cv) || errors.As(err, &he) {
			return fmt.Errorf("%w: %v (set the camera's tls_ca_file to its CA or certificate, or tls_insecure_skip_verify: true to opt out)", ErrUntrusted, err)
		}
		return fmt.Errorf("checking the camera's certificate: %w", err)
	}
	return c.Close()
}
