package camera

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/rtsptest"
)

func TestProbe(t *testing.T) {
	needClips(t)
	srv := startRig(t,
		rtsptest.Source{Name: "cam", Clip: clips.main, Loop: true, User: "admin", Pass: secret},
		rtsptest.Source{Name: "slow", Clip: clips.main, Loop: true})
	srv.Path("slow").SetRate(10)
	ctx := context.Background()
	tests := []struct {
		name           string
		url            string
		wantW, wantH   int
		minFPS, maxFPS float64
	}{
		{"rtsp with credentials", srv.URLWithUser("cam", "admin", secret), clipW, clipH, 0.7 * clipFPS, 1.3 * clipFPS},
		{"fewer fps than announced", srv.URL("slow"), clipW, clipH, 7, 13},
		{"file", clips.walkingPath, clipW, 180, 0, 1e9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := Probe(ctx, tc.url, ProbeOptions{Frames: 40, OpenTimeout: 5 * time.Second})
			if err != nil {
				t.Fatalf("Probe(%s) error: %v", tc.name, err)
			}
			if res.Codec != "h264" || res.Width != tc.wantW || res.Height != tc.wantH || res.Frames != 40 {
				t.Errorf("Probe(%s) = codec %q %dx%d, %d frames; want h264 %dx%d, 40", tc.name, res.Codec, res.Width, res.Height, res.Frames, tc.wantW, tc.wantH)
			}
			if res.FPS != clipFPS {
				t.Errorf("Probe(%s).FPS = %g, want the announced %g", tc.name, res.FPS, clipFPS)
			}
			if res.MeasuredFPS < tc.minFPS || res.MeasuredFPS > tc.maxFPS {
				t.Errorf("Probe(%s).MeasuredFPS = %.2f, want %g..%g", tc.name, res.MeasuredFPS, tc.minFPS, tc.maxFPS)
			}
			if res.FirstFrame < res.OpenTime || res.FirstFrame <= 0 {
				t.Errorf("Probe(%s) first frame %v, open %v; want first frame ≥ open > 0", tc.name, res.FirstFrame, res.OpenTime)
			}
			if strings.Contains(res.URL, secret) {
				t.Errorf("Probe(%s).URL = %q, want the password masked", tc.name, res.URL)
			}
		})
	}
	t.Run("wrong credentials", func(t *testing.T) {
		t.Parallel()
		_, err := Probe(ctx, srv.URLWithUser("cam", "admin", "nope-"+secret), ProbeOptions{})
		if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), secret) {
			t.Errorf("Probe(wrong password) error = %v, want a 401 without the password", err)
		}
	})
	t.Run("cancelled while the stream stalls", func(t *testing.T) {
		t.Parallel()
		srv.Add(rtsptest.Source{Name: "stalled", Clip: clips.main, Loop: true})
		srv.Path("stalled").Stall(true)
		ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := Probe(ctx, srv.URL("stalled"), ProbeOptions{OpenTimeout: 3 * time.Second})
		if err == nil || time.Since(start) > 1500*time.Millisecond {
			t.Errorf("Probe(stalled, 500ms deadline) = %v after %v, want a deadline error within 1.5s", err, time.Since(start))
		}
		time.Sleep(3 * time.Second) // the abandoned open ends at its timeout
	})
}
