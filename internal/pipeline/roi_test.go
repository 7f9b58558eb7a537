package pipeline

import (
	"context"
	"image"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/synthcam"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/internal/wire"
)

// EnvStillScene sets how long the scene of TestStillSceneThenFace stays
// still before the face comes (a duration; default a minute).
const EnvStillScene = "FACEWATCH_STILL_SCENE"

// TestStillSceneThenFace: a camera whose scene is still for a minute then
// shows a face that fades in and stands still, so that no frame differs
// much from the one before (no motion to search): the detect stage at its
// defaults (region search, a full-frame pass every detect.full_frame_every)
// still finds it, within a full-frame interval of its being fully visible,
// and reports no face before it came.
func TestStillSceneThenFace(t *testing.T) {
	still := time.Minute
	if v := os.Getenv(EnvStillScene); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			t.Fatalf("%s=%q: want a duration of at least 1s", EnvStillScene, v)
		}
		still = d
	}
	const fps, fade, stay = 5, 3 * time.Second, 5 * time.Second
	cfg := config.Defaults()
	every := cfg.Detect.FullFrameEvery
	if every <= 0 || every > 5*time.Second {
		t.Fatalf("default full_frame_every = %v, want region search on with a pass every few seconds", every)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	faceBox := image.Rect(300, 120, 400, 220)
	s := synthcam.Script{Width: 640, Height: 360, FPS: fps, Duration: still + fade + stay,
		Background: testdata.OpenCV(t, "vtest.avi"),
		Appearances: []synthcam.Appearance{{Identity: "John_Simm", Photo: photos(t, "John_Simm")[1],
			Start: still, End: still + fade + stay, From: faceBox.Min, To: faceBox.Min, Size: faceBox.Dx(), FadeIn: fade}}}
	file := filepath.Join(t.TempDir(), "still.mp4")
	truth, err := synthcam.Render(ctx, s, file)
	if err != nil {
		t.Fatal(err)
	}
	app := truth.Appearances[0]

	bus := openBus(t)
	if err := natsbus.EnsureStreams(ctx, bus.JS, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	cons, err := bus.JS.CreateOrUpdateConsumer(ctx, wire.TracksStream, jetstream.ConsumerConfig{Durable: "still", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	local := make(chan Frame)
	ds, err := NewDetectStage(DetectOptions{Bus: bus, Models: testdata.ModelDir(t), Detect: cfg.Detect, Embed: cfg.Embed,
		Local: local, QueueSize: 8, Metrics: metrics,
		Faces: map[string]detect.FaceRange{"still": {Min: cfg.Detect.MinFaceSize}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	_, stop := runStage(t, ds.Run)

	// The same frames through a planner of our own: the fade must show no
	// motion where the face is, or this test would not be testing the
	// full-frame pass.
	planner := detect.NewPlanner(detect.ROIOptions{Faces: detect.FaceRange{Min: cfg.Detect.MinFaceSize}, FullFrameEvery: time.Hour})
	defer planner.Close()
	vc, err := gocv.VideoCaptureFile(file)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	t0 := time.Now().UTC().Add(-s.Duration)
	queued := metrics.Queue.WithLabelValues(StageDetect)
	for i := 0; ; i++ {
		m := gocv.NewMat()
		if !vc.Read(&m) {
			m.Close()
			break
		}
		at := t0.Add(truth.FrameTime(i))
		plan, err := planner.Plan(m, at, nil)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && i >= app.FirstFrame {
			for _, r := range plan.Regions {
				if r.Rect.Overlaps(faceBox) {
					t.Errorf("frame %d of the fade plans %v ×%.2f (%s) over the face: the clip shows motion, want none", i, r.Rect, r.Scale, r.Why)
				}
			}
		}
		// Keep the stage's queue from dropping frames: wait while it is
		// half full.
		for deadline := time.Now().Add(30 * time.Second); testutil.ToFloat64(queued) >= 4 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		select {
		case local <- Frame{Camera: "still", Seq: uint64(i + 1), Time: at, Mat: m}:
		case <-ctx.Done():
			m.Close()
			t.Fatal(ctx.Err())
		}
	}
	if got := testutil.ToFloat64(metrics.Dropped.WithLabelValues(StageDetect, "queue_full")); got != 0 {
		t.Errorf("frames dropped = %v, want none (the test paces them)", got)
	}
	// Stopping ends the track: its final report follows the early one.
	var reports []wire.Track
	waitDone := time.Now().Add(60 * time.Second)
	for len(reports) == 0 && time.Now().Before(waitDone) {
		batch, err := cons.Fetch(4, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			tr, err := wire.DecodeTrack(m.Data())
			if err != nil {
				t.Fatal(err)
			}
			reports = append(reports, tr)
			m.Ack()
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("detect stage: %v", err)
	}
	if len(reports) == 0 {
		t.Fatalf("no track report for a face shown still for %v after a still scene of %v, want one", fade+stay, still)
	}
	visible := t0.Add(truth.FrameTime(app.FirstFrame))
	whole := t0.Add(still + fade)
	for _, r := range reports {
		if r.Meta.Start.Before(visible) {
			t.Errorf("track %d starts at %v, before the face came at %v (a face in the still scene?)", r.Meta.Track, r.Meta.Start.Sub(t0), visible.Sub(t0))
		}
		for _, f := range r.Meta.Faces {
			if b := f.Box; !image.Rect(b.X, b.Y, b.X+b.W, b.Y+b.H).Overlaps(faceBox) {
				t.Errorf("track %d has a face at %+v, want it where the face is, %v", r.Meta.Track, b, faceBox)
			}
		}
	}
	first := reports[0].Meta.Start
	if late := first.Sub(whole); late > every+time.Second/fps {
		t.Errorf("face first found %v after it was fully visible, want within a full-frame pass interval %v", late, every)
	}
	t.Logf("still scene %v: face found %v after it began to fade in (%v after fully visible), %d reports", still, first.Sub(visible), first.Sub(whole), len(reports))

	// facewatch_detect_pixels_searched_total: the still scene's full
	// passes, each the whole 640x360 frame doubled (min_face 40), one on
	// the first frame and one per full_frame_every after it; nothing moved,
	// so the regions are the track's, a small part of it.
	pass := float64(s.Width * s.Height * 4)
	full := testutil.ToFloat64(metrics.Pixels.WithLabelValues("full"))
	passes := full / pass
	want := float64(s.Duration / every)
	if passes != float64(int(passes)) || passes < want || passes > want+2 {
		t.Errorf("full-pass pixels %.0f = %.2f passes of %.0f, want a whole number of them, %.0f to %.0f", full, passes, pass, want, want+2)
	}
	motion := testutil.ToFloat64(metrics.Pixels.WithLabelValues("motion"))
	tracked := testutil.ToFloat64(metrics.Pixels.WithLabelValues("track"))
	if tracked <= 0 || motion+tracked >= full {
		t.Errorf("pixels searched: full %.0f, motion %.0f, track %.0f; want track regions searched, and regions less than the full passes", full, motion, tracked)
	}
	t.Logf("pixels searched: full %.0f (%.0f passes), motion %.0f, track %.0f", full, passes, motion, tracked)
}

// TestFreeSlot: a camera gets the smallest full-pass phase index no live
// camera of the stage has, so that cameras that come and go keep the
// phases of the stage's live ones spread (detect.Phase).
func TestFreeSlot(t *testing.T) {
	workers := map[string]*camWorker{}
	for i, want := range []int{0, 1, 2} {
		if got := freeSlot(workers); got != want {
			t.Fatalf("camera %d: slot %d, want %d", i, got, want)
		}
		workers[string(rune('a'+i))] = &camWorker{slot: want}
	}
	delete(workers, "b") // slot 1 is free again
	if got := freeSlot(workers); got != 1 {
		t.Errorf("after slot 1's camera left: slot %d, want 1", got)
	}
	workers["d"] = &camWorker{slot: 1}
	if got := freeSlot(workers); got != 3 {
		t.Errorf("slots 0-2 in use: slot %d, want 3", got)
	}
}
