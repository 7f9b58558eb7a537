package alert

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "github.com/mattn/go-sqlite3" // the SQLite driver

	"github.com/facewatch/facewatch/internal/sqlitefile"
)

// DBPath is the alert service's SQLite database (alerts, reviews, tokens
// and the audit log) under a data directory.
func DBPath(dataDir string) string { return filepath.Join(dataDir, "alert", "alerts.db") }

// cropDir is where probe crops live, one file per SHA-256.
func cropDir(dataDir string) string { return filepath.Join(dataDir, "alert", "crops") }

// migrations are applied in order, each once, inside a transaction; the
// version of the last one applied is kept in schema_migrations. Append
// only: never edit a migration that has shipped.
var migrations = []string{
	// 1: alerts, reviews, tokens and the audit log.
	`
CREATE TABLE alerts (
	id              INTEGER PRIMARY KEY,
	hit_id          TEXT    NOT NULL UNIQUE,
	camera          TEXT    NOT NULL,
	track           INTEGER NOT NULL,
	time_ns         INTEGER NOT NULL,
	stored_ns       INTEGER NOT NULL,
	watchlist       TEXT    NOT NULL,
	watchlist_kind  TEXT    NOT NULL,
	priority        INTEGER NOT NULL,
	second_reviewer INTEGER NOT NULL,
	identity        TEXT    NOT NULL,
	identity_name   TEXT    NOT NULL,
	distance        REAL    NOT NULL,
	threshold       REAL    NOT NULL,
	second_distance REAL    NOT NULL,
	model_name      TEXT    NOT NULL,
	model_sha256    TEXT    NOT NULL,
	crop_sha256     TEXT    NOT NULL,
	enrolled_photo  TEXT    NOT NULL,
	extra           TEXT    NOT NULL,
	status          TEXT    NOT NULL DEFAULT 'pending'
);
CREATE INDEX alerts_time      ON alerts (time_ns, id);
CREATE INDEX alerts_stored    ON alerts (stored_ns);
CREATE INDEX alerts_identity  ON alerts (identity, time_ns);
CREATE INDEX alerts_camera    ON alerts (camera, time_ns);
CREATE INDEX alerts_watchlist ON alerts (watchlist, time_ns);
CREATE INDEX alerts_status    ON alerts (status, time_ns);
CREATE INDEX alerts_crop      ON alerts (crop_sha256);

CREATE TABLE reviews (
	id            INTEGER PRIMARY KEY,
	alert_id      INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
	reviewer      TEXT    NOT NULL,
	reviewer_name TEXT    NOT NULL,
	decision      TEXT    NOT NULL,
	comment       TEXT    NOT NULL,
	time_ns       INTEGER NOT NULL
);
CREATE INDEX reviews_alert ON reviews (alert_id);

CREATE TABLE tokens (
	id         TEXT    PRIMARY KEY,
	hash       TEXT    NOT NULL UNIQUE,
	role       TEXT    NOT NULL,
	name       TEXT    NOT NULL,
	created_ns INTEGER NOT NULL,
	expires_ns INTEGER NOT NULL,
	revoked_ns INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE audit (
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
-- The chain detects tampering; these triggers stop accidents.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
`,
	// 2: where each durable alert sink (webhook, mqtt) has delivered to.
	`
CREATE TABLE sink_cursors (
	sink       TEXT    PRIMARY KEY,
	last_id    INTEGER NOT NULL,
	last_hit   TEXT    NOT NULL,
	updated_ns INTEGER NOT NULL
);
`,
	// 3: people, not tokens. A token belongs to a person; a review records
	// the reviewer's person, which the second-reviewer rule compares.
	// Tokens issued before keep their name as their person, or, unnamed,
	// become a person of their own ("token <id>"): re-issue them with
	// `facewatch token create --person`.
	`
ALTER TABLE tokens ADD COLUMN person TEXT NOT NULL DEFAULT '';
UPDATE tokens SET person = CASE WHEN trim(name) != '' THEN trim(name) ELSE 'token ' || id END;
ALTER TABLE reviews ADD COLUMN reviewer_person TEXT NOT NULL DEFAULT '';
UPDATE reviews SET reviewer_person = COALESCE(
	NULLIF((SELECT person FROM tokens WHERE tokens.id = reviews.reviewer), ''),
	NULLIF(trim(reviewer_name), ''),
	'token ' || reviewer);
`,
	// 4: alert ids are never reused, and swept alerts never come back.
	// alert_id_floor is the highest id ever removed (kept by the trigger,
	// whatever removes the row); a new alert's id is above both it and
	// the highest present (storeBatch). Without it SQLite hands out
	// max(id)+1, so a sweep that empties the table restarts the ids and
	// live consoles and sink cursors skip the new alerts. The floor starts
	// at the highest id known here, sink cursors included.
	// alert_tombstones keeps, for as long as the hits stream may still
	// hold a copy, the SHA-256 of each removed alert's hit ID (not the ID:
	// it names who was seen where), so that a hit re-read by a new
	// consumer or replayed is not stored again.
	`
CREATE TABLE alert_id_floor (
	one INTEGER PRIMARY KEY CHECK (one = 1),
	id  INTEGER NOT NULL
);
INSERT INTO alert_id_floor (one, id) SELECT 1, MAX(
	COALESCE((SELECT MAX(id) FROM alerts), 0),
	COALESCE((SELECT MAX(last_id) FROM sink_cursors), 0));
CREATE TRIGGER alerts_id_floor AFTER DELETE ON alerts
BEGIN UPDATE alert_id_floor SET id = MAX(id, OLD.id) WHERE one = 1; END;

CREATE TABLE alert_tombstones (
	hit_hash   TEXT    PRIMARY KEY,
	removed_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX alert_tombstones_removed ON alert_tombstones (removed_ns);
`,
	// 5: a token's scope (see Scope): camera groups and watchlists it may
	// see. Tokens issued before scopes existed saw the whole site and keep
	// doing so; new ones name their scope (token create --scope).
	`
ALTER TABLE tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'all';
`,
	// 6: incidents (incident.go): sightings (alerts) of one identity close
	// in time, on one camera or several, grouped for one review. An
	// incident id is never reused (AUTOINCREMENT); the row goes when its
	// last sighting goes (the trigger, whatever removes it). Alerts stored
	// before become incidents of one sighting each, numbered as the
	// alert. scene_sha256 names a hit's scene image (the downscaled frame
	// with the face box) and enrolled_chip_sha256 the enrolled face (the
	// aligned chip of the enrolment that matched), stored beside the crops.
	`
CREATE TABLE incidents (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	watchlist TEXT    NOT NULL,
	identity  TEXT    NOT NULL,
	first_ns  INTEGER NOT NULL,
	last_ns   INTEGER NOT NULL
);
CREATE INDEX incidents_identity ON incidents (watchlist, identity, last_ns);
ALTER TABLE alerts ADD COLUMN incident_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN scene_sha256 TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN enrolled_chip_sha256 TEXT NOT NULL DEFAULT '';
INSERT INTO incidents (id, watchlist, identity, first_ns, last_ns) SELECT id, watchlist, identity, time_ns, time_ns FROM alerts;
UPDATE alerts SET incident_id = id;
CREATE INDEX alerts_incident ON alerts (incident_id, time_ns);
CREATE INDEX alerts_scene    ON alerts (scene_sha256);
CREATE INDEX alerts_chip     ON alerts (enrolled_chip_sha256);
CREATE TRIGGER alerts_incident_gone AFTER DELETE ON alerts
BEGIN DELETE FROM incidents WHERE id = OLD.incident_id AND NOT EXISTS (SELECT 1 FROM alerts WHERE incident_id = OLD.incident_id); END;
`,
	// 7: the appearance an alert's track is part of, and the tracker that
	// said so (wire.Hit.Tracker and Appearance, stored as their int64
	// bits; 0 for alerts stored before and hits that carry none): one
	// alert per appearance (sameAppearanceLocked).
	`
ALTER TABLE alerts ADD COLUMN tracker INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN appearance INTEGER NOT NULL DEFAULT 0;
CREATE INDEX alerts_appearance ON alerts (camera, tracker, appearance);
`,
}

// db is the pair of handles on one SQLite file: a single writer connection
// (SQLite serialises writers anyway; one connection avoids busy retries)
// and a pool of query-only readers (WAL lets them run beside the writer).
type db struct {
	w *sql.DB
	r *sql.DB
}

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_busy_timeout", "10000")
	q.Set("_foreign_keys", "1")
	if readOnly {
		q.Set("_query_only", "1")
	} else {
		q.Set("_txlock", "immediate")
	}
	return sqlitefile.DSN(path, q)
}

// openDB opens (creating) the database at path and runs its migrations.
func openDB(ctx context.Context, path string) (*db, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("creating database directory: %w", err)
	}
	// Faces and who looked at them: readable by the service's user only.
	// SQLite gives its -wal and -shm files the database file's mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening database %s: %w", path, err)
	}
	f.Close()
	w, err := sql.Open("sqlite3", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("opening database %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("migrating database %s: %w", path, err)
	}
	r, err := sql.Open("sqlite3", dsn(path, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("opening database %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	return &db{w: w, r: r}, nil
}

func (d *db) Close() error {
	err1 := d.r.Close()
	err2 := d.w.Close()
	if err2 != nil {
		return err2
	}
	return err1
}

func migrate(ctx context.Context, w *sql.DB) error {
	if _, err := w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_ns INTEGER NOT NULL)`); err != nil {
		return err
	}
	var have int
	if err := w.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return err
	}
	if have > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this binary knows (%d)", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		tx, err := w.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_ns) VALUES (?, ?)`, v, time.Now().UnixNano()); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", v, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
	}
	return nil
}
