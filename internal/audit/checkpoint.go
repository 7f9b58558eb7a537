package audit

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// Checkpoint is a signed statement of a log's head: "log L had Seq
// entries, the last with hash Head, keyed from entry Era, at Time". A
// log that later holds fewer entries, or another entry at Seq, was cut or
// rewritten.
type Checkpoint struct {
	Log   string    `json:"log"`
	Seq   int64     `json:"seq"`
	Head  string    `json:"head"`
	Era   int64     `json:"era"`
	Time  time.Time `json:"time"`
	KeyID string    `json:"key_id"`
	Sig   []byte    `json:"sig"`
}

// signed is the byte string a checkpoint's signature covers.
func (c *Checkpoint) signed() []byte {
	b, _ := json.Marshal([]any{"facewatch-audit-checkpoint-v1", c.Log, c.Seq, c.Head, c.Era, c.Time.UnixNano(), c.KeyID})
	return b
}

// CheckSignature verifies c's signature with pub.
func (c *Checkpoint) CheckSignature(pub ed25519.PublicKey) error {
	if c.KeyID != KeyID(pub) {
		return fmt.Errorf("checkpoint of %s at %d: %w (key %s, not %s)", c.Log, c.Seq, ErrWrongKey, c.KeyID, KeyID(pub))
	}
	if !ed25519.Verify(pub, c.signed(), c.Sig) {
		return fmt.Errorf("checkpoint of %s at %d: bad signature (forged or altered)", c.Log, c.Seq)
	}
	return nil
}

// Checkpoint signs the log's current head (read from q, after the
// entries' commit) and appends it to the checkpoint file, synced. It
// returns the checkpoint and whether it wrote one: an unchanged head
// since this process's last checkpoint writes nothing.
func (l *Log) Checkpoint(ctx context.Context, q Querier, at time.Time) (Checkpoint, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.era == 0 {
		return Checkpoint{}, false, fmt.Errorf("checkpointing audit log %s: %w", l.name, ErrNotStarted)
	}
	seq, head, err := headOf(ctx, q)
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("checkpointing audit log %s: %w", l.name, err)
	}
	if seq == l.last.Seq && head == l.last.Head {
		return l.last, false, nil
	}
	c := Checkpoint{Log: l.name, Seq: seq, Head: head, Era: l.era, Time: at.UTC(), KeyID: l.keys.ID()}
	c.Sig = l.keys.Sign(c.signed())
	line, _ := json.Marshal(c)
	if err := appendLine(l.cpPath, append(line, '\n')); err != nil {
		return Checkpoint{}, false, fmt.Errorf("writing checkpoint of audit log %s: %w", l.name, err)
	}
	l.last = c
	return c, true, nil
}

// appendLine appends one line to path (created 0600), synced. O_APPEND
// makes each line one write at the end even with several writers.
func appendLine(path string, line []byte) error {
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(line); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		return syncDir(dirOf(path))
	}
	return nil
}

func dirOf(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if os.IsPathSeparator(path[i]) {
			return path[:i+1]
		}
	}
	return "."
}

// ReadCheckpoints reads a checkpoint file. A missing file is no
// checkpoints (Verify then refuses a non-empty log); a line that does not
// parse is an error naming it.
func ReadCheckpoints(path string) ([]Checkpoint, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading checkpoints: %w", err)
	}
	defer f.Close()
	var out []Checkpoint
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var c Checkpoint
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return nil, fmt.Errorf("reading checkpoints %s: line %d: %w", path, n, err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading checkpoints %s: %w", path, err)
	}
	return out, nil
}

// CheckpointFile is the log's checkpoint file.
func (l *Log) CheckpointFile() string { return l.cpPath }
