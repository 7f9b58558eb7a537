package match

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/facewatch/facewatch/internal/sqlitefile"
)

// GalleryFile is the gallery database's name under the data directory.
const GalleryFile = "gallery.db"

// photoDir is where enrolment photos live under the data directory, one
// file per SHA-256.
const photoDir = "gallery-photos"

// PhotoDir is the directory of enrolment photos under dataDir, laid out as
// <sha256[:2]>/<sha256>.<ext>; the alert service serves photos from it.
func PhotoDir(dataDir string) string { return filepath.Join(dataDir, photoDir) }

// migrations are applied in order; PRAGMA user_version records how many
// have run. Never edit a released entry: append a new one.
var migrations = []string{
	// 1: the gallery.
	`CREATE TABLE meta (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	);
	CREATE TABLE watchlists (
		id              INTEGER PRIMARY KEY AUTOINCREMENT,
		name            TEXT NOT NULL UNIQUE,
		kind            TEXT NOT NULL CHECK (kind IN ('missing', 'wanted', 'other')),
		priority        INTEGER NOT NULL DEFAULT 0,
		owner           TEXT NOT NULL,
		legal_basis     TEXT NOT NULL,
		expires_ms      INTEGER,
		threshold       REAL NOT NULL DEFAULT 0 CHECK (threshold >= 0 AND threshold <= 2),
		second_reviewer INTEGER NOT NULL DEFAULT 0,
		created_ms      INTEGER NOT NULL,
		version         INTEGER NOT NULL
	);
	CREATE TABLE identities (
		id           INTEGER PRIMARY KEY AUTOINCREMENT,
		watchlist_id INTEGER NOT NULL REFERENCES watchlists(id) ON DELETE CASCADE,
		name         TEXT NOT NULL,
		notes        TEXT NOT NULL DEFAULT '',
		external_ref TEXT NOT NULL DEFAULT '',
		expires_ms   INTEGER,
		created_ms   INTEGER NOT NULL,
		version      INTEGER NOT NULL,
		UNIQUE (watchlist_id, name)
	);
	CREATE TABLE enrolments (
		id           INTEGER PRIMARY KEY AUTOINCREMENT,
		identity_id  INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
		photo_sha256 TEXT NOT NULL,
		photo_ext    TEXT NOT NULL,
		chip_png     BLOB NOT NULL,
		descriptor   BLOB NOT NULL CHECK (length(descriptor) = 512),
		model_name   TEXT NOT NULL,
		model_sha256 TEXT NOT NULL,
		quality      REAL NOT NULL,
		enrolled_by  TEXT NOT NULL,
		enrolled_ms  INTEGER NOT NULL,
		UNIQUE (identity_id, photo_sha256)
	);
	CREATE INDEX enrolments_photo ON enrolments (photo_sha256);
	CREATE TABLE events (
		seq       INTEGER PRIMARY KEY AUTOINCREMENT,
		payload   BLOB NOT NULL,
		published INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX events_unpublished ON events (seq) WHERE published = 0;`,
}

// Gallery is the SQLite store of watchlists, identities and enrolments,
// with an outbox of gallery events that PublishPending sends to the
// JetStream stream. It is safe for concurrent use; several processes may
// open the same file.
type Gallery struct {
	db       *sql.DB
	photos   string
	log      *slog.Logger
	now      func() time.Time
	dbPath   string
	readOnly bool
}

// GalleryOptions tune OpenGallery; the zero value is fine.
type GalleryOptions struct {
	Logger *slog.Logger
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// OpenGallery opens (creating if needed) the gallery under dataDir:
// gallery.db and the gallery-photos directory. It runs pending migrations
// and refuses a database written by a newer facewatch.
func OpenGallery(ctx context.Context, dataDir string, opt GalleryOptions) (*Gallery, error) {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(PhotoDir(dataDir), 0o750); err != nil {
		return nil, fmt.Errorf("opening gallery: %w", err)
	}
	path := filepath.Join(dataDir, GalleryFile)
	dsn := sqlitefile.DSN(path, url.Values{
		"_journal_mode": {"WAL"}, "_synchronous": {"FULL"}, "_busy_timeout": {"10000"},
		"_foreign_keys": {"on"}, "_txlock": {"immediate"},
	})
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening gallery %s: %w", path, err)
	}
	// One connection: SQLite has one writer anyway, and a single
	// connection keeps the pragmas above in force for every statement.
	db.SetMaxOpenConns(1)
	g := &Gallery{db: db, photos: PhotoDir(dataDir), log: log.With("component", "gallery"), now: now, dbPath: path}
	if err := g.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening gallery %s: %w", path, err)
	}
	return g, nil
}

// Close closes the database.
func (g *Gallery) Close() error { return g.db.Close() }

// Path is the database file.
func (g *Gallery) Path() string { return g.dbPath }

func (g *Gallery) migrate(ctx context.Context) error {
	var v int
	if err := g.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this facewatch knows (%d)", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		err := g.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1))
			return err
		})
		if err != nil {
			return fmt.Errorf("migrating schema to version %d: %w", i+1, err)
		}
		g.log.Info("gallery schema migrated", "version", i+1)
	}
	return nil
}

// IntegrityCheck runs PRAGMA integrity_check and foreign_key_check and
// returns an error describing any damage.
func (g *Gallery) IntegrityCheck(ctx context.Context) error {
	rows, err := g.db.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return fmt.Errorf("checking gallery integrity: %w", err)
	}
	var msgs []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return fmt.Errorf("checking gallery integrity: %w", err)
		}
		if s != "ok" {
			msgs = append(msgs, s)
		}
	}
	rows.Close()
	var fk int
	if err := g.db.QueryRowContext(ctx, "SELECT count(*) FROM pragma_foreign_key_check").Scan(&fk); err != nil {
		return fmt.Errorf("checking gallery foreign keys: %w", err)
	}
	if fk > 0 {
		msgs = append(msgs, fmt.Sprintf("%d foreign key violations", fk))
	}
	if len(msgs) > 0 {
		return fmt.Errorf("gallery integrity: %s", strings.Join(msgs, "; "))
	}
	return nil
}

func (g *Gallery) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := g.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// appendEvent adds ev to the outbox inside tx, stamping it with its
// sequence, which is also the version of the row it describes.
func appendEvent(ctx context.Context, tx *sql.Tx, ev *Event, stamp func(seq int64)) error {
	res, err := tx.ExecContext(ctx, "INSERT INTO events (payload) VALUES (x'')")
	if err != nil {
		return fmt.Errorf("adding gallery event: %w", err)
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return err
	}
	ev.Seq = seq
	if stamp != nil {
		stamp(seq)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encoding gallery event: %w", err)
	}
	_, err = tx.ExecContext(ctx, "UPDATE events SET payload = ? WHERE seq = ?", b, seq)
	return err
}

func isUnique(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique
}

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
		return putWatchlistEvent(ctx, tx, &w)
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

type scanner interface{ Scan(...any) error }

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

func prefix(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}

// updateWatchlist changes the named list inside one transaction and emits
// its new state as an event.
func (g *Gallery) updateWatchlist(ctx context.Context, name string, fn func(*Watchlist) error) (Watchlist, error) {
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
		if err := fn(&w); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE watchlists SET expires_ms = ?, threshold = ?, priority = ?, second_reviewer = ? WHERE id = ?",
			ms(w.Expires), w.Threshold, w.Priority, w.SecondReviewer, w.ID); err != nil {
			return err
		}
		return putWatchlistEvent(ctx, tx, &w)
	})
	return w, err
}

// ExpireWatchlist sets the list's expiry to at (now when zero): from then
// on it matches nobody, in every matcher, without anyone acting.
func (g *Gallery) ExpireWatchlist(ctx context.Context, name string, at time.Time) (Watchlist, error) {
	if at.IsZero() {
		at = g.now()
	}
	w, err := g.updateWatchlist(ctx, name, func(w *Watchlist) error {
		w.Expires = at.UTC().Truncate(time.Millisecond)
		return nil
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
	w, err := g.updateWatchlist(ctx, name, func(w *Watchlist) error {
		w.Threshold = threshold
		return nil
	})
	if err != nil {
		return Watchlist{}, fmt.Errorf("setting threshold: %w", err)
	}
	return w, nil
}

// DeleteWatchlist removes the list with its identities, descriptors and
// photos.
func (g *Gallery) DeleteWatchlist(ctx context.Context, name string) error {
	var photos []string
	err := g.tx(ctx, func(tx *sql.Tx) error {
		var id int64
		if err := tx.QueryRowContext(ctx, "SELECT id FROM watchlists WHERE name = ?", name).Scan(&id); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("watchlist %q: %w", name, ErrNotFound)
			}
			return err
		}
		var err error
		photos, err = photosOf(ctx, tx, "i.watchlist_id = ?", id)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM watchlists WHERE id = ?", id); err != nil {
			return err
		}
		return appendEvent(ctx, tx, &Event{Type: EventWatchlistDelete, DeletedID: id}, nil)
	})
	if err != nil {
		return fmt.Errorf("deleting watchlist: %w", err)
	}
	return g.removePhotos(ctx, photos)
}

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
		return putIdentityEvent(ctx, tx, &id)
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
		return putIdentityEvent(ctx, tx, &out)
	})
	if err != nil {
		return Identity{}, fmt.Errorf("expiring identity: %w", err)
	}
	return out, nil
}

// DeleteIdentity removes the identity with its descriptors and photos.
func (g *Gallery) DeleteIdentity(ctx context.Context, id int64) error {
	var photos []string
	err := g.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, "SELECT 1 FROM identities WHERE id = ?", id).Scan(&one); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("identity %d: %w", id, ErrNotFound)
			}
			return err
		}
		var err error
		if photos, err = photosOf(ctx, tx, "i.id = ?", id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM identities WHERE id = ?", id); err != nil {
			return err
		}
		return appendEvent(ctx, tx, &Event{Type: EventIdentityDelete, DeletedID: id}, nil)
	})
	if err != nil {
		return fmt.Errorf("deleting identity: %w", err)
	}
	return g.removePhotos(ctx, photos)
}

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

// PhotoHash returns the hex SHA-256 that addresses a photo.
func PhotoHash(photo []byte) string {
	s := sha256.Sum256(photo)
	return hex.EncodeToString(s[:])
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
		return appendEvent(ctx, tx, &Event{Type: EventEnrolmentAdd, Enrolment: enrolmentEvent(&e, id.WatchlistID)}, nil)
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

type nullString string

func (n *nullString) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*n = ""
	case string:
		*n = nullString(x)
	case []byte:
		*n = nullString(x)
	default:
		return fmt.Errorf("unexpected %T", v)
	}
	return nil
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

func sqlOpen(path string) (*sql.DB, error) {
	return sql.Open("sqlite3", sqlitefile.DSN(path, url.Values{"_busy_timeout": {"10000"}, "_foreign_keys": {"on"}}))
}
