package alert

import (
	"context"
	"database/sql"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/wire"
)

// openServiceCfg opens a service on dir with cfg.
func openServiceCfg(t *testing.T, dir string, cfg config.Alert, opts Options) *Service {
	t.Helper()
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	s, err := Open(context.Background(), dir, cfg, opts)
	if err != nil {
		t.Fatalf("Open(%s) = %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// storeN stores hits from..to-1 and returns their alert ids.
func storeN(t *testing.T, s *Service, from, to int, base time.Time) []int64 {
	t.Helper()
	var ids []int64
	for i := from; i < to; i++ {
		h, crop := makeHit(i, base)
		if created, err := s.Store(context.Background(), h, crop); err != nil || !created {
			t.Fatalf("Store(%s) = %v, %v; want created", h.ID, created, err)
		}
		var id int64
		if err := s.db.r.QueryRow(`SELECT id FROM alerts WHERE hit_id = ?`, h.ID).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// TestAlertIDsNeverReused: after the sweep empties the table (and after a
// restart), a new alert's id is above every id handed out before.
// Before migration 3 SQLite handed out max(id)+1, so the ids restarted at
// 1 and open consoles and sink cursors skipped the new alerts.
func TestAlertIDsNeverReused(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: time.Now().UTC()}
	cfg := testConfig()
	cfg.Retention = time.Hour
	s := openServiceCfg(t, dir, cfg, Options{Now: clk.now})
	first := storeN(t, s, 0, 3, clk.now())
	clk.add(2 * time.Hour)
	if n, err := s.Sweep(context.Background()); err != nil || n != 3 {
		t.Fatalf("Sweep = %d, %v; want 3", n, err)
	}
	tests := []struct {
		name    string
		restart bool
	}{{"after a sweep", false}, {"after a restart", true}}
	last := first[len(first)-1]
	next := 3
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.restart {
				s.Close()
				s = openServiceCfg(t, dir, cfg, Options{Now: clk.now})
			}
			got := storeN(t, s, next, next+1, clk.now())[0]
			if got <= last {
				t.Errorf("id of a new alert %s = %d, want above %d (the highest id ever used)", tc.name, got, last)
			}
			last = got
			next++
			clk.add(2 * time.Hour)
			if _, err := s.Sweep(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSweptAlertsNeverReturn: hits whose alerts retention removed are not
// stored again, whether a consumer under another name re-reads the hits
// stream or a hit is stored again directly (a replay).
func TestSweptAlertsNeverReturn(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, filepath.Join(dir, "js"))
	_, js := connectJS(t, ns.ClientURL())
	ctx := context.Background()
	cfg := testConfig()
	cfg.Retention = time.Hour
	if err := natsbus.EnsureStreams(ctx, js, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now().UTC()}
	s := openServiceCfg(t, filepath.Join(dir, "data"), cfg, Options{Now: clk.now})
	const n = 4
	var hits []wire.Hit
	for i := range n {
		h, crop := makeHit(i, time.Now().UTC())
		publishHit(t, js, h, crop)
		hits = append(hits, h)
	}
	stop := runService(t, s, js)
	waitFor(t, 20*time.Second, "hits stored", func() bool { return countAlerts(t, s) == n })
	stop()
	clk.add(2 * time.Hour)
	if got, err := s.Sweep(ctx); err != nil || got != n {
		t.Fatalf("Sweep = %d, %v; want %d", got, err, n)
	}

	t.Run("consumer under another name", func(t *testing.T) {
		s.cfg.Consumer = "facewatch-alert-renamed"
		stop := runService(t, s, js)
		defer stop()
		waitFor(t, 20*time.Second, "the renamed consumer to read the whole stream", func() bool {
			ci, err := js.Consumer(ctx, wire.HitsStream, s.cfg.Consumer)
			if err != nil {
				return false
			}
			inf, err := ci.Info(ctx)
			return err == nil && inf.NumPending == 0 && inf.NumAckPending == 0 && inf.Delivered.Stream >= n
		})
		if got := countAlerts(t, s); got != 0 {
			t.Errorf("alerts after a renamed consumer re-read the stream = %d, want 0 (swept alerts came back)", got)
		}
		if got := testutil.ToFloat64(s.m.forgotten); got != n {
			t.Errorf("hits forgotten = %v, want %d", got, n)
		}
	})
	t.Run("replayed hit", func(t *testing.T) {
		h, crop := makeHit(0, time.Now().UTC())
		created, err := s.Store(ctx, h, crop)
		if err != nil || created || countAlerts(t, s) != 0 {
			t.Errorf("Store(swept hit %s) = %v, %v with %d alerts; want not created, none", h.ID, created, err, countAlerts(t, s))
		}
		// A hit never seen before is stored as usual.
		h, crop = makeHit(n+1, time.Now().UTC())
		if created, err := s.Store(ctx, h, crop); err != nil || !created {
			t.Errorf("Store(new hit) = %v, %v; want created", created, err)
		}
	})
	// Tombstones are hashes, not hit IDs (which name who was seen where).
	var leaked int
	for _, h := range hits {
		var c int
		s.db.r.QueryRow(`SELECT COUNT(*) FROM alert_tombstones WHERE hit_hash = ?`, h.ID).Scan(&c)
		leaked += c
	}
	if leaked != 0 {
		t.Errorf("%d tombstones hold a plain hit ID, want hashes only", leaked)
	}
	tombstones := func() int {
		var c int
		s.db.r.QueryRow(`SELECT COUNT(*) FROM alert_tombstones`).Scan(&c)
		return c
	}
	if got := tombstones(); got != n {
		t.Errorf("tombstones = %d, want %d", got, n)
	}
	// Once no copy of the hits can be left in the stream (its age is
	// bounded by the retention of an hour), the tombstones go too.
	clk.add(natsbus.HitsMaxAgeFor(cfg.Retention) + natsbus.HitsDuplicateWindow + time.Minute)
	if _, err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got := tombstones(); got != 1 { // the new hit's alert, swept just now
		t.Errorf("tombstones after the stream's max age = %d, want 1 (only the alert swept now)", got)
	}
}

// TestLiveResumesAcrossSweep: a console that saw alert k and reconnects
// after the sweep emptied the table gets the alerts stored since.
func TestLiveResumesAcrossSweep(t *testing.T) {
	clk := &clock{t: time.Now().UTC()}
	cfg := testConfig()
	cfg.Retention = time.Hour
	s := openServiceCfg(t, t.TempDir(), cfg, Options{Now: clk.now})
	srv := newTestServer(t, s)
	seen := storeN(t, s, 0, 3, clk.now())
	clk.add(2 * time.Hour)
	if n, err := s.Sweep(context.Background()); err != nil || n != 3 {
		t.Fatalf("Sweep = %d, %v; want 3", n, err)
	}
	h, crop := makeHit(10, clk.now())
	if _, err := s.Store(context.Background(), h, crop); err != nil {
		t.Fatal(err)
	}
	op := mustToken(t, s, RoleOperator, "otto", time.Hour)
	for _, tc := range []struct {
		name string
		last int64
	}{
		{"last seen before the sweep", seen[len(seen)-1]},
		// A console of a database since replaced: an id never handed out.
		{"id from another database", 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			events, stop := openLive(t, srv, op, strconv.FormatInt(tc.last, 10))
			defer stop()
			if got := nextEvent(t, events); got.HitID != h.ID {
				t.Errorf("first event after reconnecting with Last-Event-ID %d = %s, want the new alert %s", tc.last, got.HitID, h.ID)
			}
		})
	}
}

// TestCommentRetention: review comments (free text about a person) are
// blanked after alert.comment_retention; the decision, reviewer and time
// stay as long as the alert.
func TestCommentRetention(t *testing.T) {
	clk := &clock{t: time.Now().UTC()}
	cfg := testConfig()
	cfg.Retention = 90 * 24 * time.Hour
	cfg.CommentRetention = 24 * time.Hour
	s := openServiceCfg(t, t.TempDir(), cfg, Options{Now: clk.now})
	ids := storeN(t, s, 0, 2, clk.now())
	op := principal{ID: "t1", Name: "ana", Role: RoleOperator}
	if _, err := s.recordReview(context.Background(), op, ids[0], "dismiss", "looks like my neighbour Bob", ""); err != nil {
		t.Fatal(err)
	}
	clk.add(23 * time.Hour)
	if _, err := s.recordReview(context.Background(), op, ids[1], "confirm", "same scar as the photo", ""); err != nil {
		t.Fatal(err)
	}
	clk.add(2 * time.Hour) // the first comment is 25 h old, the second 2 h
	if _, err := s.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id       int64
		decision string
		comment  string
	}{{ids[0], "dismiss", ""}, {ids[1], "confirm", "same scar as the photo"}} {
		var decision, comment string
		err := s.db.r.QueryRow(`SELECT decision, comment FROM reviews WHERE alert_id = ?`, tc.id).Scan(&decision, &comment)
		if err != nil || decision != tc.decision || comment != tc.comment {
			t.Errorf("review of alert %d = %q, %q, %v; want %q, %q", tc.id, decision, comment, err, tc.decision, tc.comment)
		}
	}
	// The audit log keeps that the review happened, not the comment text.
	var n int
	if err := s.db.r.QueryRow(`SELECT COUNT(*) FROM audit WHERE detail LIKE '%neighbour%'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("audit entries holding the comment text = %d, %v; want 0", n, err)
	}
}

// TestRefusedHitsAreKept: the alert service accepts hits of the current
// and the previous schema version; a hit of the next version (a matcher
// upgraded before the alert service) is stored in the dead-letter stream
// with the reason and its body, and is acknowledged only after that: with
// the dead-letter stream unavailable it is redelivered, not lost.
func TestRefusedHitsAreKept(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, filepath.Join(dir, "js"))
	_, js := connectJS(t, ns.ClientURL())
	ctx := context.Background()
	if err := natsbus.EnsureStreams(ctx, js, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	// No dead-letter stream at first: a refused hit cannot be kept yet.
	if err := js.DeleteStream(ctx, wire.DeadLetterStream); err != nil {
		t.Fatal(err)
	}
	s := openService(t, filepath.Join(dir, "data"), Options{})
	base := time.Now().UTC()
	at := func(i, v int) (wire.Hit, []byte) {
		h, crop := makeHit(i, base)
		h.Version = v
		b, err := wire.Encode(h, crop)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, wire.HitsSubject(h.Watchlist), b, jetstream.WithMsgID(h.ID)); err != nil {
			t.Fatal(err)
		}
		return h, b
	}
	prev, _ := at(1, wire.PrevVersion)
	cur, _ := at(2, wire.Version)
	next, nextBody := at(3, wire.Version+1)
	stop := runService(t, s, js)
	defer stop()
	waitFor(t, 20*time.Second, "the current and previous versions stored", func() bool { return countAlerts(t, s) == 2 })
	for _, h := range []wire.Hit{prev, cur} {
		var id int64
		if err := s.db.r.QueryRow(`SELECT id FROM alerts WHERE hit_id = ?`, h.ID).Scan(&id); err != nil {
			t.Errorf("hit of version %d: %v, want stored", h.Version, err)
		}
	}
	cons, err := js.Consumer(ctx, wire.HitsStream, s.cfg.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	// The next-version hit is neither stored nor acknowledged while its
	// letter cannot be kept: it comes back.
	waitFor(t, 20*time.Second, "the refused hit redelivered", func() bool {
		inf, err := cons.Info(ctx)
		return err == nil && inf.NumRedelivered > 0
	})
	if inf, _ := cons.Info(ctx); inf.AckFloor.Stream >= 3 {
		t.Fatalf("consumer ack floor = %d, want the next-version hit (stream seq 3) unacknowledged", inf.AckFloor.Stream)
	}
	var id int64
	if err := s.db.r.QueryRow(`SELECT id FROM alerts WHERE hit_id = ?`, next.ID).Scan(&id); !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("next-version hit in the history (%v), want refused", err)
	}
	// Once the stream is back, the letter is kept and the hit acknowledged.
	if err := natsbus.EnsureStreams(ctx, js, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	var letters []natsbus.StoredLetter
	waitFor(t, 20*time.Second, "the refused hit in the dead-letter stream", func() bool {
		letters, err = natsbus.ListDeadLetters(ctx, js, DeadLetterStage, 0)
		return err == nil && len(letters) > 0
	})
	l := letters[0]
	if !strings.Contains(l.Reason, "schema version "+strconv.Itoa(wire.Version+1)) || !strings.Contains(l.Reason, "newer") ||
		string(l.Data) != string(nextBody) || l.Subject != wire.HitsSubject(next.Watchlist) || l.MsgID != next.ID || l.Kind != string(wire.KindHit) {
		t.Errorf("dead letter = %+v, want the version reason, the hit's body, subject %s, msg id %s", l, wire.HitsSubject(next.Watchlist), next.ID)
	}
	waitFor(t, 20*time.Second, "every hit acknowledged", func() bool {
		inf, err := cons.Info(ctx)
		return err == nil && inf.NumAckPending == 0 && inf.NumPending == 0
	})
	if got := testutil.ToFloat64(s.m.deadLetters.WithLabelValues("version")); got != 1 {
		t.Errorf("dead letters counted for version = %v, want 1", got)
	}
}

// newTestServer serves s's API for the test.
func newTestServer(t *testing.T, s *Service) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

// TestAuditDetailRetention: an investigator's history query naming a
// person is audited with its filters; after alert.audit_detail_retention
// the sweep removes the filters from the entry, which keeps who queried,
// when, what and under which case, and the audit log still verifies
// (through the service's checkpoints, signed before the expiry). Before,
// the audit detail kept the name for ever: the chain covered its text.
func TestAuditDetailRetention(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: time.Now().UTC()}
	cfg := testConfig()
	cfg.Retention = 90 * 24 * time.Hour
	cfg.AuditDetailRetention = 30 * 24 * time.Hour
	s := openServiceCfg(t, dir, cfg, Options{Now: clk.now})
	srv := newTestServer(t, s)
	inv := mustPersonToken(t, s, RoleInvestigator, "Ines Investigator", "ines", 90*24*time.Hour)
	query := func(name string) {
		t.Helper()
		if resp, body := do(t, srv, "GET", "/api/v1/alerts?identity="+name+"&case=2026%2F0147", inv, nil); resp.StatusCode != 200 {
			t.Fatalf("history query for %s = %d %s", name, resp.StatusCode, body)
		}
	}
	holding := func(name string) int {
		var n int
		if err := s.db.r.QueryRow(`SELECT COUNT(*) FROM audit WHERE detail LIKE ?`, "%"+name+"%").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	query("Zed-Old")
	clk.add(20 * 24 * time.Hour)
	query("Yan-New")
	if holding("Zed-Old") != 1 || holding("Yan-New") != 1 {
		t.Fatalf("audit entries naming the queried people = %d, %d; want 1 each (the filters are audited)", holding("Zed-Old"), holding("Yan-New"))
	}
	clk.add(15 * 24 * time.Hour) // the first query is 35 days old, the second 15
	if _, err := s.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := holding("Zed-Old"); got != 0 {
		t.Errorf("audit entries naming Zed-Old after %v = %d, want 0 (detail expired)", cfg.AuditDetailRetention, got)
	}
	if got := holding("Yan-New"); got != 1 {
		t.Errorf("audit entries naming Yan-New = %d, want 1 (not yet expired)", got)
	}
	var queries int
	if err := s.db.r.QueryRow(`SELECT COUNT(*) FROM audit WHERE action = 'query' AND actor_name = 'Ines Investigator' AND case_ref = '2026/0147'`).Scan(&queries); err != nil || queries != 2 {
		t.Errorf("query audit entries by Ines under case 2026/0147 = %d, %v; want 2 (that the queries happened stays)", queries, err)
	}
	if _, err := s.CheckpointAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	rep, err := VerifyAudit(context.Background(), dir, "", nil)
	if err != nil || rep.Expired == 0 {
		t.Errorf("VerifyAudit after details expired = %+v, %v; want ok with expired details counted", rep, err)
	}
}
