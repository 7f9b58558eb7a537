package alert

import (
	"crypto/tls"
	"os"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/testcert"
)

// TestCertReloader: Reload (what SIGHUP calls) serves a renewed
// certificate at once; a renewal that does not load keeps the previous
// certificate rather than breaking every handshake.
func TestCertReloader(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, dir)
	cert, key := ca.Issue(t, testcert.Leaf{Name: "first"})
	r, err := NewCertReloader(cert, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	serving := func() string {
		c, err := r.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.Subject.CommonName
	}
	if got := serving(); got != "first" {
		t.Fatalf("serving %q, want first", got)
	}
	ca.IssueTo(t, testcert.Leaf{Name: "second"}, cert, key)
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload after renewal = %v", err)
	}
	if got := serving(); got != "second" {
		t.Errorf("after Reload serving %q, want second", got)
	}
	// A half-written renewal: the key no longer matches (or parses).
	if err := os.WriteFile(key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil {
		t.Error("Reload of a broken key = nil, want an error")
	}
	future := time.Now().Add(2 * time.Second)
	os.Chtimes(key, future, future) // the change is noticed on the next handshake
	time.Sleep(1100 * time.Millisecond)
	if got := serving(); got != "second" {
		t.Errorf("with a broken renewal serving %q, want the previous certificate (second)", got)
	}
	if _, err := NewCertReloader(cert, key, nil); err == nil {
		t.Error("NewCertReloader with a broken key = nil error, want one")
	}
}
