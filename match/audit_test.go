package match

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/audit"
)

var curator = audit.Actor{ID: "os:cora", Name: "cora", Role: "local"}

// openAudited opens the gallery under dir with audit keys, as the CLI does.
func openAudited(t *testing.T, dir string, keys *audit.Keys, note string) *Gallery {
	t.Helper()
	g, err := OpenGallery(context.Background(), dir, GalleryOptions{Audit: keys, Actor: curator, Note: note})
	if err != nil {
		t.Fatalf("OpenGallery with audit keys = %v", err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// lastAudit reads the newest audit entry.
func lastAudit(t *testing.T, g *Gallery) audit.Entry {
	t.Helper()
	seq, _, err := audit.Head(context.Background(), g.db)
	if err != nil {
		t.Fatal(err)
	}
	es, err := audit.Entries(context.Background(), g.db, seq, seq)
	if err != nil || len(es) != 1 {
		t.Fatalf("reading audit entry %d = %v, %v", seq, es, err)
	}
	return es[0]
}

// TestEveryChangeAudited makes each kind of gallery change and checks
// that it added exactly one audit entry naming the actor, the action and
// the target.
func TestEveryChangeAudited(t *testing.T) {
	dir := t.TempDir()
	keys, err := audit.LoadKeys(filepath.Join(t.TempDir(), "audit"), dir)
	if err != nil {
		t.Fatal(err)
	}
	g := openAudited(t, dir, keys, "for inspector Lund")
	ctx := context.Background()
	rng := newRand(7)
	var idID int64
	steps := []struct {
		action, target, caseRef string
		do                      func() error
	}{
		{"watchlist_create", "watchlist/missing", "", func() error {
			_, err := g.CreateWatchlist(ctx, WatchlistSpec{Name: "missing", Kind: KindMissing, Owner: "cora", LegalBasis: "order 12"})
			return err
		}},
		{"identity_create", "identity/1", "CASE-9", func() error {
			id, _, err := g.EnsureIdentity(ctx, "missing", IdentitySpec{Name: "Ana", ExternalRef: "CASE-9"})
			idID = id.ID
			return err
		}},
		{"enrol", "identity/1", "CASE-9", func() error {
			_, _, err := g.AddEnrolment(ctx, NewEnrolment{IdentityID: idID, Photo: fakePhoto("a"), PhotoExt: ".jpg", ChipPNG: []byte("c"),
				Vector: randVec(rng), Model: testModel, Quality: 0.9, EnrolledBy: "cora"})
			return err
		}},
		{"watchlist_threshold", "watchlist/missing", "", func() error { _, err := g.SetThreshold(ctx, "missing", 0.45); return err }},
		{"identity_expire", "identity/1", "CASE-9", func() error {
			_, err := g.ExpireIdentity(ctx, idID, time.Now().Add(time.Hour))
			return err
		}},
		{"watchlist_expire", "watchlist/missing", "", func() error {
			_, err := g.ExpireWatchlist(ctx, "missing", time.Now().Add(time.Hour))
			return err
		}},
		{"identity_delete", "identity/1", "CASE-9", func() error { return g.DeleteIdentity(ctx, idID) }},
		{"watchlist_delete", "watchlist/missing", "", func() error { return g.DeleteWatchlist(ctx, "missing") }},
		{"identify", "watchlists/*", "CASE-10", func() error {
			return g.Audit(ctx, "identify", "watchlists/*", "CASE-10", map[string]any{"files": 1})
		}},
	}
	for _, st := range steps {
		before, _, _ := audit.Head(ctx, g.db)
		if err := st.do(); err != nil {
			t.Fatalf("%s = %v", st.action, err)
		}
		after, _, _ := audit.Head(ctx, g.db)
		if after != before+1 {
			t.Errorf("%s added %d audit entries, want 1", st.action, after-before)
			continue
		}
		e := lastAudit(t, g)
		if e.Action != st.action || e.Target != st.target || e.Case != st.caseRef || e.Actor != curator.ID || e.ActorName != curator.Name ||
			!strings.Contains(e.Detail, `"note":"for inspector Lund"`) {
			t.Errorf("audit entry for %s = %+v, want action %s, target %s, case %q, actor %s, the note in the detail", st.action, e, st.action, st.target, st.caseRef, curator.ID)
		}
	}
	// A failed change records nothing.
	before, _, _ := audit.Head(ctx, g.db)
	if _, err := g.SetThreshold(ctx, "nope", 0.4); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetThreshold(missing list) = %v, want ErrNotFound", err)
	}
	if after, _, _ := audit.Head(ctx, g.db); after != before {
		t.Errorf("a refused change added %d audit entries, want 0", after-before)
	}
	if _, err := g.AuditCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyAudit(ctx, dir, keys, nil)
	if err != nil || rep.Entries != len(steps)+1 {
		t.Errorf("VerifyAudit = %+v, %v, want %d entries, ok", rep, err, len(steps)+1)
	}
	// Tampered with through the file, the log no longer verifies.
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, GalleryFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DROP TRIGGER audit_no_update; UPDATE audit SET actor_name = 'someone' WHERE action = 'enrol'`); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyAudit(ctx, dir, keys, nil); !errors.Is(err, audit.ErrBroken) {
		t.Errorf("VerifyAudit after editing the enrol entry = %v, want ErrBroken", err)
	}
}

// TestKeyedGalleryRefusesUnauditedChanges: once the gallery's audit log
// is keyed, a Gallery opened without the keys reads but cannot change it.
func TestKeyedGalleryRefusesUnauditedChanges(t *testing.T) {
	dir := t.TempDir()
	keys, err := audit.LoadKeys(filepath.Join(t.TempDir(), "audit"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := OpenGallery(context.Background(), dir, GalleryOptions{Audit: keys, Actor: curator})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateWatchlist(context.Background(), WatchlistSpec{Name: "l", Kind: KindWanted, Owner: "x", LegalBasis: "y"}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	g := openGallery(t, dir)
	if _, err := g.SetThreshold(context.Background(), "l", 0.3); !errors.Is(err, ErrUnaudited) {
		t.Errorf("SetThreshold without audit keys = %v, want ErrUnaudited", err)
	}
	if _, err := g.Watchlist(context.Background(), "l"); err != nil {
		t.Errorf("Watchlist without audit keys = %v, want readable", err)
	}
}

// TestAuditDetailsExpire: the running matcher's lifecycle sweep replaces
// the details of gallery audit entries older than its
// AuditDetailRetention (an identity's name and external reference, the
// --by note) by their digest; newer ones keep theirs, the entries keep
// who, what, when, target and case, and the log still verifies.
func TestAuditDetailsExpire(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys, err := audit.LoadKeys(filepath.Join(t.TempDir(), "audit"), dir)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	g, err := OpenGallery(ctx, dir, GalleryOptions{Audit: keys, Actor: curator, Note: "for inspector Lund", Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	mustList(t, g, "missing")
	if _, _, err := g.EnsureIdentity(ctx, "missing", IdentitySpec{Name: "Zed Old", ExternalRef: "CASE-OLD"}); err != nil {
		t.Fatal(err)
	}
	clk.set(t0.Add(300 * 24 * time.Hour))
	if _, _, err := g.EnsureIdentity(ctx, "missing", IdentitySpec{Name: "Yan New", ExternalRef: "CASE-NEW"}); err != nil {
		t.Fatal(err)
	}
	clk.set(t0.Add(400 * 24 * time.Hour))
	holding := func(s string) int {
		var n int
		if err := g.db.QueryRow(`SELECT COUNT(*) FROM audit WHERE detail LIKE ?`, "%"+s+"%").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if holding("Zed Old") != 1 || holding("Yan New") != 1 {
		t.Fatalf("audit details naming the identities = %d, %d; want 1 each (the test proves nothing otherwise)", holding("Zed Old"), holding("Yan New"))
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- g.RunLifecycle(lctx, LifecycleOptions{Grace: time.Hour, Interval: time.Hour, AuditDetailRetention: 365 * 24 * time.Hour})
	}()
	eventually(t, 20*time.Second, "the old identity's audit detail expired", func() bool { return holding("Zed Old") == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunLifecycle = %v", err)
	}
	if got := holding("Yan New"); got != 1 {
		t.Errorf("audit details naming Yan New (100 days old) = %d, want 1 (kept)", got)
	}
	var n int
	if err := g.db.QueryRow(`SELECT COUNT(*) FROM audit WHERE action = 'identity_create' AND actor = ? AND target LIKE 'identity/%'`, curator.ID).Scan(&n); err != nil || n != 2 {
		t.Errorf("identity_create entries by %s = %d, %v; want 2 (the entries stay)", curator.ID, n, err)
	}
	if _, err := g.AuditCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyAudit(ctx, dir, keys, nil)
	if err != nil || rep.Expired == 0 {
		t.Errorf("VerifyAudit after expiry = %+v, %v; want ok with expired details counted", rep, err)
	}
}
