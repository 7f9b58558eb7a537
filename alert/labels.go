package alert

import (
	"context"
	"sync"
	"time"
)

// OtherLabel is the metric label value of every watchlist name that has no
// series of its own (see labelGuard).
const OtherLabel = "other"

// maxUnknownLabels is how many watchlist names the service does not know
// (from Options.Watchlists) still get a series of their own, first come.
const maxUnknownLabels = 16

// labelGuard bounds the label values that come from message fields: a hit's
// watchlist name is whatever its publisher wrote, so forged names must not
// create a series each. Known watchlists (Options.Watchlists, refreshed
// by Run) get their own value; so do the first maxUnknownLabels others
// (the lists of a gallery the service cannot read); the rest share
// OtherLabel.
type labelGuard struct {
	mu      sync.Mutex // guards known and unknown
	known   map[string]bool
	unknown map[string]bool
}

func newLabelGuard() *labelGuard {
	return &labelGuard{known: map[string]bool{}, unknown: map[string]bool{}}
}

// value is the label value for name.
func (g *labelGuard) value(name string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.known[name] || g.unknown[name] {
		return name
	}
	if len(g.unknown) < maxUnknownLabels {
		g.unknown[name] = true
		return name
	}
	return OtherLabel
}

// setKnown replaces the known names.
func (g *labelGuard) setKnown(names []string) {
	known := make(map[string]bool, len(names))
	for _, n := range names {
		known[n] = true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.known = known
}

// watchlistLoop refreshes the known watchlist names every interval until
// ctx ends (nothing without Options.Watchlists).
func (s *Service) watchlistLoop(ctx context.Context, interval time.Duration) {
	if s.watchlists == nil {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		names, err := s.watchlists(ctx)
		if err == nil {
			s.labels.setKnown(names)
		} else if ctx.Err() == nil {
			s.log.Warn("listing watchlists for metric labels", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
