package alert

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// genesisHash is the prev_hash of the first audit entry.
const genesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// AuditEntry is one row of the audit log: who did what, when, to which
// target, under which case reference.
type AuditEntry struct {
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	Actor     string    `json:"actor"` // token ID
	ActorName string    `json:"actor_name"`
	Role      Role      `json:"role"`
	Action    string    `json:"action"`
	Target    string    `json:"target"`
	Case      string    `json:"case"`
	Detail    string    `json:"detail"` // JSON
	PrevHash  string    `json:"prev_hash"`
	Hash      string    `json:"hash"`
}

// canonical is the byte string an entry's hash covers besides the previous
// hash: every column but the hashes, in a fixed order, as JSON (which
// escapes separators, so no two entries share an encoding).
func (e *AuditEntry) canonical() []byte {
	b, _ := json.Marshal([]any{e.Seq, e.Time.UnixNano(), e.Actor, e.ActorName, string(e.Role), e.Action, e.Target, e.Case, e.Detail})
	return b
}

// chainHash is SHA-256(prev hash ‖ canonical content), hex.
func chainHash(prev string, e *AuditEntry) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write([]byte{'\n'})
	h.Write(e.canonical())
	return hex.EncodeToString(h.Sum(nil))
}

// appendAudit appends e to the chain inside tx (which must hold the write
// lock: the writer uses BEGIN IMMEDIATE) and fills in its sequence and
// hashes.
func appendAudit(ctx context.Context, tx *sql.Tx, e *AuditEntry) error {
	var seq int64
	var prev string
	err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		seq, prev = 0, genesisHash
	case err != nil:
		return fmt.Errorf("reading audit chain head: %w", err)
	}
	e.Seq = seq + 1
	e.Time = e.Time.UTC().Truncate(time.Nanosecond)
	if e.Detail == "" {
		e.Detail = "{}"
	}
	e.PrevHash = prev
	e.Hash = chainHash(prev, e)
	_, err = tx.ExecContext(ctx, `INSERT INTO audit (seq, time_ns, actor, actor_name, role, action, target, case_ref, detail, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, e.Time.UnixNano(), e.Actor, e.ActorName, string(e.Role), e.Action, e.Target, e.Case, e.Detail, e.PrevHash, e.Hash)
	if err != nil {
		return fmt.Errorf("appending audit entry: %w", err)
	}
	return nil
}

// ErrAuditBroken is wrapped by VerifyAudit's error when the chain does not
// verify.
var ErrAuditBroken = errors.New("audit chain broken")

// VerifyAudit checks the audit chain of the database at path (see DBPath):
// sequence numbers without gaps, each entry's prev_hash equal to the hash
// before it, and each hash equal to SHA-256 of the previous hash and the
// entry's own content. It returns the number of entries checked; on a
// break the error wraps ErrAuditBroken and names the first broken entry.
func VerifyAudit(ctx context.Context, path string) (int, error) {
	if _, err := os.Stat(path); err != nil {
		return 0, fmt.Errorf("opening audit log: %w", err)
	}
	r, err := sql.Open("sqlite3", dsn(path, true))
	if err != nil {
		return 0, fmt.Errorf("opening audit log %s: %w", path, err)
	}
	defer r.Close()
	return verifyAudit(ctx, r)
}

// AuditHead returns the newest audit entry's sequence number and hash (0
// and the genesis hash for an empty log). Recording it outside the
// database lets a later check notice entries cut off the end, which the
// chain alone cannot.
func AuditHead(ctx context.Context, path string) (int64, string, error) {
	if _, err := os.Stat(path); err != nil {
		return 0, "", fmt.Errorf("opening audit log: %w", err)
	}
	r, err := sql.Open("sqlite3", dsn(path, true))
	if err != nil {
		return 0, "", fmt.Errorf("opening audit log %s: %w", path, err)
	}
	defer r.Close()
	var seq int64
	var hash string
	err = r.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, genesisHash, nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("reading audit head: %w", err)
	}
	return seq, hash, nil
}

func verifyAudit(ctx context.Context, r *sql.DB) (int, error) {
	rows, err := r.QueryContext(ctx, `SELECT seq, time_ns, actor, actor_name, role, action, target, case_ref, detail, prev_hash, hash FROM audit ORDER BY seq`)
	if err != nil {
		return 0, fmt.Errorf("reading audit log: %w", err)
	}
	defer rows.Close()
	prev := genesisHash
	n := 0
	for rows.Next() {
		var e AuditEntry
		var ns int64
		var role string
		if err := rows.Scan(&e.Seq, &ns, &e.Actor, &e.ActorName, &role, &e.Action, &e.Target, &e.Case, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
			return n, fmt.Errorf("reading audit entry after %d: %w", n, err)
		}
		e.Time = time.Unix(0, ns).UTC()
		e.Role = Role(role)
		n++
		switch {
		case e.Seq != int64(n):
			return n - 1, fmt.Errorf("%w at entry %d: missing (the log jumps from %d to %d)", ErrAuditBroken, n, n-1, e.Seq)
		case e.PrevHash != prev:
			return n - 1, fmt.Errorf("%w at entry %d: prev_hash does not match the hash of entry %d", ErrAuditBroken, e.Seq, e.Seq-1)
		case chainHash(prev, &e) != e.Hash:
			return n - 1, fmt.Errorf("%w at entry %d: content does not match its hash (edited)", ErrAuditBroken, e.Seq)
		}
		prev = e.Hash
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("reading audit log: %w", err)
	}
	return n, nil
}

// AppendAudit appends one entry to the audit log of the database at path
// (see DBPath; created if missing) for an action taken outside the API: a
// command run on the host, the gallery's lifecycle sweep. A zero Time is
// now; Seq and the hashes are filled in. It returns the entry as stored.
func AppendAudit(ctx context.Context, path string, e AuditEntry) (AuditEntry, error) {
	d, err := openDB(ctx, path)
	if err != nil {
		return AuditEntry{}, err
	}
	defer d.Close()
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return AuditEntry{}, fmt.Errorf("auditing %s: %w", e.Action, err)
	}
	defer tx.Rollback()
	if err := appendAudit(ctx, tx, &e); err != nil {
		return AuditEntry{}, err
	}
	if err := tx.Commit(); err != nil {
		return AuditEntry{}, fmt.Errorf("auditing %s: %w", e.Action, err)
	}
	return e, nil
}

// AuditEntries returns the audit entries of the database at path whose
// target is target, oldest first.
func AuditEntries(ctx context.Context, path, target string) ([]AuditEntry, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	r, err := sql.Open("sqlite3", dsn(path, true))
	if err != nil {
		return nil, fmt.Errorf("opening audit log %s: %w", path, err)
	}
	defer r.Close()
	return auditEntries(ctx, r, target)
}

func auditEntries(ctx context.Context, q queryer, target string) ([]AuditEntry, error) {
	rows, err := q.QueryContext(ctx, `SELECT seq, time_ns, actor, actor_name, role, action, target, case_ref, detail, prev_hash, hash
		FROM audit WHERE target = ? ORDER BY seq`, target)
	if err != nil {
		return nil, fmt.Errorf("reading audit entries of %s: %w", target, err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var ns int64
		var role string
		if err := rows.Scan(&e.Seq, &ns, &e.Actor, &e.ActorName, &role, &e.Action, &e.Target, &e.Case, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
			return nil, fmt.Errorf("reading audit entries of %s: %w", target, err)
		}
		e.Time, e.Role = time.Unix(0, ns).UTC(), Role(role)
		out = append(out, e)
	}
	return out, rows.Err()
}
