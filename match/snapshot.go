package match

import (
	"context"
	"database/sql"
	"fmt"
)

// snapshot is the gallery's state for building an Index.
type snapshot struct {
	model      ModelID
	lists      []Watchlist
	identities []Identity
	enrolments []enrolmentRow
	lastSeq    int64
}

type enrolmentRow struct {
	id, identityID int64
	vec            Vector
	quality        float64
}

// snapshot reads the whole gallery in one read transaction.
func (g *Gallery) snapshot(ctx context.Context) (*snapshot, error) {
	s := &snapshot{}
	tx, err := g.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("reading gallery: %w", err)
	}
	defer tx.Rollback()
	if s.model, _, err = modelTx(ctx, tx); err != nil {
		return nil, fmt.Errorf("reading gallery model: %w", err)
	}
	if err := tx.QueryRowContext(ctx, "SELECT coalesce(max(seq), 0) FROM events").Scan(&s.lastSeq); err != nil {
		return nil, fmt.Errorf("reading gallery: %w", err)
	}
	rows, err := tx.QueryContext(ctx, "SELECT "+watchlistCols+" FROM watchlists")
	if err != nil {
		return nil, fmt.Errorf("reading watchlists: %w", err)
	}
	for rows.Next() {
		w, err := scanWatchlist(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading watchlists: %w", err)
		}
		s.lists = append(s.lists, w)
	}
	rows.Close()
	rows, err = tx.QueryContext(ctx, "SELECT "+identityCols+" FROM identities")
	if err != nil {
		return nil, fmt.Errorf("reading identities: %w", err)
	}
	for rows.Next() {
		i, err := scanIdentity(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading identities: %w", err)
		}
		s.identities = append(s.identities, i)
	}
	rows.Close()
	rows, err = tx.QueryContext(ctx, "SELECT id, identity_id, descriptor, quality FROM enrolments")
	if err != nil {
		return nil, fmt.Errorf("reading enrolments: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r enrolmentRow
		var desc []byte
		if err := rows.Scan(&r.id, &r.identityID, &desc, &r.quality); err != nil {
			return nil, fmt.Errorf("reading enrolments: %w", err)
		}
		if r.vec, err = DecodeVector(desc); err != nil {
			return nil, fmt.Errorf("enrolment %d: %w", r.id, err)
		}
		s.enrolments = append(s.enrolments, r)
	}
	return s, rows.Err()
}
