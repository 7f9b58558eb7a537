package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// details reads every entry's detail by seq.
func details(t *testing.T, db *sql.DB) map[int64]string {
	t.Helper()
	es, err := Entries(context.Background(), db, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]string{}
	for _, e := range es {
		out[e.Seq] = e.Detail
	}
	return out
}

// appendAt appends one entry naming a person in its detail at time at.
func appendAt(t *testing.T, l *Log, db *sql.DB, at time.Time, person string) {
	t.Helper()
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := json.Marshal(map[string]string{"identity": person})
	if err := l.Append(context.Background(), tx, &Entry{Time: at, Actor: "tok1", ActorName: "Ana Silva", Role: "investigator",
		Action: "history_query", Target: "alerts", Case: "2026/0147", Detail: string(d)}); err != nil {
		t.Fatalf("Append = %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestExpireDetails: details older than the cut-off lose their text (a
// person's name in a query's filters) and keep their digest; who, what,
// when, target and case stay; the log still verifies against checkpoints
// signed before the expiry; and expiry is no cover for tampering. Before
// the hashed-detail era an entry's hash covered its detail's text, so no
// detail could be removed without breaking the chain.
func TestExpireDetails(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 0)
	for i, p := range []string{"Bob Old", "Cy Old", "Di New"} {
		appendAt(t, f.log, f.db, t0.Add(time.Duration(i)*24*time.Hour), p)
	}
	if _, _, err := f.log.Checkpoint(ctx, f.db, t0.Add(72*time.Hour)); err != nil {
		t.Fatal(err)
	}
	n, err := f.log.ExpireDetails(ctx, f.db, t0.Add(36*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("ExpireDetails(older than 36h) = %d, %v; want 2", n, err)
	}
	got := details(t, f.db)
	for seq, want := range map[int64]string{2: "", 3: "", 4: "Di New"} {
		d := got[seq]
		if want == "" && (strings.Contains(d, "Old") || !IsExpiredDetail(d)) {
			t.Errorf("detail of entry %d after expiry = %s, want expired (digest only)", seq, d)
		}
		if want != "" && !strings.Contains(d, want) {
			t.Errorf("detail of entry %d after expiry = %s, want it kept (naming %s)", seq, d, want)
		}
	}
	if !strings.Contains(got[1], f.keys.ID()) {
		t.Errorf("keyed-era entry's detail = %s, want it kept", got[1])
	}
	es, _ := Entries(ctx, f.db, 2, 2)
	if len(es) != 1 || es[0].ActorName != "Ana Silva" || es[0].Action != "history_query" || es[0].Case != "2026/0147" || !es[0].Time.Equal(t0) {
		t.Errorf("expired entry 2 = %+v, want who, what, when and case kept", es)
	}
	rep, err := f.verify(t)
	if err != nil || rep.Entries != 4 || rep.Expired != 2 {
		t.Fatalf("Verify after expiry = %+v, %v; want ok, 4 entries, 2 expired", rep, err)
	}
	// Again: nothing more to expire; writing goes on (the trigger is back).
	if n, err := f.log.ExpireDetails(ctx, f.db, t0.Add(36*time.Hour)); err != nil || n != 0 {
		t.Errorf("ExpireDetails again = %d, %v; want 0", n, err)
	}
	if _, err := f.db.Exec(`UPDATE audit SET actor_name = 'x' WHERE seq = 4`); err == nil {
		t.Error("UPDATE of an audit row after ExpireDetails succeeded, want the append-only trigger back")
	}
	appendAt(t, f.log, f.db, t0.Add(80*time.Hour), "Ed")
	if _, _, err := f.log.Checkpoint(ctx, f.db, t0.Add(81*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if rep, err := f.verify(t); err != nil || rep.Entries != 5 {
		t.Errorf("Verify after a later append = %+v, %v; want ok, 5 entries", rep, err)
	}

	attacks := []struct {
		name string
		do   func(t *testing.T, db *sql.DB)
		want string
	}{
		{"expired entry's actor edited", func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE audit SET actor_name = 'Someone Else' WHERE seq = 2`)
		}, "at entry 2: content does not match"},
		{"expired digest swapped", func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE audit SET detail = (SELECT detail FROM audit WHERE seq = 3) WHERE seq = 2`)
		}, "at entry 2: content does not match"},
		{"kept detail edited", func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE audit SET detail = '{"identity":"Someone Else"}' WHERE seq = 4`)
		}, "at entry 4: content does not match"},
		{"keyed-era entry marked expired", func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE audit SET detail = ? WHERE seq = 1`, `{"expired_sha256":"`+DetailDigest(got[1])+`"}`)
		}, "at entry 1: its detail is marked expired"},
	}
	for _, tc := range attacks {
		t.Run(tc.name, func(t *testing.T) {
			// A copy of the expired log to attack.
			g := newFixture(t, 0)
			g.keys, g.log = f.keys, f.log
			g.dbPath = f.dbPath + "." + strings.ReplaceAll(tc.name, " ", "-")
			if _, err := f.db.Exec(`VACUUM INTO ?`, g.dbPath); err != nil {
				t.Fatal(err)
			}
			attack(t, g.dbPath, func(db *sql.DB) { tc.do(t, db) })
			if _, err := g.verify(t); !errors.Is(err, ErrBroken) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Verify after %s = %v, want ErrBroken saying %q", tc.name, err, tc.want)
			}
		})
	}
}

// TestExpireDetailsKeyedBefore: a log keyed before details were hashed
// (its entries' hashes cover the text) gets an ActionDetailsHashed entry
// at its next Start; entries from then on can expire, the older ones keep
// their detail, and the whole log verifies.
func TestExpireDetailsKeyedBefore(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 0)
	// Rebuild the log as the previous version wrote it: a keyed-era
	// entry without details_hashed, then entries hashing their text.
	for _, q := range []string{`DROP TRIGGER audit_no_delete`, `DELETE FROM audit`,
		`CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;`} {
		mustExec(t, f.db, q)
	}
	if err := os.Remove(f.log.CheckpointFile()); err != nil {
		t.Fatal(err)
	}
	tx, _ := f.db.BeginTx(ctx, nil)
	d, _ := json.Marshal(keyedDetail{KeyID: f.keys.ID(), LegacyHead: GenesisHash})
	if err := f.log.insert(ctx, tx, &Entry{Time: t0, Actor: "facewatch", ActorName: "facewatch", Role: "system", Action: ActionKeyed, Target: "audit/test", Detail: string(d)}, 0, GenesisHash, false); err != nil {
		t.Fatal(err)
	}
	_, head, _ := headOf(ctx, tx)
	if err := f.log.insert(ctx, tx, &Entry{Time: t0, Actor: "tok1", ActorName: "Ana", Role: "investigator", Action: "history_query", Target: "alerts", Detail: `{"identity":"Old Era"}`}, 1, head, false); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
	old := NewLog("test", f.keys, "")
	if err := old.Start(ctx, f.db, t0.Add(time.Hour)); err != nil {
		t.Fatalf("Start on a log keyed before details were hashed = %v", err)
	}
	es, _ := Entries(ctx, f.db, 3, 3)
	if len(es) != 1 || es[0].Action != ActionDetailsHashed {
		t.Fatalf("entry 3 after Start = %+v, want %s", es, ActionDetailsHashed)
	}
	appendAt(t, old, f.db, t0.Add(2*time.Hour), "New Era")
	// A second start adds nothing.
	again := NewLog("test", f.keys, "")
	if err := again.Start(ctx, f.db, t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if seq, _, _ := Head(ctx, f.db); seq != 4 {
		t.Errorf("head after a second Start = %d, want 4 (no second era entry)", seq)
	}
	if n, err := again.ExpireDetails(ctx, f.db, t0.Add(24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("ExpireDetails = %d, %v; want 1 (the entry after the era began)", n, err)
	}
	got := details(t, f.db)
	if !strings.Contains(got[2], "Old Era") || strings.Contains(got[4], "New Era") {
		t.Errorf("details after expiry = %v, want entry 2 kept (hashed as text), entry 4 expired", got)
	}
	f.log = again
	if rep, err := f.verify(t); err != nil || rep.Entries != 4 || rep.Expired != 1 {
		t.Errorf("Verify = %+v, %v; want ok, 4 entries, 1 expired", rep, err)
	}
}
