package camera

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/facewatch/facewatch/internal/rtsptest"
)

const secret = "s3cret-Pw"

// TestBadSources runs one worker per broken source beside a healthy camera:
// each must fail with a clear error naming its camera, without credentials,
// while the healthy camera keeps its rate.
func TestBadSources(t *testing.T) {
	needClips(t)
	srv := startRig(t,
		rtsptest.Source{Name: "good", Clip: clips.main, Loop: true},
		rtsptest.Source{Name: "secure", Clip: clips.main, Loop: true, User: "viewer", Pass: "right-" + secret})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().String()
	ln.Close()

	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html><body><h1>Camera admin</h1><p>Please log in.</p></body></html>"))
	}))
	t.Cleanup(web.Close)

	dir := t.TempDir()
	notVideo := filepath.Join(dir, "notes.mp4")
	if err := os.WriteFile(notVideo, []byte("this is a text file, not a video\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, id, url string
		openTimeout   time.Duration
		want          string // in the last error
	}{
		{"unreachable host", "closed-port", "rtsp://" + closedPort + "/cam", 0, "Connection refused"},
		{"unroutable address", "blackhole", "rtsp://192.0.2.1:554/cam", time.Second, "opening camera blackhole"},
		{"wrong path", "wrong-path", srv.URL("no-such-path"), 0, "404"},
		{"wrong credentials", "wrong-creds", srv.URLWithUser("secure", "viewer", "wrong-"+secret), 0, "401"},
		{"non-video http page", "web-page", web.URL + "/video.mjpg", 0, "text/html"},
		{"file that is not a video", "not-video", notVideo, 0, "not a video"},
		{"missing file", "missing-file", filepath.Join(dir, "absent.mp4"), 0, "no such file"},
	}
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	good := run(t, testCamera("good", srv.URL("good")), Options{Metrics: metrics})
	waitState(t, good, startBound, StateStreaming)
	goodFrames0, t0 := good.w.Status().FramesIn, time.Now()
	workers := make([]*running, len(tests))
	for i, tc := range tests {
		cfg := testCamera(tc.id, tc.url)
		if tc.openTimeout > 0 {
			cfg.OpenTimeout = tc.openTimeout
		}
		workers[i] = run(t, cfg, Options{Metrics: metrics})
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := workers[i]
			waitState(t, r, 20*time.Second, StateFailed)
			st := r.w.Status()
			if !strings.Contains(st.LastError, tc.want) || !strings.Contains(st.LastError, tc.id) {
				t.Errorf("Status(%s).LastError = %q, want it to contain %q and the camera id", tc.url, st.LastError, tc.want)
			}
			if strings.Contains(st.LastError, "\n") {
				t.Errorf("Status(%s).LastError = %q, want one line", tc.url, st.LastError)
			}
			if st.FramesOut != 0 {
				t.Errorf("Status(%s).FramesOut = %d, want 0", tc.url, st.FramesOut)
			}
			t.Logf("%s: %s", tc.name, st.LastError)
		})
	}
	t.Run("credentials never shown", func(t *testing.T) {
		var metricsText bytes.Buffer
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			expfmt.MetricFamilyToText(&metricsText, mf)
		}
		for _, r := range workers {
			st := r.w.Status()
			js, err := json.Marshal(st)
			if err != nil {
				t.Fatalf("json.Marshal(Status()) error: %v", err)
			}
			if !strings.Contains(string(js), `"state":"failed"`) && st.CameraID != "good" {
				t.Errorf("json.Marshal(Status(%s)) = %s, want \"state\":\"failed\"", st.CameraID, js)
			}
			for what, text := range map[string]string{"LastError": st.LastError, "URL": st.URL, "status JSON": string(js), "logs": r.logs.String(), "metrics": metricsText.String()} {
				if strings.Contains(text, secret) {
					t.Errorf("camera %s: %s contains the password: %q", st.CameraID, what, text)
				}
			}
		}
	})
	if d := 3*time.Second - time.Since(t0); d > 0 {
		time.Sleep(d) // measure the healthy camera over a few seconds
	}
	if st := good.w.Status(); st.Reconnects != 0 || st.State != StateStreaming {
		t.Errorf("healthy camera Status() = %s, %d reconnects, want streaming, 0", st.State, st.Reconnects)
	}
	if got := float64(good.w.Status().FramesIn-goodFrames0) / time.Since(t0).Seconds(); got < 0.7*clipFPS {
		t.Errorf("healthy camera fps beside %d bad ones = %.1f, want ≥ %.1f", len(tests), got, 0.7*clipFPS)
	}
}
