package match

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Model returns the model the gallery's descriptors were computed with;
// ok is false while nothing is enrolled.
func (g *Gallery) Model(ctx context.Context) (m ModelID, ok bool, err error) {
	rows, err := g.db.QueryContext(ctx, "SELECT key, value FROM meta WHERE key IN ('model_name', 'model_sha256')")
	if err != nil {
		return ModelID{}, false, fmt.Errorf("reading gallery model: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return ModelID{}, false, fmt.Errorf("reading gallery model: %w", err)
		}
		if k == "model_name" {
			m.Name = v
		} else {
			m.SHA256 = v
		}
		ok = true
	}
	return m, ok, rows.Err()
}

// NewEnrolment is one face to store for an identity.
type NewEnrolment struct {
	IdentityID int64
	// Photo is the original photo's bytes; PhotoExt its extension
	// (".jpg"), used for the stored file's name.
	Photo      []byte
	PhotoExt   string
	ChipPNG    []byte
	Vector     Vector
	Model      ModelID
	Quality    float64
	EnrolledBy string
}

// AddEnrolment stores one enrolled face. The same photo for the same
// identity is idempotent (created is false and the existing enrolment is
// returned); a descriptor of a model other than the gallery's is
// ErrModelMismatch; the first enrolment fixes the gallery's model.
func (g *Gallery) AddEnrolment(ctx context.Context, n NewEnrolment) (e Enrolment, created bool, err error) {
	if err := CheckVector(&n.Vector); err != nil {
		return Enrolment{}, false, fmt.Errorf("enrolling: %w", err)
	}
	if n.Model.Name == "" || n.Model.SHA256 == "" {
		return Enrolment{}, false, fmt.Errorf("enrolling: %w: descriptor has no model identity", ErrInvalid)
	}
	if len(n.Photo) == 0 {
		return Enrolment{}, false, fmt.Errorf("enrolling: %w: empty photo", ErrInvalid)
	}
	if err := checkName("enrolled by", n.EnrolledBy); err != nil {
		return Enrolment{}, false, fmt.Errorf("enrolling: %w", err)
	}
	ext := strings.ToLower(n.PhotoExt)
	if len(ext) > 8 || strings.ContainsAny(ext, "/\\") {
		ext = ".img"
	}
	sha := PhotoHash(n.Photo)
	// Write the photo first: a crash after this leaves an unreferenced
	// file, never a row without its photo.
	if err := g.writePhoto(sha+ext, n.Photo); err != nil {
		return Enrolment{}, false, fmt.Errorf("enrolling: %w", err)
	}
	e = Enrolment{IdentityID: n.IdentityID, PhotoSHA256: sha, Chip: n.ChipPNG, Vector: n.Vector, Model: n.Model,
		Quality: n.Quality, EnrolledBy: n.EnrolledBy, Enrolled: g.now().UTC().Truncate(time.Millisecond)}
	err = g.tx(ctx, func(tx *sql.Tx) error {
		id, err := scanIdentity(tx.QueryRowContext(ctx, "SELECT "+identityCols+" FROM identities WHERE id = ?", n.IdentityID))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("identity %d: %w", n.IdentityID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		now := g.now()
		if !id.Active(now) {
			return fmt.Errorf("identity %q %w", id.Name, ErrExpired)
		}
		var wexp *int64
		var wname string
		if err := tx.QueryRowContext(ctx, "SELECT name, expires_ms FROM watchlists WHERE id = ?", id.WatchlistID).Scan(&wname, &wexp); err != nil {
			return err
		}
		if t := fromMS(wexp); !t.IsZero() && !now.Before(t) {
			return fmt.Errorf("watchlist %q %w", wname, ErrExpired)
		}
		var existing int64
		err = tx.QueryRowContext(ctx, "SELECT id FROM enrolments WHERE identity_id = ? AND photo_sha256 = ?", n.IdentityID, sha).Scan(&existing)
		if err == nil {
			e.ID = existing
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var other string
		err = tx.QueryRowContext(ctx, `SELECT i.name FROM enrolments e JOIN identities i ON e.identity_id = i.id
			WHERE e.photo_sha256 = ? AND i.watchlist_id = ? LIMIT 1`, sha, id.WatchlistID).Scan(&other)
		if err == nil {
			return fmt.Errorf("%w: the same photo is already enrolled as %q on this list", ErrExists, other)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		gm, ok, err := modelTx(ctx, tx)
		if err != nil {
			return err
		}
		if !ok {
			if _, err := tx.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES ('model_name', ?), ('model_sha256', ?)", n.Model.Name, n.Model.SHA256); err != nil {
				return err
			}
		} else if gm != n.Model {
			return fmt.Errorf("%w: descriptor from %s, gallery holds %s", ErrModelMismatch, n.Model, gm)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO enrolments
			(identity_id, photo_sha256, photo_ext, chip_png, descriptor, model_name, model_sha256, quality, enrolled_by, enrolled_ms)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			n.IdentityID, sha, ext, n.ChipPNG, EncodeVector(&n.Vector), n.Model.Name, n.Model.SHA256, n.Quality, n.EnrolledBy, e.Enrolled.UnixMilli())
		if err != nil {
			return err
		}
		if e.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		created = true
		if err := appendEvent(ctx, tx, &Event{Type: EventEnrolmentAdd, Enrolment: enrolmentEvent(&e, id.WatchlistID)}, nil); err != nil {
			return err
		}
		return g.auditTx(ctx, tx, "enrol", identityTarget(id.ID), id.ExternalRef, map[string]any{"watchlist": wname, "name": id.Name,
			"enrolment": e.ID, "photo_sha256": sha, "enrolled_by": n.EnrolledBy})
	})
	if err != nil {
		if !created {
			g.removePhotos(ctx, []string{sha + ext})
		}
		return Enrolment{}, false, fmt.Errorf("enrolling: %w", err)
	}
	return e, created, nil
}

func modelTx(ctx context.Context, tx *sql.Tx) (ModelID, bool, error) {
	var m ModelID
	err := tx.QueryRowContext(ctx, "SELECT (SELECT value FROM meta WHERE key = 'model_name'), (SELECT value FROM meta WHERE key = 'model_sha256')").Scan(
		(*nullString)(&m.Name), (*nullString)(&m.SHA256))
	if err != nil {
		return ModelID{}, false, err
	}
	return m, !m.IsZero(), nil
}

// Enrolments returns an identity's enrolments (with chips).
func (g *Gallery) Enrolments(ctx context.Context, identityID int64) ([]Enrolment, error) {
	return g.enrolments(ctx, "identity_id = ?", identityID)
}

// Enrolment returns one enrolment (with its chip), for showing the
// enrolled face beside an alert's probe face.
func (g *Gallery) Enrolment(ctx context.Context, id int64) (Enrolment, error) {
	es, err := g.enrolments(ctx, "id = ?", id)
	if err != nil {
		return Enrolment{}, err
	}
	if len(es) == 0 {
		return Enrolment{}, fmt.Errorf("enrolment %d: %w", id, ErrNotFound)
	}
	return es[0], nil
}

func (g *Gallery) enrolments(ctx context.Context, where string, arg int64) ([]Enrolment, error) {
	rows, err := g.db.QueryContext(ctx, `SELECT id, identity_id, photo_sha256, chip_png, descriptor, model_name, model_sha256, quality, enrolled_by, enrolled_ms
		FROM enrolments WHERE `+where+` ORDER BY id`, arg)
	if err != nil {
		return nil, fmt.Errorf("reading enrolments: %w", err)
	}
	defer rows.Close()
	var out []Enrolment
	for rows.Next() {
		var e Enrolment
		var desc []byte
		var at int64
		if err := rows.Scan(&e.ID, &e.IdentityID, &e.PhotoSHA256, &e.Chip, &desc, &e.Model.Name, &e.Model.SHA256, &e.Quality, &e.EnrolledBy, &at); err != nil {
			return nil, fmt.Errorf("listing enrolments: %w", err)
		}
		if e.Vector, err = DecodeVector(desc); err != nil {
			return nil, fmt.Errorf("enrolment %d: %w", e.ID, err)
		}
		e.Enrolled = time.UnixMilli(at).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}
