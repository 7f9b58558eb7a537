package match

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// IdentitySpec is what a curator gives to add a person to a list.
type IdentitySpec struct {
	Name        string
	Notes       string
	ExternalRef string
	Expires     time.Time
}

// EnsureIdentity returns the list's identity of that name, creating it from
// spec when it does not exist yet. Adding to an expired list is ErrExpired.
func (g *Gallery) EnsureIdentity(ctx context.Context, list string, s IdentitySpec) (Identity, bool, error) {
	if err := checkName("identity name", s.Name); err != nil {
		return Identity{}, false, fmt.Errorf("adding identity: %w", err)
	}
	if err := checkText("identity notes", s.Notes, maxTextRunes, true); err != nil {
		return Identity{}, false, fmt.Errorf("adding identity: %w", err)
	}
	if err := checkText("identity external reference", s.ExternalRef, MaxNameRunes, false); err != nil {
		return Identity{}, false, fmt.Errorf("adding identity: %w", err)
	}
	var id Identity
	created := false
	err := g.tx(ctx, func(tx *sql.Tx) error {
		w, err := scanWatchlist(tx.QueryRowContext(ctx, "SELECT "+watchlistCols+" FROM watchlists WHERE name = ?", list))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("watchlist %q: %w", list, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if !w.Active(g.now()) {
			return fmt.Errorf("watchlist %q %w at %s", list, ErrExpired, w.Expires.Format(time.RFC3339))
		}
		id, err = scanIdentity(tx.QueryRowContext(ctx, "SELECT "+identityCols+" FROM identities WHERE watchlist_id = ? AND name = ?", w.ID, s.Name))
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		id = Identity{WatchlistID: w.ID, Name: s.Name, Notes: s.Notes, ExternalRef: s.ExternalRef,
			Created: g.now().UTC().Truncate(time.Millisecond)}
		if !s.Expires.IsZero() {
			id.Expires = s.Expires.UTC().Truncate(time.Millisecond)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO identities (watchlist_id, name, notes, external_ref, expires_ms, created_ms, version)
			VALUES (?, ?, ?, ?, ?, ?, 0)`, id.WatchlistID, id.Name, id.Notes, id.ExternalRef, ms(id.Expires), id.Created.UnixMilli())
		if err != nil {
			return err
		}
		if id.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		created = true
		if err := putIdentityEvent(ctx, tx, &id); err != nil {
			return err
		}
		return g.auditTx(ctx, tx, "identity_create", identityTarget(id.ID), id.ExternalRef, map[string]any{"watchlist": list, "name": id.Name, "expires": id.Expires})
	})
	if err != nil {
		return Identity{}, false, fmt.Errorf("adding identity to watchlist %q: %w", list, err)
	}
	return id, created, nil
}

func putIdentityEvent(ctx context.Context, tx *sql.Tx, id *Identity) error {
	ev := &Event{Type: EventIdentityPut, Identity: id}
	if err := appendEvent(ctx, tx, ev, func(seq int64) { id.Version = seq }); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, "UPDATE identities SET version = ? WHERE id = ?", id.Version, id.ID)
	return err
}

const identityCols = "id, watchlist_id, name, notes, external_ref, expires_ms, created_ms, version"

func scanIdentity(r scanner) (Identity, error) {
	var i Identity
	var exp *int64
	var created int64
	err := r.Scan(&i.ID, &i.WatchlistID, &i.Name, &i.Notes, &i.ExternalRef, &exp, &created, &i.Version)
	i.Expires = fromMS(exp)
	i.Created = time.UnixMilli(created).UTC()
	return i, err
}

// IdentitySummary is an identity with its enrolment count.
type IdentitySummary struct {
	Identity
	Enrolments int `json:"enrolments"`
}

// Identities returns the named list's identities by name.
func (g *Gallery) Identities(ctx context.Context, list string) ([]IdentitySummary, error) {
	w, err := g.Watchlist(ctx, list)
	if err != nil {
		return nil, err
	}
	rows, err := g.db.QueryContext(ctx, `SELECT `+prefix("i.", identityCols)+`,
		(SELECT count(*) FROM enrolments e WHERE e.identity_id = i.id)
		FROM identities i WHERE i.watchlist_id = ? ORDER BY i.name`, w.ID)
	if err != nil {
		return nil, fmt.Errorf("listing identities of %q: %w", list, err)
	}
	defer rows.Close()
	var out []IdentitySummary
	for rows.Next() {
		var s IdentitySummary
		var exp *int64
		var created int64
		i := &s.Identity
		if err := rows.Scan(&i.ID, &i.WatchlistID, &i.Name, &i.Notes, &i.ExternalRef, &exp, &created, &i.Version, &s.Enrolments); err != nil {
			return nil, fmt.Errorf("listing identities of %q: %w", list, err)
		}
		i.Expires, i.Created = fromMS(exp), time.UnixMilli(created).UTC()
		out = append(out, s)
	}
	return out, rows.Err()
}

// Identity returns one identity by id.
func (g *Gallery) Identity(ctx context.Context, id int64) (Identity, error) {
	i, err := scanIdentity(g.db.QueryRowContext(ctx, "SELECT "+identityCols+" FROM identities WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Identity{}, fmt.Errorf("identity %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Identity{}, fmt.Errorf("reading identity %d: %w", id, err)
	}
	return i, nil
}

// ExpireIdentity sets the identity's expiry to at (now when zero).
func (g *Gallery) ExpireIdentity(ctx context.Context, id int64, at time.Time) (Identity, error) {
	if at.IsZero() {
		at = g.now()
	}
	var out Identity
	err := g.tx(ctx, func(tx *sql.Tx) error {
		i, err := scanIdentity(tx.QueryRowContext(ctx, "SELECT "+identityCols+" FROM identities WHERE id = ?", id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("identity %d: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		i.Expires = at.UTC().Truncate(time.Millisecond)
		if _, err := tx.ExecContext(ctx, "UPDATE identities SET expires_ms = ? WHERE id = ?", ms(i.Expires), i.ID); err != nil {
			return err
		}
		out = i
		if err := putIdentityEvent(ctx, tx, &out); err != nil {
			return err
		}
		return g.auditTx(ctx, tx, "identity_expire", identityTarget(i.ID), i.ExternalRef, map[string]any{"name": i.Name, "expires": i.Expires})
	})
	if err != nil {
		return Identity{}, fmt.Errorf("expiring identity: %w", err)
	}
	return out, nil
}

// DeleteIdentity removes the identity with its descriptors and photos,
// and scrubs its descriptors from the gallery's event outbox and stream
// (see deleteIdentityTx).
func (g *Gallery) DeleteIdentity(ctx context.Context, id int64) error {
	var rm removal
	err := g.tx(ctx, func(tx *sql.Tx) error {
		var name, ref string
		if err := tx.QueryRowContext(ctx, "SELECT name, external_ref FROM identities WHERE id = ?", id).Scan(&name, &ref); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("identity %d: %w", id, ErrNotFound)
			}
			return err
		}
		var err error
		if rm, err = deleteIdentityTx(ctx, tx, id); err != nil {
			return err
		}
		return g.auditTx(ctx, tx, "identity_delete", identityTarget(id), ref, map[string]any{"name": name, "photos": len(rm.photos)})
	})
	if err != nil {
		return fmt.Errorf("deleting identity: %w", err)
	}
	return g.afterRemoval(ctx, rm)
}

// identityTarget names an identity in the audit log.
func identityTarget(id int64) string { return "identity/" + strconv.FormatInt(id, 10) }
