package camera

import (
	"context"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/rtsptest"
)

// decodeFrames decodes up to n frames of a test clip with OpenCV.
func decodeFrames(t testing.TB, path string, n int) []gocv.Mat {
	t.Helper()
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		t.Fatalf("opening %s: %v", path, err)
	}
	defer vc.Close()
	var out []gocv.Mat
	for len(out) < n {
		m := gocv.NewMat()
		if !vc.Read(&m) || m.Empty() {
			m.Close()
			break
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		t.Fatalf("decoding %s: no frames", path)
	}
	t.Cleanup(func() {
		for _, m := range out {
			m.Close()
		}
	})
	return out
}

func TestSamplerFPSCap(t *testing.T) {
	needClips(t)
	frames := decodeFrames(t, clips.mainPath, 1)
	const seconds = 5
	tests := []struct {
		name     string
		in, cap  float64
		wantPerS float64
	}{
		{"25 in, cap 5", 25, 5, 5},
		{"25 in, cap 10", 25, 10, 10},
		{"30 in, cap 7", 30, 7, 7},
		{"25 in, no cap", 25, 0, 25},
		{"10 in, cap 25", 10, 25, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSampler(tc.cap, 0, time.Second)
			defer s.close()
			t0 := time.Unix(1000, 0)
			n := int(tc.in * seconds)
			passed, capped := 0, 0
			for i := 0; i < n; i++ {
				ts := t0.Add(time.Duration(float64(i) / tc.in * float64(time.Second)))
				switch s.decide(ts, frames[0]) {
				case "":
					passed++
				case DropFPSCap:
					capped++
				}
			}
			want := tc.wantPerS * seconds
			if float64(passed) < want-1 || float64(passed) > want+1 {
				t.Errorf("frames passed in %ds at %g fps with cap %g = %d, want %g ± 1", seconds, tc.in, tc.cap, passed, want)
			}
			if passed+capped != n {
				t.Errorf("passed %d + capped %d = %d, want every frame counted (%d)", passed, capped, passed+capped, n)
			}
		})
	}
}

func TestMotionGating(t *testing.T) {
	needClips(t)
	const (
		threshold = 1.0
		maxSkip   = time.Second
	)
	tests := []struct {
		name string
		path string
		// wantMin and wantMax bound the frames passed out of 100 at 25 fps
		// (4 s).
		wantMin, wantMax int
	}{
		// A still scene passes its first frame, then one per maxSkip: 1 + 3
		// in 4 s (allow one more for rounding).
		{"still scene", clips.stillPath, 4, 5},
		// People walking toward the camera: most frames move.
		{"walking crowd", clips.walkingPath, 50, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			frames := decodeFrames(t, tc.path, 100)
			s := newSampler(0, threshold, maxSkip)
			defer s.close()
			t0 := time.Unix(1000, 0)
			passed := 0
			for i, m := range frames {
				if s.decide(t0.Add(time.Duration(i)*40*time.Millisecond), m) == "" {
					passed++
				}
			}
			if passed < tc.wantMin || passed > tc.wantMax {
				t.Errorf("frames passed the motion gate in %s = %d of %d, want %d..%d", tc.name, passed, len(frames), tc.wantMin, tc.wantMax)
			}
		})
	}
}

// TestWorkerSampling checks the fps cap and the motion gate through a real
// worker: the rate handed on and the drops counted by reason.
func TestWorkerSampling(t *testing.T) {
	needClips(t)
	srv := startRig(t,
		rtsptest.Source{Name: "moving", Clip: clips.main, Loop: true},
		rtsptest.Source{Name: "still", Clip: clips.still, Loop: true})
	capped := testCamera("capped", srv.URL("moving"))
	capped.MaxFPS = 5
	gated := testCamera("gated", srv.URL("still"))
	gated.MotionThreshold = 1
	gated.MotionMaxSkip = time.Second
	tests := []struct {
		name           string
		cfg            config.Camera
		reason         string
		minOut, maxOut float64
	}{
		{"fps cap 5", capped, DropFPSCap, 4, 6},
		{"still scene gated", gated, DropNoMotion, 0.5, 1.6},
	}
	rs := make([]*running, len(tests))
	for i, tc := range tests {
		rs[i] = run(t, tc.cfg, Options{})
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rs[i]
			waitState(t, r, 15*time.Second, StateStreaming)
			time.Sleep(rateWindow + 500*time.Millisecond)
			st := r.w.Status()
			if st.FPSOut < tc.minOut || st.FPSOut > tc.maxOut {
				t.Errorf("Status().FPSOut = %.2f, want %g..%g", st.FPSOut, tc.minOut, tc.maxOut)
			}
			if st.FPSIn < 0.7*clipFPS {
				t.Errorf("Status().FPSIn = %.2f, want ≥ %.1f (every frame is decoded)", st.FPSIn, 0.7*clipFPS)
			}
			if st.Drops[tc.reason] == 0 {
				t.Errorf("Status().Drops = %v, want %s > 0", st.Drops, tc.reason)
			}
			if got, want := st.FramesIn, st.FramesOut+st.Drops[DropFPSCap]+st.Drops[DropNoMotion]; got < want || got > want+2 {
				t.Errorf("FramesIn = %d, want FramesOut + skips = %d (every frame accounted for)", got, want)
			}
		})
	}
}

// TestQueueDropsOldest runs a worker nobody reads from: the queue stays at
// its bound, holds the newest frames and counts the drops.
func TestQueueDropsOldest(t *testing.T) {
	needClips(t)
	srv := startRig(t, rtsptest.Source{Name: "cam", Clip: clips.main, Loop: true})
	cfg := testCamera("unread", srv.URL("cam"))
	cfg.QueueSize = 3
	w := NewWorker(cfg, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
		<-w.Drained()
	}()
	waitFor(t, 15*time.Second, "frames dropped from a full queue", func() bool {
		return w.Status().Drops[DropQueueFull] >= 20
	})
	if n := len(w.Frames()); n > cfg.QueueSize {
		t.Fatalf("len(Frames()) = %d, want ≤ %d", n, cfg.QueueSize)
	}
	// The oldest frame queued is among the newest produced.
	before := w.Status()
	f := <-w.Frames()
	f.Mat.Close()
	if min := before.FramesOut - uint64(cfg.QueueSize); f.Seq < min {
		t.Errorf("oldest queued frame Seq = %d, want ≥ %d (FramesOut %d - queue size): old frames must go first", f.Seq, min, before.FramesOut)
	}
	cancel()
	<-done
	st := w.Status()
	if _, ok := <-w.Frames(); ok {
		t.Errorf("Frames() yielded a frame after Run returned, want it closed and drained")
	}
	// Every frame handed on was read once (1), dropped, or closed by Run
	// at shutdown (at most the queue size).
	if got, lo, hi := st.Drops[DropQueueFull], st.FramesOut-1-uint64(cfg.QueueSize), st.FramesOut-1; got < lo || got > hi {
		t.Errorf("Drops[queue_full] = %d, want %d..%d (FramesOut %d - 1 read - up to %d left queued)", got, lo, hi, st.FramesOut, cfg.QueueSize)
	}
}
