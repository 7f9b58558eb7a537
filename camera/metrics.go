package camera

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the camera stage's Prometheus metrics, labelled by camera ID
// (never by URL, so that credentials cannot leak into them). One Metrics
// serves every worker of a process.
type Metrics struct {
	framesRead *prometheus.CounterVec
	framesOut  *prometheus.CounterVec
	dropped    *prometheus.CounterVec
	reconnects *prometheus.CounterVec
	stalls     *prometheus.CounterVec
	state      *prometheus.GaugeVec
	lastFrame  *prometheus.GaugeVec
	fpsIn      *prometheus.GaugeVec
	fpsOut     *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		framesRead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "facewatch_camera_frames_read_total",
			Help: "Frames decoded from the camera.",
		}, []string{"camera"}),
		framesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "facewatch_camera_frames_out_total",
			Help: "Frames handed to the next stage.",
		}, []string{"camera"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "facewatch_camera_frames_dropped_total",
			Help: "Frames decoded but not handed on, by reason (fps_cap, no_motion, queue_full).",
		}, []string{"camera", "reason"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "facewatch_camera_reconnects_total",
			Help: "Capture sessions started after the first.",
		}, []string{"camera"}),
		stalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "facewatch_camera_stalls_total",
			Help: "Captures restarted by the frame-age watchdog.",
		}, []string{"camera"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "facewatch_camera_state",
			Help: "1 for the camera's current state, 0 for the others.",
		}, []string{"camera", "state"}),
		lastFrame: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "facewatch_camera_last_frame_timestamp_seconds",
			Help: "Unix time of the last frame decoded.",
		}, []string{"camera"}),
		fpsIn: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "facewatch_camera_fps_in",
			Help: "Frames decoded per second, over the last few seconds.",
		}, []string{"camera"}),
		fpsOut: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "facewatch_camera_fps_out",
			Help: "Frames handed on per second, over the last few seconds.",
		}, []string{"camera"}),
	}
	for _, c := range []prometheus.Collector{m.framesRead, m.framesOut, m.dropped, m.reconnects, m.stalls, m.state, m.lastFrame, m.fpsIn, m.fpsOut} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering camera metrics: %w", err)
		}
	}
	return m, nil
}

// cameraMetrics is Metrics bound to one camera; a nil *cameraMetrics does
// nothing.
type cameraMetrics struct {
	framesRead, framesOut, reconnects, stalls prometheus.Counter
	lastFrame, fpsIn, fpsOut                  prometheus.Gauge
	dropped                                   map[string]prometheus.Counter
	state                                     map[State]prometheus.Gauge
}

func (m *Metrics) forCamera(id string) *cameraMetrics {
	if m == nil {
		return nil
	}
	cm := &cameraMetrics{
		framesRead: m.framesRead.WithLabelValues(id),
		framesOut:  m.framesOut.WithLabelValues(id),
		reconnects: m.reconnects.WithLabelValues(id),
		stalls:     m.stalls.WithLabelValues(id),
		lastFrame:  m.lastFrame.WithLabelValues(id),
		fpsIn:      m.fpsIn.WithLabelValues(id),
		fpsOut:     m.fpsOut.WithLabelValues(id),
		dropped:    map[string]prometheus.Counter{},
		state:      map[State]prometheus.Gauge{},
	}
	for _, r := range []string{DropFPSCap, DropNoMotion, DropQueueFull} {
		cm.dropped[r] = m.dropped.WithLabelValues(id, r)
	}
	for _, s := range allStates() {
		cm.state[s] = m.state.WithLabelValues(id, string(s))
	}
	return cm
}

func (cm *cameraMetrics) setState(s State) {
	if cm == nil {
		return
	}
	for st, g := range cm.state {
		if st == s {
			g.Set(1)
		} else {
			g.Set(0)
		}
	}
}
