package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/internal/track"
	"github.com/facewatch/facewatch/internal/wire"
)

// TestDetectStageBatchedCNN: with detector cnn and detect.batch_frames 2,
// the stage's two workers share one MMOD network, and two cameras' faces
// still become tracks reported with descriptors; every search went
// through the shared network (facewatch_detect_batch_images counts at
// least each camera's first, whole-frame search, and no pass carries more
// than 2). That batches form is detect's TestPoolBatchesMMOD.
func TestDetectStageBatchedCNN(t *testing.T) {
	ctx := context.Background()
	bus := openBus(t)
	if err := natsbus.EnsureStreams(ctx, bus.JS, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	cons, err := bus.JS.CreateOrUpdateConsumer(ctx, wire.TracksStream, jetstream.ConsumerConfig{Durable: "t", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Defaults().Detect
	cfg.Detector, cfg.BatchFrames, cfg.Workers = "cnn", 2, 2
	// The frames are published in a burst: none may be shed for waiting.
	cfg.MaxWait = 0
	m, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := NewDetectStage(DetectOptions{Bus: bus, Models: testdata.ModelDir(t), Detect: cfg, Embed: config.Defaults().Embed,
		Track: track.DefaultConfig(), QueueSize: 16, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	_, stop := runStage(t, ds.Run)
	time.Sleep(300 * time.Millisecond) // the frames subscription in place

	frames := walkFrames(t, photos(t, "John_Salley")[0], []int{100, 110, 120})
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	for i, j := range frames {
		for _, cam := range []string{"a", "b"} {
			b, err := wire.EncodeFrame(wire.FrameMeta{Camera: cam, Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * 200 * time.Millisecond), Width: 640, Height: 360}, j)
			if err != nil {
				t.Fatal(err)
			}
			if err := bus.Conn.Publish(wire.FramesSubject(cam), b); err != nil {
				t.Fatal(err)
			}
		}
	}
	reported := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for len(reported) < 2 && time.Now().Before(deadline) {
		batch, err := cons.Fetch(4, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for msg := range batch.Messages() {
			tr, err := wire.DecodeTrack(msg.Data())
			if err != nil {
				t.Fatalf("malformed track: %v", err)
			}
			if len(tr.Vectors) == 0 {
				t.Errorf("camera %s report without descriptors", tr.Meta.Camera)
			}
			reported[tr.Meta.Camera] = true
			msg.Ack()
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("detect stage: %v", err)
	}
	if !reported["a"] || !reported["b"] {
		t.Fatalf("cameras reported = %v, want a and b", reported)
	}
	passes, images := histCount(t, m.DetectBatch), histSum(t, m.DetectBatch)
	t.Logf("%d passes of the shared network for %.0f searches", passes, images)
	if passes == 0 || images < 2 || images > 2*float64(passes) {
		t.Errorf("shared network: %d passes, %.0f images; want at least 2 images, at most 2 a pass", passes, images)
	}
}
