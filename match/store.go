package match

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/facewatch/facewatch/internal/audit"
	"github.com/facewatch/facewatch/internal/sqlitefile"
)

// GalleryFile is the gallery database's name under the data directory.
const GalleryFile = "gallery.db"

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
	// 2: lifecycle. purges is the record kept of each purge (expiry after
	// the grace period, a missing person found): who, when, which list or
	// identity and why, without biometric data; audited marks the rows
	// already written to the audit log (it is also their outbox).
	// events.stream_seq is where a published event sits in the gallery
	// stream, so that a purge can delete an enrolment's descriptor from
	// the stream too (stream_scrub lists the messages still to delete).
	`CREATE TABLE purges (
		id           INTEGER PRIMARY KEY AUTOINCREMENT,
		time_ms      INTEGER NOT NULL,
		cause        TEXT NOT NULL CHECK (cause IN ('expired', 'found')),
		actor        TEXT NOT NULL,
		reason       TEXT NOT NULL,
		watchlist_id INTEGER NOT NULL,
		watchlist    TEXT NOT NULL,
		identity_id  INTEGER NOT NULL DEFAULT 0,
		identity     TEXT NOT NULL DEFAULT '',
		external_ref TEXT NOT NULL DEFAULT '',
		expired_ms   INTEGER,
		identities   INTEGER NOT NULL,
		enrolments   INTEGER NOT NULL,
		photos       INTEGER NOT NULL,
		audited      INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX purges_unaudited ON purges (id) WHERE audited = 0;
	ALTER TABLE events ADD COLUMN stream_seq INTEGER;
	CREATE TABLE stream_scrub (stream_seq INTEGER PRIMARY KEY);`,
	// 3: the gallery's audit log (internal/audit's schema): every change
	// by a curator, and every search, with who made it.
	`CREATE TABLE audit (
		seq        INTEGER PRIMARY KEY,
		time_ns    INTEGER NOT NULL,
		actor      TEXT    NOT NULL,
		actor_name TEXT    NOT NULL,
		role       TEXT    NOT NULL,
		action     TEXT    NOT NULL,
		target     TEXT    NOT NULL,
		case_ref   TEXT    NOT NULL,
		detail     TEXT    NOT NULL,
		prev_hash  TEXT    NOT NULL,
		hash       TEXT    NOT NULL
	);
	CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
	BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
	CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
	BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;`,
}

// Gallery is the SQLite store of watchlists, identities and enrolments,
// with an outbox of gallery events that PublishPending sends to the
// JetStream stream. It is safe for concurrent use; several processes may
// open the same file.
type Gallery struct {
	db     *sql.DB
	photos string
	log    *slog.Logger
	now    func() time.Time
	dbPath string
	// alog is the gallery's audit log, nil when opened without keys;
	// auditRequired then refuses changes to a gallery whose log is keyed.
	alog          *audit.Log
	auditRequired bool
	actor         audit.Actor
	note          string
}

// GalleryOptions tune OpenGallery; the zero value is fine for reading
// and for galleries that never had an audit log.
type GalleryOptions struct {
	Logger *slog.Logger
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
	// Audit, when set, records every change (and every Audit call) in the
	// gallery's audit log, chained with these keys, as Actor, in the
	// change's own transaction. A gallery whose log is keyed refuses
	// changes from a Gallery opened without keys.
	Audit *audit.Keys
	// Actor is who this Gallery acts for (the OS user of a local command).
	Actor audit.Actor
	// Note is recorded with each entry (the CLI's --by: on whose behalf;
	// it never replaces Actor).
	Note string
}

// AuditLogName names the gallery's audit log in checkpoints.
const AuditLogName = "gallery"

// ErrUnaudited refuses a change to a gallery with a keyed audit log
// through a Gallery opened without the audit keys.
var ErrUnaudited = errors.New("gallery changes are audited: open the gallery with the audit keys")

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
		// Deleted rows (descriptors, chips) are overwritten with zeros,
		// not left in free pages: a purge really ends the data.
		"_secure_delete": {"on"},
	})
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening gallery %s: %w", path, err)
	}
	// One connection: SQLite has one writer anyway, and a single
	// connection keeps the pragmas above in force for every statement.
	db.SetMaxOpenConns(1)
	g := &Gallery{db: db, photos: PhotoDir(dataDir), log: log.With("component", "gallery"), now: now, dbPath: path,
		actor: opt.Actor, note: opt.Note}
	if err := g.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening gallery %s: %w", path, err)
	}
	if opt.Audit != nil {
		g.alog = audit.NewLog(AuditLogName, opt.Audit, "")
		if err := g.alog.Start(ctx, db, now()); err != nil {
			db.Close()
			return nil, fmt.Errorf("opening gallery %s: %w", path, err)
		}
	} else {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM audit WHERE action = ?", audit.ActionKeyed).Scan(&n); err != nil {
			db.Close()
			return nil, fmt.Errorf("opening gallery %s: %w", path, err)
		}
		g.auditRequired = n > 0
	}
	return g, nil
}

// Close checkpoints the audit log (when the gallery has one open) and
// closes the database.
func (g *Gallery) Close() error {
	var err error
	if g.alog != nil {
		_, err = g.AuditCheckpoint(context.Background())
	}
	return errors.Join(err, g.db.Close())
}

// AuditCheckpoint signs the audit log's head into its checkpoint file and
// returns the checkpoint (for a copy elsewhere: audit.Publish).
func (g *Gallery) AuditCheckpoint(ctx context.Context) (audit.Checkpoint, error) {
	if g.alog == nil {
		return audit.Checkpoint{}, fmt.Errorf("checkpointing the gallery's audit log: %w", ErrUnaudited)
	}
	c, _, err := g.alog.Checkpoint(ctx, g.db, g.now())
	return c, err
}

// ExpireAuditDetails replaces the details of the gallery's audit entries
// written before before (identity names, external references, notes) by
// their digest; the entries stay and still verify (audit.Log.ExpireDetails).
func (g *Gallery) ExpireAuditDetails(ctx context.Context, before time.Time) (int, error) {
	if g.alog == nil {
		return 0, fmt.Errorf("expiring gallery audit details: %w", ErrUnaudited)
	}
	return g.alog.ExpireDetails(ctx, g.db, before)
}

// Audit records an action on the gallery that changes nothing (a 1:N
// search: `facewatch identify`) in its audit log, as the Gallery's actor.
func (g *Gallery) Audit(ctx context.Context, action, target, caseRef string, detail map[string]any) error {
	if g.alog == nil {
		return fmt.Errorf("auditing %s: %w", action, ErrUnaudited)
	}
	return g.tx(ctx, func(tx *sql.Tx) error { return g.auditTx(ctx, tx, action, target, caseRef, detail) })
}

// auditTx appends one entry for a change inside the change's transaction.
// Without an audit log it records nothing, unless the gallery's log is
// keyed (ErrUnaudited).
func (g *Gallery) auditTx(ctx context.Context, tx *sql.Tx, action, target, caseRef string, detail map[string]any) error {
	if g.alog == nil {
		if g.auditRequired {
			return ErrUnaudited
		}
		return nil
	}
	if detail == nil {
		detail = map[string]any{}
	}
	if g.note != "" {
		detail["note"] = g.note
	}
	d, err := json.Marshal(detail)
	if err != nil {
		return fmt.Errorf("encoding audit detail: %w", err)
	}
	return g.alog.Append(ctx, tx, &audit.Entry{Time: g.now(), Actor: g.actor.ID, ActorName: g.actor.Name, Role: g.actor.Role,
		Action: action, Target: target, Case: caseRef, Detail: string(d)})
}

// VerifyAudit checks the audit log of the gallery under dataDir against
// keys, their checkpoint file and extra checkpoints (see audit.Verify).
func VerifyAudit(ctx context.Context, dataDir string, keys *audit.Keys, extra []audit.Checkpoint) (audit.Report, error) {
	path := filepath.Join(dataDir, GalleryFile)
	if _, err := os.Stat(path); err != nil {
		return audit.Report{}, fmt.Errorf("opening gallery audit log: %w", err)
	}
	db, err := sql.Open("sqlite3", sqlitefile.DSN(path, url.Values{"mode": {"ro"}, "_busy_timeout": {"10000"}}))
	if err != nil {
		return audit.Report{}, fmt.Errorf("opening gallery %s: %w", path, err)
	}
	defer db.Close()
	cps, err := audit.ReadCheckpoints(audit.CheckpointPath(keys.Dir(), AuditLogName))
	if err != nil {
		return audit.Report{}, err
	}
	return audit.Verify(ctx, db, keys, AuditLogName, append(cps, extra...))
}

// VerifyAuditLog checks the audit log of a Gallery opened with the audit
// keys against them and its checkpoint file (see audit.Verify), through
// this Gallery's own connection: a service holding the gallery verifies it
// without opening the file again.
func (g *Gallery) VerifyAuditLog(ctx context.Context) (audit.Report, error) {
	if g.alog == nil {
		return audit.Report{}, fmt.Errorf("verifying the gallery's audit log: %w", ErrUnaudited)
	}
	cps, err := audit.ReadCheckpoints(g.alog.CheckpointFile())
	if err != nil {
		return audit.Report{}, err
	}
	return audit.Verify(ctx, g.db, g.alog.Keys(), AuditLogName, cps)
}

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

type scanner interface{ Scan(...any) error }

func prefix(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
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

func sqlOpen(path string) (*sql.DB, error) {
	return sql.Open("sqlite3", sqlitefile.DSN(path, url.Values{"_busy_timeout": {"10000"}, "_foreign_keys": {"on"}}))
}

// Actor is who this gallery's changes are recorded as (GalleryOptions.Actor).
func (g *Gallery) Actor() audit.Actor { return g.actor }

// As returns a Gallery on the same database and audit log that records
// its changes as actor, with note beside it: a service acting for the
// person signed in to it (the alert service's curator API) uses one per
// request. The copy shares g's database; closing it is not needed, and
// closing g ends both.
func (g *Gallery) As(actor audit.Actor, note string) *Gallery {
	c := *g
	c.actor, c.note = actor, note
	return &c
}
