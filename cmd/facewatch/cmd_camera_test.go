package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/rtsptest"
	"github.com/facewatch/facewatch/internal/testdata"
)

func TestCameraProbeCommand(t *testing.T) {
	ctx := context.Background()
	dst := filepath.Join(t.TempDir(), "clip.h264")
	if err := rtsptest.Encode(ctx, rtsptest.EncodeOptions{Src: testdata.OpenCV(t, "vtest.avi"), Dst: dst,
		Width: 160, Height: 120, FPS: 25, Duration: 4 * time.Second, GOP: 12}); err != nil {
		t.Fatal(err)
	}
	clip, err := rtsptest.LoadClip(dst, 25)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := rtsptest.Start(ctx, rtsptest.Options{Sources: []rtsptest.Source{{Name: "cam", Clip: clip, Loop: true, User: "op", Pass: "hunter2-pw"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  string
	}{
		{"probe", []string{"camera", "probe", "--frames", "5", srv.URLWithUser("cam", "op", "hunter2-pw")}, 0,
			[]string{"codec        h264", "resolution   160x120", "fps          25.00 announced", "rtsp://xxxxx@"}, ""},
		{"probe json", []string{"camera", "probe", "--json", "--frames", "3", srv.URLWithUser("cam", "op", "hunter2-pw")}, 0,
			[]string{`"codec":"h264"`, `"width":160`, `"frames":3`}, ""},
		{"wrong path", []string{"camera", "probe", srv.URL("nope")}, 1, nil, "404 Not Found"},
		{"wrong password", []string{"camera", "probe", srv.URLWithUser("cam", "op", "bad-hunter2-pw")}, 1, nil, "401 Unauthorized"},
		{"no url", []string{"camera", "probe"}, 2, nil, "want one URL"},
		{"stage not built", []string{"camera", "--config", "x.yaml"}, 1, nil, "not built yet"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := realMain(ctx, tc.args, &env{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }})
			if code != tc.wantCode {
				t.Fatalf("facewatch %v = exit %d (stderr %q), want %d", tc.args, code, stderr.String(), tc.wantCode)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("facewatch %v stdout = %q, want it to contain %q", tc.args, stdout.String(), w)
				}
			}
			if tc.wantErr != "" && !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("facewatch %v stderr = %q, want it to contain %q", tc.args, stderr.String(), tc.wantErr)
			}
			if tc.wantCode == 1 && strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
				t.Errorf("facewatch %v stderr = %q, want one line", tc.args, stderr.String())
			}
			if strings.Contains(stdout.String()+stderr.String(), "hunter2-pw") {
				t.Errorf("facewatch %v printed the password", tc.args)
			}
		})
	}
}
