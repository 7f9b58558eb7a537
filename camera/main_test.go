package camera

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/rtsptest"
	"github.com/facewatch/facewatch/internal/testdata"
)

// Test clips, encoded once per package run by TestMain from real footage.
const (
	// clipFPS is high so that opens are quick: FFmpeg probes about 20
	// frames and OpenCV serialises opens, so at 25 fps a dozen cameras take
	// 20 s to start.
	clipFPS = 50.0
	clipGOP = 25
	// walkFPS is the rate of the walking clip, the footage's own.
	walkFPS = 25.0
	clipW   = 320
	clipH   = 240
	altW    = 480
	altH    = 272
	// startBound bounds a worker's first open in tests, queued behind the
	// opens of every other test running in parallel.
	startBound = 60 * time.Second
)

type clipSet struct {
	dir                       string
	main, alt, still, walking *rtsptest.Clip
	mainPath, stillPath       string
	walkingPath               string
	err                       error
}

var clips clipSet // written once by TestMain, read-only afterwards

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "camera-clips-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	clips = encodeClips(dir)
	code := 0
	func() {
		defer func() {
			if code == 0 {
				if err := goleak.Find(goleak.IgnoreCurrent()); err != nil {
					fmt.Fprintln(os.Stderr, "goroutine leak:", err)
					code = 1
				}
			}
		}()
		code = m.Run()
	}()
	os.RemoveAll(dir)
	os.Exit(code)
}

// encodeClips encodes the package's test clips in parallel.
func encodeClips(dir string) clipSet {
	cs := clipSet{dir: dir}
	vtest, err := testdata.FindOpenCV("vtest.avi")
	if err != nil {
		cs.err = err
		return cs
	}
	walking, err := testdata.Find("videos/walking_royal_opera_house.mp4")
	if err != nil {
		cs.err = err
		return cs
	}
	ctx := context.Background()
	jobs := []struct {
		o    rtsptest.EncodeOptions
		clip **rtsptest.Clip
	}{
		{rtsptest.EncodeOptions{Src: vtest, Dst: filepath.Join(dir, "main.h264"), Width: clipW, Height: clipH, FPS: clipFPS, Duration: 8 * time.Second, GOP: clipGOP}, &cs.main},
		{rtsptest.EncodeOptions{Src: vtest, Dst: filepath.Join(dir, "alt.h264"), Width: altW, Height: altH, FPS: clipFPS, Duration: 4 * time.Second, GOP: clipGOP}, &cs.alt},
		{rtsptest.EncodeOptions{Src: vtest, Dst: filepath.Join(dir, "still.h264"), Width: clipW, Height: clipH, FPS: clipFPS, Duration: 4 * time.Second, Still: true, GOP: clipGOP}, &cs.still},
		{rtsptest.EncodeOptions{Src: walking, Dst: filepath.Join(dir, "walking.h264"), Width: clipW, Height: 180, FPS: walkFPS, GOP: 12}, &cs.walking},
	}
	cs.mainPath, cs.stillPath, cs.walkingPath = jobs[0].o.Dst, jobs[2].o.Dst, jobs[3].o.Dst
	var wg sync.WaitGroup
	errs := make([]error, len(jobs))
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := rtsptest.Encode(ctx, j.o); err != nil {
				errs[i] = err
				return
			}
			c, err := rtsptest.LoadClip(j.o.Dst, j.o.FPS)
			errs[i] = err
			*j.clip = c
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			cs.err = e
		}
	}
	return cs
}

func needClips(t testing.TB) {
	t.Helper()
	if clips.err != nil {
		t.Fatalf("preparing test clips: %v", clips.err)
	}
}

// startRig starts an RTSP server with the given sources, closed at the end
// of the test.
func startRig(t testing.TB, srcs ...rtsptest.Source) *rtsptest.Server {
	t.Helper()
	needClips(t)
	s, err := rtsptest.Start(context.Background(), rtsptest.Options{Sources: srcs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testCamera is a camera config with short timeouts for tests.
func testCamera(id, url string) config.Camera {
	c := config.CameraDefaults()
	c.ID, c.URL = id, url
	c.MaxFPS = 0
	c.OpenTimeout = 4 * time.Second
	c.ReadTimeout = 2 * time.Second
	c.StallTimeout = time.Second
	c.BackoffMin = 100 * time.Millisecond
	c.BackoffMax = 800 * time.Millisecond
	c.QueueSize = 8
	return c
}

// running is a worker under test with a consumer counting its frames.
type running struct {
	w      *Worker
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	frames atomic.Int64
	mu     sync.Mutex // guards sizes
	sizes  map[[2]int]int
	logs   *syncBuffer
}

// run starts a worker for cfg and a consumer that counts and closes its
// frames. The worker is stopped at the end of the test.
func run(t testing.TB, cfg config.Camera, opts Options) *running {
	t.Helper()
	r := &running{done: make(chan struct{}), sizes: map[[2]int]int{}, logs: &syncBuffer{}}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r.w = NewWorker(cfg, opts)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		if err := r.w.Run(ctx); err != nil {
			t.Errorf("Run(%s) = %v, want nil", cfg.ID, err)
		}
	}()
	go func() { // ends when Run closes the queue
		for f := range r.w.Frames() {
			r.frames.Add(1)
			r.mu.Lock()
			r.sizes[[2]int{f.Mat.Cols(), f.Mat.Rows()}]++
			r.mu.Unlock()
			f.Mat.Close()
		}
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the worker and checks that Run returns within 2 s and every
// capture goroutine exits within the read timeout after that.
func (r *running) stop(t testing.TB) time.Duration {
	t.Helper()
	select {
	case <-r.done:
		return 0
	default:
	}
	start := time.Now()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("Run(%s) still running 5 s after cancel", r.w.cfg.ID)
	}
	took := time.Since(start)
	if took > 2*time.Second {
		t.Errorf("Run(%s) returned %v after cancel, want ≤ 2s", r.w.cfg.ID, took)
	}
	select {
	case <-r.w.Drained():
	case <-time.After(r.w.cfg.ReadTimeout + r.w.cfg.OpenTimeout + 2*time.Second):
		t.Errorf("worker %s: capture goroutines still alive (%d) long after Run returned", r.w.cfg.ID, r.w.Status().Captures)
	}
	return took
}

// waitState polls until the worker reaches one of states, failing after
// timeout. It returns how long it took.
func waitState(t testing.TB, r *running, timeout time.Duration, states ...State) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		st := r.w.Status()
		for _, s := range states {
			if st.State == s {
				return time.Since(start)
			}
		}
		if time.Since(start) > timeout {
			logs := r.logs.String()
			if len(logs) > 3000 {
				logs = logs[len(logs)-3000:]
			}
			t.Fatalf("camera %s: state = %s after %v, want one of %v (last error %q); worker log:\n%s", st.CameraID, st.State, timeout, states, st.LastError, logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not reached within %v", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

var _ io.Writer = (*syncBuffer)(nil)
