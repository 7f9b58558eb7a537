package archtest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// maxCommandFileLines bounds each non-test file of cmd/facewatch: the
// command holds flag parsing and printing, split by concept, and a file
// that outgrows this holds rules that belong in a package.
const maxCommandFileLines = 250

// TestCommandFilesSmall: every non-test file of cmd/facewatch is at most
// maxCommandFileLines lines.
func TestCommandFilesSmall(t *testing.T) {
	dir := filepath.Join("..", "..", "cmd", "facewatch")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("reading %s: %v", dir, err)
	}
	checked := 0
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		checked++
		if n := bytes.Count(b, []byte("\n")); n > maxCommandFileLines {
			t.Errorf("cmd/facewatch/%s has %d lines, want at most %d: split it by concept, or move its rules into the package they belong to", name, n, maxCommandFileLines)
		}
	}
	if checked < 10 {
		t.Errorf("checked %d files of %s, want the command's (at least 10): is the path wrong?", checked, dir)
	}
}
