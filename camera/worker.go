// Package camera owns ingest: one Worker per configured camera opens the
// source (RTSP over TCP or UDP, RTSPS, HTTP MJPEG or a file) through OpenCV's
// FFmpeg backend, samples frames (an fps cap, motion gating), hands them on
// through a bounded queue that drops the oldest, reconnects with capped,
// jittered exponential backoff and reports its health as a Status and as
// Prometheus metrics. It must not detect faces, publish to NATS or log a
// URL's credentials.
//
// Never hanging. Every OpenCV call that can block (open and read) runs on a
// capture goroutine that owns the cv::VideoCapture; the worker's own
// goroutine only supervises it through a channel and a frame-age watchdog.
// OpenCV is opened with CAP_PROP_OPEN_TIMEOUT_MSEC and
// CAP_PROP_READ_TIMEOUT_MSEC, so FFmpeg's interrupt callback ends a blocked
// call after open_timeout/read_timeout, but the worker does not depend on
// that: when frames stop for stall_timeout (or an open outlives
// open_timeout), or when Run's context is done, the worker abandons the
// capture goroutine (closes its quit channel and stops listening to it) and
// goes on at once. The abandoned goroutine notices quit as soon as its
// blocked call returns, then releases the capture and its FFmpeg context
// itself: resources are reclaimed, late, but never leaked, and nobody waits
// for them. Run therefore returns within ShutdownGrace (1 s by default) of
// its context ending, even while a read is blocked inside OpenCV; Drained
// reports when every capture goroutine has finally exited. A worker never
// has more than one capture in OpenCV: it waits for an abandoned one to
// return before opening again.
//
// Opens are serialised. OpenCV's FFmpeg backend holds a process-wide mutex
// for the whole of an open (including FFmpeg's stream probing, at most
// 1.5 s with the analyzeduration set below), so cameras open one after another; the package
// queues opens on its own gate (openGate) so that a queued open can be
// abandoned and open_timeout counts from the start of the open itself.
// Reads are not serialised.
//
// FFmpeg options. OpenCV 4.6 cannot take FFmpeg options per capture; it
// reads OPENCV_FFMPEG_CAPTURE_OPTIONS at each open and otherwise prefers
// TCP. Each open sets that variable for its duration under a lock
// (capture.cpp): the camera's RTSP transport and a 1.5 s analyzeduration
// (FFmpeg's default of 5 s made a 5 fps camera take 5 s to open). Opens are
// serialised anyway; reads are never delayed.
package camera

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/config"
)

// State is a camera's health.
type State string

// The states a worker reports.
const (
	// StateConnecting: opening the source, no failure yet.
	StateConnecting State = "connecting"
	// StateStreaming: frames are arriving.
	StateStreaming State = "streaming"
	// StateStalled: the watchdog restarted a capture whose frames stopped;
	// the worker is reconnecting and stays stalled until a frame arrives.
	StateStalled State = "stalled"
	// StateBackingOff: the last capture ended or failed to open; waiting
	// before the next attempt.
	StateBackingOff State = "backing_off"
	// StateFailed: Options.FailAfter attempts in a row gave no frame; the
	// worker keeps retrying at a capped backoff and stays failed until a
	// frame arrives.
	StateFailed State = "failed"
	// StateStopped: Run has returned.
	StateStopped State = "stopped"
)

func allStates() []State {
	return []State{StateConnecting, StateStreaming, StateStalled, StateBackingOff, StateFailed, StateStopped}
}

// ErrStalled marks a capture restarted by the frame-age watchdog.
var ErrStalled = errors.New("stream stalled")

// Frame is one decoded frame handed to the next stage.
type Frame struct {
	CameraID string
	// Seq numbers the frames handed on by one worker, from 1, across
	// reconnects.
	Seq uint64
	// Time is the capture time: when the frame was decoded.
	Time time.Time
	// PTS is the frame's presentation time in the stream, relative to the
	// start of the current capture session (OpenCV's CAP_PROP_POS_MSEC).
	PTS time.Duration
	// Mat is the BGR image. The receiver owns it and must Close it.
	Mat gocv.Mat
}

// Options are a worker's collaborators and tuning beyond its config.
type Options struct {
	// Logger receives the worker's logs; nil discards them.
	Logger *slog.Logger
	// Metrics, when set, is updated with this camera's figures.
	Metrics *Metrics
	// FailAfter is how many attempts in a row without a frame make the
	// state failed; 0 means 3.
	FailAfter int
	// ShutdownGrace is how long Run waits, once its context is done, for
	// the capture to close before abandoning it; 0 means 1 s.
	ShutdownGrace time.Duration
}

// Status is a snapshot of one camera's health, ready to publish as JSON.
// It carries no credentials.
type Status struct {
	CameraID string `json:"camera"`
	// URL is the configured URL with credentials masked.
	URL   string `json:"url"`
	State State  `json:"state"`
	// Since is when State was entered.
	Since time.Time `json:"since"`
	// Codec, Width, Height and SourceFPS describe the stream as last
	// opened (Width and Height follow resolution changes).
	Codec     string  `json:"codec"`
	Width     int     `json:"width"`
	Height    int     `json:"height"`
	SourceFPS float64 `json:"source_fps"`
	// FPSIn is frames decoded per second and FPSOut frames handed on per
	// second, over the last few seconds.
	FPSIn     float64 `json:"fps_in"`
	FPSOut    float64 `json:"fps_out"`
	FramesIn  uint64  `json:"frames_in"`
	FramesOut uint64  `json:"frames_out"`
	// Drops counts frames not handed on, by reason (DropFPSCap,
	// DropNoMotion, DropQueueFull).
	Drops map[string]uint64 `json:"drops"`
	// Reconnects counts capture sessions after the first; Stalls those
	// ended by a stall (OpenCV's read timeout or the frame-age watchdog).
	Reconnects uint64 `json:"reconnects"`
	Stalls     uint64 `json:"stalls"`
	// Captures is the number of capture goroutines alive: 1 while a
	// capture is open (or abandoned but still blocked in OpenCV), 0
	// between attempts and once Drained.
	Captures    int       `json:"captures"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// LastFrame is when the last frame was decoded.
	LastFrame time.Time `json:"last_frame,omitzero"`
}

const (
	tickInterval = 100 * time.Millisecond
	rateWindow   = 3 * time.Second
	// openGrace is how long past open_timeout the watchdog lets an open
	// run before abandoning it (FFmpeg should have given up by then).
	openGrace = time.Second
)

var dropReasons = [...]string{DropFPSCap, DropNoMotion, DropQueueFull}

// openGate admits one open at a time into OpenCV. OpenCV's FFmpeg backend
// already serialises opens process-wide behind its own mutex (measured: four
// concurrent opens finish one after another); waiting here instead, where
// the wait can be abandoned, lets a queued open be cancelled and lets the
// watchdog time an open from when it really starts. It is the package's one
// piece of process-wide state, mirroring OpenCV's.
var openGate = make(chan struct{}, 1)

// Worker ingests one camera. Create it with NewWorker, run it with Run and
// read its frames from Frames.
type Worker struct {
	cfg       config.Camera
	src       string // what FFmpeg opens (credentials included)
	redacted  string
	log       *slog.Logger
	m         *cameraMetrics
	failAfter int
	grace     time.Duration

	out     chan Frame
	started atomic.Bool
	live    sync.WaitGroup // capture goroutines, abandoned ones included
	nlive   atomic.Int64
	drained chan struct{}

	framesIn atomic.Uint64
	drops    [len(dropReasons)]atomic.Uint64
	lastRead atomic.Int64 // unix nanoseconds of the last decoded frame

	mu sync.Mutex // guards st and samples
	st Status
	// samples of (time, framesIn, framesOut) over the last rateWindow.
	samples []rateSample
}

type rateSample struct {
	t       time.Time
	in, out uint64
}

// NewWorker returns a worker for cfg, which should have passed Validate.
func NewWorker(cfg config.Camera, opts Options) *Worker {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Worker{
		cfg:       cfg,
		src:       sourceURL(cfg.URL),
		redacted:  config.Redact(cfg.URL),
		m:         opts.Metrics.forCamera(cfg.ID),
		failAfter: opts.FailAfter,
		grace:     opts.ShutdownGrace,
		out:       make(chan Frame, max(1, cfg.QueueSize)),
		drained:   make(chan struct{}),
	}
	w.log = log.With("component", "camera", "camera", cfg.ID)
	if w.failAfter <= 0 {
		w.failAfter = 3
	}
	if w.grace <= 0 {
		w.grace = time.Second
	}
	w.st = Status{CameraID: cfg.ID, URL: w.redacted, State: StateConnecting, Since: time.Now()}
	w.m.setState(StateConnecting)
	return w
}

// Frames is the bounded hand-off queue (config queue_size). When it is full
// the oldest frame is dropped (and closed) for the newest. It is closed when
// Run returns; frames still in it then are closed by Run.
func (w *Worker) Frames() <-chan Frame { return w.out }

// Drained is closed once Run has returned and every capture goroutine,
// abandoned ones included, has released its capture.
func (w *Worker) Drained() <-chan struct{} { return w.drained }

// Status returns a snapshot of the camera's health.
func (w *Worker) Status() Status {
	w.mu.Lock()
	st := w.st
	w.mu.Unlock()
	st.FramesIn = w.framesIn.Load()
	st.Drops = make(map[string]uint64, len(dropReasons))
	for i, r := range dropReasons {
		st.Drops[r] = w.drops[i].Load()
	}
	if n := w.lastRead.Load(); n != 0 {
		st.LastFrame = time.Unix(0, n)
	}
	st.Captures = int(w.nlive.Load())
	return st
}

func (w *Worker) countDrop(reason string) {
	for i, r := range dropReasons {
		if r == reason {
			w.drops[i].Add(1)
		}
	}
	if w.m != nil {
		w.m.dropped[reason].Inc()
	}
}

// setState moves to s; sticky states (stalled, failed) are kept while
// merely reconnecting.
func (w *Worker) setState(s State, sticky bool) {
	w.mu.Lock()
	old := w.st.State
	if sticky && (old == StateStalled || old == StateFailed) {
		w.mu.Unlock()
		return
	}
	if old != s {
		w.st.State = s
		w.st.Since = time.Now()
	}
	w.mu.Unlock()
	if old != s {
		w.m.setState(s)
		lvl := slog.LevelInfo
		if s == StateStalled || s == StateFailed {
			lvl = slog.LevelWarn
		}
		w.log.Log(context.Background(), lvl, "camera state", "from", old, "to", s)
	}
}

func (w *Worker) setError(err error) {
	msg := config.RedactError(err)
	w.mu.Lock()
	w.st.LastError = msg
	w.st.LastErrorAt = time.Now()
	w.mu.Unlock()
}

// updateRates records a sample and recomputes the fps figures.
func (w *Worker) updateRates(now time.Time) {
	w.mu.Lock()
	s := rateSample{t: now, in: w.framesIn.Load(), out: w.st.FramesOut}
	w.samples = append(w.samples, s)
	i := 0
	for i < len(w.samples)-1 && now.Sub(w.samples[i].t) > rateWindow {
		i++
	}
	w.samples = w.samples[i:]
	first := w.samples[0]
	var in, out float64
	if dt := now.Sub(first.t).Seconds(); dt >= 0.5 {
		in = float64(s.in-first.in) / dt
		out = float64(s.out-first.out) / dt
	}
	w.st.FPSIn, w.st.FPSOut = in, out
	w.mu.Unlock()
	if w.m != nil {
		w.m.fpsIn.Set(in)
		w.m.fpsOut.Set(out)
	}
}

// session is one capture attempt: a goroutine that owns a capture and sends
// events to the worker until quit is closed or the stream ends.
type session struct {
	quit   chan struct{}
	events chan event
	exited chan struct{} // closed when the goroutine has released everything
	// openStarted is the unix time in nanoseconds the open began inside
	// OpenCV (after the open gate), 0 while queued.
	openStarted atomic.Int64
	// opened is set once the source is open; lastRead is the unix time in
	// nanoseconds of the open or of the last decoded frame.
	opened   atomic.Bool
	lastRead atomic.Int64
}

type eventKind int

const (
	evOpened eventKind = iota
	evFrame
	evEnd
)

type event struct {
	kind  eventKind
	frame Frame
	info  streamInfo
	err   error
	// stalled marks an evEnd caused by OpenCV's read timeout rather than
	// an end or error of the stream.
	stalled bool
}

type streamInfo struct {
	codec         string
	width, height int
	fps           float64
}

// send delivers ev unless the session has been abandoned.
func (s *session) send(ev event) bool {
	select {
	case s.events <- ev:
		return true
	case <-s.quit:
		return false
	}
}

// start launches a capture goroutine. It stops when its quit channel is
// closed (checked between OpenCV calls) or the stream ends.
func (w *Worker) start() *session {
	s := &session{quit: make(chan struct{}), events: make(chan event), exited: make(chan struct{})}
	w.live.Add(1)
	w.nlive.Add(1)
	go func() {
		defer w.live.Done()
		defer w.nlive.Add(-1)
		defer close(s.exited)
		w.capture(s)
	}()
	return s
}

// capture is the body of a capture goroutine.
func (w *Worker) capture(s *session) {
	vctx, vcancel := context.WithCancel(context.Background())
	go func() { // ends when the check does, or when the session quits
		select {
		case <-s.quit:
		case <-vctx.Done():
		}
		vcancel()
	}()
	err := verifyRTSPS(vctx, w.cfg.URL, TLSVerify{CAFile: w.cfg.TLSCAFile, InsecureSkipVerify: w.cfg.TLSInsecureSkipVerify}, w.cfg.OpenTimeout)
	vcancel()
	if err != nil {
		s.send(event{kind: evEnd, err: fmt.Errorf("opening camera %s (%s): %s", w.cfg.ID, w.redacted, redactMessage(err.Error()))})
		return
	}
	select {
	case openGate <- struct{}{}:
	case <-s.quit:
		return
	}
	s.openStarted.Store(time.Now().UnixNano())
	c, err := openCapture(w.src, w.cfg.Transport, w.cfg.OpenTimeout, w.cfg.ReadTimeout)
	<-openGate
	if err != nil {
		err = explainOpenError(w.src, w.cfg.OpenTimeout, err)
		s.send(event{kind: evEnd, err: fmt.Errorf("opening camera %s (%s): %w", w.cfg.ID, w.redacted, err)})
		return
	}
	defer c.close()
	s.lastRead.Store(time.Now().UnixNano())
	s.opened.Store(true)
	info := streamInfo{codec: c.codec(), width: int(c.get(gocv.VideoCaptureFrameWidth)),
		height: int(c.get(gocv.VideoCaptureFrameHeight)), fps: c.get(gocv.VideoCaptureFPS)}
	if !s.send(event{kind: evOpened, info: info}) {
		return
	}
	smp := newSampler(w.cfg.MaxFPS, w.cfg.MotionThreshold, w.cfg.MotionMaxSkip)
	defer smp.close()
	// A file is read as fast as it decodes; pace it at its own rate so
	// that it behaves like a camera.
	isFile := !strings.Contains(w.src, "://")
	var fileStart time.Time
	var nread int64
	openTook := time.Since(time.Unix(0, s.openStarted.Load()))
	var prevReadTook time.Duration
	for {
		select {
		case <-s.quit:
			return
		default:
		}
		m := gocv.NewMat()
		t0 := time.Now()
		ok, msg := c.read(&m)
		took := time.Since(t0)
		if !ok || m.Empty() {
			m.Close()
			w.log.Debug("camera read failed", "read_took", took, "previous_read_took", prevReadTook, "message", msg)
			switch {
			case msg != "":
				s.send(event{kind: evEnd, err: fmt.Errorf("reading camera %s: %s", w.cfg.ID, msg)})
			case nread == 0 && openTook >= w.cfg.OpenTimeout*9/10:
				// FFmpeg's probing ran into open_timeout: the source
				// answers but sends no frames.
				s.send(event{kind: evEnd, err: fmt.Errorf("camera %s: no frame within open_timeout %v", w.cfg.ID, w.cfg.OpenTimeout)})
			case took >= w.cfg.ReadTimeout*9/10 || prevReadTook >= w.cfg.ReadTimeout*9/10:
				// OpenCV's read timeout caught a stall before the watchdog
				// (the read that timed out may still have returned the
				// decoder's last buffered frame, then this one fails).
				s.send(event{kind: evEnd, stalled: true, err: fmt.Errorf("camera %s: %w: no frame for %v (read timeout)", w.cfg.ID, ErrStalled, w.cfg.ReadTimeout)})
			default:
				s.send(event{kind: evEnd, err: fmt.Errorf("reading camera %s: end of stream", w.cfg.ID)})
			}
			return
		}
		prevReadTook = took
		now := time.Now()
		pts := time.Duration(c.get(gocv.VideoCapturePosMsec) * float64(time.Millisecond))
		if pts == 0 && nread > 0 && info.fps > 0 {
			// A raw elementary stream carries no timestamps: count frames.
			pts = time.Duration(float64(nread) / info.fps * float64(time.Second))
		}
		nread++
		if isFile {
			if fileStart.IsZero() {
				fileStart = now.Add(-pts)
			}
			if d := time.Until(fileStart.Add(pts)); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-s.quit:
					t.Stop()
					m.Close()
					return
				case <-t.C:
				}
				now = time.Now()
			}
		}
		s.lastRead.Store(now.UnixNano())
		w.lastRead.Store(now.UnixNano())
		w.framesIn.Add(1)
		if w.m != nil {
			w.m.framesRead.Inc()
			w.m.lastFrame.Set(float64(now.UnixNano()) / 1e9)
		}
		if reason := smp.decide(now, m); reason != "" {
			m.Close()
			w.countDrop(reason)
			continue
		}
		if !s.send(event{kind: evFrame, frame: Frame{CameraID: w.cfg.ID, Time: now, PTS: pts, Mat: m}}) {
			m.Close()
			return
		}
	}
}

// abandon tells a capture goroutine to stop and stops listening to it. It
// exits, releasing its capture, once its current OpenCV call returns.
func (w *Worker) abandon(s *session) {
	close(s.quit)
	// Frames it may already be offering are closed by the goroutine
	// itself (send fails once quit is closed).
}

// handoff queues f, dropping (and closing) the oldest frame when full.
func (w *Worker) handoff(f Frame) {
	for {
		select {
		case w.out <- f:
			return
		default:
		}
		select {
		case old := <-w.out:
			old.Mat.Close()
			w.countDrop(DropQueueFull)
		default:
		}
	}
}

// Run ingests the camera until ctx is done, then returns nil within
// ShutdownGrace even if a capture is blocked inside OpenCV (see the package
// comment). It returns an error only if called twice.
func (w *Worker) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return fmt.Errorf("camera %s: worker already run", w.cfg.ID)
	}
	w.log.Info("camera starting", "url", w.redacted)
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	bo := backoff{min: w.cfg.BackoffMin, max: w.cfg.BackoffMax}
	var seq uint64
	var prev *session
	failures := 0
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			w.mu.Lock()
			w.st.Reconnects++
			w.mu.Unlock()
			if w.m != nil {
				w.m.reconnects.Inc()
			}
		}
		if prev != nil {
			// Never more than one capture per camera: wait for an
			// abandoned one (blocked in OpenCV) to return first, or
			// abandoned opens would pile up in OpenCV's queue.
			select {
			case <-prev.exited:
			default:
				w.log.Warn("camera waiting for its abandoned capture to return from OpenCV")
			wait0:
				for {
					select {
					case <-ctx.Done():
						return w.shutdown()
					case now := <-tick.C:
						w.updateRates(now)
					case <-prev.exited:
						break wait0
					}
				}
			}
		}
		s := w.start()
		prev = s
		w.setState(StateConnecting, true)
		startedAt := time.Now()
		gotFrame, stalled := false, false
		var endErr error
	session:
		for {
			select {
			case <-ctx.Done():
				w.abandon(s)
				return w.shutdown()
			case ev := <-s.events:
				switch ev.kind {
				case evOpened:
					w.mu.Lock()
					w.st.Codec, w.st.SourceFPS = ev.info.codec, ev.info.fps
					w.st.Width, w.st.Height = ev.info.width, ev.info.height
					w.mu.Unlock()
					w.log.Info("camera opened", "codec", ev.info.codec, "width", ev.info.width,
						"height", ev.info.height, "fps", ev.info.fps, "open_time", time.Since(startedAt))
				case evFrame:
					if !gotFrame {
						gotFrame, failures = true, 0
						bo.reset()
						w.setState(StateStreaming, false)
					}
					seq++
					f := ev.frame
					f.Seq = seq
					wd, ht := f.Mat.Cols(), f.Mat.Rows()
					w.mu.Lock()
					changed := wd != w.st.Width || ht != w.st.Height
					old := [2]int{w.st.Width, w.st.Height}
					w.st.Width, w.st.Height = wd, ht
					w.st.FramesOut++
					w.mu.Unlock()
					if changed {
						w.log.Info("camera resolution changed", "from", fmt.Sprintf("%dx%d", old[0], old[1]), "to", fmt.Sprintf("%dx%d", wd, ht))
					}
					if w.m != nil {
						w.m.framesOut.Inc()
					}
					w.handoff(f)
				case evEnd:
					endErr, stalled = ev.err, ev.stalled
					break session
				}
			case now := <-tick.C:
				w.updateRates(now)
				if !s.opened.Load() {
					// Queued behind other cameras' opens: each of those is
					// bounded, so only a started open is timed.
					began := s.openStarted.Load()
					if began == 0 {
						continue
					}
					if age := now.Sub(time.Unix(0, began)); age > w.cfg.OpenTimeout+openGrace {
						endErr = fmt.Errorf("opening camera %s (%s): no answer within %v", w.cfg.ID, w.redacted, age.Round(time.Millisecond))
						w.abandon(s)
						break session
					}
					continue
				}
				if age := now.Sub(time.Unix(0, s.lastRead.Load())); age > w.cfg.StallTimeout {
					endErr = fmt.Errorf("camera %s: %w: no frame for %v", w.cfg.ID, ErrStalled, age.Round(time.Millisecond))
					stalled = true
					w.abandon(s)
					break session
				}
			}
		}
		if !gotFrame {
			failures++
		}
		w.setError(endErr)
		next := StateBackingOff
		switch {
		case failures >= w.failAfter:
			next = StateFailed
		case stalled:
			next = StateStalled
		case !gotFrame && w.Status().State == StateStalled:
			next = StateStalled
		}
		if stalled {
			w.mu.Lock()
			w.st.Stalls++
			w.mu.Unlock()
			if w.m != nil {
				w.m.stalls.Inc()
			}
		}
		w.setState(next, false)
		delay := bo.next()
		w.log.Warn("camera capture ended", "error", config.RedactError(endErr), "retry_in", delay.Round(time.Millisecond), "failures", failures)
		timer := time.NewTimer(delay)
	wait:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return w.shutdown()
			case now := <-tick.C:
				w.updateRates(now)
			case <-timer.C:
				break wait
			}
		}
	}
}

// shutdown finishes Run: it waits up to the grace period for capture
// goroutines, closes the frame queue and closes the frames left in it.
func (w *Worker) shutdown() error {
	go func() { // exits when the last capture goroutine has
		w.live.Wait()
		close(w.drained)
	}()
	t := time.NewTimer(w.grace)
	defer t.Stop()
	select {
	case <-w.drained:
	case <-t.C:
		w.log.Warn("camera capture still blocked in OpenCV; abandoned, it is released when its call returns",
			"captures", w.nlive.Load())
	}
	close(w.out)
	for f := range w.out {
		f.Mat.Close()
	}
	w.setState(StateStopped, false)
	w.log.Info("camera stopped")
	return nil
}

// backoff is capped exponential backoff with jitter: attempt n waits a
// random time in [d/2, d] where d = min(max, min·2ⁿ).
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) reset() { b.n = 0 }

func (b *backoff) next() time.Duration {
	d := b.min
	for i := 0; i < b.n && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	b.n++
	half := int64(d / 2)
	if half <= 0 {
		return d
	}
	return time.Duration(half + rand.Int64N(half+1))
}
