package camera

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/rtsptest"
)

// selfSigned makes a certificate for 127.0.0.1, as a camera's own.
func selfSigned(t *testing.T) *tls.Config {
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
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// TestRTSPS streams over RTSP-over-TLS from a camera with a self-signed
// certificate, credentials in the URL.
func TestRTSPS(t *testing.T) {
	needClips(t)
	srv, err := rtsptest.Start(context.Background(), rtsptest.Options{TLS: selfSigned(t), Sources: []rtsptest.Source{
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
	r := run(t, testCamera("tls", url), Options{})
	waitState(t, r, startBound, StateStreaming)
	before := r.frames.Load()
	waitFor(t, 5*time.Second, "frames over rtsps", func() bool { return r.frames.Load() >= before+10 })
}
