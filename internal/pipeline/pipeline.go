// Package pipeline joins facewatch's stages over NATS: the camera stage
// (camera workers handing frames to detection, in-process or as JPEG
// messages), the detect+embed stage (detection, tracking, descriptors of
// each track's best faces, published as one Track message per report to a
// JetStream work queue), and the match stage (decides each track and
// publishes hits to JetStream with the hit ID as message ID). The same
// code runs whether the stages share a process or not. It wires and
// moves; it must not implement detection, matching or alert storage
// itself (packages detect, embed, match and alert do), and it never
// crashes on a malformed message: it dead-letters it.
//
// Why whole tracks: the matcher decides per track, so all descriptors of
// a track must reach the same matcher. The detect stage therefore sends a
// track's best descriptors in one message (an early report when the track
// has enough faces, and a final one when it ends), and any matcher of the
// durable consumer can decide it alone.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"gocv.io/x/gocv"
)

// Frame is a decoded frame handed from the camera stage to the detect
// stage in the same process. The receiver closes Mat.
type Frame struct {
	Camera string
	Seq    uint64
	Time   time.Time
	Mat    gocv.Mat
}

// Stage names, as used in metrics labels and dead-letter subjects.
const (
	StageCamera = "camera"
	StageDetect = "detect"
	StageEmbed  = "embed"
	StageMatch  = "match"
)

// Metrics are the pipeline's per-stage Prometheus metrics.
type Metrics struct {
	// Latency is the time one unit of work takes in a stage: a frame in
	// detect, a batch of chips in embed, a track in match.
	Latency *prometheus.HistogramVec
	// Queue is the number of items waiting for a stage.
	Queue *prometheus.GaugeVec
	// Dropped counts what a stage refused by reason (detect: camera_limit
	// frames, track_limit faces).
	Dropped *prometheus.CounterVec
	// Frames counts the frames the detect stage took into a camera's
	// queue; Shed counts those of them shed under load, by reason
	// (queue_full, waited), the oldest of their camera first.
	Frames prometheus.Counter
	Shed   *prometheus.CounterVec
	// QueueWait is how long each detected frame waited in the detect
	// stage, from its arrival to the start of its detection.
	QueueWait prometheus.Histogram
	// EmbedBatch is the number of chips in each embedding call, and
	// EmbedCameras the number of cameras they came from.
	EmbedBatch   prometheus.Histogram
	EmbedCameras prometheus.Histogram
	// DetectBatch is the number of images in each forward pass of the
	// detect stage's shared MMOD network (detect.batch_frames > 1 only).
	DetectBatch prometheus.Histogram
	// Tracks counts reports published, by kind (early, final).
	Tracks *prometheus.CounterVec
	// FrameToHit is the time from the capture of the last frame of a
	// track report to its hit being stored in JetStream.
	FrameToHit prometheus.Histogram
	// Cameras is the number of cameras the detect stage holds state for
	// (at most detect.max_cameras).
	Cameras prometheus.Gauge
	// Pixels counts the pixels the detector was given, each region at its
	// resize (pyramid levels not counted), by kind: full (a whole-frame
	// pass, and every frame when region search is off), motion, track.
	Pixels *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered, still usable).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "facewatch_stage_latency_seconds",
			Help:    "Time one unit of work takes in a stage (detect: a frame; embed: a batch; match: a track).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"stage"}),
		Queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "facewatch_stage_queue_depth",
			Help: "Items waiting for a stage (detect: frames queued over all cameras; match: tracks pending in the consumer).",
		}, []string{"stage"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "facewatch_stage_dropped_total",
			Help: "What a stage refused, by reason (detect: camera_limit counts frames of a camera beyond detect.max_cameras, track_limit faces not tracked at detect.max_tracks).",
		}, []string{"stage", "reason"}),
		Frames: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "facewatch_detect_frames_total",
			Help: "Frames the detect stage took into a camera's queue (detected or shed).",
		}),
		Shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "facewatch_frames_shed_total",
			Help: "Frames the detect stage shed under load, the oldest of their camera first, by reason (queue_full: the camera's queue was full; waited: it had waited longer than detect.max_wait with a newer frame behind it).",
		}, []string{"reason"}),
		QueueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "facewatch_detect_queue_wait_seconds",
			Help:    "Time a detected frame waited in the detect stage, from its arrival to the start of its detection.",
			Buckets: []float64{.005, .01, .025, .05, .1, .2, .3, .4, .5, .75, 1, 2, 5},
		}),
		EmbedBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "facewatch_embed_batch_chips",
			Help:    "Chips embedded in one call of an embed worker (gathered from every camera's waiting reports).",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64},
		}),
		DetectBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "facewatch_detect_batch_images",
			Help:    "Images in one forward pass of the detect stage's shared MMOD network (detect.batch_frames > 1 with the cnn detector): the searches waiting at once, of one size.",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 24, 32},
		}),
		EmbedCameras: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "facewatch_embed_batch_cameras",
			Help:    "Cameras whose chips one embedding call carried.",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 16, 32},
		}),
		Tracks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "facewatch_track_reports_total",
			Help: "Track reports published to the matchers, by kind (early, final).",
		}, []string{"kind"}),
		FrameToHit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "facewatch_frame_to_hit_seconds",
			Help:    "Time from capture of a track report's last frame to its hit stored in JetStream.",
			Buckets: []float64{.05, .1, .2, .3, .5, .75, 1, 1.5, 2, 3, 5, 10},
		}),
		Cameras: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "facewatch_detect_cameras",
			Help: "Cameras the detect stage holds a tracker for (at most detect.max_cameras; idle ones are let go after detect.camera_idle).",
		}),
		Pixels: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "facewatch_detect_pixels_searched_total",
			Help: "Pixels the face detector was given, each region counted after its resize (detector pyramid levels not counted), by kind (full: whole-frame passes, and every frame when region search is off; motion: regions around what moved; track: regions around live tracks).",
		}, []string{"kind"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.Latency, m.Queue, m.Dropped, m.Frames, m.Shed, m.QueueWait, m.EmbedBatch, m.DetectBatch, m.EmbedCameras, m.Tracks, m.FrameToHit, m.Cameras, m.Pixels} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering pipeline metrics: %w", err)
			}
		}
	}
	return m, nil
}

func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

func orMetrics(m *Metrics) *Metrics {
	if m != nil {
		return m
	}
	m, _ = NewMetrics(nil)
	return m
}

// publishRetry publishes msg to JetStream until it is stored or ctx ends,
// backing off between tries: a track report is never dropped because NATS
// blinked.
func publishRetry(ctx context.Context, js jetstream.JetStream, subject string, data []byte, msgID string, log *slog.Logger) (*jetstream.PubAck, error) {
	wait := 100 * time.Millisecond
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ack, err := js.Publish(pctx, subject, data, jetstream.WithMsgID(msgID))
		cancel()
		if err == nil {
			return ack, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("publishing %s to %s: %w", msgID, subject, errors.Join(ctx.Err(), err))
		}
		log.Warn("publish failed; retrying", "subject", subject, "id", msgID, "err", err, "backoff", wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 3*time.Second)
	}
}
