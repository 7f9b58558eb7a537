package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"image/png"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/wire"
	"github.com/facewatch/facewatch/match"
)

// Decider decides one track; *match.Index is one.
type Decider interface {
	DecideTrack(faces []match.Probe, opt match.SearchOptions) (match.Decision, error)
}

// PhotoLookup finds the enrolled photo behind a decision, shown to the
// reviewer beside the probe; *match.Gallery is one.
type PhotoLookup interface {
	Enrolments(ctx context.Context, identityID int64) ([]match.Enrolment, error)
}

// MatchOptions configure a MatchStage.
type MatchOptions struct {
	Bus     *natsbus.Bus
	Decider Decider
	// Ready, when set, is waited on before the first track is taken (the
	// index's initial load).
	Ready <-chan struct{}
	// Photos, when set, fills in the hit's enrolled-photo reference.
	Photos PhotoLookup
	// AckWait is how long a taken track may go unacknowledged before it is
	// redelivered to another matcher (a matcher that died). 0 means 30s.
	AckWait time.Duration
	// Topology shapes the streams the stage creates (natsbus.TopologyOf).
	Topology natsbus.Topology
	Logger   *slog.Logger
	Metrics  *Metrics
	// OnHit, when set, is called after a hit is stored in JetStream.
	OnHit func(h wire.Hit, duplicate bool)
}

// MatchStage decides tracks and publishes hits.
type MatchStage struct {
	opt MatchOptions
	log *slog.Logger
	m   *Metrics
}

// NewMatchStage returns a match stage.
func NewMatchStage(opt MatchOptions) (*MatchStage, error) {
	if opt.Bus == nil || opt.Decider == nil {
		return nil, errors.New("match stage: a NATS bus and a decider are required")
	}
	if opt.AckWait <= 0 {
		opt.AckWait = 30 * time.Second
	}
	return &MatchStage{opt: opt, log: orDiscard(opt.Logger).With("component", "match-stage"), m: orMetrics(opt.Metrics)}, nil
}

// Run takes tracks from the durable consumer until ctx ends. Each track is
// acknowledged only after its hit (if any) is stored in the hits stream, so
// a matcher killed mid-track loses nothing: the track is redelivered, and
// the hit's message ID makes the second publish a duplicate.
func (s *MatchStage) Run(ctx context.Context) error {
	js := s.opt.Bus.JS
	if err := natsbus.EnsureStreams(ctx, js, s.opt.Topology); err != nil {
		return err
	}
	cons, err := natsbus.EnsureConsumer(ctx, js, natsbus.MatchConsumer(s.opt.AckWait))
	if err != nil {
		return err
	}
	if s.opt.Ready != nil {
		select {
		case <-s.opt.Ready:
		case <-ctx.Done():
			return nil
		}
	}
	s.log.Info("match stage taking tracks", "consumer", natsbus.MatchDurable)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.consume(ctx, cons)
		if ctx.Err() != nil {
			break
		}
		s.log.Warn("track consumer interrupted; resuming", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

func (s *MatchStage) consume(ctx context.Context, cons jetstream.Consumer) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(16))
	if err != nil {
		return fmt.Errorf("reading tracks: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	lastInfo := time.Time{}
	for {
		// Next with ctx: Stop alone does not end a Next that waits (the
		// iterator returns only once its pull goroutine has unsubscribed).
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return err
		}
		if time.Since(lastInfo) > time.Second {
			lastInfo = time.Now()
			if md, err := msg.Metadata(); err == nil {
				s.m.Queue.WithLabelValues(StageMatch).Set(float64(md.NumPending))
			}
		}
		s.handle(ctx, msg)
	}
}

// handle decides one track message and acknowledges it once its hit is
// stored; a malformed message is dead-lettered and terminated, a failure
// to decide or publish is retried later.
func (s *MatchStage) handle(ctx context.Context, msg jetstream.Msg) {
	start := time.Now()
	defer func() { s.m.Latency.WithLabelValues(StageMatch).Observe(time.Since(start).Seconds()) }()
	t, err := wire.DecodeTrack(msg.Data())
	if err == nil && msg.Subject() != wire.TracksSubject(t.Meta.Camera) {
		err = fmt.Errorf("%w: track of camera %s on subject %s", wire.ErrMalformed, t.Meta.Camera, msg.Subject())
	}
	if err != nil {
		s.refuse(ctx, msg, err)
		return
	}
	hit, images, ok, err := s.decide(ctx, t)
	if err != nil {
		if errors.Is(err, match.ErrInvalid) || errors.Is(err, match.ErrModelMismatch) {
			s.refuse(ctx, msg, err)
			return
		}
		s.log.Warn("deciding track; will retry", "camera", t.Meta.Camera, "track", t.Meta.Track, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if ok {
		data, err := wire.EncodeHitImages(hit, images)
		if err != nil {
			// Our own hit does not validate: a bug, or an identity that
			// cannot be carried. Keep the track for a human to look at.
			s.refuse(ctx, msg, fmt.Errorf("building hit: %w", err))
			return
		}
		ack, err := publishRetry(ctx, s.opt.Bus.JS, wire.HitsSubject(hit.Watchlist), data, hit.ID, s.log)
		if err != nil {
			// Shutting down: leave the track unacknowledged for redelivery.
			return
		}
		s.m.FrameToHit.Observe(time.Since(t.Meta.End).Seconds())
		s.log.Info("hit", "id", hit.ID, "identity", hit.IdentityName, "watchlist", hit.Watchlist, "distance", hit.Distance, "duplicate", ack.Duplicate)
		if s.opt.OnHit != nil {
			s.opt.OnHit(hit, ack.Duplicate)
		}
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := msg.DoubleAck(actx); err != nil {
		s.log.Warn("acknowledging track", "camera", t.Meta.Camera, "track", t.Meta.Track, "err", err)
	}
}

// refuse stores a track report that cannot be decided in the dead-letter
// stream (without its body: it holds descriptors of someone who may be a
// stranger) and terminates it; when the letter cannot be stored, the
// report is left for redelivery.
func (s *MatchStage) refuse(ctx context.Context, msg jetstream.Msg, reason error) {
	l := natsbus.Letter{Stage: StageMatch, Subject: msg.Subject(), Kind: wire.KindTrack, Data: msg.Data(), Reason: reason}
	if h := msg.Headers(); h != nil {
		l.MsgID = h.Get(jetstream.MsgIDHeader)
	}
	if err := s.opt.Bus.DeadLetter(ctx, l); err != nil {
		_ = msg.NakWithDelay(time.Second)
		return
	}
	_ = msg.Term()
}

// decide runs the per-track decision and builds the hit.
func (s *MatchStage) decide(ctx context.Context, t wire.Track) (h wire.Hit, im wire.HitImages, ok bool, err error) {
	probes := make([]match.Probe, len(t.Vectors))
	model := match.ModelID{Name: t.Meta.Model.Name, SHA256: t.Meta.Model.SHA256}
	for i := range t.Vectors {
		probes[i] = match.Probe{Vector: t.Vectors[i], Model: model, Quality: t.Meta.Faces[i].Quality}
	}
	d, err := s.opt.Decider.DecideTrack(probes, match.SearchOptions{})
	if err != nil {
		return wire.Hit{}, im, false, err
	}
	if !d.Matched {
		// Why a track gave no alert, for whoever tunes thresholds: the
		// nearest distance and the rule that said no (names only listed
		// identities, never anything of the person seen).
		s.log.Debug("track not matched", "camera", t.Meta.Camera, "track", t.Meta.Track, "report", t.Meta.Report, "final", t.Meta.Final,
			"faces", len(probes), "nearest", d.Distance, "reason", d.Reason)
		return wire.Hit{}, im, false, nil
	}
	identity := strconv.FormatInt(d.IdentityID, 10)
	best := d.BestFace
	h = wire.Hit{
		ID:             wire.HitID(t.Meta.Camera, t.Meta.Track, identity),
		Camera:         t.Meta.Camera,
		Track:          t.Meta.Track,
		Tracker:        t.Meta.Tracker,
		Appearance:     t.Meta.Appearance,
		Time:           t.Meta.Faces[best].Time,
		Watchlist:      watchlistToken(d.Watchlist, d.WatchlistID),
		WatchlistKind:  string(d.Kind),
		Priority:       d.Priority,
		SecondReviewer: d.SecondReviewer,
		Identity:       identity,
		IdentityName:   d.Identity,
		Distance:       clampDist(d.Distance),
		Threshold:      clampDist(d.Threshold),
		Model:          t.Meta.Model,
		Box:            t.Meta.Faces[best].Box,
	}
	h.SecondDistance = clampDist(d.SecondDistance)
	for i, dist := range d.FaceDistances {
		h.Faces = append(h.Faces, wire.FaceScore{Time: t.Meta.Faces[i].Time, Distance: clampDist(dist), Quality: t.Meta.Faces[i].Quality})
	}
	if s.opt.Photos != nil && d.EnrolmentID != 0 {
		if es, err := s.opt.Photos.Enrolments(ctx, d.IdentityID); err == nil {
			for _, e := range es {
				if e.ID == d.EnrolmentID {
					h.EnrolledPhoto = e.PhotoSHA256
					// The face as enrolled (its aligned chip), so that the
					// reviewer compares faces, not a face with a photo.
					im.EnrolledChip = chipJPEG(e.Chip)
				}
			}
		}
	}
	// The crop of the best face: a version 1 report carries it; otherwise
	// the detect stage holds it in memory and is asked for it now, only
	// because the track matched. A crop that is gone (the detect process
	// restarted, or the report waited longer than it keeps crops) leaves
	// the hit without one rather than losing the hit. The scene comes
	// with it (a downscaled frame, the face box drawn), for hits only.
	im.Crop = t.Crop
	if len(im.Crop) == 0 {
		c, sc, err := fetchCrop(ctx, s.opt.Bus.Conn, t)
		if err != nil {
			s.log.Warn("asking for the crop of a hit", "track", t.MsgID(), "err", err)
		}
		if c == nil {
			s.log.Warn("hit without a crop: the detect stage no longer holds it", "track", t.MsgID())
		}
		im.Crop, im.Scene = c, sc
	}
	// The images must fit one hit: the scene goes first, then the chip.
	if len(im.Crop)+len(im.Scene)+len(im.EnrolledChip) > wire.MaxCrop {
		im.Scene = nil
	}
	if len(im.Crop)+len(im.EnrolledChip) > wire.MaxCrop {
		im.EnrolledChip = nil
	}
	return h, im, true, nil
}

// clampDist keeps a distance within what a hit may carry: [0,
// match.FarDistance].
func clampDist(d float64) float64 {
	if !(d >= 0) {
		return 0
	}
	return min(d, match.FarDistance)
}

// watchlistToken is the watchlist as a subject token: its name when the
// name is one, else its numeric ID.
func watchlistToken(name string, id int64) string {
	if wire.ValidToken(name) {
		return name
	}
	return "list-" + strconv.FormatInt(id, 10)
}

// chipJPEG re-encodes an enrolment's aligned chip (PNG) as a JPEG, what
// the alert service stores and shows; nil when it cannot be read.
func chipJPEG(chipPNG []byte) []byte {
	if len(chipPNG) == 0 {
		return nil
	}
	img, err := png.Decode(bytes.NewReader(chipPNG))
	if err != nil {
		return nil
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		return nil
	}
	return b.Bytes()
}
