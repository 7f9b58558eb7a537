package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/rtsptest"
	"github.com/facewatch/facewatch/internal/synthcam"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/internal/wire"
)

// TestOverloadShedsOldest overloads a box on purpose: eight real RTSP
// cameras (the synthetic scenario, 640x360 at 25 fps, sampled at 5 fps:
// 40 frames a second) through the camera and detect+embed stages in one
// process, with one detection worker, which keeps up with about half of
// that here, and a camera queue of 16 frames (3.2 s of frames). Without
// shedding by age a frame would wait for its 15 predecessors, seconds; the
// stage must instead shed the oldest frames of each camera (counted by
// reason) so that detected frames wait about detect.max_wait at most,
// detect each camera's frames in order, serve every camera, and still
// report the faces of every camera. The bound asserted is generous (CI is
// a loaded 2-core box): max_wait plus a second, where the unshed queue
// gives about 3 s.
func TestOverloadShedsOldest(t *testing.T) {
	ctx := context.Background()
	const cams, queue = 8, 16
	sc, err := synthcam.Johns(testdata.SharedDir(), 640, 360, 25)
	if err != nil {
		t.Fatal(err)
	}
	sc.Script.Background = testdata.OpenCV(t, "vtest.avi")
	file := filepath.Join(t.TempDir(), "clip.h264")
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := synthcam.Render(rctx, sc.Script, file); err != nil {
		t.Fatal(err)
	}
	clip, err := rtsptest.LoadClip(file, 25)
	if err != nil {
		t.Fatal(err)
	}
	var srcs []rtsptest.Source
	for i := range cams {
		srcs = append(srcs, rtsptest.Source{Name: fmt.Sprintf("cam%d", i), Clip: clip, Loop: true})
	}
	srv, err := rtsptest.Start(ctx, rtsptest.Options{Sources: srcs})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	bus := openBus(t)
	if err := natsbus.EnsureStreams(ctx, bus.JS, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	reports, err := bus.Conn.SubscribeSync(wire.TracksWildcard)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := NewMetrics(nil)
	cfg := config.Defaults()
	cfg.Detect.Workers = 1
	cfg.Detect.MaxWidth = 640
	// The overload must not depend on how cheap a frame is: region search
	// (full_frame_every) made an idle box detect all 40 frames a second
	// with one worker, and nothing was shed. Whole frames, upsampled once,
	// cost a worker several times the 25 ms a frame it would have.
	cfg.Detect.FullFrameEvery = 0
	cfg.Detect.Upsample = 1
	var cc []config.Camera
	for i := range cams {
		c := config.CameraDefaults()
		c.ID, c.URL, c.MaxFPS = fmt.Sprintf("cam%d", i), srv.URL(fmt.Sprintf("cam%d", i)), 5
		cc = append(cc, c)
	}
	local := make(chan Frame, 2*cams)
	ds, err := NewDetectStage(DetectOptions{Bus: bus, Models: testdata.ModelDir(t), Detect: cfg.Detect, Embed: cfg.Embed,
		Local: local, QueueSize: queue, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	type detected struct {
		seq    uint64
		waited time.Duration
	}
	var mu sync.Mutex
	got := map[string][]detected{}
	measuring := false // frames detected once every camera streams
	ds.onDetect = func(cam string, seq uint64, waited time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		got[cam] = append(got[cam], detected{seq, waited})
		if !measuring {
			measuring = len(got) == cams
		}
	}
	cs, err := NewCameraStage(CameraOptions{Bus: bus, Cameras: cc, Local: local, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	_, stopDetect := runStage(t, ds.Run)
	_, stopCams := runStage(t, cs.Run)

	// Every camera streaming, then 12 s of overload.
	waitForCond(t, 90*time.Second, "every camera's frames detected", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return measuring
	})
	mu.Lock()
	skip := map[string]int{}
	for cam, fs := range got {
		skip[cam] = len(fs)
	}
	mu.Unlock()
	shed0 := testutil.ToFloat64(m.Shed.WithLabelValues(ShedWaited)) + testutil.ToFloat64(m.Shed.WithLabelValues(ShedQueueFull))
	time.Sleep(12 * time.Second)
	if err := stopCams(); err != nil {
		t.Errorf("camera stage: %v", err)
	}
	if err := stopDetect(); err != nil {
		t.Errorf("detect stage: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	var waits []time.Duration
	total := 0
	for i := range cams {
		cam := fmt.Sprintf("cam%d", i)
		fs := got[cam]
		for k := 1; k < len(fs); k++ {
			if fs[k].seq <= fs[k-1].seq {
				t.Errorf("%s: frame %d detected after frame %d, want its frames in order", cam, fs[k].seq, fs[k-1].seq)
				break
			}
		}
		fs = fs[skip[cam]:]
		total += len(fs)
		// Every camera is served: at least one frame in 4 s of overload
		// (a fair share is 12 s x 10-20 frames/s / 8 cameras; one starved
		// by the others gets none).
		if len(fs) < 3 {
			t.Errorf("%s: %d frames detected in 12 s of overload, want at least 3 (every camera served)", cam, len(fs))
		}
		for _, d := range fs {
			waits = append(waits, d.waited)
		}
	}
	slices.Sort(waits)
	if len(waits) == 0 {
		t.Fatal("no frame detected during the overload")
	}
	p99 := waits[(len(waits)*99)/100]
	t.Logf("overload: %d frames detected in 12 s over %d cameras; wait p50 %v, p99 %v, max %v", total, cams, waits[len(waits)/2].Round(time.Millisecond), p99.Round(time.Millisecond), waits[len(waits)-1].Round(time.Millisecond))
	if bound := cfg.Detect.MaxWait + time.Second; p99 > bound {
		t.Errorf("p99 wait of detected frames = %v, want at most detect.max_wait + 1s = %v (shedding the oldest keeps it bounded)", p99, bound)
	}
	waited := testutil.ToFloat64(m.Shed.WithLabelValues(ShedWaited))
	full := testutil.ToFloat64(m.Shed.WithLabelValues(ShedQueueFull))
	t.Logf("shed: %v waited, %v queue_full, of %v frames", waited, full, testutil.ToFloat64(m.Frames))
	if waited+full-shed0 <= 0 {
		t.Errorf("frames shed during the overload = %v, want some (one worker cannot detect 40 whole upsampled frames/s)", waited+full-shed0)
	}
	// Each frame taken is detected, shed, or was left at the stop: queued,
	// or held by its camera's goroutine waiting for the detector.
	detectedAll := 0
	for _, fs := range got {
		detectedAll += len(fs)
	}
	frames := testutil.ToFloat64(m.Frames)
	if accounted := float64(detectedAll) + waited + full; accounted > frames || frames > accounted+cams*(queue+1) {
		t.Errorf("frames taken = %v, detected + shed = %v, want equal up to the %d that fit in the queues", frames, accounted, cams*(queue+1))
	}
	// Faces are still found and reported on every camera.
	seen := map[string]bool{}
	for {
		msg, err := reports.NextMsg(100 * time.Millisecond)
		if err != nil {
			break
		}
		tr, err := wire.DecodeTrack(msg.Data)
		if err != nil {
			t.Fatalf("DecodeTrack = %v", err)
		}
		seen[tr.Meta.Camera] = true
	}
	for i := range cams {
		if cam := fmt.Sprintf("cam%d", i); !seen[cam] {
			t.Errorf("no track report from %s under overload, want its faces reported", cam)
		}
	}
}
