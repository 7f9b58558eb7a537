package match

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// photoDir is where enrolment photos live under the data directory, one
// file per SHA-256.
const photoDir = "gallery-photos"

// PhotoDir is the directory of enrolment photos under dataDir, laid out as
// <sha256[:2]>/<sha256>.<ext>; the alert service serves photos from it.
func PhotoDir(dataDir string) string { return filepath.Join(dataDir, photoDir) }

// photosOf lists the photo files of the enrolments matching where (over
// enrolments e joined with identities i).
func photosOf(ctx context.Context, tx *sql.Tx, where string, arg any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, "SELECT DISTINCT e.photo_sha256 || e.photo_ext FROM enrolments e JOIN identities i ON e.identity_id = i.id WHERE "+where, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// removePhotos deletes photo files no enrolment refers to any more.
func (g *Gallery) removePhotos(ctx context.Context, names []string) error {
	for _, n := range names {
		sha := n[:64]
		var refs int
		if err := g.db.QueryRowContext(ctx, "SELECT count(*) FROM enrolments WHERE photo_sha256 = ?", sha).Scan(&refs); err != nil {
			return fmt.Errorf("removing photo %s: %w", sha[:12], err)
		}
		if refs > 0 {
			continue
		}
		if err := os.Remove(g.photoPath(n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing photo %s: %w", sha[:12], err)
		}
	}
	return nil
}

func (g *Gallery) photoPath(name string) string {
	return filepath.Join(g.photos, name[:2], name)
}

// PhotoPath returns the file of an enrolment's photo.
func (g *Gallery) PhotoPath(e *Enrolment, ext string) string {
	return g.photoPath(e.PhotoSHA256 + ext)
}

// PhotoHash returns the hex SHA-256 that addresses a photo.
func PhotoHash(photo []byte) string {
	s := sha256.Sum256(photo)
	return hex.EncodeToString(s[:])
}

func (g *Gallery) writePhoto(name string, data []byte) error {
	p := g.photoPath(name)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return fmt.Errorf("storing photo: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return fmt.Errorf("storing photo: %w", err)
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("storing photo: %w", err)
	}
	if err := os.Rename(f.Name(), p); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("storing photo: %w", err)
	}
	return nil
}

// Photo opens the stored photo of an enrolment.
func (g *Gallery) Photo(ctx context.Context, enrolmentID int64) (io.ReadCloser, error) {
	var sha, ext string
	if err := g.db.QueryRowContext(ctx, "SELECT photo_sha256, photo_ext FROM enrolments WHERE id = ?", enrolmentID).Scan(&sha, &ext); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("enrolment %d: %w", enrolmentID, ErrNotFound)
		}
		return nil, fmt.Errorf("reading enrolment %d: %w", enrolmentID, err)
	}
	f, err := os.Open(g.photoPath(sha + ext))
	if err != nil {
		return nil, fmt.Errorf("opening photo of enrolment %d: %w", enrolmentID, err)
	}
	return f, nil
}
