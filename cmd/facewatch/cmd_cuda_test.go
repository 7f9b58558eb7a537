package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/facewatch/facewatch/internal/testdata"
)

// TestCUDAReported: `version` and `doctor` each say, in one line, whether
// dlib's CNNs run on a GPU. Against a dlib built without CUDA (Debian's,
// as dlib's own config.h says) both must say "no" and why; a detection that
// claimed CUDA there, or a report spread over lines, fails.
func TestCUDAReported(t *testing.T) {
	const noCUDA = "no (dlib built without CUDA)"
	withCUDA := testdata.DlibBuiltWithCUDA(t)
	check := func(t *testing.T, what, got string) {
		t.Helper()
		if !withCUDA && got != noCUDA {
			t.Errorf("%s cuda = %q, want %q (dlib's config.h has no DLIB_USE_CUDA)", what, got, noCUDA)
		}
		if withCUDA && !regexp.MustCompile(`^(yes, device \d+ of \d+: .+|no \(dlib built with CUDA, .+\))$`).MatchString(got) {
			t.Errorf("%s cuda = %q, want yes with a device or no with a reason (dlib's config.h has DLIB_USE_CUDA)", what, got)
		}
	}
	// lines returns the text after prefix of each output line that has it.
	lines := func(out string, prefix *regexp.Regexp) []string {
		var got []string
		for _, l := range strings.Split(out, "\n") {
			if m := prefix.FindStringIndex(l); m != nil {
				got = append(got, l[m[1]:])
			}
		}
		return got
	}

	t.Run("version", func(t *testing.T) {
		code, out, _ := runCLI(t, nil, "version")
		if code != 0 {
			t.Fatalf("version exit = %d", code)
		}
		got := lines(out, regexp.MustCompile(`^cuda\s+`))
		if len(got) != 1 {
			t.Fatalf("version has %d cuda lines, want 1:\n%s", len(got), out)
		}
		check(t, "version", got[0])
	})
	t.Run("doctor", func(t *testing.T) {
		dir := t.TempDir()
		cfgPath := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(cfgPath, []byte("data_dir: data\nalert:\n  listen: 127.0.0.1:0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, out, _ := runCLI(t, nil, "doctor", "--config", cfgPath, "--model-dir", string(testdata.ModelDir(t)))
		got := lines(out, regexp.MustCompile(`^info\s+cuda\s+`))
		if len(got) != 1 {
			t.Fatalf("doctor has %d info cuda lines, want 1:\n%s", len(got), out)
		}
		check(t, "doctor", got[0])
		if strings.Contains(out, "FAIL  cuda") || strings.Contains(out, "warn  cuda") {
			t.Errorf("doctor counts CUDA as a fault:\n%s", out)
		}
	})
}
