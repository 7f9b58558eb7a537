// Package lease shares a set of items (facewatch's cameras) between worker
// processes through leases in a JetStream key-value bucket whose TTL is the
// lease period: each item is owned by at most one worker (kv.Create, then
// kv.Update with the last revision), the owner renews, a dead owner's
// leases expire and are taken over, and a worker holding more than its fair
// share releases some so that a joining worker gets work. An owner stops
// its work on an item before its lease could have expired, so two workers
// never work on one item at once. It knows nothing of cameras or frames:
// callers pass item names and a work function.
package lease

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Options configure a Pool.
type Options struct {
	// KV is the lease bucket; its TTL must be Period.
	KV jetstream.KeyValue
	// Role separates pools sharing one bucket (keys are
	// "<role>.item.<item>" and "<role>.worker.<worker>").
	Role string
	// Worker is this worker's ID, unique among the role's workers; letters,
	// digits, '-' and '_'.
	Worker string
	// Items are the items to share (camera IDs).
	Items []string
	// Pinned makes the items a pin: the worker takes every one of them that
	// is free, whatever its share, and does not count as a worker when the
	// others divide the rest.
	Pinned bool
	// Period is the lease period: the bucket's TTL. Leases are renewed
	// every Period/5; work on an item stops when Period-Period/10 has
	// passed since the last renewal was sent (before the server could
	// expire it).
	Period time.Duration
	// Busy, when set, says an item is in the middle of something (a camera
	// with a track open): a worker over its share releases idle items
	// first and defers busy ones for up to MaxDefer.
	Busy func(item string) bool
	// MaxDefer bounds how long a release is deferred for a busy item; 0
	// means 3 periods.
	MaxDefer time.Duration
	Logger   *slog.Logger
}

// Pool holds one worker's leases.
type Pool struct {
	opt Options
	log *slog.Logger

	mu sync.Mutex
	// held and overSince are guarded by mu: the items this worker owns, and
	// since when it has held more than its share (zero when not).
	held      map[string]*holding
	overSince time.Time
}

// holding is one owned item.
type holding struct {
	rev     uint64
	renewed time.Time // when the last successful Create or Update was sent
	cancel  context.CancelFunc
	done    chan struct{}
	expired bool // the watchdog stopped the work: renewals failed too long
}

// New checks opt and returns a Pool (nothing runs until Run).
func New(opt Options) (*Pool, error) {
	if opt.KV == nil {
		return nil, errors.New("lease pool: no key-value bucket")
	}
	if opt.Period <= 0 {
		return nil, errors.New("lease pool: period must be positive")
	}
	for _, s := range append([]string{opt.Role, opt.Worker}, opt.Items...) {
		if !validToken(s) {
			return nil, fmt.Errorf("lease pool: %q is not a valid key token", s)
		}
	}
	if opt.MaxDefer <= 0 {
		opt.MaxDefer = 3 * opt.Period
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Pool{opt: opt, log: log.With("component", "lease", "role", opt.Role, "worker", opt.Worker), held: map[string]*holding{}}, nil
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func (p *Pool) itemKey(item string) string     { return p.opt.Role + ".item." + item }
func (p *Pool) workerKey(worker string) string { return p.opt.Role + ".worker." + worker }

// pinnedPrefix starts a pinned worker's presence value; its pinned items
// follow, comma-separated ("pinned:cam-a,cam-b"), so that unpinned workers
// leave those items to it even when they took them first (a pinned worker
// that starts late, or restarts, gets its pin back).
const pinnedPrefix = "pinned"

// pinnedItems parses a presence value: the items it pins, and whether the
// worker is pinned at all.
func pinnedItems(v string) ([]string, bool) {
	rest, ok := strings.CutPrefix(v, pinnedPrefix)
	if !ok {
		return nil, false
	}
	rest = strings.TrimPrefix(rest, ":")
	if rest == "" {
		return nil, true
	}
	return strings.Split(rest, ","), true
}

// Owned returns the items this worker owns now, sorted.
func (p *Pool) Owned() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for it, h := range p.held {
		if !h.expired {
			out = append(out, it)
		}
	}
	sort.Strings(out)
	return out
}

// Run holds leases until ctx ends: work(ctx, item) runs in its own
// goroutine while this worker owns item, and must return soon after its ctx
// ends. At the end every lease is released (work stopped first).
func (p *Pool) Run(ctx context.Context, work func(ctx context.Context, item string)) error {
	var wg sync.WaitGroup
	wdCtx, stopWD := context.WithCancel(ctx)
	wg.Go(func() { p.watchdog(wdCtx) })
	defer func() {
		stopWD()
		wg.Wait()
		p.releaseAll()
	}()
	t := time.NewTicker(p.opt.Period / 5)
	defer t.Stop()
	for {
		p.pass(ctx, work)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// safeFor is how long after a renewal was sent the work may go on: the
// server stamps the renewal after it was sent, so the lease lasts at least
// Period from the send; a tenth of it is left as margin for timers and
// the watchdog's tick.
func (p *Pool) safeFor() time.Duration { return p.opt.Period - p.opt.Period/10 }

// watchdog stops the work on any item whose renewals have failed for so
// long that its lease might expire: the owner stops before another could
// start.
func (p *Pool) watchdog(ctx context.Context) {
	t := time.NewTicker(max(p.opt.Period/50, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		for it, h := range p.held {
			if !h.expired && time.Since(h.renewed) > p.safeFor() {
				h.expired = true
				h.cancel()
				p.log.Warn("lease not renewed in time; stopped work", "item", it, "since_renewal", time.Since(h.renewed).Round(time.Millisecond))
			}
		}
		p.mu.Unlock()
	}
}

// opTimeout bounds each key-value call, so that one pass ends within about
// a renewal interval even when NATS does not answer.
func (p *Pool) opTimeout() time.Duration { return max(p.opt.Period/8, 100*time.Millisecond) }

// pass renews, rebalances and acquires once.
func (p *Pool) pass(ctx context.Context, work func(context.Context, string)) {
	if ctx.Err() != nil {
		return
	}
	kv := p.opt.KV
	op := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, p.opTimeout()) }
	// Presence: how the others learn how many workers share the items.
	presence := ""
	if p.opt.Pinned {
		presence = pinnedPrefix + ":" + strings.Join(p.opt.Items, ",")
	}
	c, cancel := op()
	_, err := kv.PutString(c, p.workerKey(p.opt.Worker), presence)
	cancel()
	if err != nil && ctx.Err() == nil {
		p.log.Warn("announcing worker", "err", err)
	}
	p.renew(ctx, op)
	owners, unpinned, pinned, ok := p.snapshot(ctx)
	if !ok {
		return
	}
	quota := p.quota(owners, unpinned, pinned)
	p.shed(ctx, op, quota, pinned)
	p.acquire(ctx, op, work, owners, quota, pinned)
}

// renew extends every held lease; a lease found taken or gone is dropped
// at once, as is one the watchdog has stopped.
func (p *Pool) renew(ctx context.Context, op func() (context.Context, context.CancelFunc)) {
	p.mu.Lock()
	items := make([]string, 0, len(p.held))
	for it := range p.held {
		items = append(items, it)
	}
	p.mu.Unlock()
	sort.Strings(items)
	for _, it := range items {
		p.mu.Lock()
		h := p.held[it]
		rev, expired := h.rev, h.expired
		p.mu.Unlock()
		if expired {
			// Its work is stopped; free the key if it is still ours so
			// that anyone (this worker too) can take it cleanly.
			p.drop(it, h)
			c, cancel := op()
			_ = p.opt.KV.Delete(c, p.itemKey(it), jetstream.LastRevision(rev))
			cancel()
			continue
		}
		sent := time.Now()
		c, cancel := op()
		nrev, err := p.opt.KV.Update(c, p.itemKey(it), []byte(p.opt.Worker), rev)
		cancel()
		switch {
		case err == nil:
			p.mu.Lock()
			h.rev, h.renewed = nrev, sent
			p.mu.Unlock()
		case errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
			p.log.Warn("lease lost", "item", it, "err", err)
			p.drop(it, h)
		default:
			if ctx.Err() == nil {
				p.log.Warn("renewing lease", "item", it, "err", err)
			}
		}
	}
}

// drop stops the work on it and forgets the lease.
func (p *Pool) drop(it string, h *holding) {
	h.cancel()
	<-h.done
	p.mu.Lock()
	if p.held[it] == h {
		delete(p.held, it)
	}
	p.mu.Unlock()
}

// snapshot reads the role's keys: each item's owner, the unpinned workers
// present (this one included when unpinned), sorted, and the items that
// other present workers pin.
func (p *Pool) snapshot(ctx context.Context) (owners map[string]string, unpinned []string, pinned map[string]bool, ok bool) {
	c, cancel := context.WithTimeout(ctx, p.opTimeout())
	defer cancel()
	w, err := p.opt.KV.Watch(c, p.opt.Role+".>", jetstream.IgnoreDeletes())
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("reading leases", "err", err)
		}
		return nil, nil, nil, false
	}
	defer w.Stop()
	owners = map[string]string{}
	workers := map[string]string{}
	for {
		select {
		case <-c.Done():
			if ctx.Err() == nil {
				p.log.Warn("reading leases", "err", c.Err())
			}
			return nil, nil, nil, false
		case e, open := <-w.Updates():
			if !open {
				return nil, nil, nil, false
			}
			if e == nil { // the initial values are all read
				if !p.opt.Pinned {
					workers[p.opt.Worker] = ""
				}
				pinned = map[string]bool{}
				for id, v := range workers {
					its, isPinned := pinnedItems(v)
					if !isPinned {
						unpinned = append(unpinned, id)
						continue
					}
					if id == p.opt.Worker {
						continue
					}
					for _, it := range its {
						pinned[it] = true
					}
				}
				sort.Strings(unpinned)
				return owners, unpinned, pinned, true
			}
			key := strings.TrimPrefix(e.Key(), p.opt.Role+".")
			if it, ok := strings.CutPrefix(key, "item."); ok {
				owners[it] = string(e.Value())
			} else if id, ok := strings.CutPrefix(key, "worker."); ok {
				workers[id] = string(e.Value())
			}
		}
	}
}

// quota is how many of the items this worker should own: all of its pin
// when pinned; otherwise its share of the items neither pinned by a
// present pinned worker nor held by one, the first n%w workers in ID order
// taking one more.
func (p *Pool) quota(owners map[string]string, unpinned []string, pinned map[string]bool) int {
	if p.opt.Pinned {
		return len(p.opt.Items)
	}
	isUnpinned := map[string]bool{}
	for _, w := range unpinned {
		isUnpinned[w] = true
	}
	n := 0
	for _, it := range p.opt.Items {
		if pinned[it] {
			continue
		}
		// An item held by a worker that is not among the unpinned present
		// ones is a pinned worker's (or a dead worker's, soon free).
		if o, ok := owners[it]; ok && !isUnpinned[o] {
			continue
		}
		n++
	}
	w := len(unpinned)
	idx := slices.Index(unpinned, p.opt.Worker)
	q := n / w
	if idx < n%w {
		q++
	}
	return q
}

// shed releases leases above quota: items another worker pins first,
// then idle items, busy ones only after the worker has been over its share
// for MaxDefer. Holding an item another worker pins counts as over quota.
func (p *Pool) shed(ctx context.Context, op func() (context.Context, context.CancelFunc), quota int, pinned map[string]bool) {
	p.mu.Lock()
	var items []string
	claimed := 0
	for it, h := range p.held {
		if !h.expired {
			items = append(items, it)
			if pinned[it] {
				claimed++
			}
		}
	}
	// quota counts no item another worker pins: what this worker holds
	// beyond it among the others is its excess.
	over := len(items) - claimed - quota
	if over <= 0 && claimed == 0 {
		p.overSince = time.Time{}
		p.mu.Unlock()
		return
	}
	if p.overSince.IsZero() {
		p.overSince = time.Now()
	}
	force := time.Since(p.overSince) > p.opt.MaxDefer
	p.mu.Unlock()
	sort.Strings(items)
	// Release from the end of the ID order, idle items first.
	slices.Reverse(items)
	var release, idle, busy []string
	for _, it := range items {
		isBusy := p.opt.Busy != nil && p.opt.Busy(it)
		if pinned[it] {
			// Another worker pins it: it goes when idle, or busy after
			// MaxDefer; until then it does not make this worker give up
			// anything else.
			if !isBusy || force {
				release = append(release, it)
			}
			continue
		}
		if isBusy {
			busy = append(busy, it)
		} else {
			idle = append(idle, it)
		}
	}
	pick := idle
	if force {
		pick = append(pick, busy...)
	}
	release = append(release, pick[:max(0, min(over, len(pick)))]...)
	for _, it := range release {
		if ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		h := p.held[it]
		p.mu.Unlock()
		// Stop first, then free the key: never two workers at once.
		p.drop(it, h)
		c, cancel := op()
		err := p.opt.KV.Delete(c, p.itemKey(it), jetstream.LastRevision(h.rev))
		cancel()
		p.log.Info("lease released for rebalancing", "item", it, "quota", quota, "err", err)
	}
}

// acquire creates leases on free items until this worker holds its quota.
func (p *Pool) acquire(ctx context.Context, op func() (context.Context, context.CancelFunc), work func(context.Context, string), owners map[string]string, quota int, pinned map[string]bool) {
	for _, it := range p.opt.Items {
		p.mu.Lock()
		n := len(p.held)
		_, mine := p.held[it]
		p.mu.Unlock()
		if n >= quota || ctx.Err() != nil {
			return
		}
		if mine {
			continue
		}
		if _, taken := owners[it]; taken || pinned[it] {
			continue
		}
		sent := time.Now()
		c, cancel := op()
		rev, err := p.opt.KV.Create(c, p.itemKey(it), []byte(p.opt.Worker))
		cancel()
		if err != nil {
			if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
				p.log.Warn("taking lease", "item", it, "err", err)
			}
			continue
		}
		wctx, wcancel := context.WithCancel(ctx)
		h := &holding{rev: rev, renewed: sent, cancel: wcancel, done: make(chan struct{})}
		p.mu.Lock()
		p.held[it] = h
		p.mu.Unlock()
		p.log.Info("lease taken", "item", it, "quota", quota)
		go func() { // ends when wctx does (release, loss, expiry or Run's end)
			defer close(h.done)
			work(wctx, it)
		}()
	}
}

// releaseAll stops every work and deletes its lease so that another worker
// can take it at once rather than after the TTL.
func (p *Pool) releaseAll() {
	p.mu.Lock()
	held := p.held
	p.held = map[string]*holding{}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for it, h := range held {
		h.cancel()
		<-h.done
		if err := p.opt.KV.Delete(ctx, p.itemKey(it), jetstream.LastRevision(h.rev)); err != nil {
			p.log.Debug("releasing lease", "item", it, "err", err)
		}
	}
	_ = p.opt.KV.Delete(ctx, p.workerKey(p.opt.Worker))
}
