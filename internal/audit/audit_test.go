package audit

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// openDB opens (creating) an SQLite file with the audit table, as
// facewatch's stores do (BEGIN IMMEDIATE, one writer).
func openDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_txlock=immediate&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	var n int
	db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'audit'`).Scan(&n)
	if n == 0 {
		if _, err := db.Exec(Schema); err != nil {
			t.Fatalf("creating audit table: %v", err)
		}
	}
	return db
}

// fixture is a started log with n entries and a checkpoint of them.
type fixture struct {
	dbPath string
	db     *sql.DB
	keys   *Keys
	log    *Log
}

func newFixture(t testing.TB, n int) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{dbPath: filepath.Join(dir, "data", "x.db")}
	os.MkdirAll(filepath.Dir(f.dbPath), 0o700)
	f.db = openDB(t, f.dbPath)
	var err error
	if f.keys, err = LoadKeys(filepath.Join(dir, "audit"), filepath.Dir(f.dbPath)); err != nil {
		t.Fatalf("LoadKeys = %v", err)
	}
	f.log = NewLog("test", f.keys, "")
	if err := f.log.Start(context.Background(), f.db, t0); err != nil {
		t.Fatalf("Start = %v", err)
	}
	f.add(t, n)
	return f
}

// add appends n entries and checkpoints them.
func (f *fixture) add(t testing.TB, n int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		tx, err := f.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		e := &Entry{Time: t0.Add(time.Duration(i) * time.Second), Actor: "tok1", ActorName: "Ana Silva", Role: "operator",
			Action: "view", Target: fmt.Sprintf("alert/%d", i), Case: "2026/0147", Detail: `{"n":1}`}
		if err := f.log.Append(ctx, tx, e); err != nil {
			t.Fatalf("Append = %v", err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := f.log.Checkpoint(ctx, f.db, t0.Add(time.Hour)); err != nil {
		t.Fatalf("Checkpoint = %v", err)
	}
}

func (f *fixture) verify(t *testing.T) (Report, error) {
	t.Helper()
	cps, err := ReadCheckpoints(f.log.CheckpointFile())
	if err != nil {
		return Report{}, err
	}
	db, err := sql.Open("sqlite3", "file:"+f.dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return Verify(context.Background(), db, f.keys, "test", cps)
}

// attack opens the database file as an attacker with write access would:
// its own connection, the triggers dropped.
func attack(t *testing.T, path string, fn func(db *sql.DB)) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{`DROP TRIGGER IF EXISTS audit_no_update`, `DROP TRIGGER IF EXISTS audit_no_delete`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("attacker %s: %v", q, err)
		}
	}
	fn(db)
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("attacker %s: %v", q, err)
	}
}

// recomputePlain rechains every entry with plain SHA-256 from the
// genesis hash, as someone without the key can (the algorithm is public;
// written out here independently of the package's code).
func recomputePlain(t *testing.T, db *sql.DB) {
	t.Helper()
	rows, err := db.Query(`SELECT seq, time_ns, actor, actor_name, role, action, target, case_ref, detail FROM audit ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		seq, ns                                         int64
		actor, name, role, action, target, cref, detail string
	}
	var all []row
	for rows.Next() {
		var r row
		rows.Scan(&r.seq, &r.ns, &r.actor, &r.name, &r.role, &r.action, &r.target, &r.cref, &r.detail)
		all = append(all, r)
	}
	rows.Close()
	prev := strings.Repeat("0", 64)
	for _, r := range all {
		b, _ := json.Marshal([]any{r.seq, r.ns, r.actor, r.name, r.role, r.action, r.target, r.cref, r.detail})
		s := sha256.Sum256(append([]byte(prev+"\n"), b...))
		h := hex.EncodeToString(s[:])
		mustExec(t, db, `UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?`, prev, h, r.seq)
		prev = h
	}
}

func TestVerifyCleanLog(t *testing.T) {
	f := newFixture(t, 10)
	rep, err := f.verify(t)
	if err != nil {
		t.Fatalf("Verify(untouched log) = %v, want ok", err)
	}
	// 1 keyed-era entry + 10.
	if rep.Entries != 11 || rep.Era != 1 || rep.HeadSeq != 11 || rep.Checkpointed != 11 || rep.Checkpoints != 2 {
		t.Errorf("Verify(untouched log) = %+v, want 11 entries, era 1, head 11 checkpointed, 2 checkpoints", rep)
	}
}

// TestVerifyDetectsAttacks tampers with the database as someone with
// write access to its file but not to the audit directory would.
func TestVerifyDetectsAttacks(t *testing.T) {
	tests := []struct {
		name string
		do   func(t *testing.T, db *sql.DB)
		want string
	}{
		{"edited row", func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE audit SET actor_name = 'Someone Else' WHERE seq = 5`)
		}, "at entry 5: content does not match its keyed hash"},
		{"edited row, chain recomputed with plain SHA-256", func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE audit SET case_ref = '' WHERE seq = 5`)
			recomputePlain(t, db)
		}, "at entry 1: chained with plain SHA-256"},
		{"keyed-era entry removed, whole log recomputed as legacy", func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `DELETE FROM audit WHERE seq = 1`)
			mustExec(t, db, `UPDATE audit SET seq = seq - 1`)
			recomputePlain(t, db)
		}, "at entry 1: chained with plain SHA-256"},
		{"tail truncated", func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `DELETE FROM audit WHERE seq > 8`)
		}, "truncated: the log ends at entry 8 but the checkpoint"},
		{"middle row deleted", func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `DELETE FROM audit WHERE seq = 4`)
		}, "at entry 4: missing"},
		{"middle row deleted, renumbered and rechained", func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `DELETE FROM audit WHERE seq = 4`)
			mustExec(t, db, `UPDATE audit SET seq = seq - 1 WHERE seq > 4`)
			recomputePlain(t, db)
		}, "at entry 1: chained with plain SHA-256"},
		{"everything deleted", func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `DELETE FROM audit`)
		}, "keyed-era entry 1 is gone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 10)
			f.db.Close()
			attack(t, f.dbPath, func(db *sql.DB) { tc.do(t, db) })
			_, err := f.verify(t)
			if !errors.Is(err, ErrBroken) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Verify after %s = %v, want ErrBroken saying %q", tc.name, err, tc.want)
			}
		})
	}
}

// TestVerifyCheckpointFile covers attacks on the checkpoint file itself.
func TestVerifyCheckpointFile(t *testing.T) {
	tests := []struct {
		name string
		do   func(t *testing.T, path string)
		want string
	}{
		{"file removed", func(t *testing.T, path string) { os.Remove(path) }, "no checkpoint"},
		{"head altered", func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			var cps []Checkpoint
			for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				var c Checkpoint
				json.Unmarshal([]byte(l), &c)
				cps = append(cps, c)
			}
			cps[len(cps)-1].Seq = 5
			var out []byte
			for _, c := range cps {
				l, _ := json.Marshal(c)
				out = append(append(out, l...), '\n')
			}
			os.WriteFile(path, out, 0o600)
		}, "bad signature"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 3)
			tc.do(t, f.log.CheckpointFile())
			_, err := f.verify(t)
			if !errors.Is(err, ErrBroken) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Verify after checkpoint file %s = %v, want ErrBroken saying %q", tc.name, err, tc.want)
			}
		})
	}
}

// TestVerifyUncheckpointedTail shows the limit: entries appended after
// the last checkpoint can be cut unseen; the report says how many.
func TestVerifyUncheckpointedTail(t *testing.T) {
	f := newFixture(t, 3)
	tx, _ := f.db.Begin()
	if err := f.log.Append(context.Background(), tx, &Entry{Time: t0, Actor: "a", Action: "x"}); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
	rep, err := f.verify(t)
	if err != nil || rep.HeadSeq != 5 || rep.Checkpointed != 4 {
		t.Errorf("Verify with one entry after the checkpoint = %+v, %v, want head 5, checkpointed 4, ok", rep, err)
	}
}

func TestVerifyWrongKey(t *testing.T) {
	f := newFixture(t, 2)
	other, err := LoadKeys(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	cps, _ := ReadCheckpoints(f.log.CheckpointFile())
	_, err = Verify(context.Background(), f.db, other, "test", cps)
	if !errors.Is(err, ErrWrongKey) {
		t.Errorf("Verify with another installation's keys = %v, want ErrWrongKey", err)
	}
	l := NewLog("test", other, t.TempDir())
	if err := l.Start(context.Background(), f.db, t0); !errors.Is(err, ErrWrongKey) {
		t.Errorf("Start with another installation's keys = %v, want ErrWrongKey (no silent re-keying)", err)
	}
}

// TestLegacyChainMigrates starts the keyed era on a log written before
// keyed hashing (plain SHA-256 entries): they verify, and from the first
// checkpoint on they are protected as well.
func TestLegacyChainMigrates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db", "old.db")
	os.MkdirAll(filepath.Dir(path), 0o700)
	db := openDB(t, path)
	for i := 1; i <= 4; i++ {
		mustExec(t, db, `INSERT INTO audit (seq, time_ns, actor, actor_name, role, action, target, case_ref, detail, prev_hash, hash) VALUES (?, ?, 'tok', 'Old', 'operator', 'view', 'alert/1', '', '{}', '', '')`,
			i, t0.UnixNano())
	}
	db.Exec(`DROP TRIGGER audit_no_update`)
	recomputePlain(t, db)
	keys, err := LoadKeys(filepath.Join(dir, "audit"))
	if err != nil {
		t.Fatal(err)
	}
	l := NewLog("test", keys, "")
	if err := l.Start(context.Background(), db, t0); err != nil {
		t.Fatalf("Start on a legacy log = %v", err)
	}
	db.Close()
	f := &fixture{dbPath: path, keys: keys, log: l}
	rep, err := f.verify(t)
	if err != nil || rep.Era != 5 || rep.Entries != 5 {
		t.Fatalf("Verify(migrated legacy log) = %+v, %v, want 5 entries, era 5", rep, err)
	}
	// A legacy entry edited and the legacy chain recomputed: the
	// keyed-era entry no longer follows, and it cannot be rechained.
	attack(t, path, func(db *sql.DB) {
		mustExec(t, db, `UPDATE audit SET actor_name = 'Nobody' WHERE seq = 2`)
		recomputePlain(t, db)
	})
	if _, err := f.verify(t); !errors.Is(err, ErrBroken) || !strings.Contains(err.Error(), "at entry 5") {
		t.Errorf("Verify after rewriting a legacy entry = %v, want ErrBroken at the keyed-era entry 5", err)
	}
}

func TestLoadKeys(t *testing.T) {
	t.Run("generated once, then loaded", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "audit")
		a, err := LoadKeys(dir)
		if err != nil {
			t.Fatal(err)
		}
		b, err := LoadKeys(dir)
		if err != nil || a.ID() != b.ID() {
			t.Fatalf("LoadKeys twice = %v, %v; want the same key", a.ID(), err)
		}
		for _, n := range []string{"", macKeyFile, signKeyFile} {
			st, err := os.Stat(filepath.Join(dir, n))
			if err != nil || st.Mode().Perm()&0o077 != 0 {
				t.Errorf("mode of %q = %v, %v, want owner-only", n, st.Mode(), err)
			}
		}
	})
	bad := []struct {
		name  string
		setup func(dir string) []string
		want  string
	}{
		{"key readable by others", func(dir string) []string {
			LoadKeys(dir)
			os.Chmod(filepath.Join(dir, macKeyFile), 0o644)
			return nil
		}, "chmod 600"},
		{"directory open", func(dir string) []string {
			LoadKeys(dir)
			os.Chmod(dir, 0o755)
			return nil
		}, "chmod 700"},
		{"key removed", func(dir string) []string {
			LoadKeys(dir)
			os.Remove(filepath.Join(dir, signKeyFile))
			return nil
		}, "only some"},
		{"same directory as the database", func(dir string) []string { return []string{dir} }, "database's directory"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "audit")
			apart := tc.setup(dir)
			if _, err := LoadKeys(dir, apart...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadKeys(%s) = %v, want error saying %q", tc.name, err, tc.want)
			}
		})
	}
}

func TestAppendBeforeStart(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, filepath.Join(dir, "x.db"))
	keys, _ := LoadKeys(filepath.Join(dir, "audit"))
	l := NewLog("test", keys, "")
	tx, _ := db.Begin()
	defer tx.Rollback()
	if err := l.Append(context.Background(), tx, &Entry{Action: "x"}); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Append before Start = %v, want ErrNotStarted", err)
	}
}

// TestLoadKeysConcurrentStarts starts several loaders at once on an empty
// audit directory, as the stages of one installation do on first start
// (in CI, match and alert once did: match saw alert's first key file
// without the second and refused to start). Every loader must succeed,
// with one key set, and the public key on disk must be that set's.
// Goroutines stand for processes here (flock locks each open file, so
// they contend as processes do); the child-process round checks the
// same across real processes.
func TestLoadKeysConcurrentStarts(t *testing.T) {
	if dir := os.Getenv("FACEWATCH_TEST_AUDIT_KEYS_CHILD"); dir != "" {
		k, err := LoadKeys(dir)
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(3)
		}
		fmt.Println("ID", k.ID())
		os.Exit(0)
	}
	check := func(t *testing.T, dir string, ids []string) {
		t.Helper()
		for _, id := range ids[1:] {
			if id != ids[0] {
				t.Fatalf("concurrent loaders got key sets %v, want one", ids)
			}
		}
		b, err := os.ReadFile(filepath.Join(dir, pubKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		pub, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || KeyID(pub) != ids[0] {
			t.Fatalf("public key on disk has ID %s (%v), the loaded set %s", KeyID(pub), err, ids[0])
		}
	}
	for round := 0; round < 30; round++ {
		dir := filepath.Join(t.TempDir(), "audit")
		ids := make([]string, 6)
		errs := make([]error, len(ids))
		var wg sync.WaitGroup
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k, err := LoadKeys(dir)
				if err == nil {
					ids[i] = k.ID()
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("round %d: a concurrent first start failed: %v", round, err)
			}
		}
		check(t, dir, ids)
	}
	t.Run("processes", func(t *testing.T) {
		for round := 0; round < 3; round++ {
			dir := filepath.Join(t.TempDir(), "audit")
			cmds := make([]*exec.Cmd, 4)
			outs := make([]*strings.Builder, len(cmds))
			for i := range cmds {
				outs[i] = &strings.Builder{}
				cmds[i] = exec.Command(os.Args[0], "-test.run=^TestLoadKeysConcurrentStarts$")
				cmds[i].Env = append(os.Environ(), "FACEWATCH_TEST_AUDIT_KEYS_CHILD="+dir)
				cmds[i].Stdout = outs[i]
				if err := cmds[i].Start(); err != nil {
					t.Fatal(err)
				}
			}
			ids := make([]string, len(cmds))
			for i, c := range cmds {
				err := c.Wait()
				line := strings.TrimSpace(outs[i].String())
				id, ok := strings.CutPrefix(line, "ID ")
				if err != nil || !ok {
					t.Fatalf("round %d: loader process %d: %v: %s", round, i, err, line)
				}
				ids[i] = id
			}
			check(t, dir, ids)
		}
	})
}
