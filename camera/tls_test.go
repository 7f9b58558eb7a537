package camera

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/rtsptest"
)

// selfSigned makes a certificate for 127.0.0.1, as a camera's own, and
// writes it as PEM to certFile.
func selfSigned(t *testing.T, certFile string) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "camera"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// TestRTSPS streams over RTSP-over-TLS from a camera with a self-signed
// certificate, credentials in the URL: refused by default (the certificate
// is verified, and the password is never sent to an unverified server),
// streamed when the camera's certificate is trusted with tls_ca_file, and
// streamed with the explicit per-camera opt-out.
func TestRTSPS(t *testing.T) {
	needClips(t)
	certFile := filepath.Join(t.TempDir(), "camera.pem")
	srv, err := rtsptest.Start(context.Background(), rtsptest.Options{TLS: selfSigned(t, certFile), Sources: []rtsptest.Source{
		{Name: "secure", Clip: clips.main, Loop: true, User: "viewer", Pass: secret},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	url := srv.URLWithUser("secure", "viewer", secret)
	if url[:8] != "rtsps://" {
		t.Fatalf("URLWithUser = %q, want an rtsps:// URL", url)
	}
	cases := []struct {
		name   string
		ca     string
		skip   bool
		stream bool
	}{
		{"verified by default", "", false, false},
		{"trusted with tls_ca_file", certFile, false, true},
		{"opt-out", "", true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testCamera("tls", url)
			cfg.TLSCAFile, cfg.TLSInsecureSkipVerify = c.ca, c.skip
			r := run(t, cfg, Options{FailAfter: 1})
			if !c.stream {
				waitState(t, r, startBound, StateFailed)
				st := r.w.Status()
				if !strings.Contains(st.LastError, "not trusted") || strings.Contains(st.LastError, secret) {
					t.Errorf("Status().LastError = %q, want the certificate named as not trusted (and no password)", st.LastError)
				}
				if n := r.frames.Load(); n != 0 {
					t.Errorf("%d frames from a camera whose certificate does not verify, want 0", n)
				}
				return
			}
			waitState(t, r, startBound, StateStreaming)
			before := r.frames.Load()
			waitFor(t, 5*time.Second, "frames over rtsps", func() bool { return r.frames.Load() >= before+10 })
		})
	}
}
