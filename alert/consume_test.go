package alert

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/wire"
)

func TestStoreIdempotent(t *testing.T) {
	s := openService(t, t.TempDir(), Options{})
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	h, crop := makeHit(1, base)
	for i, want := range []bool{true, false, false} {
		got, err := s.Store(context.Background(), h, crop)
		if err != nil {
			t.Fatalf("Store(%s) #%d = %v", h.ID, i, err)
		}
		if got != want {
			t.Errorf("Store(%s) #%d created = %v, want %v", h.ID, i, got, want)
		}
	}
	if n := countAlerts(t, s); n != 1 {
		t.Errorf("alerts after 3 stores of one hit = %d, want 1", n)
	}
	// The same camera and track but another identity is another alert.
	h2 := h
	h2.Identity = "someone-else"
	h2.ID = wire.HitID(h2.Camera, h2.Track, h2.Identity)
	if created, err := s.Store(context.Background(), h2, crop); err != nil || !created {
		t.Errorf("Store(%s) = %v, %v, want true, nil", h2.ID, created, err)
	}
	// Private files: the database and the crops are the service user's only.
	for _, p := range []string{DBPath(s.dataDir), DBPath(s.dataDir) + "-wal", filepath.Join(s.crops, sha(crop)+".jpg")} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm()&0o077 != 0 {
			t.Errorf("mode of %s = %v (%v), want no group or other access", filepath.Base(p), st.Mode().Perm(), err)
		}
	}
	// The crop is stored once, by its hash, and readable.
	ents, _ := os.ReadDir(s.crops)
	if len(ents) != 1 {
		t.Errorf("crop files = %d, want 1 (both alerts share one crop)", len(ents))
	}
	a, err := s.getAlert(context.Background(), s.db.r, 1)
	if err != nil {
		t.Fatalf("getAlert(1) = %v", err)
	}
	b, err := os.ReadFile(filepath.Join(s.crops, a.CropSHA256+".jpg"))
	if err != nil || string(b) != string(crop) {
		t.Errorf("crop file of alert 1 = %q, %v, want %q", b, err, crop)
	}
	if a.Camera != h.Camera || a.Identity != h.Identity || a.Distance != h.Distance || a.Model != h.Model || !a.Time.Equal(h.Time) || a.Status != StatusPending {
		t.Errorf("getAlert(1) = %+v, want the fields of %+v, status pending", a, h)
	}
}

func TestStoreRepairsDamagedCropFile(t *testing.T) {
	// A file under a crop's name that does not hold the crop (a crash
	// mid-write on a file system without ordered data) is replaced.
	s := openService(t, t.TempDir(), Options{})
	h, crop := makeHit(5, time.Now())
	path := filepath.Join(s.crops, sha(crop)+".jpg")
	for _, damage := range [][]byte{{}, make([]byte, len(crop))} {
		if err := os.WriteFile(path, damage, 0o600); err != nil {
			t.Fatal(err)
		}
		h.Track++
		h.ID = wire.HitID(h.Camera, h.Track, h.Identity)
		if _, err := s.Store(context.Background(), h, crop); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != string(crop) {
			t.Errorf("crop file after storing over %d damaged bytes = %q, %v, want the crop", len(damage), b, err)
		}
	}
	ents, _ := os.ReadDir(s.crops)
	if len(ents) != 1 {
		t.Errorf("files in the crop directory = %d, want 1 (no temporary files left)", len(ents))
	}
}

func TestStoreRejectsNonJPEGCropButKeepsAlert(t *testing.T) {
	s := openService(t, t.TempDir(), Options{})
	h, _ := makeHit(2, time.Now())
	created, err := s.Store(context.Background(), h, []byte("<script>alert(1)</script>"))
	if err != nil || !created {
		t.Fatalf("Store(non-JPEG crop) = %v, %v, want true, nil", created, err)
	}
	a, _ := s.getAlert(context.Background(), s.db.r, 1)
	if a.CropSHA256 != "" {
		t.Errorf("crop of alert with non-JPEG crop = %q, want none", a.CropSHA256)
	}
	if got := testutil.ToFloat64(s.m.cropsRejected); got != 1 {
		t.Errorf("crops rejected = %v, want 1", got)
	}
}

// runService starts s.Run in the background and returns a stop function
// that cancels it and waits for it to return.
func runService(t *testing.T, s *Service, js jetstream.JetStream) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() { runErr = s.Run(ctx, js) })
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			if runErr != nil {
				t.Errorf("Run = %v, want nil after cancel", runErr)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestRunConsumesRedeliveriesAndDeadLetters(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, filepath.Join(dir, "js"))
	nc, js := connectJS(t, ns.ClientURL())
	ctx := context.Background()
	if err := natsbus.EnsureStreams(ctx, js, natsbus.Topology{}); err != nil {
		t.Fatalf("EnsureStreams = %v", err)
	}
	// EnsureStreams is repeatable.
	if err := natsbus.EnsureStreams(ctx, js, natsbus.Topology{}); err != nil {
		t.Fatalf("EnsureStreams again = %v", err)
	}
	info, err := js.Stream(ctx, wire.HitsStream)
	if err != nil {
		t.Fatalf("Stream(%s) = %v", wire.HitsStream, err)
	}
	if c := info.CachedInfo().Config; c.Storage != jetstream.FileStorage || c.Duplicates < 2*time.Minute || len(c.Subjects) != 1 || c.Subjects[0] != wire.HitsWildcard {
		t.Errorf("stream config = storage %v, duplicates %v, subjects %v; want file, >= 2m, [%s]", c.Storage, c.Duplicates, c.Subjects, wire.HitsWildcard)
	}

	dead := make(chan *nats.Msg, 10)
	sub, err := nc.ChanSubscribe(wire.DeadLetterSubject(DeadLetterStage), dead)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	s := openService(t, filepath.Join(dir, "data"), Options{})
	live, cancelLive := s.feed.subscribe()
	defer cancelLive()
	stop := runService(t, s, js)

	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	const n = 20
	for i := range n {
		h, crop := makeHit(i, base)
		publishHit(t, js, h, crop)
	}
	// Retried publishes with the same message ID (deduplicated by
	// JetStream) and redeliveries under a new message ID (deduplicated by
	// the store), and a malformed message between them.
	for i := range 5 {
		h, crop := makeHit(i, base)
		publishHit(t, js, h, crop)
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: wire.HitsSubject(h.Watchlist), Data: encodeHit(t, h, crop),
			Header: nats.Header{"Nats-Msg-Id": []string{"retry-" + h.ID}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, wire.HitsSubject("missing"), []byte("not a hit at all")); err != nil {
		t.Fatal(err)
	}
	// A refused hit that carries a face crop: the crop must not reach the
	// disk (only stored alerts' crops are ever written).
	bad, badCrop := makeHit(99, base)
	bad.Distance = 9 // out of range
	meta, _ := json.Marshal(bad)
	env := binary.BigEndian.AppendUint32(nil, uint32(len(meta)))
	env = append(append(env, meta...), badCrop...)
	if _, err := js.Publish(ctx, wire.HitsSubject("missing"), env); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "all hits consumed", func() bool {
		ci, err := js.Consumer(ctx, wire.HitsStream, s.cfg.Consumer)
		if err != nil {
			return false
		}
		inf := ci.CachedInfo()
		return inf.NumPending == 0 && inf.NumAckPending == 0
	})
	if got := countAlerts(t, s); got != n {
		t.Errorf("alerts stored = %d, want %d", got, n)
	}
	if got := testutil.ToFloat64(s.m.duplicates); got != 5 {
		t.Errorf("duplicates counted = %v, want 5", got)
	}
	if got := testutil.ToFloat64(s.m.deadLetters.WithLabelValues("malformed")); got != 2 {
		t.Errorf("dead letters counted = %v, want 2", got)
	}
	if ents, _ := os.ReadDir(s.crops); len(ents) != n {
		t.Errorf("crop files = %d, want %d (one per stored alert, none for refused hits)", len(ents), n)
	}
	if _, err := os.Stat(filepath.Join(s.crops, sha(badCrop)+".jpg")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("crop of a refused hit on disk (%v), want none", err)
	}
	select {
	case m := <-dead:
		if r := m.Header.Get(wire.HeaderReason); !strings.Contains(r, "malformed") {
			t.Errorf("dead letter reason = %q, want it to say malformed", r)
		}
		if string(m.Data) != "not a hit at all" {
			t.Errorf("dead letter body = %q, want the refused message", m.Data)
		}
	case <-time.After(5 * time.Second):
		t.Error("no dead letter published for the malformed hit")
	}
	// Every new alert reached the live feed exactly once.
	seen := map[string]int{}
	for len(seen) < n {
		select {
		case a := <-live:
			seen[a.HitID]++
		case <-time.After(5 * time.Second):
			t.Fatalf("live feed delivered %d distinct alerts, want %d", len(seen), n)
		}
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("live feed delivered %s %d times, want 1", id, c)
		}
	}
	stop()
	// After Run returns, nothing is left unacknowledged.
	if s.consuming.Load() != 0 {
		t.Error("consuming flag still set after Run returned")
	}
}

func TestRunNaksWhenStoreFails(t *testing.T) {
	// A commit that fails must not be acknowledged. The failure is caused
	// for real: the database is closed underneath the consumer, then the
	// service is reopened and must receive the hit again.
	dir := t.TempDir()
	ns := startNATS(t, filepath.Join(dir, "js"))
	_, js := connectJS(t, ns.ClientURL())
	ctx := context.Background()
	if err := natsbus.EnsureStreams(ctx, js, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	s := openService(t, filepath.Join(dir, "data"), Options{})
	s.depthEvery = 20 * time.Millisecond
	s.db.w.Close() // every write now fails
	stop := runService(t, s, js)
	h, crop := makeHit(7, time.Now())
	publishHit(t, js, h, crop)
	waitFor(t, 10*time.Second, "a failed store", func() bool { return testutil.ToFloat64(s.m.storeErrors) >= 1 })
	// The hit that cannot be stored stays in the queue, and the gauge says so.
	waitFor(t, 10*time.Second, "queue depth 1", func() bool {
		return testutil.ToFloat64(s.m.queueDepth.WithLabelValues("pending"))+testutil.ToFloat64(s.m.queueDepth.WithLabelValues("ack_pending")) == 1
	})
	stop()
	s.Close()

	s2 := openService(t, filepath.Join(dir, "data"), Options{})
	runService(t, s2, js)
	waitFor(t, 15*time.Second, "the hit stored after the failure", func() bool { return countAlerts(t, s2) == 1 })
	var got string
	if err := s2.db.r.QueryRow(`SELECT hit_id FROM alerts`).Scan(&got); err != nil || got != h.ID {
		t.Errorf("stored hit = %q, %v, want %q", got, err, h.ID)
	}
}

func TestStoreValidates(t *testing.T) {
	s := openService(t, t.TempDir(), Options{})
	good, crop := makeHit(1, time.Now())
	for _, c := range []struct {
		name string
		edit func(*wire.Hit)
	}{
		{"wrong id", func(h *wire.Hit) { h.ID = "x" }},
		{"bad camera", func(h *wire.Hit) { h.Camera = "a b"; h.ID = wire.HitID(h.Camera, h.Track, h.Identity) }},
		{"no time", func(h *wire.Hit) { h.Time = time.Time{} }},
		{"no model", func(h *wire.Hit) { h.Model = wire.Model{} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := good
			c.edit(&h)
			if created, err := s.Store(context.Background(), h, crop); err == nil || created {
				t.Errorf("Store(%s) = %v, %v, want a refusal", c.name, created, err)
			}
		})
	}
	if n := countAlerts(t, s); n != 0 {
		t.Errorf("alerts after refused stores = %d, want 0", n)
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	cfg := testConfig()
	cfg.Retention = 0
	_, err := Open(context.Background(), t.TempDir(), cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), "retention") {
		t.Errorf("Open(retention 0) = %v, want an error naming retention", err)
	}
	if errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(retention 0) = %v, want a config error", err)
	}
}

// TestRunSurvivesNATSRestart restarts the NATS server (same port, same
// JetStream store) under a running service: hits published before and
// after the cut are all stored once.
func TestRunSurvivesNATSRestart(t *testing.T) {
	dir := t.TempDir()
	jsDir := filepath.Join(dir, "js")
	ns := startNATS(t, jsDir)
	port := ns.Addr().(*net.TCPAddr).Port
	nc, err := nats.Connect(ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if err := natsbus.EnsureStreams(ctx, js, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	s := openService(t, filepath.Join(dir, "data"), Options{})
	runService(t, s, js)
	base := time.Now()
	for i := range 5 {
		h, crop := makeHit(i, base)
		publishHit(t, js, h, crop)
	}
	waitFor(t, 10*time.Second, "5 alerts before the cut", func() bool { return countAlerts(t, s) == 5 })

	ns.Shutdown()
	ns.WaitForShutdown()
	ns2, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: jsDir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns2.Start() // stopped by the cleanup below
	t.Cleanup(func() { ns2.Shutdown(); ns2.WaitForShutdown() })
	if !ns2.ReadyForConnections(10 * time.Second) {
		t.Fatal("restarted nats-server not ready")
	}
	waitFor(t, 10*time.Second, "the client reconnected", nc.IsConnected)
	for i := 5; i < 10; i++ {
		h, crop := makeHit(i, base)
		publishHit(t, js, h, crop)
	}
	waitFor(t, 20*time.Second, "10 alerts after the cut", func() bool { return countAlerts(t, s) == 10 })
}

// TestStoreSameAppearance: a hit for the same person on the same camera,
// from another track, is no second alert when it is the same appearance.
// When both hits carry an appearance of the same tracker, that decides
// (a return moments after leaving through the frame's edge is a new
// appearance; a track that broke inside the view is not, however long the
// pieces); otherwise (an older publisher, a restarted tracker) a face
// within alert.same_appearance of the alert's is. Elsewhere, later, or
// with the time check off, it is an alert.
func TestStoreSameAppearance(t *testing.T) {
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	plain, crop := makeHit(1, base)
	// tracked is plain from tracker 1, whose track 1 began its own
	// appearance.
	tracked := plain
	tracked.Tracker, tracked.Appearance = 1, 1
	again := func(first wire.Hit, track uint64, after time.Duration, camera string, tracker, appearance uint64) wire.Hit {
		h := first
		h.Track, h.Time, h.Camera = track, first.Time.Add(after), camera
		h.Tracker, h.Appearance = tracker, appearance
		h.ID = wire.HitID(h.Camera, h.Track, h.Identity)
		return h
	}
	tests := []struct {
		name   string
		window time.Duration
		first  wire.Hit
		hit    wire.Hit
		want   bool
	}{
		{"second piece 1 s later", 5 * time.Second, plain, again(plain, 2, time.Second, plain.Camera, 0, 0), false},
		{"second piece 1 s earlier", 5 * time.Second, plain, again(plain, 2, -time.Second, plain.Camera, 0, 0), false},
		{"next appearance 12 s later", 5 * time.Second, plain, again(plain, 2, 12*time.Second, plain.Camera, 0, 0), true},
		{"another camera", 5 * time.Second, plain, again(plain, 2, time.Second, "cam-9", 0, 0), true},
		{"check off", 0, plain, again(plain, 2, time.Second, plain.Camera, 0, 0), true},
		// The tracker's word.
		{"same tracker, new appearance 1 s later", 5 * time.Second, tracked, again(tracked, 2, time.Second, plain.Camera, 1, 2), true},
		{"same appearance 12 s later", 5 * time.Second, tracked, again(tracked, 2, 12*time.Second, plain.Camera, 1, 1), false},
		{"same appearance, time check off", 0, tracked, again(tracked, 2, 12*time.Second, plain.Camera, 1, 1), false},
		{"same appearance, another camera", 5 * time.Second, tracked, again(tracked, 2, time.Second, "cam-9", 1, 1), true},
		// No word that covers both: the time rule.
		{"restarted tracker 1 s later", 5 * time.Second, tracked, again(tracked, 2, time.Second, plain.Camera, 2, 2), false},
		{"restarted tracker 12 s later", 5 * time.Second, tracked, again(tracked, 2, 12*time.Second, plain.Camera, 2, 2), true},
		{"alert without appearance, hit with one", 5 * time.Second, plain, again(plain, 2, time.Second, plain.Camera, 1, 2), false},
		{"alert with appearance, hit without", 5 * time.Second, tracked, again(tracked, 2, time.Second, plain.Camera, 0, 0), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.SameAppearance = tc.window // the default is 5 s
			s := openServiceCfg(t, t.TempDir(), cfg, Options{})
			if created, err := s.Store(context.Background(), tc.first, crop); err != nil || !created {
				t.Fatalf("Store(%s) = %v, %v; want a new alert", tc.first.ID, created, err)
			}
			got, err := s.Store(context.Background(), tc.hit, crop)
			if err != nil || got != tc.want {
				t.Errorf("Store(%s at %s, appearance %d/%d) = %v, %v; want %v", tc.hit.ID, tc.hit.Time.Format(time.TimeOnly), tc.hit.Tracker, tc.hit.Appearance, got, err, tc.want)
			}
			want := 1
			if tc.want {
				want = 2
			}
			if n := countAlerts(t, s); n != want {
				t.Errorf("alerts = %d, want %d", n, want)
			}
			// The alert keeps its appearance.
			var tracker, appearance int64
			if err := s.db.r.QueryRow(`SELECT tracker, appearance FROM alerts WHERE hit_id = ?`, tc.first.ID).Scan(&tracker, &appearance); err != nil ||
				uint64(tracker) != tc.first.Tracker || uint64(appearance) != tc.first.Appearance {
				t.Errorf("stored tracker, appearance = %d, %d (%v); want %d, %d", tracker, appearance, err, tc.first.Tracker, tc.first.Appearance)
			}
		})
	}
}
