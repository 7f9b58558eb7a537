package match

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/wire"
)

// Index is the in-memory gallery a matcher searches: every enrolled
// descriptor in one contiguous []float32, searched exactly. It is kept in
// step with the SQLite gallery by Run (snapshot, then the JetStream stream)
// or filled once by Load. It is safe for concurrent use: searches share a
// read lock; applying an event takes the write lock.
type Index struct {
	cfg      config.Match
	log      *slog.Logger
	now      func() time.Time
	gallery  *Gallery
	js       jetstream.JetStream
	replicas int

	applied  atomic.Int64 // events applied from the stream
	rejected atomic.Int64 // events refused (malformed, wrong model)

	ready     chan struct{}
	readyOnce sync.Once

	mu sync.RWMutex
	// Guarded by mu.
	loaded     bool
	model      ModelID
	vecs       []float32 // len = Dim * len(rowSlot)
	norms      []float32 // squared length of each row, for the BLAS scan
	rowSlot    []int32   // identity slot of each row
	rowID      []int64   // enrolment id of each row
	rowOf      map[int64]int
	slots      []identSlot
	slotOf     map[int64]int32
	lists      map[int64]*Watchlist
	deadLists  map[int64]bool
	deadIdents map[int64]bool
	lastSeq    int64 // highest gallery event sequence seen
}

// identSlot is one identity in the index. An enrolment may arrive before
// its identity (events out of order): the slot then exists but is not
// known and matches nothing until the identity's put arrives.
type identSlot struct {
	id    Identity
	known bool
	dead  bool
	rows  int
}

// IndexOptions wire an Index; only Gallery is needed for Load, Gallery and
// JetStream for Run.
type IndexOptions struct {
	Gallery   *Gallery
	JetStream jetstream.JetStream
	// Replicas for the gallery stream when Run creates it.
	Replicas int
	Logger   *slog.Logger
	// Now is the clock expiry is judged by; nil means time.Now.
	Now func() time.Time
}

// NewIndex returns an empty index; cfg gives the default threshold,
// margin, top-k and vote share.
func NewIndex(cfg config.Match, opt IndexOptions) *Index {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	x := &Index{cfg: cfg, log: log.With("component", "match-index"), now: now, gallery: opt.Gallery, js: opt.JetStream,
		replicas: opt.Replicas, ready: make(chan struct{})}
	x.resetLocked()
	return x
}

func (x *Index) resetLocked() {
	x.model = ModelID{}
	x.vecs, x.norms = nil, nil
	x.rowSlot, x.rowID = nil, nil
	x.rowOf = map[int64]int{}
	x.slots = nil
	x.slotOf = map[int64]int32{}
	x.lists = map[int64]*Watchlist{}
	x.deadLists = map[int64]bool{}
	x.deadIdents = map[int64]bool{}
	x.lastSeq = 0
}

// Ready is closed once the index holds the gallery (after Load, or when
// Run has read its snapshot).
func (x *Index) Ready() <-chan struct{} { return x.ready }

// Load replaces the index's contents with the gallery's current state.
func (x *Index) Load(ctx context.Context) error {
	if x.gallery == nil {
		return errors.New("loading index: no gallery")
	}
	s, err := x.gallery.snapshot(ctx)
	if err != nil {
		return fmt.Errorf("loading index: %w", err)
	}
	x.mu.Lock()
	x.resetLocked()
	x.model = s.model
	for i := range s.lists {
		w := s.lists[i]
		x.lists[w.ID] = &w
	}
	for _, id := range s.identities {
		x.putIdentityLocked(id)
	}
	x.vecs = make([]float32, 0, Dim*len(s.enrolments))
	for i := range s.enrolments {
		r := &s.enrolments[i]
		x.addRowLocked(r.id, r.identityID, &r.vec)
	}
	x.lastSeq = s.lastSeq
	x.loaded = true
	n, ids := len(x.rowID), len(x.slotOf)
	x.mu.Unlock()
	x.readyOnce.Do(func() { close(x.ready) })
	x.log.Info("gallery loaded", "descriptors", n, "identities", ids, "watchlists", len(s.lists), "model", s.model.String())
	return nil
}

// Run keeps the index in step with the gallery until ctx ends: it notes
// the stream's last sequence, loads the SQLite snapshot (which holds every
// change published up to then), and applies the stream's events from there
// on. Events are idempotent, so one both in the snapshot and on the stream
// is harmless. It returns nil when ctx is cancelled.
func (x *Index) Run(ctx context.Context) error {
	if x.gallery == nil || x.js == nil {
		return errors.New("running index: needs a gallery and a JetStream context")
	}
	if err := natsbus.EnsureStreams(ctx, x.js, natsbus.Topology{Replicas: x.replicas}); err != nil {
		return fmt.Errorf("running index: %w", err)
	}
	stream, err := x.js.Stream(ctx, wire.GalleryStream)
	if err != nil {
		return fmt.Errorf("running index: opening stream %s: %w", wire.GalleryStream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("running index: reading stream %s: %w", wire.GalleryStream, err)
	}
	start := info.State.LastSeq + 1
	if err := x.Load(ctx); err != nil {
		return err
	}
	cons, err := x.js.OrderedConsumer(ctx, wire.GalleryStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{wire.GalleryEvents},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start,
	})
	if err != nil {
		return fmt.Errorf("running index: consuming stream %s: %w", wire.GalleryStream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("running index: consuming stream %s: %w", wire.GalleryStream, err)
	}
	defer it.Stop()
	// Stop as soon as ctx ends, not only when Next returns: the ordered
	// consumer recreates its server-side consumer inside Next (after a
	// NATS node's loss, say), retrying without end and deaf to Next's
	// context until the iterator is stopped.
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	x.log.Info("following gallery stream", "from_seq", start)
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || errors.Is(err, nats.ErrConnectionClosed) {
				return fmt.Errorf("running index: reading stream %s: %w", wire.GalleryStream, err)
			}
			x.log.Warn("reading gallery stream", "err", err)
			select { // do not spin on a persistent error
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		ev, err := ParseEvent(msg.Data())
		if err == nil {
			err = x.Apply(ev)
		}
		if err != nil {
			x.rejected.Add(1)
			x.log.Warn("gallery event refused", "err", err)
			continue
		}
		x.applied.Add(1)
	}
}

// Apply applies one gallery event. It is idempotent and tolerates events
// out of order. A descriptor of a model other than the index's is
// ErrModelMismatch and is not added.
func (x *Index) Apply(ev Event) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.lastSeq = max(x.lastSeq, ev.Seq)
	switch ev.Type {
	case EventWatchlistPut:
		w := *ev.Watchlist
		if x.deadLists[w.ID] {
			return nil
		}
		if old, ok := x.lists[w.ID]; ok && old.Version >= w.Version {
			return nil
		}
		x.lists[w.ID] = &w
	case EventWatchlistDelete:
		x.deadLists[ev.DeletedID] = true
		delete(x.lists, ev.DeletedID)
		for i := range x.slots {
			s := &x.slots[i]
			if !s.dead && s.id.WatchlistID == ev.DeletedID {
				x.deleteIdentityLocked(s.id.ID)
			}
		}
	case EventIdentityPut:
		if x.deadIdents[ev.Identity.ID] {
			return nil
		}
		if x.deadLists[ev.Identity.WatchlistID] {
			x.deleteIdentityLocked(ev.Identity.ID)
			return nil
		}
		x.putIdentityLocked(*ev.Identity)
	case EventIdentityDelete:
		x.deleteIdentityLocked(ev.DeletedID)
	case EventEnrolmentAdd:
		e := ev.Enrolment
		if x.deadIdents[e.IdentityID] {
			return nil
		}
		if x.deadLists[e.WatchlistID] {
			x.deleteIdentityLocked(e.IdentityID)
			return nil
		}
		if _, ok := x.rowOf[e.ID]; ok {
			return nil
		}
		v, err := DecodeVector(e.Descriptor)
		if err != nil {
			return fmt.Errorf("gallery event %d: %w", ev.Seq, err)
		}
		if x.model.IsZero() {
			x.model = e.Model
		} else if e.Model != x.model {
			return fmt.Errorf("gallery event %d: %w: descriptor from %s, index holds %s", ev.Seq, ErrModelMismatch, e.Model, x.model)
		}
		x.addRowLocked(e.ID, e.IdentityID, &v)
		if s := &x.slots[x.slotOf[e.IdentityID]]; !s.known {
			s.id.WatchlistID = e.WatchlistID
		}
	default:
		return fmt.Errorf("gallery event %d: %w: unknown type %q", ev.Seq, ErrInvalid, ev.Type)
	}
	return nil
}

func (x *Index) slotLocked(identityID int64) int32 {
	if s, ok := x.slotOf[identityID]; ok {
		return s
	}
	s := int32(len(x.slots))
	x.slots = append(x.slots, identSlot{id: Identity{ID: identityID}})
	x.slotOf[identityID] = s
	return s
}

func (x *Index) putIdentityLocked(id Identity) {
	s := &x.slots[x.slotLocked(id.ID)]
	if s.known && s.id.Version >= id.Version {
		return
	}
	s.id, s.known = id, true
}

func (x *Index) addRowLocked(enrolmentID, identityID int64, v *Vector) {
	slot := x.slotLocked(identityID)
	x.rowOf[enrolmentID] = len(x.rowID)
	x.rowID = append(x.rowID, enrolmentID)
	x.rowSlot = append(x.rowSlot, slot)
	x.vecs = append(x.vecs, v[:]...)
	x.norms = append(x.norms, sqNorm(v))
	x.slots[slot].rows++
}

// deleteIdentityLocked drops an identity's rows (swap-remove) and leaves a
// tombstone so that a late put or enrolment does not bring it back.
func (x *Index) deleteIdentityLocked(identityID int64) {
	x.deadIdents[identityID] = true
	slot, ok := x.slotOf[identityID]
	if !ok {
		return
	}
	for r := 0; r < len(x.rowID); {
		if x.rowSlot[r] != slot {
			r++
			continue
		}
		last := len(x.rowID) - 1
		delete(x.rowOf, x.rowID[r])
		if r != last {
			x.rowID[r], x.rowSlot[r] = x.rowID[last], x.rowSlot[last]
			copy(x.vecs[r*Dim:(r+1)*Dim], x.vecs[last*Dim:])
			x.norms[r] = x.norms[last]
			x.rowOf[x.rowID[r]] = r
		}
		x.rowID, x.rowSlot, x.vecs, x.norms = x.rowID[:last], x.rowSlot[:last], x.vecs[:last*Dim], x.norms[:last]
	}
	x.slots[slot] = identSlot{id: Identity{ID: identityID}, dead: true}
	delete(x.slotOf, identityID)
}

// IndexStats describes what an index holds.
type IndexStats struct {
	Model       ModelID `json:"model"`
	Watchlists  int     `json:"watchlists"`
	Identities  int     `json:"identities"`
	Descriptors int     `json:"descriptors"`
	// LastEvent is the highest gallery event sequence applied.
	LastEvent int64 `json:"last_event"`
	// Applied and Rejected count stream events since Run started.
	Applied  int64 `json:"applied"`
	Rejected int64 `json:"rejected"`
}

// Stats returns counts for health reports.
func (x *Index) Stats() IndexStats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n := 0
	for i := range x.slots {
		if x.slots[i].known && !x.slots[i].dead {
			n++
		}
	}
	return IndexStats{Model: x.model, Watchlists: len(x.lists), Identities: n, Descriptors: len(x.rowID),
		LastEvent: x.lastSeq, Applied: x.applied.Load(), Rejected: x.rejected.Load()}
}

// Probe is one face to identify: its descriptor, the model that computed
// it, and the detector's quality score in [0, 1] (its weight in a track's
// vote).
type Probe struct {
	Vector  Vector  `json:"-"`
	Model   ModelID `json:"model"`
	Quality float64 `json:"quality"`
}

// Candidate is one identity near a probe: its nearest enrolled descriptor.
type Candidate struct {
	IdentityID     int64   `json:"identity_id"`
	Identity       string  `json:"identity"`
	ExternalRef    string  `json:"external_ref,omitempty"`
	WatchlistID    int64   `json:"watchlist_id"`
	Watchlist      string  `json:"watchlist"`
	Kind           Kind    `json:"kind"`
	Priority       int     `json:"priority"`
	SecondReviewer bool    `json:"second_reviewer"`
	EnrolmentID    int64   `json:"enrolment_id"`
	Distance       float64 `json:"distance"`
	// Threshold is the list's threshold (or the default).
	Threshold float64 `json:"threshold"`
}

// Within reports whether the candidate is under its list's threshold.
func (c *Candidate) Within() bool { return c.Distance <= c.Threshold }

// SearchOptions narrow a search.
type SearchOptions struct {
	// Watchlists restricts the search to these list names; empty means
	// every active list.
	Watchlists []string
	// TopK is how many identities to return; 0 means config's top_k.
	TopK int
}

// scope is a search's view of which identity slots may match, resolved
// once per search under the read lock.
type scope struct {
	active []bool
	thresh []float64
}

func (x *Index) scopeLocked(opt SearchOptions) (scope, error) {
	now := x.now()
	want := map[int64]bool{}
	for _, name := range opt.Watchlists {
		found := false
		for id, w := range x.lists {
			if w.Name == name {
				want[id], found = true, true
			}
		}
		if !found {
			return scope{}, fmt.Errorf("watchlist %q: %w", name, ErrNotFound)
		}
	}
	sc := scope{active: make([]bool, len(x.slots)), thresh: make([]float64, len(x.slots))}
	for i := range x.slots {
		s := &x.slots[i]
		if !s.known || s.dead || !s.id.Active(now) {
			continue
		}
		w, ok := x.lists[s.id.WatchlistID]
		if !ok || !w.Active(now) || (len(want) > 0 && !want[w.ID]) {
			continue
		}
		sc.active[i] = true
		sc.thresh[i] = x.threshold(w)
	}
	return sc, nil
}

func (x *Index) threshold(w *Watchlist) float64 {
	if w.Threshold > 0 {
		return w.Threshold
	}
	return x.cfg.DefaultThreshold
}

func (x *Index) checkProbeLocked(p *Probe) error {
	if !x.loaded {
		return ErrNotReady
	}
	if err := CheckVector(&p.Vector); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	if !x.model.IsZero() && p.Model != x.model {
		return fmt.Errorf("probe: %w: descriptor from %s, gallery holds %s", ErrModelMismatch, p.Model, x.model)
	}
	return nil
}

// Search returns the TopK identities nearest to the probe, nearest first,
// over the active identities of active lists (expired ones never match).
// Each candidate carries its list's threshold; whether it is a match is
// decided by DecideTrack (threshold and margin).
func (x *Index) Search(p Probe, opt SearchOptions) ([]Candidate, error) {
	res, err := x.SearchBatch([]Probe{p}, opt)
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// searchBlock is how many gallery rows one pass of a batched search reads
// before moving to the next probe (128 KiB of descriptors, which stays in
// L2 while every probe of the batch is compared with it).
const searchBlock = 256

// SearchBatch searches several probes in one pass over the gallery, which
// reads each descriptor from memory once per batch instead of once per
// probe.
func (x *Index) SearchBatch(probes []Probe, opt SearchOptions) ([][]Candidate, error) {
	want := opt.TopK
	if want <= 0 {
		want = x.cfg.TopK
	}
	res, err := x.search(probes, opt)
	if err != nil {
		return nil, err
	}
	for i := range res {
		res[i] = res[i][:min(len(res[i]), want)]
	}
	return res, nil
}

// search returns at least the two nearest identities per probe (the margin
// rule needs the second best), more when TopK asks.
func (x *Index) search(probes []Probe, opt SearchOptions) ([][]Candidate, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for i := range probes {
		if err := x.checkProbeLocked(&probes[i]); err != nil {
			return nil, err
		}
	}
	sc, err := x.scopeLocked(opt)
	if err != nil {
		return nil, err
	}
	k := opt.TopK
	if k <= 0 {
		k = x.cfg.TopK
	}
	k = max(k, 2) // the margin rule needs the second best
	n := len(x.rowID)
	// Large galleries are split among the CPUs; each part keeps its own
	// top-k per probe and the parts are merged. The goroutines end before
	// search returns.
	parts := 1
	if procs := runtime.GOMAXPROCS(0); procs > 1 && n >= parallelMinRows {
		parts = min(procs, n/(parallelMinRows/2))
	}
	partTops := make([][]topK, parts)
	var wg sync.WaitGroup
	per := (n/parts + searchBlock - 1) / searchBlock * searchBlock
	for p := range parts {
		partTops[p] = make([]topK, len(probes))
		for i := range partTops[p] {
			partTops[p][i] = newTopK(k)
		}
		lo, hi := p*per, min((p+1)*per, n)
		if p == parts-1 {
			hi = n
		}
		if p == parts-1 {
			x.scanLocked(probes, &sc, partTops[p], lo, hi)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			x.scanLocked(probes, &sc, partTops[p], lo, hi)
		}()
	}
	wg.Wait()
	tops := partTops[0]
	for p := 1; p < parts; p++ {
		for pi := range tops {
			for _, e := range partTops[p][pi].e {
				if e.d < tops[pi].worst {
					tops[pi].offer(e.slot, e.row, e.d)
				}
			}
		}
	}
	out := make([][]Candidate, len(probes))
	for pi := range tops {
		out[pi] = x.candidatesLocked(&tops[pi], &sc)
	}
	return out, nil
}

// parallelMinRows is the gallery size from which a search uses several
// CPUs.
const parallelMinRows = 65536

// scanLocked compares every probe with rows [lo, hi): through BLAS dot
// products (scanBLASLocked) when there are enough rows to pay for it,
// otherwise directly.
func (x *Index) scanLocked(probes []Probe, sc *scope, tops []topK, lo, hi int) {
	if hi-lo >= blasMinRows {
		x.scanBLASLocked(probes, sc, tops, lo, hi)
		return
	}
	x.scanDirectLocked(probes, sc, tops, lo, hi)
}

// scanDirectLocked compares every probe with rows [lo, hi), block by block.
func (x *Index) scanDirectLocked(probes []Probe, sc *scope, tops []topK, lo, hi int) {
	for b0 := lo; b0 < hi; b0 += searchBlock {
		b1 := min(b0+searchBlock, hi)
		for pi := range probes {
			q := probes[pi].Vector[:]
			t := &tops[pi]
			for r := b0; r < b1; r++ {
				slot := x.rowSlot[r]
				if !sc.active[slot] {
					continue
				}
				d := sqDist(q, x.vecs[r*Dim:r*Dim+Dim])
				if d < t.worst {
					t.offer(slot, r, d)
				}
			}
		}
	}
}

func (x *Index) candidatesLocked(t *topK, sc *scope) []Candidate {
	cs := make([]Candidate, 0, len(t.e))
	for _, e := range t.e {
		s := &x.slots[e.slot]
		w := x.lists[s.id.WatchlistID]
		cs = append(cs, Candidate{
			IdentityID: s.id.ID, Identity: s.id.Name, ExternalRef: s.id.ExternalRef,
			WatchlistID: w.ID, Watchlist: w.Name, Kind: w.Kind, Priority: w.Priority, SecondReviewer: w.SecondReviewer,
			EnrolmentID: x.rowID[e.row], Distance: math.Sqrt(float64(e.d)), Threshold: sc.thresh[e.slot],
		})
	}
	return cs
}

// topK keeps the k nearest identities seen so far, one entry per identity
// (its nearest row), sorted by distance.
type topK struct {
	k     int
	e     []topEntry
	worst float32 // distance a row must beat to enter; +Inf until full
}

type topEntry struct {
	slot int32
	row  int
	d    float32
}

func newTopK(k int) topK {
	return topK{k: k, e: make([]topEntry, 0, k+1), worst: float32(math.Inf(1))}
}

func (t *topK) offer(slot int32, row int, d float32) {
	for i := range t.e {
		if t.e[i].slot == slot {
			if d >= t.e[i].d {
				return
			}
			t.e = slices.Delete(t.e, i, i+1)
			break
		}
	}
	i, _ := slices.BinarySearchFunc(t.e, d, func(e topEntry, d float32) int { return cmp.Compare(e.d, d) })
	t.e = slices.Insert(t.e, i, topEntry{slot, row, d})
	if len(t.e) > t.k {
		t.e = t.e[:t.k]
	}
	if len(t.e) == t.k {
		t.worst = t.e[t.k-1].d
	}
}

// sqDist is the squared Euclidean distance of two descriptors, unrolled
// into four independent sums so the CPU can overlap them.
func sqDist(a, b []float32) float32 {
	a, b = a[:Dim], b[:Dim]
	var s0, s1, s2, s3 float32
	for i := 0; i < Dim; i += 8 {
		d0 := a[i] - b[i]
		d1 := a[i+1] - b[i+1]
		d2 := a[i+2] - b[i+2]
		d3 := a[i+3] - b[i+3]
		d4 := a[i+4] - b[i+4]
		d5 := a[i+5] - b[i+5]
		d6 := a[i+6] - b[i+6]
		d7 := a[i+7] - b[i+7]
		s0 += d0*d0 + d4*d4
		s1 += d1*d1 + d5*d5
		s2 += d2*d2 + d6*d6
		s3 += d3*d3 + d7*d7
	}
	return (s0 + s1) + (s2 + s3)
}
