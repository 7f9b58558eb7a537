package match

import (
	"context"
	"fmt"
	"time"
)

// CheckSearchable says whether a search of the named watchlists (every
// list when none is named) can name anyone at time now, so that a tool can
// refuse a pointless search with the reason instead of reporting "no
// name" for every face. Each named list must exist (ErrNotFound), be
// active (ErrExpired) and hold at least one enrolment (ErrEmpty); the
// gallery as a whole must hold at least one enrolment (ErrEmpty).
func (g *Gallery) CheckSearchable(ctx context.Context, lists []string, now time.Time) error {
	summaries, err := g.Watchlists(ctx)
	if err != nil {
		return err
	}
	return checkSearchable(summaries, lists, now)
}

// checkSearchable applies CheckSearchable's rules to the gallery's list
// summaries.
func checkSearchable(summaries []WatchlistSummary, lists []string, now time.Time) error {
	byName := make(map[string]*WatchlistSummary, len(summaries))
	total := 0
	for i := range summaries {
		byName[summaries[i].Name] = &summaries[i]
		total += summaries[i].Enrolments
	}
	for _, l := range lists {
		s, ok := byName[l]
		switch {
		case !ok:
			return fmt.Errorf("watchlist %q: %w", l, ErrNotFound)
		case !s.Active(now):
			return fmt.Errorf("watchlist %q %w at %s: it matches nobody", l, ErrExpired, s.Expires.Format(time.RFC3339))
		case s.Enrolments == 0:
			return fmt.Errorf("watchlist %q is %w: enrol someone first", l, ErrEmpty)
		}
	}
	if total == 0 {
		return fmt.Errorf("the gallery is %w: enrol someone first", ErrEmpty)
	}
	return nil
}
