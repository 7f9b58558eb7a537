package match

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// traces are the forms a descriptor takes at rest: the raw 512 bytes (an
// enrolment row) and base64 (an event payload, in the outbox or the
// stream). A prefix long enough to be unique is searched for.
func traces(v Vector) [][]byte {
	raw := EncodeVector(&v)
	b64 := base64.StdEncoding.EncodeToString(raw)
	return [][]byte{raw[:64], []byte(b64[:80])}
}

// filesHolding returns the files under dir whose bytes contain any of
// needles.
func filesHolding(t *testing.T, dir string, needles ...[]byte) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, n) {
				out = append(out, strings.TrimPrefix(p, dir))
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("scanning %s: %v", dir, err)
	}
	return out
}

// recordingAuditor keeps what it was handed; fail makes it refuse.
type recordingAuditor struct {
	got  []Purge
	fail error
}

func (a *recordingAuditor) AuditPurge(_ context.Context, p Purge) error {
	if a.fail != nil {
		return a.fail
	}
	a.got = append(a.got, p)
	return nil
}

// TestPurgeExpired: nothing is purged before the grace period has passed;
// after it, the expired list and identity are gone (rows, outbox events,
// photo files, descriptor bytes anywhere in the data directory) while a
// live identity is untouched, and one record per purge is kept and
// audited once.
func TestPurgeExpired(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clk := &clock{t: t0.Add(-time.Hour)}
	g, err := OpenGallery(ctx, dir, GalleryOptions{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	rng := newRand(7)
	mustList(t, g, "keep")
	if _, err := g.CreateWatchlist(ctx, WatchlistSpec{Name: "old", Kind: KindWanted, Owner: "curator", LegalBasis: "order 2", Expires: t0}); err != nil {
		t.Fatal(err)
	}
	type person struct {
		list, name string
		vec        Vector
		photo      string
		purged     bool
	}
	people := []*person{
		{list: "keep", name: "bob"},
		{list: "keep", name: "ann", purged: true},
		{list: "old", name: "oz", purged: true},
		{list: "old", name: "ola", purged: true},
	}
	for _, p := range people {
		spec := IdentitySpec{Name: p.name, ExternalRef: "ref-" + p.name}
		if p.name == "ann" {
			spec.Expires = t0
		}
		id, _, err := g.EnsureIdentity(ctx, p.list, spec)
		if err != nil {
			t.Fatal(err)
		}
		p.vec = randVec(rng)
		e := mustEnrol(t, g, id.ID, p.vec, p.name)
		p.photo = g.PhotoPath(&e, ".jpg")
	}
	grace := 30 * 24 * time.Hour

	check := func(t *testing.T) {
		t.Helper()
		for _, p := range people {
			_, statErr := os.Stat(p.photo)
			held := filesHolding(t, dir, traces(p.vec)...)
			var rows int
			g.db.QueryRowContext(ctx, "SELECT count(*) FROM identities WHERE name = ?", p.name).Scan(&rows)
			if p.purged {
				if !errors.Is(statErr, os.ErrNotExist) || len(held) > 0 || rows != 0 {
					t.Errorf("%s after purge: photo stat %v, descriptor in %q, %d identity rows; want no photo, no descriptor, no row", p.name, statErr, held, rows)
				}
			} else if statErr != nil || len(held) == 0 || rows != 1 {
				t.Errorf("%s (not expired): photo stat %v, descriptor in %q, %d identity rows; want all kept", p.name, statErr, held, rows)
			}
		}
	}

	t.Run("before grace", func(t *testing.T) {
		clk.set(t0.Add(grace - time.Millisecond))
		got, err := g.PurgeExpired(ctx, grace, "lifecycle sweep")
		if err != nil || len(got) != 0 {
			t.Fatalf("PurgeExpired(%v after expiry, grace %v) = %+v, %v; want nothing purged", grace-time.Millisecond, grace, got, err)
		}
		for _, p := range people {
			if _, err := os.Stat(p.photo); err != nil {
				t.Errorf("photo of %s before grace: %v, want kept", p.name, err)
			}
		}
		if ps, _ := g.Purges(ctx); len(ps) != 0 {
			t.Errorf("Purges() before grace = %+v, want none", ps)
		}
	})

	t.Run("after grace", func(t *testing.T) {
		clk.set(t0.Add(grace))
		got, err := g.PurgeExpired(ctx, grace, "lifecycle sweep")
		if err != nil {
			t.Fatalf("PurgeExpired() = %v", err)
		}
		want := map[string]Purge{
			"watchlist/old": {Cause: PurgeExpired, Watchlist: "old", Identities: 2, Enrolments: 2, Photos: 2},
			"identity/ann":  {Cause: PurgeExpired, Watchlist: "keep", Identity: "ann", ExternalRef: "ref-ann", Identities: 1, Enrolments: 1, Photos: 1},
		}
		if len(got) != len(want) {
			t.Fatalf("PurgeExpired() = %d records %+v, want %d", len(got), got, len(want))
		}
		for _, p := range got {
			key := "watchlist/" + p.Watchlist
			if p.IdentityID != 0 {
				key = "identity/" + p.Identity
			}
			w, ok := want[key]
			if !ok || p.Cause != w.Cause || p.Watchlist != w.Watchlist || p.Identity != w.Identity || p.ExternalRef != w.ExternalRef ||
				p.Identities != w.Identities || p.Enrolments != w.Enrolments || p.Photos != w.Photos ||
				p.Actor != "lifecycle sweep" || !p.Expired.Equal(t0) || !p.Time.Equal(t0.Add(grace)) {
				t.Errorf("purge %s = %+v, want %+v expired %v by lifecycle sweep", key, p, w, t0)
			}
		}
		check(t)
		// The outbox keeps the delete events, not the enrolments.
		evs, err := g.events(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		adds := 0
		for _, ev := range evs {
			if ev.Type == EventEnrolmentAdd {
				adds++
			}
		}
		if adds != 1 {
			t.Errorf("outbox holds %d enrolment events after the purge, want 1 (bob's)", adds)
		}
		// Purging again finds nothing.
		if again, err := g.PurgeExpired(ctx, grace, "lifecycle sweep"); err != nil || len(again) != 0 {
			t.Errorf("second PurgeExpired() = %+v, %v; want nothing", again, err)
		}
	})

	t.Run("audit", func(t *testing.T) {
		failing := &recordingAuditor{fail: errors.New("audit log unavailable")}
		if n, err := g.AuditPurges(ctx, failing); err == nil || n != 0 {
			t.Errorf("AuditPurges(failing) = %d, %v; want 0 and an error", n, err)
		}
		a := &recordingAuditor{}
		if n, err := g.AuditPurges(ctx, a); err != nil || n != 2 || len(a.got) != 2 {
			t.Fatalf("AuditPurges() = %d, %v (auditor got %d); want 2 after a failed attempt", n, err, len(a.got))
		}
		if n, err := g.AuditPurges(ctx, a); err != nil || n != 0 {
			t.Errorf("AuditPurges() again = %d, %v; want 0 (each record audited once)", n, err)
		}
		ps, _ := g.Purges(ctx)
		for _, p := range ps {
			if !p.Audited {
				t.Errorf("purge %d not marked audited", p.ID)
			}
		}
	})
	if err := g.IntegrityCheck(ctx); err != nil {
		t.Error(err)
	}
}

func TestPurgeBadInput(t *testing.T) {
	ctx := context.Background()
	g := openGallery(t, "")
	mustList(t, g, "missing")
	if _, err := g.CreateWatchlist(ctx, WatchlistSpec{Name: "wanted", Kind: KindWanted, Owner: "c", LegalBasis: "order"}); err != nil {
		t.Fatal(err)
	}
	amy := mustIdentity(t, g, "missing", "amy")
	wes := mustIdentity(t, g, "wanted", "wes")
	tests := []struct {
		name   string
		id     int64
		actor  string
		reason string
		want   error
	}{
		{"wanted person", wes.ID, "curator", "arrested", ErrInvalid},
		{"no reason", amy.ID, "curator", "  ", ErrInvalid},
		{"no actor", amy.ID, "", "found alive", ErrInvalid},
		{"unknown identity", 9999, "curator", "found alive", ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := g.Found(ctx, tc.id, tc.actor, tc.reason); !errors.Is(err, tc.want) {
				t.Errorf("Found(%d, %q, %q) = %v, want %v", tc.id, tc.actor, tc.reason, err, tc.want)
			}
		})
	}
	if _, err := g.PurgeExpired(ctx, -time.Hour, "sweep"); !errors.Is(err, ErrInvalid) {
		t.Errorf("PurgeExpired(grace -1h) = %v, want ErrInvalid", err)
	}
	if _, err := g.Identity(ctx, amy.ID); err != nil {
		t.Errorf("amy after refused calls: %v, want still there", err)
	}
}

// TestFoundEndsMatching: a missing person marked found stops matching in
// a running matcher over NATS as soon as the events are published; their
// photo, rows and descriptor bytes are gone from the data directory and
// from the NATS store; a record of who, when, whom and why is kept.
func TestFoundEndsMatching(t *testing.T) {
	ctx := context.Background()
	store := t.TempDir()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: store, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	url := ns.ClientURL()
	dir := t.TempDir()
	curator := openGallery(t, dir)
	pub := connect(t, url)
	rng := newRand(11)
	mustList(t, curator, "missing")
	amy := mustIdentity(t, curator, "missing", "amy")
	vAmy := randVec(rng)
	e := mustEnrol(t, curator, amy.ID, vAmy, "amy")
	vAmy2 := near(rng, vAmy, 0.2)
	mustEnrol(t, curator, amy.ID, vAmy2, "amy-2")
	ben := mustIdentity(t, curator, "missing", "ben")
	vBen := randVec(rng)
	mustEnrol(t, curator, ben.ID, vBen, "ben")
	m := startMatcher(t, dir, url)
	if _, err := curator.PublishPending(ctx, pub); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "matcher names amy", func() bool { return m.name(t, near(rng, vAmy, 0.1)) == "amy" })
	if held := filesHolding(t, store, traces(vAmy)...); len(held) == 0 {
		t.Fatal("amy's descriptor is not in the NATS store before the purge: the scan would prove nothing")
	}

	start := time.Now()
	p, err := curator.Found(ctx, amy.ID, "curator ana", "found alive, case 2026/0147 closed")
	if err != nil {
		t.Fatalf("Found() = %v", err)
	}
	if _, err := curator.PublishPending(ctx, pub); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "matcher forgets amy", func() bool { return m.name(t, near(rng, vAmy, 0.1)) == "" })
	t.Logf("found -> no match in %v", time.Since(start))
	if got := m.name(t, near(rng, vBen, 0.1)); got != "ben" {
		t.Errorf("name(ben) after amy was found = %q, want ben", got)
	}
	if p.Cause != PurgeFound || p.Identity != "amy" || p.IdentityID != amy.ID || p.Actor != "curator ana" ||
		p.Reason != "found alive, case 2026/0147 closed" || p.Enrolments != 2 || p.Photos != 2 {
		t.Errorf("Found() record = %+v, want amy found by curator ana with 2 enrolments and 2 photos", p)
	}
	if _, err := os.Stat(curator.PhotoPath(&e, ".jpg")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("amy's photo after found: stat = %v, want gone", err)
	}
	for _, where := range []string{dir, store} {
		if held := filesHolding(t, where, append(traces(vAmy), traces(vAmy2)...)...); len(held) > 0 {
			t.Errorf("amy's descriptor still in %q after found", held)
		}
	}
	if held := filesHolding(t, dir, traces(vBen)...); len(held) == 0 {
		t.Error("ben's descriptor is gone too: the purge took more than amy")
	}
	// A matcher starting now (it loads the snapshot first) does not know
	// her either.
	fresh := NewIndex(testConfig(), IndexOptions{Gallery: curator})
	if err := fresh.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if got := (&matcher{x: fresh}).name(t, vAmy); got != "" {
		t.Errorf("new matcher: name(amy) = %q, want no name", got)
	}
	ps, err := curator.Purges(ctx)
	if err != nil || len(ps) != 1 || ps[0].ID != p.ID || ps[0].Reason != p.Reason {
		t.Errorf("Purges() = %+v, %v; want the one found record", ps, err)
	}
}
