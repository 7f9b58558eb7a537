package alert

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/natsbus"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/facewatch/facewatch/internal/config"
)

const testSecret = "a-webhook-secret-of-32-bytes-xyz"

// receiver is a webhook receiver on loopback that checks each request's
// signature (computed here independently of SignWebhook) and records
// the events it accepted, in arrival order.
type receiver struct {
	t  *testing.T
	mu sync.Mutex
	// guarded by mu:
	fail     int // answer 500 to this many more requests
	requests int
	accepted []Event
	badSig   int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ts := r.Header.Get(HeaderWebhookTimestamp)
	mac := hmac.New(sha256.New, []byte(testSecret))
	mac.Write([]byte(ts + "." + string(body)))
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	sec, err := strconv.ParseInt(ts, 10, 64)
	if r.Method != http.MethodPost || r.Header.Get(HeaderWebhookSignature) != want || err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Minute {
		rc.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if rc.fail > 0 {
		rc.fail--
		http.Error(w, "down for maintenance", http.StatusInternalServerError)
		return
	}
	var e Event
	if err := json.Unmarshal(body, &e); err != nil {
		rc.t.Errorf("webhook body %q: %v", body, err)
	}
	if got := r.Header.Get(HeaderWebhookDelivery); got != e.HitID {
		rc.t.Errorf("%s = %q, want the hit id %q", HeaderWebhookDelivery, got, e.HitID)
	}
	rc.accepted = append(rc.accepted, e)
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) events() []Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Event(nil), rc.accepted...)
}

func webhookConfig(t *testing.T, url string) config.Alert {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "webhook.secret")
	if err := os.WriteFile(secret, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Sinks.Webhook = config.Webhook{Enabled: true, URL: url, SecretFile: secret, Timeout: 2 * time.Second,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}
	return cfg
}

func openWithConfig(t *testing.T, dir string, cfg config.Alert) *Service {
	t.Helper()
	s, err := Open(context.Background(), dir, cfg, Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatalf("Open(%s) = %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestWebhookDeliversARealHit(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, filepath.Join(dir, "js"))
	_, js := connectJS(t, ns.ClientURL())
	if err := natsbus.EnsureStreams(context.Background(), js, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	rc := &receiver{t: t}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s := openWithConfig(t, filepath.Join(dir, "data"), webhookConfig(t, srv.URL+"/hook"))
	runService(t, s, js)

	h, crop := makeHit(1, time.Now().Add(-time.Second))
	publishHit(t, js, h, crop)
	waitFor(t, 10*time.Second, "the webhook delivery", func() bool { return len(rc.events()) == 1 })
	e := rc.events()[0]
	want := Event{Type: "alert", ID: 1, HitID: h.ID, Watchlist: h.Watchlist, WatchlistKind: h.WatchlistKind, Priority: h.Priority,
		Identity: h.Identity, IdentityName: h.IdentityName, Distance: h.Distance, Threshold: h.Threshold, Camera: h.Camera,
		Track: h.Track, Time: h.Time.UTC(), StoredAt: e.StoredAt, Model: testModel.Name, AlertURL: "/api/v1/alerts/1",
		CropURL: "/api/v1/alerts/1/crop", Incident: 1, IncidentURL: "/api/v1/incidents/1"}
	if e != want {
		t.Errorf("webhook event = %+v, want %+v", e, want)
	}
	if e.StoredAt.IsZero() {
		t.Error("webhook event has no stored_at")
	}
	if got := testutil.ToFloat64(s.m.sinkDelivered.WithLabelValues("webhook")); got != 1 {
		t.Errorf("delivered counter = %v, want 1", got)
	}
	if rc.badSig != 0 {
		t.Errorf("%d requests had a bad signature", rc.badSig)
	}
}

// TestWebhookReceiverDownLosesNothing stops the receiver (not listening,
// then answering 500) and restarts the alert service in between: every
// stored alert still arrives exactly once, in order, and the failed
// attempts are counted.
func TestWebhookReceiverDownLosesNothing(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, filepath.Join(dir, "js"))
	_, js := connectJS(t, ns.ClientURL())
	if err := natsbus.EnsureStreams(context.Background(), js, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	rc := &receiver{t: t}
	srv := httptest.NewServer(rc)
	addr := srv.Listener.Addr().String()
	cfg := webhookConfig(t, "http://"+addr+"/hook")
	data := filepath.Join(dir, "data")
	base := time.Now().Add(-time.Minute)

	// Up: three alerts.
	s1 := openWithConfig(t, data, cfg)
	stop1 := runService(t, s1, js)
	for i := range 3 {
		h, crop := makeHit(i, base)
		publishHit(t, js, h, crop)
	}
	waitFor(t, 10*time.Second, "3 deliveries", func() bool { return len(rc.events()) == 3 })

	// Not listening: three more are stored, not delivered.
	srv.Close()
	for i := 3; i < 6; i++ {
		h, crop := makeHit(i, base)
		publishHit(t, js, h, crop)
	}
	waitFor(t, 10*time.Second, "6 alerts stored", func() bool { return countAlerts(t, s1) == 6 })
	f0 := testutil.ToFloat64(s1.m.sinkFailures.WithLabelValues("webhook"))
	waitFor(t, 10*time.Second, "failed attempts", func() bool {
		return testutil.ToFloat64(s1.m.sinkFailures.WithLabelValues("webhook")) >= f0+2
	})
	if got := testutil.ToFloat64(s1.m.sinkBacklog.WithLabelValues("webhook")); got != 3 {
		t.Errorf("backlog with the receiver down = %v, want 3", got)
	}

	// Restart the service while the receiver is still down; two more.
	stop1()
	var saved int64
	if err := s1.db.r.QueryRow(`SELECT last_id FROM sink_cursors WHERE sink = 'webhook'`).Scan(&saved); err != nil || saved != 3 {
		t.Errorf("saved webhook cursor after the stop = %d, %v, want 3", saved, err)
	}
	s1.Close()
	s2 := openWithConfig(t, data, cfg)
	runService(t, s2, js)
	for i := 6; i < 8; i++ {
		h, crop := makeHit(i, base)
		publishHit(t, js, h, crop)
	}
	waitFor(t, 10*time.Second, "8 alerts stored", func() bool { return countAlerts(t, s2) == 8 })

	// Back on the same address, failing its first four answers.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", addr, err)
	}
	rc.mu.Lock()
	rc.fail = 4
	rc.mu.Unlock()
	srv2 := &httptest.Server{Listener: ln, Config: &http.Server{Handler: rc}}
	srv2.Start()
	defer srv2.Close()
	waitFor(t, 20*time.Second, "all 8 deliveries", func() bool { return len(rc.events()) >= 8 })
	time.Sleep(100 * time.Millisecond) // room for a wrong extra delivery
	got := rc.events()
	if len(got) != 8 {
		t.Fatalf("receiver accepted %d events, want 8 (exactly once each)", len(got))
	}
	for i, e := range got {
		if e.ID != int64(i+1) {
			t.Errorf("event %d has alert id %d, want %d (in order, once each)", i, e.ID, i+1)
		}
	}
	if f := testutil.ToFloat64(s2.m.sinkFailures.WithLabelValues("webhook")); f < 4 {
		t.Errorf("failed attempts after the restart = %v, want at least 4 (the 500s)", f)
	}
	if d := testutil.ToFloat64(s2.m.sinkDelivered.WithLabelValues("webhook")); d != 5 {
		t.Errorf("delivered after the restart = %v, want 5", d)
	}
	// The backlog gauge is set when the batch ends, after the last
	// delivery is counted: wait for it rather than read it at once.
	waitFor(t, 10*time.Second, "the backlog back to 0", func() bool {
		return testutil.ToFloat64(s2.m.sinkBacklog.WithLabelValues("webhook")) == 0
	})
	if rc.badSig != 0 {
		t.Errorf("%d requests had a bad signature", rc.badSig)
	}
}
