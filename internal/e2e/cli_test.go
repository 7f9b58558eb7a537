package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
