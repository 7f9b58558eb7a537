package alert

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/facewatch/facewatch/internal/audit"
)

// AuditEntry is one row of the audit log: who did what, when, to which
// target, under which case reference (see internal/audit).
type AuditEntry = audit.Entry

// AuditLogName names the alert database's audit log in checkpoints.
const AuditLogName = "alert"

// ErrAuditBroken is wrapped by VerifyAudit's error when the log does not
// verify.
var ErrAuditBroken = audit.ErrBroken

// auditKeys loads the installation's audit keys from dir (default
// audit.DefaultDir(dataDir)), which must lie apart from the databases.
func auditKeys(dataDir, dir string) (*audit.Keys, error) {
	if dir == "" {
		dir = audit.DefaultDir(dataDir)
	}
	return audit.LoadKeys(dir, dataDir, filepath.Dir(DBPath(dataDir)))
}

// appendAudit appends e to the service's chain inside tx (which holds the
// write lock: the writer uses BEGIN IMMEDIATE) and fills in its sequence
// and hashes.
func (s *Service) appendAudit(ctx context.Context, tx *sql.Tx, e *AuditEntry) error {
	return s.alog.Append(ctx, tx, e)
}

// CheckpointAudit signs the audit log's current head and appends it to
// the checkpoint file (and the JetStream stream while Run holds a
// connection). Run does it every few seconds while the head moves, and
// Close once more.
func (s *Service) CheckpointAudit(ctx context.Context) (audit.Checkpoint, error) {
	c, wrote, err := s.alog.Checkpoint(ctx, s.db.r, s.now())
	if err != nil {
		return c, err
	}
	if wrote {
		if js := s.js.Load(); js != nil {
			if err := audit.Publish(ctx, *js, c); err != nil {
				s.log.Warn("publishing audit checkpoint to JetStream (the file has it)", "seq", c.Seq, "err", err)
			}
		}
	}
	return c, nil
}

// checkpointLoop checkpoints the audit log every interval until ctx ends.
func (s *Service) checkpointLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.CheckpointAudit(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("audit checkpoint failed", "err", err)
			}
		}
	}
}

// VerifyAudit checks the audit log of the alert database under dataDir
// against the audit keys and checkpoints in auditDir ("" = the default),
// and against extra checkpoints (the JetStream stream's); see
// audit.Verify for what it detects. On a break the error wraps
// ErrAuditBroken and names the first broken entry.
func VerifyAudit(ctx context.Context, dataDir, auditDir string, extra []audit.Checkpoint) (audit.Report, error) {
	path := DBPath(dataDir)
	if _, err := os.Stat(path); err != nil {
		return audit.Report{}, fmt.Errorf("opening audit log: %w", err)
	}
	keys, err := auditKeys(dataDir, auditDir)
	if err != nil {
		return audit.Report{}, err
	}
	r, err := sql.Open("sqlite3", dsn(path, true))
	if err != nil {
		return audit.Report{}, fmt.Errorf("opening audit log %s: %w", path, err)
	}
	defer r.Close()
	cps, err := audit.ReadCheckpoints(audit.CheckpointPath(keys.Dir(), AuditLogName))
	if err != nil {
		return audit.Report{}, err
	}
	return audit.Verify(ctx, r, keys, AuditLogName, append(cps, extra...))
}

func (s *Service) verifyAudit(ctx context.Context) (audit.Report, error) {
	cps, err := audit.ReadCheckpoints(s.alog.CheckpointFile())
	if err != nil {
		return audit.Report{}, err
	}
	return audit.Verify(ctx, s.db.r, s.alog.Keys(), AuditLogName, cps)
}

// auditTx appends one entry for p in its own transaction.
func (s *Service) auditAs(ctx context.Context, a audit.Actor, action, target, caseRef string, detail any) error {
	d, _ := json.Marshal(detail)
	tx, err := s.db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("auditing %s: %w", action, err)
	}
	defer tx.Rollback()
	if err := s.appendAudit(ctx, tx, &AuditEntry{Time: s.now(), Actor: a.ID, ActorName: a.Name, Role: a.Role, Action: action, Target: target, Case: caseRef, Detail: string(d)}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("auditing %s: %w", action, err)
	}
	return nil
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
		if err := rows.Scan(&e.Seq, &ns, &e.Actor, &e.ActorName, &e.Role, &e.Action, &e.Target, &e.Case, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
			return nil, fmt.Errorf("reading audit entries of %s: %w", target, err)
		}
		e.Time = time.Unix(0, ns).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}
