package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/facewatch/facewatch/embed"
	"github.com/facewatch/facewatch/internal/face"
)

// embedBatcher runs the chips of every camera's track reports through the
// embed workers, several cameras' chips in one network call: a worker that
// comes free takes every request waiting (up to the batch size) at once.
// Nothing waits for a batch to fill, so a lone request is embedded at once
// and a busy box gets bigger batches, not longer queues.
type embedBatcher struct {
	workers []*embed.Embedder
	size    int
	reqs    chan *embedReq
	m       *Metrics

	mu sync.Mutex
	// queued (guarded by mu) counts the requests no worker has taken yet;
	// drained is closed when it falls to 0 (nil while it is 0).
	queued  int
	drained chan struct{}
}

// embedReq is one camera's chips waiting for descriptors.
type embedReq struct {
	ctx    context.Context
	camera string
	chips  []face.Chip
	out    chan embedResult // buffered: a worker never waits on it
}

type embedResult struct {
	descs []embed.Descriptor
	err   error
}

func newEmbedBatcher(workers []*embed.Embedder, batchSize int, m *Metrics) *embedBatcher {
	return &embedBatcher{workers: workers, size: max(1, batchSize), reqs: make(chan *embedReq, 64), m: m}
}

// embed returns one descriptor per chip, in order, computed in a batch
// that may carry other cameras' chips too. It waits until a worker has
// run them or ctx ends.
func (b *embedBatcher) embed(ctx context.Context, camera string, chips []face.Chip) ([]embed.Descriptor, error) {
	if len(chips) == 0 {
		return nil, nil
	}
	r := &embedReq{ctx: ctx, camera: camera, chips: chips, out: make(chan embedResult, 1)}
	b.mu.Lock()
	if b.queued++; b.queued == 1 {
		b.drained = make(chan struct{})
	}
	b.mu.Unlock()
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		b.taken(1)
		return nil, ctx.Err()
	}
	select {
	case res := <-r.out:
		return res.descs, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// taken counts n requests taken off the queue (or given up before it).
func (b *embedBatcher) taken(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.queued -= n; b.queued == 0 {
		close(b.drained)
		b.drained = nil
	}
}

// waitDrained waits until no request is waiting for an embed worker (or
// ctx ends). Detection calls it before each frame: while faces already
// found wait to be embedded, finding more would only take CPU from them.
func (b *embedBatcher) waitDrained(ctx context.Context) {
	b.mu.Lock()
	ch := b.drained
	b.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// run runs every worker until ctx ends; requests still waiting then are
// answered with ctx's error.
func (b *embedBatcher) run(ctx context.Context) {
	done := make(chan struct{})
	for _, e := range b.workers {
		go func() {
			defer func() { done <- struct{}{} }()
			b.work(ctx, e)
		}()
	}
	for range b.workers {
		<-done
	}
	for {
		select {
		case r := <-b.reqs:
			b.taken(1)
			r.out <- embedResult{err: ctx.Err()}
		default:
			return
		}
	}
}

// work is one worker's loop: take the first request waiting, then
// whatever else is waiting up to the batch size, and embed them in one
// call.
func (b *embedBatcher) work(ctx context.Context, e *embed.Embedder) {
	for {
		var batch []*embedReq
		select {
		case <-ctx.Done():
			return
		case r := <-b.reqs:
			b.taken(1)
			batch = append(batch, r)
		}
		n := len(batch[0].chips)
	gather:
		for n < b.size {
			select {
			case r := <-b.reqs:
				b.taken(1)
				batch = append(batch, r)
				n += len(r.chips)
			default:
				break gather
			}
		}
		b.runBatch(ctx, e, batch)
	}
}

func (b *embedBatcher) runBatch(ctx context.Context, e *embed.Embedder, batch []*embedReq) {
	var chips []face.Chip
	live := batch[:0]
	cameras := map[string]bool{}
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil { // its publisher gave up
			r.out <- embedResult{err: err}
			continue
		}
		live = append(live, r)
		chips = append(chips, r.chips...)
		cameras[r.camera] = true
	}
	if len(live) == 0 {
		return
	}
	start := time.Now()
	descs, err := e.Embed(ctx, chips)
	b.m.Latency.WithLabelValues(StageEmbed).Observe(time.Since(start).Seconds())
	b.m.EmbedBatch.Observe(float64(len(chips)))
	b.m.EmbedCameras.Observe(float64(len(cameras)))
	if err == nil && len(descs) != len(chips) {
		err = fmt.Errorf("embedder returned %d descriptors for %d chips", len(descs), len(chips))
	}
	for _, r := range live {
		if err != nil {
			r.out <- embedResult{err: fmt.Errorf("embedding %d chips of %d cameras: %w", len(chips), len(cameras), err)}
			continue
		}
		r.out <- embedResult{descs: descs[:len(r.chips):len(r.chips)]}
		descs = descs[len(r.chips):]
	}
}

// model is the identity of the workers' network (all load the same file).
func (b *embedBatcher) model() (embed.ModelID, error) {
	if len(b.workers) == 0 {
		return embed.ModelID{}, errors.New("no embed worker")
	}
	return b.workers[0].Model(), nil
}
