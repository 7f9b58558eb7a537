package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/embed"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/face"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/track"
	"github.com/facewatch/facewatch/internal/wire"
	"github.com/facewatch/facewatch/models"
)

// DetectOptions configure a DetectStage.
type DetectOptions struct {
	Bus    *natsbus.Bus
	Models models.Dir
	Detect config.Detect
	Embed  config.Embed
	Track  track.Config
	// Local, when set, is where frames come from (a camera stage in the
	// same process); otherwise the stage subscribes to frame messages.
	Local <-chan Frame
	// Cameras, when subscribing, limits the stage to these camera IDs (so
	// that detect processes can split cameras between them and each
	// camera's frames reach one tracker); empty takes every camera.
	Cameras []string
	// QueueSize bounds each camera's frames waiting for detection; when
	// full the oldest is dropped and counted. 0 means 4.
	QueueSize int
	// Replicas for the tracks stream.
	Replicas int
	Logger   *slog.Logger
	Metrics  *Metrics
	// Now is the clock used to end tracks of cameras that went quiet; nil
	// means time.Now.
	Now func() time.Time
}

// DetectStage is the detect+embed stage: it finds faces, tracks them per
// camera, embeds each track's best faces and publishes Track reports.
type DetectStage struct {
	opt       DetectOptions
	log       *slog.Logger
	m         *Metrics
	detectors chan *detect.Detector
	embedders chan *embed.Embedder
	all       []interface{ Close() error }
	now       func() time.Time
}

// NewDetectStage loads cfg.Workers detectors and embedders (each worker its
// own networks).
func NewDetectStage(opt DetectOptions) (*DetectStage, error) {
	if opt.Bus == nil {
		return nil, errors.New("detect stage: no NATS bus")
	}
	if opt.QueueSize <= 0 {
		opt.QueueSize = 4
	}
	if opt.Track.Keep == 0 {
		opt.Track = track.DefaultConfig()
	}
	s := &DetectStage{
		opt:       opt,
		log:       orDiscard(opt.Logger).With("component", "detect"),
		m:         orMetrics(opt.Metrics),
		detectors: make(chan *detect.Detector, max(1, opt.Detect.Workers)),
		embedders: make(chan *embed.Embedder, max(1, opt.Embed.Workers)),
		now:       opt.Now,
	}
	if s.now == nil {
		s.now = time.Now
	}
	for range max(1, opt.Detect.Workers) {
		d, err := detect.New(opt.Models, opt.Detect)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("loading detector: %w", err)
		}
		s.all = append(s.all, d)
		s.detectors <- d
	}
	for range max(1, opt.Embed.Workers) {
		e, err := embed.New(opt.Models, opt.Embed)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("loading embedder: %w", err)
		}
		s.all = append(s.all, e)
		s.embedders <- e
	}
	return s, nil
}

// Close frees the networks. Call it after Run has returned.
func (s *DetectStage) Close() {
	for _, c := range s.all {
		c.Close()
	}
	s.all = nil
}

// faceData is what a track keeps of a face: its chip, a JPEG crop for the
// reviewer, and its descriptor once computed (so an early report's
// descriptors are not computed again for the final one).
type faceData struct {
	chip []byte
	crop []byte
	vec  *[wire.DescriptorDim]float32
}

// camWorker owns one camera's tracker and frame queue.
type camWorker struct {
	id      string
	queue   chan Frame
	tracker *track.Tracker[*faceData]
	// lastArrival is when the newest frame reached the queue (unix ns), so
	// that a camera gone quiet still ends its tracks, but frames merely
	// waiting behind a slow detection do not.
	lastArrival atomic.Int64
	// lastFrame and lastSeq are the newest processed frame's capture time
	// and sequence number (runCamera's goroutine only).
	lastFrame time.Time
	lastSeq   uint64
}

// Run processes frames until ctx ends, then ends every open track and
// publishes their final reports (bounded by a short grace period).
func (s *DetectStage) Run(ctx context.Context) error {
	js := s.opt.Bus.JS
	if err := natsbus.EnsureStreams(ctx, js, s.opt.Replicas); err != nil {
		return err
	}
	var (
		mu      sync.Mutex // guards workers and closed
		workers = map[string]*camWorker{}
		closed  bool // set before wg.Wait: no worker starts after it
		wg      sync.WaitGroup
	)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// worker returns the camera's worker, starting it on first use (nil
	// once the stage is stopping); its goroutine ends when runCtx does.
	worker := func(id string) *camWorker {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return nil
		}
		w := workers[id]
		if w == nil {
			w = &camWorker{id: id, queue: make(chan Frame, s.opt.QueueSize),
				tracker: track.New[*faceData](s.opt.Track, track.IDBase(s.now()))}
			workers[id] = w
			wg.Go(func() { s.runCamera(runCtx, w) })
		}
		return w
	}
	// enqueue hands a frame to its camera's worker, dropping the oldest
	// waiting frame when the queue is full.
	enqueue := func(f Frame) {
		w := worker(f.Camera)
		if w == nil {
			f.Mat.Close()
			return
		}
		w.lastArrival.Store(s.now().UnixNano())
		for {
			select {
			case w.queue <- f:
				s.m.Queue.WithLabelValues(StageDetect).Inc()
				return
			default:
			}
			select {
			case old := <-w.queue:
				old.Mat.Close()
				s.m.Queue.WithLabelValues(StageDetect).Dec()
				s.m.Dropped.WithLabelValues(StageDetect, "queue_full").Inc()
			default:
			}
		}
	}

	var err error
	if s.opt.Local != nil {
		err = s.readLocal(runCtx, enqueue)
	} else {
		err = s.readNATS(runCtx, enqueue)
	}
	cancel()
	mu.Lock()
	closed = true
	mu.Unlock()
	wg.Wait()
	// Drain what is left in the queues (no reader adds to them any more:
	// readNATS waits for its handlers before returning).
	mu.Lock()
	defer mu.Unlock()
	for _, w := range workers {
		for len(w.queue) > 0 {
			f := <-w.queue
			f.Mat.Close()
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (s *DetectStage) readLocal(ctx context.Context, enqueue func(Frame)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case f, ok := <-s.opt.Local:
			if !ok {
				<-ctx.Done()
				return nil
			}
			enqueue(f)
		}
	}
}

// readNATS subscribes to frame messages in the detect queue group.
func (s *DetectStage) readNATS(ctx context.Context, enqueue func(Frame)) error {
	subjects := []string{wire.FramesWildcard}
	if len(s.opt.Cameras) > 0 {
		subjects = subjects[:0]
		for _, c := range s.opt.Cameras {
			subjects = append(subjects, wire.FramesSubject(c))
		}
	}
	bus := s.opt.Bus
	// gate lets readNATS wait for handlers in flight when it stops, so that
	// none hands a frame on after it has returned.
	var gate sync.RWMutex
	stopped := false
	handle := func(m *nats.Msg) {
		gate.RLock()
		defer gate.RUnlock()
		if stopped {
			return
		}
		meta, jpeg, err := frameMessage(m.Subject, m.Data)
		if err != nil {
			bus.DeadLetter(StageDetect, m.Subject, m.Data, err)
			return
		}
		mat, err := gocv.IMDecode(jpeg, gocv.IMReadColor)
		if err != nil || mat.Empty() {
			if err == nil {
				mat.Close()
				err = errors.New("not a decodable image")
			}
			bus.DeadLetter(StageDetect, m.Subject, m.Data, fmt.Errorf("%w: decoding frame JPEG: %v", wire.ErrMalformed, err))
			return
		}
		if w, h := mat.Cols(), mat.Rows(); w != meta.Width || h != meta.Height {
			mat.Close()
			bus.DeadLetter(StageDetect, m.Subject, m.Data, fmt.Errorf("%w: frame is %dx%d, metadata says %dx%d", wire.ErrMalformed, w, h, meta.Width, meta.Height))
			return
		}
		enqueue(Frame{Camera: meta.Camera, Seq: meta.Seq, Time: meta.Time, Mat: mat})
	}
	var subs []*nats.Subscription
	defer func() {
		for _, sub := range subs {
			sub.Unsubscribe()
		}
		gate.Lock()
		stopped = true
		gate.Unlock()
	}()
	for _, subj := range subjects {
		sub, err := bus.Conn.QueueSubscribe(subj, natsbus.DetectQueue, handle)
		if err != nil {
			return fmt.Errorf("subscribing to %s: %w", subj, err)
		}
		sub.SetPendingLimits(64, 256<<20)
		subs = append(subs, sub)
	}
	s.log.Info("detect stage taking frames from nats", "subjects", subjects)
	<-ctx.Done()
	return nil
}

// frameMessage checks a frame message from NATS before its image is
// decoded: the envelope and metadata (wire.DecodeFrame) and that it came
// on its own camera's subject (a camera stage may publish only there).
func frameMessage(subject string, data []byte) (wire.FrameMeta, []byte, error) {
	meta, jpeg, err := wire.DecodeFrame(data)
	if err != nil {
		return wire.FrameMeta{}, nil, err
	}
	if want := wire.FramesSubject(meta.Camera); subject != want {
		return wire.FrameMeta{}, nil, fmt.Errorf("%w: frame of camera %s on subject %s", wire.ErrMalformed, meta.Camera, subject)
	}
	return meta, jpeg, nil
}

// runCamera processes one camera's frames in order, so that its tracker
// sees them in sequence.
func (s *DetectStage) runCamera(ctx context.Context, w *camWorker) {
	tick := time.NewTicker(s.opt.Track.MaxGap / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.flush(w)
			return
		case <-tick.C:
			// A quiet camera still ends its tracks: advance its clock by the
			// wall time since its last frame arrived.
			quiet := s.now().Sub(time.Unix(0, w.lastArrival.Load()))
			if len(w.queue) == 0 && !w.lastFrame.IsZero() && quiet > s.opt.Track.MaxGap {
				s.publishReports(ctx, w, w.tracker.Update(w.lastSeq, w.lastFrame.Add(quiet), nil))
			}
		case f := <-w.queue:
			s.m.Queue.WithLabelValues(StageDetect).Dec()
			reports := s.process(ctx, w, f)
			s.publishReports(ctx, w, reports)
		}
	}
}

// flush ends the camera's open tracks at shutdown and publishes them with
// a short grace period of their own.
func (s *DetectStage) flush(w *camWorker) {
	reports := w.tracker.Flush()
	if len(reports) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s.publishReports(ctx, w, reports)
}

func (s *DetectStage) process(ctx context.Context, w *camWorker, f Frame) []track.Track[*faceData] {
	defer f.Mat.Close()
	start := time.Now()
	var d *detect.Detector
	select {
	case d = <-s.detectors:
	case <-ctx.Done():
		return nil
	}
	faces, err := d.Detect(ctx, f.Mat)
	s.detectors <- d
	s.m.Latency.WithLabelValues(StageDetect).Observe(time.Since(start).Seconds())
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("detecting faces", "camera", w.id, "seq", f.Seq, "err", err)
		}
		return nil
	}
	dets := make([]track.Detection[*faceData], 0, len(faces))
	for _, fc := range faces {
		dets = append(dets, track.Detection[*faceData]{
			Box:     fc.Box,
			Quality: clamp01(fc.Quality.Score),
			Payload: &faceData{chip: fc.Chip.Pix, crop: cropJPEG(f.Mat, fc.Box)},
		})
	}
	w.lastFrame, w.lastSeq = f.Time, f.Seq
	return w.tracker.Update(f.Seq, f.Time, dets)
}

func clamp01(x float64) float64 {
	if !(x >= 0) {
		return 0
	}
	return min(x, 1)
}

// cropJPEG cuts the face box, widened by a fifth on each side and clipped
// to the frame, and encodes it as JPEG for the reviewer.
func cropJPEG(m gocv.Mat, box image.Rectangle) []byte {
	pad := box.Dx() / 5
	r := box.Inset(-pad).Intersect(image.Rect(0, 0, m.Cols(), m.Rows()))
	if r.Empty() {
		return nil
	}
	roi := m.Region(r)
	defer roi.Close()
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, roi, []int{gocv.IMWriteJpegQuality, 85})
	if err != nil {
		return nil
	}
	defer buf.Close()
	b := buf.GetBytes()
	if len(b) > wire.MaxCrop {
		return nil
	}
	return append([]byte(nil), b...)
}

// publishReports embeds the reports' faces that have no descriptor yet and
// publishes one Track message per report.
func (s *DetectStage) publishReports(ctx context.Context, w *camWorker, reports []track.Track[*faceData]) {
	for _, r := range reports {
		if err := s.publish(ctx, w, r); err != nil {
			if ctx.Err() == nil {
				s.log.Error("publishing track report", "camera", w.id, "track", r.ID, "err", err)
			}
		}
	}
}

func (s *DetectStage) publish(ctx context.Context, w *camWorker, r track.Track[*faceData]) error {
	var chips []face.Chip
	var need []*faceData
	for _, f := range r.Best {
		if f.Payload.vec == nil {
			chips = append(chips, face.Chip{Pix: f.Payload.chip})
			need = append(need, f.Payload)
		}
	}
	var model wire.Model
	var e *embed.Embedder
	select {
	case e = <-s.embedders:
	case <-ctx.Done():
		return ctx.Err()
	}
	m := e.Model()
	model = wire.Model{Name: m.Name, SHA256: m.SHA256}
	if len(chips) > 0 {
		start := time.Now()
		descs, err := e.Embed(ctx, chips)
		s.m.Latency.WithLabelValues(StageEmbed).Observe(time.Since(start).Seconds())
		if err != nil {
			s.embedders <- e
			return fmt.Errorf("embedding track %d: %w", r.ID, err)
		}
		for i, d := range descs {
			v := [wire.DescriptorDim]float32(d.Vector)
			need[i].vec = &v
		}
	}
	s.embedders <- e
	t := wire.Track{Meta: wire.TrackMeta{Camera: w.id, Track: r.ID, Start: r.Start, End: r.End, Final: r.Final, Seen: r.Seen, Model: model}}
	for _, f := range r.Best {
		t.Meta.Faces = append(t.Meta.Faces, wire.TrackFace{Seq: f.Seq, Time: f.Time, Box: wire.BoxOf(f.Box), Quality: f.Quality})
		t.Vectors = append(t.Vectors, *f.Payload.vec)
	}
	if len(r.Best) > 0 {
		t.Crop = r.Best[0].Payload.crop
	}
	data, err := wire.EncodeTrack(t)
	if err != nil {
		return err
	}
	if _, err := publishRetry(ctx, s.opt.Bus.JS, wire.TracksSubject(w.id), data, t.MsgID(), s.log); err != nil {
		return err
	}
	kind := "early"
	if r.Final {
		kind = "final"
	}
	s.m.Tracks.WithLabelValues(kind).Inc()
	s.log.Debug("track report published", "camera", w.id, "track", r.ID, "kind", kind, "seen", r.Seen, "faces", len(r.Best))
	return nil
}
