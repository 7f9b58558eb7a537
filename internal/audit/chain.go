// Package audit is facewatch's tamper-evident audit log, shared by the
// databases that keep one (the alert service's and the gallery's): an
// append-only table whose entries are chained with HMAC-SHA256 under a key
// kept outside the database (over each detail's digest, so that a detail
// naming a person can expire and the entry still verify), and signed
// checkpoints of the chain's head
// (ed25519) written to a file beside the keys and, where NATS is
// configured, to a JetStream stream. It knows SQL and files; it must not
// know alerts, tokens or watchlists.
package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Schema is the audit table every database with an audit log creates in
// one of its migrations (copy it into the migration: a shipped migration
// never changes). The triggers stop accidents; the keyed chain and the
// checkpoints detect everything else.
const Schema = `
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
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
`

// GenesisHash is the prev_hash of a log's first entry.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// ActionKeyed is the action of the entry that starts a log's keyed era:
// entries before it (logs written by facewatch before keyed hashing) are
// chained with plain SHA-256, it and every entry after with HMAC-SHA256.
// Its detail names the key and the legacy head; the first checkpoint
// signs it, which protects the legacy entries from then on too.
const ActionKeyed = "audit.keyed"

// ActionDetailsHashed starts the hashed-detail era of a log keyed before
// it: the hash of every later entry covers the SHA-256 of its detail, not
// the detail itself, so that ExpireDetails can replace an old detail
// (which may name a person) by that digest and the chain still verifies.
// A log keyed since (its ActionKeyed detail says details_hashed) has the
// hashed-detail era from its keyed-era entry on and no such entry.
const ActionDetailsHashed = "audit.details_hashed"

// Entry is one row of an audit log: who did what, when, to which target,
// under which case reference.
type Entry struct {
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`
	// Actor is the caller's stable ID: an API token's ID, or "os:" and
	// the user name for a local command.
	Actor string `json:"actor"`
	// ActorName is the person: a token's person, or the OS user.
	ActorName string `json:"actor_name"`
	// Role is the token's role, or "local" for a local command.
	Role     string `json:"role"`
	Action   string `json:"action"`
	Target   string `json:"target"`
	Case     string `json:"case"`
	Detail   string `json:"detail"` // JSON
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// Actor is who an entry is recorded for.
type Actor struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Role string `json:"role"`
}

// canonical is the byte string an entry's hash covers besides the
// previous hash: every column but the hashes, in a fixed order, as JSON
// (which escapes separators, so no two entries share an encoding).
// In the hashed-detail era the detail's place holds its digest
// (DetailDigest) instead.
func (e *Entry) canonical(hashedDetail bool) []byte {
	d := e.Detail
	if hashedDetail {
		d = DetailDigest(e.Detail)
	}
	b, _ := json.Marshal([]any{e.Seq, e.Time.UnixNano(), e.Actor, e.ActorName, e.Role, e.Action, e.Target, e.Case, d})
	return b
}

// expiredDetail is the detail of an entry whose detail expired: the
// SHA-256 of what it was, which the entry's hash covers.
type expiredDetail struct {
	ExpiredSHA256 string `json:"expired_sha256"`
}

// DetailDigest is what a hashed-detail era entry's hash covers in place
// of its detail: the hex SHA-256 of the detail, or, for a detail that
// expired, the digest it keeps.
func DetailDigest(detail string) string {
	if sum, ok := expiredDigest(detail); ok {
		return sum
	}
	s := sha256.Sum256([]byte(detail))
	return hex.EncodeToString(s[:])
}

// expiredDigest returns the digest an expired detail keeps, and whether
// detail is one.
func expiredDigest(detail string) (string, bool) {
	if !strings.HasPrefix(detail, `{"expired_sha256":`) {
		return "", false
	}
	var d expiredDetail
	dec := json.NewDecoder(strings.NewReader(detail))
	dec.DisallowUnknownFields()
	if dec.Decode(&d) != nil || len(d.ExpiredSHA256) != 64 {
		return "", false
	}
	if _, err := hex.DecodeString(d.ExpiredSHA256); err != nil {
		return "", false
	}
	return d.ExpiredSHA256, true
}

// IsExpiredDetail reports whether detail is an expired one (its text
// gone, its digest kept).
func IsExpiredDetail(detail string) bool {
	_, ok := expiredDigest(detail)
	return ok
}

// plainHash is the legacy chain: SHA-256(prev ‖ '\n' ‖ canonical), hex.
func plainHash(prev string, e *Entry, hashedDetail bool) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write([]byte{'\n'})
	h.Write(e.canonical(hashedDetail))
	return hex.EncodeToString(h.Sum(nil))
}

// keyedHash is HMAC-SHA256 under key over the same bytes.
func keyedHash(key []byte, prev string, e *Entry, hashedDetail bool) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(prev))
	h.Write([]byte{'\n'})
	h.Write(e.canonical(hashedDetail))
	return hex.EncodeToString(h.Sum(nil))
}

// Errors of the audit log.
var (
	// ErrBroken is wrapped by Verify's error when a log does not verify.
	ErrBroken = errors.New("audit chain broken")
	// ErrWrongKey is a log keyed with another key than the one given.
	ErrWrongKey = errors.New("audit log was keyed with another key")
	// ErrNotStarted is an Append before Start.
	ErrNotStarted = errors.New("audit log not started")
)

// Log is one audit log: the audit table of one database, chained with
// the installation's keys, and its checkpoint file (<name>.checkpoints in
// the checkpoint directory). Its methods are safe for concurrent use;
// several processes may append to the same log (each append runs in the
// caller's write transaction, which SQLite serialises).
type Log struct {
	name   string
	keys   *Keys
	cpPath string

	mu sync.Mutex // guards the fields below
	// era is the seq of the keyed-era entry, 0 before Start.
	era int64
	// hashed is the seq of the entry that starts the hashed-detail era
	// (the keyed-era entry or an ActionDetailsHashed one): the entries
	// after it hash their detail's digest. 0 before Start.
	hashed int64
	// last is the newest checkpoint this process wrote.
	last Checkpoint
}

// NewLog returns the log name ("alert", "gallery") chained with keys;
// checkpoints go to cpDir ("" = the keys' directory).
func NewLog(name string, keys *Keys, cpDir string) *Log {
	if cpDir == "" {
		cpDir = keys.Dir()
	}
	return &Log{name: name, keys: keys, cpPath: CheckpointPath(cpDir, name)}
}

// CheckpointPath is the checkpoint file of log name in dir.
func CheckpointPath(dir, name string) string { return filepath.Join(dir, name+cpSuffix) }

// Name is the log's name.
func (l *Log) Name() string { return l.name }

// Keys are the log's keys.
func (l *Log) Keys() *Keys { return l.keys }

// Start begins the keyed era of the log in the database w (whose
// transactions must take the write lock at BEGIN, as facewatch's do):
// on a log that has none yet it appends the ActionKeyed entry, whatever
// plain-SHA-256 entries came before; on one that has, it checks the key.
// It then writes a checkpoint. Append works only after Start.
func (l *Log) Start(ctx context.Context, w *sql.DB, at time.Time) error {
	era, hashed, err := l.startTx(ctx, w, at)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.era, l.hashed = era, hashed
	l.mu.Unlock()
	// After the transaction: w may have a single connection.
	_, _, err = l.Checkpoint(ctx, w, at)
	return err
}

func (l *Log) startTx(ctx context.Context, w *sql.DB, at time.Time) (era, hashed int64, err error) {
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("starting audit log %s: %w", l.name, err)
	}
	defer tx.Rollback()
	era, kd, err := findEra(ctx, tx)
	if err != nil {
		return 0, 0, fmt.Errorf("starting audit log %s: %w", l.name, err)
	}
	switch {
	case era > 0 && kd.KeyID != l.keys.ID():
		return 0, 0, fmt.Errorf("starting audit log %s: %w %s, not %s (keys in %s)", l.name, ErrWrongKey, kd.KeyID, l.keys.ID(), l.keys.Dir())
	case era > 0 && kd.DetailsHashed:
		return era, era, nil
	case era > 0:
		// Keyed before details were hashed: start that era now, once.
		hashed, err := findHashedEra(ctx, tx, era)
		if err != nil || hashed > 0 {
			return era, hashed, err
		}
		seq, head, err := headOf(ctx, tx)
		if err != nil {
			return 0, 0, fmt.Errorf("starting audit log %s: %w", l.name, err)
		}
		e := &Entry{Time: at, Actor: "facewatch", ActorName: "facewatch", Role: "system", Action: ActionDetailsHashed, Target: "audit/" + l.name}
		if err := l.insert(ctx, tx, e, seq, head, false); err != nil {
			return 0, 0, err
		}
		if err := tx.Commit(); err != nil {
			return 0, 0, fmt.Errorf("starting audit log %s: %w", l.name, err)
		}
		return era, e.Seq, nil
	}
	seq, head, err := headOf(ctx, tx)
	if err != nil {
		return 0, 0, fmt.Errorf("starting audit log %s: %w", l.name, err)
	}
	d, _ := json.Marshal(keyedDetail{KeyID: l.keys.ID(), LegacyEntries: seq, LegacyHead: head, DetailsHashed: true})
	e := &Entry{Time: at, Actor: "facewatch", ActorName: "facewatch", Role: "system", Action: ActionKeyed, Target: "audit/" + l.name, Detail: string(d)}
	if err := l.insert(ctx, tx, e, seq, head, false); err != nil {
		return 0, 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, fmt.Errorf("starting audit log %s: %w", l.name, err)
	}
	return e.Seq, e.Seq, nil
}

// keyedDetail is the detail of the ActionKeyed entry.
type keyedDetail struct {
	KeyID         string `json:"key_id"`
	LegacyEntries int64  `json:"legacy_entries"`
	LegacyHead    string `json:"legacy_head"`
	// DetailsHashed: the entries after this one hash their detail's
	// digest (see ActionDetailsHashed).
	DetailsHashed bool `json:"details_hashed,omitempty"`
}

// findEra returns the seq and detail of the keyed-era entry (0 when
// none).
func findEra(ctx context.Context, q Querier) (int64, keyedDetail, error) {
	var seq int64
	var detail string
	var d keyedDetail
	err := q.QueryRowContext(ctx, `SELECT seq, detail FROM audit WHERE action = ? ORDER BY seq LIMIT 1`, ActionKeyed).Scan(&seq, &detail)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, d, nil
	}
	if err != nil {
		return 0, d, fmt.Errorf("reading the keyed-era entry: %w", err)
	}
	json.Unmarshal([]byte(detail), &d)
	return seq, d, nil
}

// findHashedEra returns the seq of the first ActionDetailsHashed entry
// after the keyed-era entry era (0 when none).
func findHashedEra(ctx context.Context, q Querier, era int64) (int64, error) {
	var seq int64
	err := q.QueryRowContext(ctx, `SELECT seq FROM audit WHERE action = ? AND seq > ? ORDER BY seq LIMIT 1`, ActionDetailsHashed, era).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading the hashed-detail era entry: %w", err)
	}
	return seq, nil
}

// Querier is what reads need from a *sql.DB or *sql.Tx.
type Querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func headOf(ctx context.Context, q Querier) (int64, string, error) {
	var seq int64
	var h string
	err := q.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &h)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, GenesisHash, nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("reading audit chain head: %w", err)
	}
	return seq, h, nil
}

// Head returns the newest entry's sequence number and hash (0 and
// GenesisHash for an empty log).
func Head(ctx context.Context, q Querier) (int64, string, error) { return headOf(ctx, q) }

// Append appends e to the chain inside tx (which must hold the write
// lock: facewatch's transactions BEGIN IMMEDIATE) and fills in its
// sequence and hashes. The caller commits; the next checkpoint covers it.
func (l *Log) Append(ctx context.Context, tx *sql.Tx, e *Entry) error {
	l.mu.Lock()
	era, hashed := l.era, l.hashed
	l.mu.Unlock()
	if era == 0 {
		return fmt.Errorf("appending to audit log %s: %w", l.name, ErrNotStarted)
	}
	if e.Action == ActionKeyed || e.Action == ActionDetailsHashed {
		return fmt.Errorf("appending to audit log %s: action %s is reserved", l.name, e.Action)
	}
	if IsExpiredDetail(e.Detail) {
		return fmt.Errorf("appending to audit log %s: a new entry's detail cannot be an expired one", l.name)
	}
	seq, prev, err := headOf(ctx, tx)
	if err != nil {
		return err
	}
	return l.insert(ctx, tx, e, seq, prev, hashed > 0)
}

func (l *Log) insert(ctx context.Context, tx *sql.Tx, e *Entry, seq int64, prev string, hashedDetail bool) error {
	e.Seq = seq + 1
	e.Time = e.Time.UTC()
	if e.Detail == "" {
		e.Detail = "{}"
	}
	e.PrevHash = prev
	e.Hash = keyedHash(l.keys.mac, prev, e, hashedDetail)
	_, err := tx.ExecContext(ctx, `INSERT INTO audit (seq, time_ns, actor, actor_name, role, action, target, case_ref, detail, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, e.Time.UnixNano(), e.Actor, e.ActorName, e.Role, e.Action, e.Target, e.Case, e.Detail, e.PrevHash, e.Hash)
	if err != nil {
		return fmt.Errorf("appending audit entry: %w", err)
	}
	return nil
}

// Entries reads the log's entries with seq in [from, to] (to 0 = the
// end), in order.
func Entries(ctx context.Context, q Querier, from, to int64) ([]Entry, error) {
	if to <= 0 {
		to = 1<<63 - 1
	}
	rows, err := q.QueryContext(ctx, `SELECT seq, time_ns, actor, actor_name, role, action, target, case_ref, detail, prev_hash, hash
		FROM audit WHERE seq BETWEEN ? AND ? ORDER BY seq`, from, to)
	if err != nil {
		return nil, fmt.Errorf("reading audit log: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var ns int64
		if err := rows.Scan(&e.Seq, &ns, &e.Actor, &e.ActorName, &e.Role, &e.Action, &e.Target, &e.Case, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
			return nil, fmt.Errorf("reading audit entry: %w", err)
		}
		e.Time = time.Unix(0, ns).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading audit log: %w", err)
	}
	return out, nil
}

// noUpdateTrigger is Schema's audit_no_update trigger, which ExpireDetails
// lifts for its own update and puts back in the same transaction.
const noUpdateTrigger = `CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;`

// ExpireDetails replaces the detail of every entry written before before
// by its digest (DetailDigest), in the database w: the entry keeps who
// did what, when, to which target and under which case reference, and its
// place in the chain (its hash covers the digest, so the log still
// verifies), but no longer the detail's text, which may name a person (a
// history query's filters, a token's person, an identity's name). Only
// entries of the hashed-detail era can expire (those before it keep their
// detail: their hash covers the text); the log's own era entries keep
// theirs. It returns how many details expired.
func (l *Log) ExpireDetails(ctx context.Context, w *sql.DB, before time.Time) (int, error) {
	l.mu.Lock()
	hashed := l.hashed
	l.mu.Unlock()
	if hashed == 0 {
		return 0, fmt.Errorf("expiring audit details of %s: %w", l.name, ErrNotStarted)
	}
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("expiring audit details of %s: %w", l.name, err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT seq, detail FROM audit WHERE seq > ? AND time_ns < ? AND detail != '{}'
		AND detail NOT LIKE '{"expired_sha256":%' AND action NOT IN (?, ?) ORDER BY seq`,
		hashed, before.UnixNano(), ActionKeyed, ActionDetailsHashed)
	if err != nil {
		return 0, fmt.Errorf("expiring audit details of %s: %w", l.name, err)
	}
	type change struct {
		seq    int64
		detail string
	}
	var changes []change
	for rows.Next() {
		var c change
		if err := rows.Scan(&c.seq, &c.detail); err != nil {
			rows.Close()
			return 0, fmt.Errorf("expiring audit details of %s: %w", l.name, err)
		}
		b, _ := json.Marshal(expiredDetail{ExpiredSHA256: DetailDigest(c.detail)})
		c.detail = string(b)
		changes = append(changes, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("expiring audit details of %s: %w", l.name, err)
	}
	if len(changes) == 0 {
		return 0, nil
	}
	if _, err := tx.ExecContext(ctx, `DROP TRIGGER IF EXISTS audit_no_update`); err != nil {
		return 0, fmt.Errorf("expiring audit details of %s: %w", l.name, err)
	}
	for _, c := range changes {
		if _, err := tx.ExecContext(ctx, `UPDATE audit SET detail = ? WHERE seq = ?`, c.detail, c.seq); err != nil {
			return 0, fmt.Errorf("expiring audit detail of %s entry %d: %w", l.name, c.seq, err)
		}
	}
	if _, err := tx.ExecContext(ctx, noUpdateTrigger); err != nil {
		return 0, fmt.Errorf("expiring audit details of %s: %w", l.name, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("expiring audit details of %s: %w", l.name, err)
	}
	return len(changes), nil
}
