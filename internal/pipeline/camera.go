package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/camera"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/wire"
)

// CameraOptions configure a CameraStage.
type CameraOptions struct {
	Bus     *natsbus.Bus
	Cameras []config.Camera
	// Local, when set, receives the frames (a detect stage in the same
	// process: pixels are passed, never re-encoded). Otherwise each frame is
	// published as a JPEG message on wire.FramesSubject.
	Local chan<- Frame
	// JPEGQuality of published frames; 0 means 90.
	JPEGQuality int
	// StatusInterval is how often each camera's health is published on
	// wire.StatusSubject; 0 means 5s.
	StatusInterval time.Duration
	Logger         *slog.Logger
	CameraMetrics  *camera.Metrics
	Metrics        *Metrics
	// Leases, when set, makes the stage read only the cameras it leases
	// (role RoleCamera), so that several camera processes share a site's
	// cameras and a dead one's cameras are read again elsewhere.
	// Leases.Cameras names them (each must be in Cameras).
	Leases *Leases
}

// CameraStage runs one camera worker per configured camera and hands
// their frames on.
type CameraStage struct {
	opt     CameraOptions
	log     *slog.Logger
	m       *Metrics
	workers []*camera.Worker // without leases: every camera's

	mu sync.Mutex
	// leased is guarded by mu: with leases, the workers of the cameras
	// this process holds now.
	leased map[string]*camera.Worker
}

// NewCameraStage creates the workers (nothing runs until Run).
func NewCameraStage(opt CameraOptions) (*CameraStage, error) {
	if opt.Bus == nil {
		return nil, errors.New("camera stage: no NATS bus")
	}
	if opt.JPEGQuality <= 0 {
		opt.JPEGQuality = 90
	}
	if opt.StatusInterval <= 0 {
		opt.StatusInterval = 5 * time.Second
	}
	s := &CameraStage{opt: opt, log: orDiscard(opt.Logger).With("component", "camera-stage"), m: orMetrics(opt.Metrics), leased: map[string]*camera.Worker{}}
	if opt.Leases != nil {
		known := map[string]bool{}
		for _, c := range opt.Cameras {
			known[c.ID] = true
		}
		for _, id := range opt.Leases.Cameras {
			if !known[id] {
				return nil, fmt.Errorf("camera stage: leased camera %q is not configured", id)
			}
		}
		return s, nil
	}
	for _, c := range opt.Cameras {
		s.workers = append(s.workers, camera.NewWorker(c, camera.Options{Logger: opt.Logger, Metrics: opt.CameraMetrics}))
	}
	return s, nil
}

// Statuses returns every camera's health.
func (s *CameraStage) Statuses() []camera.Status {
	if s.opt.Leases != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := make([]camera.Status, 0, len(s.leased))
		for _, w := range s.leased {
			out = append(out, w.Status())
		}
		return out
	}
	out := make([]camera.Status, len(s.workers))
	for i, w := range s.workers {
		out[i] = w.Status()
	}
	return out
}

// Run runs the workers and forwards their frames until ctx ends.
func (s *CameraStage) Run(ctx context.Context) error {
	if s.opt.Leases != nil {
		return s.runLeased(ctx)
	}
	if len(s.workers) == 0 {
		return errors.New("camera stage: no cameras configured")
	}
	var wg sync.WaitGroup
	for _, w := range s.workers {
		wg.Go(func() {
			if err := w.Run(ctx); err != nil {
				s.log.Error("camera worker", "err", err)
			}
		})
		wg.Go(func() { s.forward(ctx, w) })
	}
	wg.Go(func() { s.publishStatus(ctx) })
	wg.Wait()
	return nil
}

// runLeased reads each camera while this process holds its lease: the
// worker stops (and no frame of it is handed on) as soon as the lease is
// given up or could expire.
func (s *CameraStage) runLeased(ctx context.Context) error {
	byID := map[string]config.Camera{}
	for _, c := range s.opt.Cameras {
		byID[c.ID] = c
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.publishStatus(ctx) })
	err := runLeased(ctx, s.opt.Leases, RoleCamera, nil, s.log, func(cctx context.Context, id string) {
		w := camera.NewWorker(byID[id], camera.Options{Logger: s.opt.Logger, Metrics: s.opt.CameraMetrics})
		s.mu.Lock()
		s.leased[id] = w
		s.mu.Unlock()
		var cw sync.WaitGroup
		cw.Go(func() {
			if err := w.Run(cctx); err != nil && cctx.Err() == nil {
				s.log.Error("camera worker", "camera", id, "err", err)
			}
		})
		cw.Go(func() { s.forward(cctx, w) })
		cw.Wait()
		s.mu.Lock()
		delete(s.leased, id)
		s.mu.Unlock()
	})
	wg.Wait()
	return err
}

// forward hands one worker's frames on until its queue is closed (when its
// Run returns).
func (s *CameraStage) forward(ctx context.Context, w *camera.Worker) {
	for f := range w.Frames() {
		pf := Frame{Camera: f.CameraID, Seq: f.Seq, Time: f.Time, Mat: f.Mat}
		if s.opt.Local != nil {
			select {
			case s.opt.Local <- pf:
			case <-ctx.Done():
				f.Mat.Close()
			}
			continue
		}
		if ctx.Err() != nil { // the lease is gone: read, but not handed on
			f.Mat.Close()
			continue
		}
		if err := s.publishFrame(pf); err != nil && ctx.Err() == nil {
			s.log.Warn("publishing frame", "camera", pf.Camera, "seq", pf.Seq, "err", err)
		}
		f.Mat.Close()
	}
}

func (s *CameraStage) publishFrame(f Frame) error {
	start := time.Now()
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, f.Mat, []int{gocv.IMWriteJpegQuality, s.opt.JPEGQuality})
	if err != nil {
		return fmt.Errorf("encoding frame: %w", err)
	}
	defer buf.Close()
	data, err := wire.EncodeFrame(wire.FrameMeta{Camera: f.Camera, Seq: f.Seq, Time: f.Time, Width: f.Mat.Cols(), Height: f.Mat.Rows()}, buf.GetBytes())
	if err != nil {
		return err
	}
	s.m.Latency.WithLabelValues(StageCamera).Observe(time.Since(start).Seconds())
	// Frames are core NATS: a frame lost in a disconnect is like a frame
	// dropped under load, counted by the detect side as a sequence gap.
	return s.opt.Bus.Conn.Publish(wire.FramesSubject(f.Camera), data)
}

// publishStatus publishes each camera's health every StatusInterval.
func (s *CameraStage) publishStatus(ctx context.Context) {
	t := time.NewTicker(s.opt.StatusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, st := range s.Statuses() {
			data, err := wire.EncodeCameraStatus(statusMessage(st))
			if err != nil {
				s.log.Warn("encoding camera status", "camera", st.CameraID, "err", err)
				continue
			}
			if err := s.opt.Bus.Conn.Publish(wire.StatusSubject(st.CameraID), data); err != nil && ctx.Err() == nil {
				s.log.Warn("publishing camera status", "camera", st.CameraID, "err", err)
			}
		}
	}
}

// statusMessage is st in its wire form.
func statusMessage(st camera.Status) wire.CameraStatus {
	return wire.CameraStatus{
		Camera: st.CameraID, URL: st.URL, State: string(st.State), Since: st.Since,
		Codec: st.Codec, Width: st.Width, Height: st.Height,
		SourceFPS: st.SourceFPS, FPSIn: st.FPSIn, FPSOut: st.FPSOut,
		FramesIn: st.FramesIn, FramesOut: st.FramesOut, Drops: st.Drops,
		Reconnects: st.Reconnects, Stalls: st.Stalls, Captures: st.Captures,
		LastError: st.LastError, LastErrorAt: st.LastErrorAt, LastFrame: st.LastFrame,
	}
}
