package resnet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadErrors: both networks (Load's on the new convolution layer,
// LoadStock's on dlib's con_) turn a file that is not a model into an error
// naming the file, not a crash.
func TestLoadErrors(t *testing.T) {
	garbage := filepath.Join(t.TempDir(), "garbage.dat")
	if err := os.WriteFile(garbage, []byte("not a dlib model"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, load := range map[string]func(string) (*Net, error){"Load": Load, "LoadStock": LoadStock} {
		n, err := load(garbage)
		if err == nil {
			n.Close()
			t.Fatalf("%s(garbage) succeeded", name)
		}
		if !strings.Contains(err.Error(), garbage) {
			t.Errorf("%s(garbage) = %v, want an error naming the file", name, err)
		}
	}
}
