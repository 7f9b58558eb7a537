package camera

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/facewatch/facewatch/internal/rtsptest"
)

// metricValue returns the value of the series name{labels} in reg, and
// whether it exists.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			}
		}
	}
	return 0, false
}

// TestMetricsMatchStatus runs a capped camera and checks that the metrics
// agree with the worker's own Status, which is counted separately.
func TestMetricsMatchStatus(t *testing.T) {
	needClips(t)
	srv := startRig(t, rtsptest.Source{Name: "cam", Clip: clips.main, Loop: true})
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Errorf("NewMetrics on a registry that has them = nil error, want a duplicate registration error")
	}
	cfg := testCamera("metered", srv.URL("cam"))
	cfg.MaxFPS = 5
	r := run(t, cfg, Options{Metrics: m})
	waitState(t, r, startBound, StateStreaming)
	for _, s := range allStates() {
		want := 0.0
		if s == StateStreaming {
			want = 1
		}
		if got, _ := metricValue(t, reg, "facewatch_camera_state", map[string]string{"camera": "metered", "state": string(s)}); got != want {
			t.Errorf("facewatch_camera_state{state=%q} = %g while streaming, want %g", s, got, want)
		}
	}
	time.Sleep(2 * time.Second)
	r.stop(t)
	st := r.w.Status()
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"facewatch_camera_frames_read_total", nil, float64(st.FramesIn)},
		{"facewatch_camera_frames_out_total", nil, float64(st.FramesOut)},
		{"facewatch_camera_frames_dropped_total", map[string]string{"reason": DropFPSCap}, float64(st.Drops[DropFPSCap])},
		{"facewatch_camera_state", map[string]string{"state": string(StateStopped)}, 1},
		{"facewatch_camera_last_frame_timestamp_seconds", nil, float64(st.LastFrame.UnixNano()) / 1e9},
	}
	for _, c := range checks {
		labels := map[string]string{"camera": "metered"}
		for k, v := range c.labels {
			labels[k] = v
		}
		got, ok := metricValue(t, reg, c.name, labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %g (present %v), want %g from Status", c.name, c.labels, got, ok, c.want)
		}
	}
	if st.FramesIn == 0 || st.Drops[DropFPSCap] == 0 {
		t.Errorf("Status() = %d frames in, %d capped; want both > 0", st.FramesIn, st.Drops[DropFPSCap])
	}
}
