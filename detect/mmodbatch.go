package detect

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/dlib/mmod"
	"github.com/facewatch/facewatch/models"
)

// NewPool loads n Detectors for a pool of workers shared by several
// cameras (the detect stage's). With the cnn detector and
// cfg.BatchFrames > 1 they share one MMOD network: a search of any of them
// waits for the network, which then runs every search waiting at that
// moment (up to BatchFrames, grouped by image size and upsampling) in one
// forward pass per group, and each caller gets its own faces. Otherwise
// each Detector is New's, with its own network. onForward, if not nil, is
// called after each successful forward pass of the shared network with the
// number of images it carried (the detect stage's facewatch_detect_batch_images).
// Closing every Detector frees the shared network.
func NewPool(dir models.Dir, cfg config.Detect, n int, onForward func(images int)) ([]*Detector, error) {
	if n < 1 {
		return nil, fmt.Errorf("detector pool of %d: want at least 1", n)
	}
	var out []*Detector
	fail := func(err error) ([]*Detector, error) {
		for _, d := range out {
			d.Close()
		}
		return nil, err
	}
	if cfg.Detector != "cnn" || cfg.BatchFrames <= 1 {
		for range n {
			d, err := New(dir, cfg)
			if err != nil {
				return fail(err)
			}
			out = append(out, d)
		}
		return out, nil
	}
	if err := backends.validate(cfg); err != nil {
		return nil, fmt.Errorf("detect config: %w", err)
	}
	p, err := dir.Path(models.MMOD)
	if err != nil {
		return nil, err
	}
	net, err := mmod.Load(p)
	if err != nil {
		return nil, fmt.Errorf("opening the cnn detector: %w", err)
	}
	b := newMMODBatcher(net, cfg.BatchFrames, onForward)
	for range n {
		d, err := openWith(dir, cfg, func(models.Dir, config.Detect) (Backend, error) { return b.client(), nil })
		if err != nil {
			if len(out) == 0 {
				b.close()
			}
			return fail(err)
		}
		out = append(out, d)
	}
	return out, nil
}

// mmodBatcher runs the searches of several Detectors on one MMOD network,
// in one goroutine. It does not wait for a batch to fill: when the network
// is free it takes the searches waiting then (up to max), so a lone camera
// pays no extra latency, and under load the searches that arrive during
// one forward pass make the next pass's batch. A timer (wait up to N ms
// for more) would only add latency on the CPU, where a batch is no
// cheaper per image than its images one by one; on a GPU the load that
// makes batching pay is the load that makes searches wait.
type mmodBatcher struct {
	net       *mmod.Net
	max       int
	onForward func(int)
	reqs      chan *mmodReq
	quit      chan struct{}
	done      chan struct{}

	mu      sync.Mutex
	clients int
	closed  bool
}

// mmodReq is one search: img's pixels stay valid until res is sent.
type mmodReq struct {
	img      mmod.Image
	upsample int
	res      chan mmodRes // buffered: the batcher never blocks on it
}

type mmodRes struct {
	rects []mmod.Rect
	err   error
}

func newMMODBatcher(net *mmod.Net, maxBatch int, onForward func(int)) *mmodBatcher {
	b := &mmodBatcher{
		net:       net,
		max:       maxBatch,
		onForward: onForward,
		reqs:      make(chan *mmodReq), // unbuffered: a received search is in the next pass
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	go b.run()
	return b
}

// client is a Backend on the shared network; closing the last one closes
// the batcher.
func (b *mmodBatcher) client() Backend {
	b.mu.Lock()
	b.clients++
	b.mu.Unlock()
	return &mmodClient{b: b}
}

// release drops one client, closing the batcher with the last.
func (b *mmodBatcher) release() {
	b.mu.Lock()
	b.clients--
	last := b.clients == 0
	b.mu.Unlock()
	if last {
		b.close()
	}
}

// close stops the batcher after its pass in progress and frees the
// network; searches still waiting get ErrClosed. Safe to call twice.
func (b *mmodBatcher) close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	b.mu.Unlock()
	close(b.quit)
	<-b.done
	b.net.Close()
}

func (b *mmodBatcher) run() {
	defer close(b.done)
	for {
		var first *mmodReq
		select {
		case first = <-b.reqs:
		case <-b.quit:
			return
		}
		batch := []*mmodReq{first}
	gather:
		for len(batch) < b.max {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		b.runBatch(batch)
	}
}

// runBatch runs batch in one forward pass per image size and upsampling
// (dlib's pyramid input needs one size per pass) and answers every search.
func (b *mmodBatcher) runBatch(batch []*mmodReq) {
	type key struct{ rows, cols, upsample int }
	var order []key
	groups := map[key][]*mmodReq{}
	for _, r := range batch {
		k := key{r.img.Rows, r.img.Cols, r.upsample}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	for _, k := range order {
		g := groups[k]
		imgs := make([]mmod.Image, len(g))
		for i, r := range g {
			imgs[i] = r.img
		}
		out, err := b.net.DetectBatch(imgs, k.upsample, 0)
		if b.onForward != nil && err == nil {
			b.onForward(len(g))
		}
		for i, r := range g {
			if err != nil {
				r.res <- mmodRes{err: err}
			} else {
				r.res <- mmodRes{rects: out[i]}
			}
		}
	}
}

// detect queues one search and waits for its answer. A search not yet
// taken by the batcher is abandoned when ctx ends; one taken is in the
// pass under way, which dlib cannot interrupt, and is waited for, since
// it reads the caller's pixels.
func (b *mmodBatcher) detect(ctx context.Context, img mmod.Image, upsample int) ([]mmod.Rect, error) {
	r := &mmodReq{img: img, upsample: upsample, res: make(chan mmodRes, 1)}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.quit:
		return nil, ErrClosed
	}
	res := <-r.res
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return res.rects, res.err
}

// mmodClient is one Detector's Backend on a shared, batching MMOD network.
type mmodClient struct {
	b    *mmodBatcher
	once sync.Once
}

func (c *mmodClient) Detect(ctx context.Context, img gocv.Mat, opt Options) ([]Candidate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	im, cleanup, err := matImage(img)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	rs, err := c.b.detect(ctx, mmod.Image{Pix: im.Pix, Rows: im.Rows, Cols: im.Cols, Stride: im.Stride, Channels: im.Channels}, opt.Upsample)
	if err != nil {
		if errors.Is(err, ErrClosed) || ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("batched MMOD search: %w", err)
	}
	return mmodCandidates(rs), nil
}

func (c *mmodClient) Close() error {
	c.once.Do(c.b.release)
	return nil
}
