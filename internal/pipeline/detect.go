package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"slices"
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
	// Ignored when Leases is set.
	Cameras []string
	// Leases, when subscribing, makes the stage take the frames of the
	// cameras it leases only (role RoleDetect), one subject per camera and
	// no queue group: each camera's frames reach one tracker, and a dead
	// process's cameras move to the others.
	Leases *Leases
	// QueueSize bounds each camera's frames waiting for detection; when
	// full the oldest is dropped and counted. 0 means 4.
	QueueSize int
	// Topology shapes the streams the stage creates (natsbus.TopologyOf).
	Topology natsbus.Topology
	// CropTTL is how long the crop of a reported track is held in memory
	// for a matcher to ask for (alert.unmatched_retention); 0 means
	// natsbus.TracksMaxAge. Crops never leave the process otherwise.
	CropTTL time.Duration
	Logger  *slog.Logger
	Metrics *Metrics
	// Now is the clock used to end tracks of cameras that went quiet; nil
	// means time.Now.
	Now func() time.Time
	// Faces is each camera's face size range (cameras[].min_face and
	// max_face); a camera not in it has detect.min_face_size and no
	// largest. Used when detect.full_frame_every turns region search on.
	Faces map[string]detect.FaceRange
}

// DetectStage is the detect+embed stage: it finds faces, tracks them per
// camera, embeds each track's best faces and publishes Track reports.
type DetectStage struct {
	opt       DetectOptions
	log       *slog.Logger
	m         *Metrics
	detectors chan *detect.Detector
	batch     *embedBatcher
	all       []interface{ Close() error }
	now       func() time.Time
	// lastRefusalLog is when refuseCamera last logged (unix ns).
	lastRefusalLog atomic.Int64
	crops          *cropCache
	// busy is set by Run before frames flow: whether a camera has a track
	// open.
	busy func(string) bool
	// onDetect, when set (tests), is called as each frame's detection
	// starts, from its camera's goroutine, with how long it waited.
	onDetect func(camera string, seq uint64, waited time.Duration)
}

// NewDetectStage loads opt.Detect.WorkerCount() detectors (one per core
// by default) and opt.Embed.Workers embedders, each worker its own
// networks, shared by every camera.
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
	if opt.Track.MaxOpen == 0 {
		opt.Track.MaxOpen = opt.Detect.MaxTracks
	}
	s := &DetectStage{
		opt:       opt,
		log:       orDiscard(opt.Logger).With("component", "detect"),
		m:         orMetrics(opt.Metrics),
		detectors: make(chan *detect.Detector, opt.Detect.WorkerCount()),
		now:       opt.Now,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if opt.CropTTL <= 0 {
		opt.CropTTL = natsbus.TracksMaxAge
		s.opt.CropTTL = opt.CropTTL
	}
	s.crops = newCropCache(opt.CropTTL, defaultCropBytes, s.now)
	// With detect.batch_frames > 1 (cnn) the detectors share one MMOD
	// network that runs the searches waiting at once in one pass.
	ds, err := detect.NewPool(opt.Models, opt.Detect, opt.Detect.WorkerCount(), func(n int) { s.m.DetectBatch.Observe(float64(n)) })
	if err != nil {
		return nil, fmt.Errorf("loading detectors: %w", err)
	}
	for _, d := range ds {
		s.all = append(s.all, d)
		s.detectors <- d
	}
	var embedders []*embed.Embedder
	for range max(1, opt.Embed.Workers) {
		e, err := embed.New(opt.Models, opt.Embed)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("loading embedder: %w", err)
		}
		s.all = append(s.all, e)
		embedders = append(embedders, e)
	}
	s.batch = newEmbedBatcher(embedders, opt.Embed.BatchSize, s.m)
	return s, nil
}

// Close frees the networks. Call it after Run has returned.
func (s *DetectStage) Close() {
	for _, c := range s.all {
		c.Close()
	}
	s.all = nil
}

// faceData is what a track keeps of a face, in memory only: its chip, a
// JPEG crop for the reviewer (sent only if the track matches someone), and
// its descriptor once computed (so an early report's
// descriptors are not computed again for the final one).
type faceData struct {
	chip []byte
	crop []byte
	box  image.Rectangle
	// scene is the frame this face was found in, downscaled, shared by the
	// frame's faces; nil when it could not be made.
	scene *sceneShot
	vec   *[wire.DescriptorDim]float32
}

// queued is a frame waiting for detection, with its arrival.
type queued struct {
	Frame
	at time.Time
}

// camWorker owns one camera's tracker and frame queue.
type camWorker struct {
	id      string
	queue   chan queued
	tracker *track.Tracker[*faceData]
	// lastArrival is when the newest frame reached the queue (unix ns), so
	// that a camera gone quiet still ends its tracks, but frames merely
	// waiting behind a slow detection do not.
	lastArrival atomic.Int64
	// lastFrame and lastSeq are the newest processed frame's capture time
	// and sequence number (runCamera's goroutine only).
	lastFrame time.Time
	lastSeq   uint64
	// expire removes the worker from the stage if its queue is empty
	// (reporting whether it did); runCamera calls it after camera_idle.
	expire func() bool
	// open is the tracker's number of open tracks, for Busy.
	open atomic.Int32
	// roi plans where each frame is searched (nil: every frame whole);
	// runCamera's goroutine only.
	roi *detect.Planner
	// slot is the camera's full-pass phase index (detect.Phase): the
	// smallest no other live camera of the stage has.
	slot int
	// cancel stops the camera's goroutine, which closes done after
	// publishing its open tracks' final reports.
	cancel context.CancelFunc
	done   chan struct{}
}

// Run processes frames until ctx ends, then ends every open track and
// publishes their final reports (bounded by a short grace period).
func (s *DetectStage) Run(ctx context.Context) error {
	js := s.opt.Bus.JS
	if err := natsbus.EnsureStreams(ctx, js, s.opt.Topology); err != nil {
		return err
	}
	var (
		mu      sync.Mutex // guards workers and closed, and every push to a worker's queue
		workers = map[string]*camWorker{}
		closed  bool // set before wg.Wait: no worker starts after it
		wg      sync.WaitGroup
	)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	maxCams := s.opt.Detect.MaxCameras
	// workerLocked returns the camera's worker, starting it on first use;
	// nil once the stage is stopping or when the camera would be one more
	// than detect.max_cameras. Its goroutine ends when runCtx does, or when
	// the camera has been idle for detect.camera_idle (it then removes
	// itself under mu, with its queue empty, so no frame is left in it).
	workerLocked := func(id string) (*camWorker, string) {
		if closed {
			return nil, ""
		}
		w := workers[id]
		if w == nil {
			if maxCams > 0 && len(workers) >= maxCams {
				return nil, "camera_limit"
			}
			cctx, ccancel := context.WithCancel(runCtx)
			slot := freeSlot(workers)
			w = &camWorker{id: id, queue: make(chan queued, s.opt.QueueSize),
				tracker: track.New[*faceData](s.opt.Track, track.IDBase(s.now())), cancel: ccancel, done: make(chan struct{}),
				roi: s.planner(id, slot), slot: slot}
			w.lastArrival.Store(s.now().UnixNano())
			w.expire = func() bool {
				mu.Lock()
				defer mu.Unlock()
				if len(w.queue) > 0 || workers[id] != w {
					return false
				}
				delete(workers, id)
				s.m.Cameras.Set(float64(len(workers)))
				return true
			}
			workers[id] = w
			s.m.Cameras.Set(float64(len(workers)))
			wg.Go(func() {
				defer close(w.done)
				s.runCamera(cctx, w)
			})
		}
		return w, ""
	}
	// admits reports whether a frame of camera id would be taken, so that
	// one that would not is refused before it is decoded.
	admits := func(id string) bool {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return false
		}
		if workers[id] != nil || maxCams <= 0 || len(workers) < maxCams {
			return true
		}
		s.m.Dropped.WithLabelValues(StageDetect, "camera_limit").Inc()
		s.refuseCamera(id)
		return false
	}
	// endCamera stops a camera whose lease this process gave up: its open
	// tracks end (final reports published) and its waiting frames go. A
	// later lease starts it afresh with new track IDs.
	endCamera := func(id string) {
		mu.Lock()
		w := workers[id]
		delete(workers, id)
		s.m.Cameras.Set(float64(len(workers)))
		mu.Unlock()
		if w == nil {
			return
		}
		w.cancel()
		<-w.done
		for len(w.queue) > 0 {
			f := <-w.queue
			f.Mat.Close()
			s.m.Queue.WithLabelValues(StageDetect).Dec()
		}
	}
	s.busy = func(id string) bool {
		mu.Lock()
		defer mu.Unlock()
		w := workers[id]
		return w != nil && w.open.Load() > 0
	}
	// enqueue hands a frame to its camera's worker, shedding the oldest
	// waiting frame when the queue is full.
	enqueue := func(f Frame) {
		mu.Lock()
		defer mu.Unlock()
		w, why := workerLocked(f.Camera)
		if w == nil {
			f.Mat.Close()
			if why != "" {
				s.m.Dropped.WithLabelValues(StageDetect, why).Inc()
				s.refuseCamera(f.Camera)
			}
			return
		}
		w.lastArrival.Store(s.now().UnixNano())
		s.m.Frames.Inc()
		q := queued{Frame: f, at: time.Now()}
		for {
			select {
			case w.queue <- q:
				s.m.Queue.WithLabelValues(StageDetect).Inc()
				return
			default:
			}
			select {
			case old := <-w.queue:
				old.Mat.Close()
				s.m.Queue.WithLabelValues(StageDetect).Dec()
				s.m.Shed.WithLabelValues(ShedQueueFull).Inc()
			default:
			}
		}
	}

	cropSubjects := []string{wire.CropsWildcard}
	if len(s.opt.Cameras) > 0 {
		cropSubjects = cropSubjects[:0]
		for _, c := range s.opt.Cameras {
			cropSubjects = append(cropSubjects, wire.CropsSubject(c))
		}
	}
	cropErr := make(chan error, 1)
	wg.Go(func() { cropErr <- s.serveCrops(runCtx, cropSubjects) })
	// The embed workers outlive the cameras' goroutines, whose publishers
	// embed their final reports after runCtx has ended.
	embedCtx, embedCancel := context.WithCancel(context.WithoutCancel(ctx))
	embedDone := make(chan struct{})
	go func() {
		defer close(embedDone)
		s.batch.run(embedCtx)
	}()
	var err error
	if s.opt.Local != nil {
		err = s.readLocal(runCtx, enqueue)
	} else {
		err = s.readNATS(runCtx, admits, enqueue, endCamera)
	}
	cancel()
	mu.Lock()
	closed = true
	mu.Unlock()
	wg.Wait()
	embedCancel()
	<-embedDone
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
	return errors.Join(err, <-cropErr)
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

// refuseCamera logs, at most once a minute, that frames of a camera were
// refused at detect.max_cameras.
func (s *DetectStage) refuseCamera(id string) {
	now := s.now().UnixNano()
	last := s.lastRefusalLog.Load()
	if now-last < int64(time.Minute) || !s.lastRefusalLog.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("frames of a camera beyond detect.max_cameras refused", "camera", id, "max_cameras", s.opt.Detect.MaxCameras)
}

// readNATS subscribes to frame messages: with leases, to each leased
// camera's subject while the lease lasts; otherwise in the detect queue
// group, to every camera's or to the --cameras' subjects. A frame whose
// camera admits refuses is dropped before it is decoded; one whose header
// says it is larger than detect.max_pixels, or another size than its
// metadata, is dead-lettered before it is decoded.
func (s *DetectStage) readNATS(ctx context.Context, admits func(string) bool, enqueue func(Frame), endCamera func(string)) error {
	if l := s.opt.Leases; l != nil {
		return runLeased(ctx, l, RoleDetect, s.Busy, s.log, func(cctx context.Context, cam string) {
			stop, err := s.subscribeFrames(ctx, wire.FramesSubject(cam), "", admits, enqueue)
			if err != nil {
				s.log.Error("subscribing to a leased camera's frames", "camera", cam, "err", err)
			}
			<-cctx.Done()
			if stop != nil {
				stop()
			}
			endCamera(cam)
		})
	}
	subjects := []string{wire.FramesWildcard}
	if len(s.opt.Cameras) > 0 {
		subjects = subjects[:0]
		for _, c := range s.opt.Cameras {
			subjects = append(subjects, wire.FramesSubject(c))
		}
	}
	var stops []func()
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	for _, subj := range subjects {
		stop, err := s.subscribeFrames(ctx, subj, natsbus.DetectQueue, admits, enqueue)
		if err != nil {
			return err
		}
		stops = append(stops, stop)
	}
	s.log.Info("detect stage taking frames from nats", "subjects", subjects)
	<-ctx.Done()
	return nil
}

// Busy reports whether camera has a track open in this process (a camera
// to hand over last when rebalancing).
func (s *DetectStage) Busy(camera string) bool {
	if s.busy == nil {
		return false
	}
	return s.busy(camera)
}

// subscribeFrames subscribes to subj (in queue group queue unless empty)
// and hands decoded frames to enqueue. stop unsubscribes and waits for
// the handlers in flight, so that none hands a frame on after it.
func (s *DetectStage) subscribeFrames(ctx context.Context, subj, queue string, admits func(string) bool, enqueue func(Frame)) (stop func(), err error) {
	bus := s.opt.Bus
	var gate sync.RWMutex
	stopped := false
	handle := func(m *nats.Msg) {
		gate.RLock()
		defer gate.RUnlock()
		if stopped {
			return
		}
		// A frame may show anyone: its dead letter keeps no body.
		refuse := func(err error) {
			bus.DeadLetter(ctx, natsbus.Letter{Stage: StageDetect, Subject: m.Subject, Kind: wire.KindFrame, Data: m.Data, Reason: err})
		}
		meta, jpeg, err := frameMessage(m.Subject, m.Data)
		if err != nil {
			refuse(err)
			return
		}
		if !admits(meta.Camera) {
			return
		}
		// The header decides before anything is allocated: a frame larger
		// than max_pixels, or not the size its metadata says, is refused.
		hdr, err := detect.CheckHeader(jpeg, s.opt.Detect.MaxPixels)
		if err != nil {
			refuse(fmt.Errorf("%w: frame image: %v", wire.ErrMalformed, err))
			return
		}
		if hdr.Format != "jpeg" || hdr.Width != meta.Width || hdr.Height != meta.Height {
			refuse(fmt.Errorf("%w: frame is a %dx%d %s, metadata says a %dx%d jpeg", wire.ErrMalformed, hdr.Width, hdr.Height, hdr.Format, meta.Width, meta.Height))
			return
		}
		mat, err := detect.Decode(jpeg, s.opt.Detect.MaxPixels)
		if err != nil {
			refuse(fmt.Errorf("%w: decoding frame JPEG: %v", wire.ErrMalformed, err))
			return
		}
		if w, h := mat.Cols(), mat.Rows(); w != meta.Width || h != meta.Height {
			mat.Close()
			refuse(fmt.Errorf("%w: frame is %dx%d, metadata says %dx%d", wire.ErrMalformed, w, h, meta.Width, meta.Height))
			return
		}
		enqueue(Frame{Camera: meta.Camera, Seq: meta.Seq, Time: meta.Time, Mat: mat})
	}
	var sub *nats.Subscription
	if queue != "" {
		sub, err = bus.Conn.QueueSubscribe(subj, queue, handle)
	} else {
		sub, err = bus.Conn.Subscribe(subj, handle)
	}
	if err != nil {
		return nil, fmt.Errorf("subscribing to %s: %w", subj, err)
	}
	sub.SetPendingLimits(64, 256<<20)
	return func() {
		sub.Unsubscribe()
		gate.Lock()
		stopped = true
		gate.Unlock()
	}, nil
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
// sees them in sequence. Its reports are embedded and published by a
// goroutine of their own, in order: a JetStream publish that waits out a
// NATS node's loss (a new stream leader takes seconds to elect) holds up
// the reports, not the detection, so the camera's tracks do not break for
// want of frames meanwhile.
func (s *DetectStage) runCamera(ctx context.Context, w *camWorker) {
	if w.roi != nil {
		defer w.roi.Close()
	}
	reports := make(chan []track.Track[*faceData], reportQueue)
	// The publisher outlives ctx by flushGrace, for the final reports.
	pubCtx, pubCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer pubCancel()
	pubDone := make(chan struct{})
	go func() { // ends when reports is closed and drained, or pubCtx ends
		defer close(pubDone)
		for rs := range reports {
			s.publishReports(pubCtx, w, rs)
		}
	}()
	// send blocks while the publisher is behind by reportQueue batches:
	// reports are never dropped (frames are, from the queue, meanwhile).
	send := func(rs []track.Track[*faceData]) {
		if len(rs) > 0 {
			select {
			case reports <- rs:
			case <-ctx.Done():
			}
		}
	}
	tick := time.NewTicker(s.opt.Track.MaxGap / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// End the open tracks and give their final reports (and any
			// still queued) flushGrace to be published.
			grace := time.AfterFunc(flushGrace, pubCancel)
			if rs := w.tracker.Flush(); len(rs) > 0 {
				select {
				case reports <- rs:
				case <-pubCtx.Done():
				}
			}
			close(reports)
			<-pubDone
			grace.Stop()
			return
		case <-tick.C:
			// A quiet camera still ends its tracks: advance its clock by the
			// wall time since its last frame arrived.
			quiet := s.now().Sub(time.Unix(0, w.lastArrival.Load()))
			if len(w.queue) == 0 && !w.lastFrame.IsZero() && quiet > s.opt.Track.MaxGap {
				rs := w.tracker.Update(w.lastSeq, w.lastFrame.Add(quiet), nil)
				w.open.Store(int32(w.tracker.Open()))
				send(rs)
			}
			// One silent for camera_idle gives its place back (its tracks
			// have ended above; any left are flushed).
			if idle := s.opt.Detect.CameraIdle; idle > 0 && quiet > idle && w.expire() {
				grace := time.AfterFunc(flushGrace, pubCancel)
				if rs := w.tracker.Flush(); len(rs) > 0 {
					select {
					case reports <- rs:
					case <-pubCtx.Done():
					}
				}
				close(reports)
				<-pubDone
				grace.Stop()
				return
			}
		case q := <-w.queue:
			s.m.Queue.WithLabelValues(StageDetect).Dec()
			rs := s.process(ctx, w, q)
			w.open.Store(int32(w.tracker.Open()))
			send(rs)
		}
	}
}

const (
	// reportQueue is how many batches of track reports a camera may have
	// waiting for publication before its detection waits too.
	reportQueue = 64
	// flushGrace is how long final reports get to be published when a
	// camera stops (shutdown, or its lease given up).
	flushGrace = 3 * time.Second
)

// Reasons a frame is shed (facewatch_frames_shed_total).
const (
	// ShedQueueFull: its camera's queue was full when a newer frame came.
	ShedQueueFull = "queue_full"
	// ShedWaited: it had waited longer than detect.max_wait when a
	// detector came free, and a newer frame of its camera was waiting.
	ShedWaited = "waited"
)

// process detects faces in q (or in a newer frame of the camera, shedding
// q when it has waited too long) and updates the camera's tracker.
func (s *DetectStage) process(ctx context.Context, w *camWorker, q queued) []track.Track[*faceData] {
	var d *detect.Detector
	select {
	case d = <-s.detectors:
	case <-ctx.Done():
		q.Mat.Close()
		return nil
	}
	// Faces already found come first: while their chips wait for an embed
	// worker, no detection starts (the frames wait, and are shed if they
	// wait too long), so that on a box short of CPU an alert is not held
	// up by the detection of more frames.
	s.batch.waitDrained(ctx)
	// The frame is chosen once a detector is free: waiting for one is
	// where frames grow old when every camera wants it. The oldest goes
	// while it has waited past max_wait and a newer one is behind it, so
	// the camera's newest frames are detected, in order, and its lag stays
	// near max_wait however far behind the box is.
	if maxWait := s.opt.Detect.MaxWait; maxWait > 0 {
	shed:
		for time.Since(q.at) > maxWait {
			select {
			case next := <-w.queue:
				s.m.Queue.WithLabelValues(StageDetect).Dec()
				s.m.Shed.WithLabelValues(ShedWaited).Inc()
				q.Mat.Close()
				q = next
			default:
				break shed
			}
		}
	}
	f := q.Frame
	defer f.Mat.Close()
	waited := time.Since(q.at)
	s.m.QueueWait.Observe(waited.Seconds())
	if s.onDetect != nil {
		s.onDetect(w.id, f.Seq, waited)
	}
	start := time.Now()
	faces, err := s.detectFrame(ctx, d, w, f)
	s.detectors <- d
	s.m.Latency.WithLabelValues(StageDetect).Observe(time.Since(start).Seconds())
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("detecting faces", "camera", w.id, "seq", f.Seq, "err", err)
		}
		return nil
	}
	dets := make([]track.Detection[*faceData], 0, len(faces))
	var scene *sceneShot
	if len(faces) > 0 {
		// One per frame, whatever the number of faces; in memory only,
		// like the crops, until a matcher asks for a hit's.
		if scene = makeScene(f.Mat); scene != nil {
			for _, fc := range faces {
				scene.faces = append(scene.faces, fc.Box)
			}
		}
	}
	for _, fc := range faces {
		dets = append(dets, track.Detection[*faceData]{
			Box:     fc.Box,
			Quality: clamp01(fc.Quality.Score),
			Payload: &faceData{chip: fc.Chip.Pix, crop: cropJPEG(f.Mat, fc.Box), box: fc.Box, scene: scene},
		})
	}
	w.lastFrame, w.lastSeq = f.Time, f.Seq
	refused := w.tracker.Refused()
	// Boxes are in the frame's pixels: the tracker tells a track that
	// left through the edge from one lost inside the view.
	w.tracker.SetView(image.Rect(0, 0, f.Mat.Cols(), f.Mat.Rows()))
	reports := w.tracker.Update(f.Seq, f.Time, dets)
	if n := w.tracker.Refused() - refused; n > 0 {
		s.m.Dropped.WithLabelValues(StageDetect, "track_limit").Add(float64(n))
	}
	return reports
}

// freeSlot is the smallest full-pass phase index no worker of workers has.
func freeSlot(workers map[string]*camWorker) int {
	used := make(map[int]bool, len(workers))
	for _, w := range workers {
		used[w.slot] = true
	}
	k := 0
	for used[k] {
		k++
	}
	return k
}

// planner is a camera's region planner, or nil when
// detect.full_frame_every is 0 (every frame searched whole).
// k is how many cameras the stage started before this one: its full
// passes are phased by detect.Phase(k), so that the stage's cameras search
// their whole frames at different moments, not all in one frame slot.
func (s *DetectStage) planner(camera string, k int) *detect.Planner {
	every := s.opt.Detect.FullFrameEvery
	if every <= 0 {
		return nil
	}
	faces, ok := s.opt.Faces[camera]
	if !ok {
		faces = detect.FaceRange{Min: s.opt.Detect.MinFaceSize}
	}
	return detect.NewPlanner(detect.ROIOptions{Faces: faces, FullFrameEvery: every, MaxWidth: s.opt.Detect.MaxWidth,
		Phase: detect.Phase(k, every)})
}

// detectFrame finds the faces of one frame: where w's planner says (what
// moved, around the open tracks, the whole frame now and then), or in the
// whole frame when region search is off.
func (s *DetectStage) detectFrame(ctx context.Context, d *detect.Detector, w *camWorker, f Frame) ([]face.Face, error) {
	if w.roi == nil {
		s.m.Pixels.WithLabelValues("full").Add(wholeFramePixels(f.Mat.Cols(), f.Mat.Rows(), s.opt.Detect))
		return d.Detect(ctx, f.Mat)
	}
	last, next := w.tracker.Expected(f.Time)
	tracks := make([]detect.TrackBox, len(last))
	for i := range last {
		tracks[i] = detect.TrackBox{Last: last[i], Next: next[i]}
	}
	plan, err := w.roi.Plan(f.Mat, f.Time, tracks)
	if err != nil {
		return nil, err
	}
	for _, r := range plan.Regions {
		s.m.Pixels.WithLabelValues(r.Why).Add(r.Cost())
	}
	return d.DetectPlan(ctx, f.Mat, plan)
}

// wholeFramePixels is what Detector.Detect searches of a w×h frame at
// cfg's settings: the frame, narrowed to max_width, doubled upsample times.
func wholeFramePixels(w, h int, cfg config.Detect) float64 {
	px := float64(w) * float64(h)
	if cfg.MaxWidth > 0 && w > cfg.MaxWidth {
		f := float64(cfg.MaxWidth) / float64(w)
		px *= f * f
	}
	for range cfg.Upsample {
		px *= 4
	}
	return px
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

// publishReports embeds the reports' faces that have no descriptor yet,
// in one request (batched with other cameras' by the embed workers), and
// publishes one Track message per report.
func (s *DetectStage) publishReports(ctx context.Context, w *camWorker, reports []track.Track[*faceData]) {
	var chips []face.Chip
	var need []*faceData
	for _, r := range reports {
		for _, f := range r.Best {
			if f.Payload.vec == nil && !slices.Contains(need, f.Payload) {
				chips = append(chips, face.Chip{Pix: f.Payload.chip})
				need = append(need, f.Payload)
			}
		}
	}
	descs, err := s.batch.embed(ctx, w.id, chips)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("embedding track reports' faces", "camera", w.id, "reports", len(reports), "err", err)
		}
		return
	}
	for i, d := range descs {
		v := [wire.DescriptorDim]float32(d.Vector)
		need[i].vec = &v
	}
	for _, r := range reports {
		if err := s.publish(ctx, w, r); err != nil {
			if ctx.Err() == nil {
				s.log.Error("publishing track report", "camera", w.id, "track", r.ID, "err", err)
			}
		}
	}
}

// publish publishes one report whose faces all have their descriptors.
func (s *DetectStage) publish(ctx context.Context, w *camWorker, r track.Track[*faceData]) error {
	m, err := s.batch.model()
	if err != nil {
		return err
	}
	model := wire.Model{Name: m.Name, SHA256: m.SHA256}
	t := wire.Track{Meta: wire.TrackMeta{Camera: w.id, Track: r.ID, Start: r.Start, End: r.End, Final: r.Final, Report: r.Report, Seen: r.Seen, Model: model}}
	if r.Appearance != 0 {
		t.Meta.Tracker, t.Meta.Appearance = w.tracker.Base(), r.Appearance
	}
	for _, f := range r.Best {
		t.Meta.Faces = append(t.Meta.Faces, wire.TrackFace{Seq: f.Seq, Time: f.Time, Box: wire.BoxOf(f.Box), Quality: f.Quality})
		t.Vectors = append(t.Vectors, *f.Payload.vec)
	}
	// The best face's crop stays here until a matcher asks for it
	// (serveCrops): the report itself carries no image.
	if len(r.Best) > 0 {
		best := r.Best[0].Payload
		if sc := best.scene; sc != nil {
			s.crops.putScene(cropKey{w.id, r.ID, r.Final, r.Report}, best.crop, sc.jpeg, sc.box(best.box), sc.others(best.box))
		} else {
			s.crops.put(cropKey{w.id, r.ID, r.Final, r.Report}, best.crop)
		}
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
	s.log.Debug("track report published", "camera", w.id, "track", r.ID, "kind", kind, "report", r.Report, "seen", r.Seen, "faces", len(r.Best))
	return nil
}
