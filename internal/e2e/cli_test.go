package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/facewatch/facewatch/internal/testdata"
)

// TestStageCommandErrors: each stage command refuses what it cannot run
// with one clear line and a non-zero status, without starting anything.
func TestStageCommandErrors(t *testing.T) {
	dir := t.TempDir()
	noURL := filepath.Join(dir, "nourl.yaml")
	if err := os.WriteFile(noURL, []byte("data_dir: "+dir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badAck := filepath.Join(dir, "badack.yaml")
	if err := os.WriteFile(badAck, []byte("data_dir: "+dir+"\nnats:\n  ack_wait: 10ms\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"detect", "--config", noURL}, 1, "nats.url is empty"},
		{[]string{"match", "--config", noURL}, 1, "nats.url is empty"},
		{[]string{"camera", "--config", noURL}, 1, "nats.url is empty"},
		{[]string{"run", "--config", badAck}, 1, "nats.ack_wait"},
		{[]string{"detect", "--config", noURL, "--cameras", "a.b"}, 2, "--cameras"},
		{[]string{"run", "--bogus"}, 2, "bogus"},
		{[]string{"dev", "synth", "--size", "big"}, 2, "--size"},
		{[]string{"dev", "nothing"}, 2, "synth"},
	}
	for _, tc := range tests {
		cmd := exec.Command(bin, tc.args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		code := 0
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		msg := strings.TrimSpace(stderr.String())
		if code != tc.code || !strings.Contains(msg, tc.want) {
			t.Errorf("facewatch %s: status %d, stderr %q; want status %d and %q", strings.Join(tc.args, " "), code, msg, tc.code, tc.want)
		}
		if code == 1 && strings.Count(msg, "\n") > 0 {
			t.Errorf("facewatch %s: error is %d lines, want one: %q", strings.Join(tc.args, " "), strings.Count(msg, "\n")+1, msg)
		}
	}
}

// peakRSS runs the built binary and returns its peak resident memory in
// KiB (the child's ru_maxrss, what /usr/bin/time reports).
func peakRSS(t *testing.T, args ...string) int64 {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "FACEWATCH_MODEL_DIR="+string(testdata.ModelDir(t)))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("facewatch %v: %v\n%s", args, err, out)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Skip("no rusage on this system")
	}
	return ru.Maxrss
}

// TestFacesMemory: `facewatch faces` over several large photos (4-36
// megapixels) keeps nothing from one photo to the next: its peak memory is
// within 10 % of its largest photo's alone. glibc's malloc, left to raise
// its mmap threshold after each large free, kept 11-46 % more (704-924 MiB
// against 633 MiB for these photos).
func TestFacesMemory(t *testing.T) {
	var photos []string
	for _, n := range []string{"001_A.jpg", "002_A.jpg", "003_A.jpg", "004_A.jpg", "005_A.jpg", "006_A.jpg"} {
		photos = append(photos, testdata.Path(t, filepath.Join("compreface", n)))
	}
	alone := peakRSS(t, "faces", "--fallback", "none", photos[0]) // the largest, 4912x7360
	all := peakRSS(t, append([]string{"faces", "--fallback", "none"}, photos...)...)
	t.Logf("faces peak RSS: largest photo alone %d MiB, %d photos %d MiB (%+.1f %%)", alone>>10, len(photos), all>>10, 100*(float64(all)/float64(alone)-1))
	if float64(all) > 1.10*float64(alone) {
		t.Errorf("faces over %d photos peaked at %d MiB, want within 10 %% of the largest photo alone (%d MiB)", len(photos), all>>10, alone>>10)
	}
}
