package alert

import (
	"context"
	"sync"
)

// liveSink is the inline sink that feeds the live feed (SSE) of the API.
type liveSink struct {
	feed *feed
	m    *metrics
}

func openLiveSink(env sinkEnv) (Sink, sinkRetry, error) {
	return liveSink{feed: env.feed, m: env.m}, sinkRetry{}, nil
}

// Deliver fans a out to the connected live clients; it never blocks.
func (l liveSink) Deliver(_ context.Context, a Alert) error {
	if n := l.feed.publish(a); n > 0 {
		l.m.sseDropped.Add(float64(n))
	}
	return nil
}

// feed fans new alerts out to live-feed subscribers. A subscriber that
// falls behind is disconnected (its channel closed) rather than slowing
// the store: the alert is already durable and the client resumes from the
// history with Last-Event-ID.
type feed struct {
	mu sync.Mutex
	// guarded by mu:
	subs   map[chan Alert]func(Alert) bool // each subscriber's filter
	closed bool
}

func newFeed() *feed { return &feed{subs: map[chan Alert]func(Alert) bool{}} }

const feedBuffer = 64

// subscribe returns a channel of new alerts; it is closed when the
// subscriber falls behind or the feed closes. Call cancel when done.
func (f *feed) subscribe() (ch chan Alert, cancel func()) {
	return f.subscribeFunc(func(Alert) bool { return true })
}

// subscribeFunc is subscribe for the alerts keep accepts only (a token's
// scope): the others never reach the subscriber or fill its buffer.
func (f *feed) subscribeFunc(keep func(Alert) bool) (ch chan Alert, cancel func()) {
	ch = make(chan Alert, feedBuffer)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		close(ch)
		return ch, func() {}
	}
	f.subs[ch] = keep
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.subs[ch]; ok {
			delete(f.subs, ch)
			close(ch)
		}
	}
}

// publish sends a to every subscriber; it returns how many were dropped.
func (f *feed) publish(a Alert) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	dropped := 0
	for ch, keep := range f.subs {
		if !keep(a) {
			continue
		}
		select {
		case ch <- a:
		default:
			delete(f.subs, ch)
			close(ch)
			dropped++
		}
	}
	return dropped
}

func (f *feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for ch := range f.subs {
		delete(f.subs, ch)
		close(ch)
	}
}
