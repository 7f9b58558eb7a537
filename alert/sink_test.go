package alert

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/natsbus"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestConsoleSinkPrintsNewAlertsOnce: alerts stored before the service
// opened are not printed; a real hit consumed after is printed once, redelivered or not.
func TestConsoleSinkPrintsNewAlertsOnce(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, filepath.Join(dir, "js"))
	_, js := connectJS(t, ns.ClientURL())
	if err := natsbus.EnsureStreams(context.Background(), js, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	data := filepath.Join(dir, "data")
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	before := openService(t, data, Options{})
	old, oldCrop := makeHit(0, base)
	if _, err := before.Store(context.Background(), old, oldCrop); err != nil {
		t.Fatal(err)
	}
	before.Close()
	s := openService(t, data, Options{Console: out})
	runService(t, s, js)
	h, crop := makeHit(1, base)
	publishHit(t, js, h, crop)
	publishHit(t, js, h, crop) // a retried publish: still one alert
	waitFor(t, 10*time.Second, "the console line", func() bool { return strings.Contains(out.String(), h.ID) })
	time.Sleep(100 * time.Millisecond)
	want := `ALERT 12:00:01.000 camera=cam-1 identity="Person person-1" watchlist=wanted distance=0.310 threshold=0.500 track=1 id=` + h.ID + "\n"
	if got := out.String(); got != want {
		t.Errorf("console = %q, want %q", got, want)
	}
}

// TestSinkCountsAlertsExpiredBeforeDelivery: alerts that retention
// removes while the receiver is down are counted as dropped, not sent
// later; the one still stored is delivered when the receiver returns.
func TestSinkCountsAlertsExpiredBeforeDelivery(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // down: nothing listens
	clk := &clock{t: time.Now()}
	cfg := webhookConfig(t, "http://"+addr+"/hook")
	s, err := Open(context.Background(), t.TempDir(), cfg, Options{Registry: prometheus.NewRegistry(), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.runSinks(ctx) })
	defer func() { cancel(); wg.Wait() }()

	base := time.Now().Add(-time.Minute)
	for i := range 3 {
		h, crop := makeHit(i, base)
		if _, err := s.Store(ctx, h, crop); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "a failed attempt", func() bool {
		return testutil.ToFloat64(s.m.sinkFailures.WithLabelValues("webhook")) >= 1
	})
	clk.add(2 * time.Hour)
	last, lastCrop := makeHit(3, base)
	if _, err := s.Store(ctx, last, lastCrop); err != nil {
		t.Fatal(err)
	}
	clk.add(cfg.Retention - time.Hour)
	if n, err := s.Sweep(ctx); err != nil || n != 3 {
		t.Fatalf("Sweep = %d, %v, want 3, nil", n, err)
	}

	rc := &receiver{t: t}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", addr, err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: rc}}
	srv.Start()
	defer srv.Close()
	waitFor(t, 10*time.Second, "the remaining delivery", func() bool { return len(rc.events()) == 1 })
	time.Sleep(100 * time.Millisecond)
	if got := rc.events(); len(got) != 1 || got[0].HitID != last.ID {
		t.Errorf("delivered %+v, want only %s", got, last.ID)
	}
	if got := testutil.ToFloat64(s.m.sinkDropped.WithLabelValues("webhook", "expired")); got != 3 {
		t.Errorf("dropped{expired} = %v, want 3", got)
	}
}

// TestSinkFollowsAcrossSweep: once retention empties the history the next
// alert still reaches the sink, under a new id (ids are never reused,
// migration 3), not under id 1 as SQLite used to hand out.
func TestSinkFollowsAcrossSweep(t *testing.T) {
	rc := &receiver{t: t}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	clk := &clock{t: time.Now()}
	cfg := webhookConfig(t, srv.URL)
	s, err := Open(context.Background(), t.TempDir(), cfg, Options{Registry: prometheus.NewRegistry(), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.runSinks(ctx) })
	defer func() { cancel(); wg.Wait() }()

	base := time.Now().Add(-time.Minute)
	for i := range 2 {
		h, crop := makeHit(i, base)
		if _, err := s.Store(ctx, h, crop); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "2 deliveries", func() bool { return len(rc.events()) == 2 })
	clk.add(cfg.Retention + time.Hour)
	if n, err := s.Sweep(ctx); err != nil || n != 2 {
		t.Fatalf("Sweep = %d, %v, want 2, nil", n, err)
	}
	h, crop := makeHit(7, base)
	if _, err := s.Store(ctx, h, crop); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the delivery of the alert stored after the sweep", func() bool { return len(rc.events()) == 3 })
	if got := rc.events()[2]; got.ID <= 2 || got.HitID != h.ID {
		t.Errorf("third delivery = alert %d hit %s, want an id above 2, hit %s", got.ID, got.HitID, h.ID)
	}
	if got := testutil.ToFloat64(s.m.sinkDropped.WithLabelValues("webhook", "expired")); got != 0 {
		t.Errorf("dropped{expired} = %v, want 0 (both were delivered before the sweep)", got)
	}
}

func TestVerifyWebhook(t *testing.T) {
	secret := []byte(testSecret)
	now := time.Unix(1_800_000_000, 0)
	ts := "1800000000"
	body := []byte(`{"type":"alert","id":1}`)
	sig := SignWebhook(secret, ts, body)
	cases := []struct {
		name, ts, sig string
		body          []byte
		ok            bool
	}{
		{"good", ts, sig, body, true},
		{"tampered body", ts, sig, []byte(`{"type":"alert","id":2}`), false},
		{"replayed later", "1799999000", SignWebhook(secret, "1799999000", body), body, false},
		{"timestamp changed", "1800000001", sig, body, false},
		{"other secret", ts, SignWebhook([]byte("another-secret-of-enough-bytes"), ts, body), body, false},
		{"bad timestamp", "soon", sig, body, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := VerifyWebhook(secret, c.ts, c.sig, c.body, now, 5*time.Minute)
			if (err == nil) != c.ok {
				t.Errorf("VerifyWebhook(%s) = %v, want ok %v", c.name, err, c.ok)
			}
		})
	}
}
