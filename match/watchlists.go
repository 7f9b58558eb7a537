package match

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// WatchlistSpec is what a curator gives to create a watchlist.
type WatchlistSpec struct {
	Name           string
	Kind           Kind
	Priority       int
	Owner          string
	LegalBasis     string
	Expires        time.Time
	Threshold      float64
	SecondReviewer bool
}

func (s *WatchlistSpec) check() error {
	if err := checkName("watchlist name", s.Name); err != nil {
		return err
	}
	if strings.ContainsAny(s.Name, ".*> \t") {
		return fmt.Errorf("watchlist name: %w: %q must not contain '.', '*', '>' or spaces (it names a NATS subject)", ErrInvalid, s.Name)
	}
	if _, err := ParseKind(string(s.Kind)); err != nil {
		return fmt.Errorf("watchlist kind: %w: %v", ErrInvalid, err)
	}
	if err := checkName("watchlist owner", s.Owner); err != nil {
		return err
	}
	if strings.TrimSpace(s.LegalBasis) == "" {
		return fmt.Errorf("watchlist legal basis: %w: must not be empty", ErrInvalid)
	}
	if err := checkText("watchlist legal basis", s.LegalBasis, maxTextRunes, true); err != nil {
		return err
	}
	if s.Threshold < 0 || s.Threshold > 2 {
		return fmt.Errorf("watchlist threshold: %w: %g is not in [0, 2] (0 = default)", ErrInvalid, s.Threshold)
	}
	if s.Priority < 0 || s.Priority > 100 {
		return fmt.Errorf("watchlist priority: %w: %d is not between 0 and 100", ErrInvalid, s.Priority)
	}
	return nil
}

// CreateWatchlist adds a watchlist; a name in use is ErrExists.
func (g *Gallery) CreateWatchlist(ctx context.Context, s WatchlistSpec) (Watchlist, error) {
	s.Kind = Kind(strings.ToLower(string(s.Kind)))
	if err := s.check(); err != nil {
		return Watchlist{}, fmt.Errorf("creating watchlist: %w", err)
	}
	w := Watchlist{
		Name: s.Name, Kind: s.Kind, Priority: s.Priority, Owner: s.Owner, LegalBasis: s.LegalBasis,
		Expires: s.Expires.UTC(), Threshold: s.Threshold, SecondReviewer: s.SecondReviewer,
		Created: g.now().UTC().Truncate(time.Millisecond),
	}
	if !w.Expires.IsZero() {
		w.Expires = w.Expires.Truncate(time.Millisecond)
	}
	err := g.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO watchlists
			(name, kind, priority, owner, legal_basis, expires_ms, threshold, second_reviewer, created_ms, version)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`,
			w.Name, string(w.Kind), w.Priority, w.Owner, w.LegalBasis, ms(w.Expires), w.Threshold, w.SecondReviewer, w.Created.UnixMilli())
		if err != nil {
			if isUnique(err) {
				return fmt.Errorf("watchlist %q: %w", w.Name, ErrExists)
			}
			return err
		}
		if w.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		if err := putWatchlistEvent(ctx, tx, &w); err != nil {
			return err
		}
		return g.auditTx(ctx, tx, "watchlist_create", "watchlist/"+w.Name, "", map[string]any{"kind": w.Kind, "owner": w.Owner,
			"legal_basis": w.LegalBasis, "expires": w.Expires, "threshold": w.Threshold, "priority": w.Priority, "second_reviewer": w.SecondReviewer})
	})
	if err != nil {
		return Watchlist{}, fmt.Errorf("creating watchlist: %w", err)
	}
	return w, nil
}

func putWatchlistEvent(ctx context.Context, tx *sql.Tx, w *Watchlist) error {
	ev := &Event{Type: EventWatchlistPut, Watchlist: w}
	if err := appendEvent(ctx, tx, ev, func(seq int64) { w.Version = seq }); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, "UPDATE watchlists SET version = ? WHERE id = ?", w.Version, w.ID)
	return err
}

const watchlistCols = "id, name, kind, priority, owner, legal_basis, expires_ms, threshold, second_reviewer, created_ms, version"

func scanWatchlist(r scanner) (Watchlist, error) {
	var w Watchlist
	var kind string
	var exp *int64
	var created int64
	err := r.Scan(&w.ID, &w.Name, &kind, &w.Priority, &w.Owner, &w.LegalBasis, &exp, &w.Threshold, &w.SecondReviewer, &created, &w.Version)
	w.Kind = Kind(kind)
	w.Expires = fromMS(exp)
	w.Created = time.UnixMilli(created).UTC()
	return w, err
}

// Watchlist returns the named list, or ErrNotFound.
func (g *Gallery) Watchlist(ctx context.Context, name string) (Watchlist, error) {
	w, err := scanWatchlist(g.db.QueryRowContext(ctx, "SELECT "+watchlistCols+" FROM watchlists WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return Watchlist{}, fmt.Errorf("watchlist %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Watchlist{}, fmt.Errorf("reading watchlist %q: %w", name, err)
	}
	return w, nil
}

// WatchlistSummary is a list with its counts.
type WatchlistSummary struct {
	Watchlist
	Identities int `json:"identities"`
	Enrolments int `json:"enrolments"`
}

// Watchlists returns every list with its counts, by name.
func (g *Gallery) Watchlists(ctx context.Context) ([]WatchlistSummary, error) {
	rows, err := g.db.QueryContext(ctx, `SELECT `+prefix("w.", watchlistCols)+`,
		(SELECT count(*) FROM identities i WHERE i.watchlist_id = w.id),
		(SELECT count(*) FROM enrolments e JOIN identities i ON e.identity_id = i.id WHERE i.watchlist_id = w.id)
		FROM watchlists w ORDER BY w.name`)
	if err != nil {
		return nil, fmt.Errorf("listing watchlists: %w", err)
	}
	defer rows.Close()
	var out []WatchlistSummary
	for rows.Next() {
		var s WatchlistSummary
		var kind string
		var exp *int64
		var created int64
		w := &s.Watchlist
		if err := rows.Scan(&w.ID, &w.Name, &kind, &w.Priority, &w.Owner, &w.LegalBasis, &exp, &w.Threshold, &w.SecondReviewer, &created, &w.Version, &s.Identities, &s.Enrolments); err != nil {
			return nil, fmt.Errorf("listing watchlists: %w", err)
		}
		w.Kind, w.Expires, w.Created = Kind(kind), fromMS(exp), time.UnixMilli(created).UTC()
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing watchlists: %w", err)
	}
	return out, nil
}

// updateWatchlist changes the named list inside one transaction, emits
// its new state as an event and audits the change as action with the
// detail fn returns.
func (g *Gallery) updateWatchlist(ctx context.Context, name, action string, fn func(*Watchlist) (map[string]any, error)) (Watchlist, error) {
	var w Watchlist
	err := g.tx(ctx, func(tx *sql.Tx) error {
		var err error
		w, err = scanWatchlist(tx.QueryRowContext(ctx, "SELECT "+watchlistCols+" FROM watchlists WHERE name = ?", name))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("watchlist %q: %w", name, ErrNotFound)
		}
		if err != nil {
			return err
		}
		detail, err := fn(&w)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE watchlists SET expires_ms = ?, threshold = ?, priority = ?, second_reviewer = ? WHERE id = ?",
			ms(w.Expires), w.Threshold, w.Priority, w.SecondReviewer, w.ID); err != nil {
			return err
		}
		if err := putWatchlistEvent(ctx, tx, &w); err != nil {
			return err
		}
		return g.auditTx(ctx, tx, action, "watchlist/"+w.Name, "", detail)
	})
	return w, err
}

// ExpireWatchlist sets the list's expiry to at (now when zero): from then
// on it matches nobody, in every matcher, without anyone acting.
func (g *Gallery) ExpireWatchlist(ctx context.Context, name string, at time.Time) (Watchlist, error) {
	if at.IsZero() {
		at = g.now()
	}
	w, err := g.updateWatchlist(ctx, name, "watchlist_expire", func(w *Watchlist) (map[string]any, error) {
		old := w.Expires
		w.Expires = at.UTC().Truncate(time.Millisecond)
		return map[string]any{"expires": w.Expires, "was": old}, nil
	})
	if err != nil {
		return Watchlist{}, fmt.Errorf("expiring watchlist: %w", err)
	}
	return w, nil
}

// SetThreshold sets the list's threshold (0 returns it to the default),
// typically from `facewatch eval`'s recommendation for the list's size.
func (g *Gallery) SetThreshold(ctx context.Context, name string, threshold float64) (Watchlist, error) {
	if threshold < 0 || threshold > 2 {
		return Watchlist{}, fmt.Errorf("setting threshold of watchlist %q: %w: %g is not in [0, 2]", name, ErrInvalid, threshold)
	}
	w, err := g.updateWatchlist(ctx, name, "watchlist_threshold", func(w *Watchlist) (map[string]any, error) {
		old := w.Threshold
		w.Threshold = threshold
		return map[string]any{"threshold": threshold, "was": old}, nil
	})
	if err != nil {
		return Watchlist{}, fmt.Errorf("setting threshold: %w", err)
	}
	return w, nil
}

// DeleteWatchlist removes the list with its identities, descriptors and
// photos, and scrubs its descriptors from the gallery's event outbox and
// stream (see deleteWatchlistTx).
func (g *Gallery) DeleteWatchlist(ctx context.Context, name string) error {
	var rm removal
	err := g.tx(ctx, func(tx *sql.Tx) error {
		var id int64
		if err := tx.QueryRowContext(ctx, "SELECT id FROM watchlists WHERE name = ?", name).Scan(&id); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("watchlist %q: %w", name, ErrNotFound)
			}
			return err
		}
		var err error
		if rm, err = deleteWatchlistTx(ctx, tx, id); err != nil {
			return err
		}
		return g.auditTx(ctx, tx, "watchlist_delete", "watchlist/"+name, "", map[string]any{"identities": rm.identities, "photos": len(rm.photos)})
	})
	if err != nil {
		return fmt.Errorf("deleting watchlist: %w", err)
	}
	return g.afterRemoval(ctx, rm)
}
