package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/facewatch/facewatch/internal/wire"
)

// Crops of track reports stay in the detect stage's memory: a track
// report carries descriptors only, and the matcher asks for the best
// face's crop (wire.CropsSubject) only when the track matched someone. So
// the face image of a person on no list never leaves the detect process,
// and never reaches a disk (docs/privacy.md).

// cropKey names the crop of one track report.
type cropKey struct {
	camera string
	track  uint64
	final  bool
	report int
}

// cropEntry is one held crop; entries form a list in insertion order.
type cropEntry struct {
	key        cropKey
	crop       []byte
	added      time.Time
	prev, next *cropEntry
}

// cropCache holds crops for a bounded time and size; the oldest go first.
type cropCache struct {
	ttl      time.Duration
	maxBytes int
	now      func() time.Time

	mu sync.Mutex
	// The fields below are guarded by mu.
	byKey      map[cropKey]*cropEntry
	head, tail *cropEntry // oldest, newest
	bytes      int
}

// defaultCropBytes bounds the crops one detect process holds.
const defaultCropBytes = 32 << 20

func newCropCache(ttl time.Duration, maxBytes int, now func() time.Time) *cropCache {
	return &cropCache{ttl: ttl, maxBytes: maxBytes, now: now, byKey: map[cropKey]*cropEntry{}}
}

// put holds crop under k (replacing an earlier one).
func (c *cropCache) put(k cropKey, crop []byte) {
	if len(crop) == 0 || len(crop) > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.byKey[k]; e != nil {
		c.removeLocked(e)
	}
	// A copy: the tracker may hand the same face to an early and a final
	// report, and removing one entry clears its bytes.
	e := &cropEntry{key: k, crop: append([]byte(nil), crop...), added: c.now(), prev: c.tail}
	if c.tail != nil {
		c.tail.next = e
	} else {
		c.head = e
	}
	c.tail = e
	c.byKey[k] = e
	c.bytes += len(crop)
	c.expireLocked()
}

// get returns a copy of the crop held under k, or nil.
func (c *cropCache) get(k cropKey) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked()
	if e := c.byKey[k]; e != nil {
		return append([]byte(nil), e.crop...)
	}
	return nil
}

// expire drops what is past its time; it returns how many crops are left.
func (c *cropCache) expire() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked()
	return len(c.byKey)
}

func (c *cropCache) expireLocked() {
	cutoff := c.now().Add(-c.ttl)
	for c.head != nil && (c.bytes > c.maxBytes || !c.head.added.After(cutoff)) {
		c.removeLocked(c.head)
	}
}

func (c *cropCache) removeLocked(e *cropEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.tail = e.prev
	}
	clear(e.crop) // do not leave the face in freed memory longer than needed
	delete(c.byKey, e.key)
	c.bytes -= len(e.crop)
}

// serveCrops answers crop requests for the cameras in subjects until ctx
// ends, and drops expired crops as it goes. Only the process holding a
// crop answers (several detect processes may share the subjects); one
// that holds none stays silent.
func (s *DetectStage) serveCrops(ctx context.Context, subjects []string) error {
	nc := s.opt.Bus.Conn
	handle := func(m *nats.Msg) {
		req, err := wire.DecodeCropRequest(m.Data)
		if err != nil || m.Reply == "" || m.Subject != wire.CropsSubject(req.Camera) {
			return // not worth a dead letter: a request carries no data
		}
		crop := s.crops.get(cropKey{req.Camera, req.Track, req.Final, req.Report})
		if crop == nil {
			return
		}
		data, err := wire.EncodeCropReply(req, crop)
		if err != nil {
			return
		}
		if err := m.Respond(data); err != nil {
			s.log.Warn("answering crop request", "camera", req.Camera, "track", req.Track, "err", err)
		}
	}
	var subs []*nats.Subscription
	defer func() {
		for _, sub := range subs {
			sub.Unsubscribe()
		}
	}()
	for _, subj := range subjects {
		sub, err := nc.Subscribe(subj, handle)
		if err != nil {
			return fmt.Errorf("subscribing to %s: %w", subj, err)
		}
		subs = append(subs, sub)
	}
	t := time.NewTicker(max(time.Second, s.crops.ttl/10))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.crops.expire()
		}
	}
}

// cropTimeout bounds how long a matcher waits for a hit's crop.
const cropTimeout = time.Second

// fetchCrop asks the detect stage for the crop of the track report t; nil
// when no detect process holds it any more (the hit goes on without one).
func fetchCrop(ctx context.Context, nc *nats.Conn, t wire.Track) ([]byte, error) {
	req := wire.CropRequest{Camera: t.Meta.Camera, Track: t.Meta.Track, Final: t.Meta.Final, Report: t.Meta.Report}
	data, err := wire.EncodeCropRequest(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cropTimeout)
	defer cancel()
	rep, err := nc.RequestWithContext(ctx, wire.CropsSubject(req.Camera), data)
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("asking for the crop of %s: %w", t.MsgID(), err)
	}
	return wire.DecodeCropReply(rep.Data, req)
}
