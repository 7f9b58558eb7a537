package alert

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DeadLetterStage is the stage name the alert service's dead letters are
// published under (wire.DeadLetterSubject(DeadLetterStage)).
const DeadLetterStage = "alert"

// Run consumes hits through the durable consumer cfg.Consumer on the hits
// stream (created by natsbus.EnsureStreams) until ctx ends, storing each
// batch in one transaction and acknowledging its messages only after the
// commit. A hit this build refuses (malformed, or of a schema version it
// does not accept: wire.Version and wire.PrevVersion are) is stored in the
// dead-letter stream with the reason and its body, counted, and
// terminated only once the letter is stored. A failed commit or a letter
// that could not be stored is not acknowledged: JetStream redelivers. Run also runs the retention sweep and the alert sinks
// (sink.go). It returns nil when ctx ends, after finishing the batch in
// hand.
func (s *Service) Run(ctx context.Context, js jetstream.JetStream) error {
	cons, err := natsbus.EnsureConsumer(ctx, js, natsbus.AlertConsumer(s.cfg.Consumer, s.ackWait, 4*s.batch))
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Both stop when ctx is cancelled (on return, by the deferred cancel)
	// and are waited for by the deferred wg.Wait.
	wg.Go(func() { s.sweepLoop(ctx) })
	wg.Go(func() { s.depthLoop(ctx, cons) })
	wg.Go(func() { s.runSinks(ctx) })
	wg.Go(func() { s.watchlistLoop(ctx, time.Minute) })
	wg.Go(func() { s.cameraStatusLoop(ctx, js.Conn()) })
	s.js.Store(&js)
	defer s.js.Store(nil)
	wg.Go(func() { s.checkpointLoop(ctx, s.checkpointEvery) })

	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		began := time.Now()
		err := s.consume(ctx, cons, js.Conn())
		if ctx.Err() != nil {
			break
		}
		if time.Since(began) > time.Minute {
			backoff = 100 * time.Millisecond // it had been working
		}
		s.log.Warn("hit consumer interrupted; resuming", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

// depthLoop publishes the consumer's backlog as a gauge every
// s.depthEvery until ctx ends.
func (s *Service) depthLoop(ctx context.Context, cons jetstream.Consumer) {
	t := time.NewTicker(s.depthEvery)
	defer t.Stop()
	for {
		if info, err := cons.Info(ctx); err == nil {
			s.m.queueDepth.WithLabelValues("pending").Set(float64(info.NumPending))
			s.m.queueDepth.WithLabelValues("ack_pending").Set(float64(info.NumAckPending))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// consume reads batches from one message iterator until it fails or ctx
// ends.
func (s *Service) consume(ctx context.Context, cons jetstream.Consumer, nc *nats.Conn) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * s.batch))
	if err != nil {
		return fmt.Errorf("subscribing to hits: %w", err)
	}
	defer it.Stop()
	s.consuming.Store(1)
	defer s.consuming.Store(0)
	batch := make([]jetstream.Msg, 0, s.batch)
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return err
			}
			s.log.Warn("reading hits", "err", err)
			continue
		}
		// Group commit: take whatever else is already buffered, without
		// waiting for more than a moment.
		batch = append(batch[:0], msg)
		for len(batch) < s.batch {
			m, err := it.Next(jetstream.NextMaxWait(time.Millisecond))
			if err != nil {
				break
			}
			batch = append(batch, m)
		}
		// Finish the batch in hand even when ctx ends: acknowledging what
		// was committed saves a redelivery.
		s.handle(context.WithoutCancel(ctx), batch, nc)
	}
}

// handle stores one batch and acknowledges it.
func (s *Service) handle(ctx context.Context, msgs []jetstream.Msg, nc *nats.Conn) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hits := make([]pendingHit, 0, len(msgs))
	good := make([]jetstream.Msg, 0, len(msgs))
	for _, m := range msgs {
		s.m.received.Inc()
		hit, im, err := wire.DecodeHitImages(m.Data())
		if err != nil {
			s.deadLetter(ctx, m, err, nc)
			continue
		}
		hits = append(hits, pendingHit{hit: hit, crop: im.Crop, scene: im.Scene, chip: im.EnrolledChip})
		good = append(good, m)
	}
	if len(hits) == 0 {
		return
	}
	if _, err := s.storeBatch(ctx, hits); err != nil {
		// Not acknowledged: JetStream redelivers after the delay.
		s.m.storeErrors.Inc()
		s.log.Error("storing hits failed; they will be redelivered", "hits", len(hits), "err", err)
		for _, m := range good {
			m.NakWithDelay(time.Second)
		}
		return
	}
	for _, m := range good {
		if err := m.Ack(); err != nil {
			// Stored already; a redelivery is a harmless duplicate.
			s.log.Warn("acknowledging hit", "subject", m.Subject(), "err", err)
		}
	}
}

// deadLetter stores a refused hit in the dead-letter stream with the
// reason and its body (a hit is about a listed person, and the stream's
// age is bounded by alert.retention), counts it, and terminates it once
// the letter is stored; if it cannot be stored the hit is left for
// redelivery, so that a refused hit is never simply gone.
func (s *Service) deadLetter(ctx context.Context, m jetstream.Msg, reason error, nc *nats.Conn) {
	kind := "malformed"
	if errors.Is(reason, wire.ErrVersion) {
		kind = "version"
	}
	l := natsbus.Letter{Stage: DeadLetterStage, Subject: m.Subject(), Kind: wire.KindHit, Data: m.Data(), KeepBody: true, Reason: reason}
	if h := m.Headers(); h != nil {
		l.MsgID = h.Get(jetstream.MsgIDHeader)
	}
	js, err := jetstream.New(nc)
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = js.PublishMsg(pctx, natsbus.LetterMsg(l))
		cancel()
	}
	if err != nil {
		s.log.Error("storing a refused hit in the dead-letter stream failed; it will be redelivered", "subject", m.Subject(), "reason", reason, "err", err)
		m.NakWithDelay(time.Second)
		return
	}
	s.m.deadLetters.WithLabelValues(kind).Inc()
	s.log.Warn("refused hit stored in the dead-letter stream", "subject", m.Subject(), "bytes", len(m.Data()), "reason", reason)
	if err := m.Term(); err != nil {
		s.log.Warn("terminating refused hit", "err", err)
	}
}
