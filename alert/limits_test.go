package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/facewatch/facewatch/internal/httpserve"
	"github.com/facewatch/facewatch/internal/natsbus"
)

// liveStatus opens the live feed and returns its status (and the body of a
// refusal); the feed stays open until the returned function is called.
func liveStatus(t *testing.T, url, tok string) (int, string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/api/v1/live", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /api/v1/live: %v", err)
	}
	var body string
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		body = string(b) + " Retry-After: " + resp.Header.Get("Retry-After")
	}
	return resp.StatusCode, body, func() { cancel(); resp.Body.Close() }
}

func TestLiveFeedClientLimits(t *testing.T) {
	cfg := testConfig()
	cfg.LiveMaxClients, cfg.LiveMaxPerToken = 3, 2
	s, err := Open(context.Background(), t.TempDir(), cfg, Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	a := mustToken(t, s, RoleOperator, "anna", time.Hour)
	b := mustToken(t, s, RoleOperator, "bert", time.Hour)

	var open []func()
	defer func() {
		for _, c := range open {
			c()
		}
	}()
	steps := []struct {
		name string
		tok  string
		want int
		// why is what a refusal's body must name.
		why string
	}{
		{"anna's first", a, 200, ""},
		{"anna's second", a, 200, ""},
		{"anna's third: over her token's share", a, http.StatusTooManyRequests, "live_max_per_token"},
		{"bert's first", b, 200, ""},
		{"bert's second: over the service's total", b, http.StatusServiceUnavailable, "live_max_clients"},
	}
	for _, st := range steps {
		code, body, closeFeed := liveStatus(t, srv.URL, st.tok)
		if code == 200 {
			open = append(open, closeFeed)
		} else {
			closeFeed()
		}
		if code != st.want {
			t.Errorf("%s: GET /api/v1/live = %d, want %d", st.name, code, st.want)
		}
		if st.why != "" && (!strings.Contains(body, st.why) || strings.HasSuffix(body, "Retry-After: ")) {
			t.Errorf("%s: refusal = %q, want it to name %s and carry Retry-After", st.name, body, st.why)
		}
	}
	// A closed feed frees its slot.
	open[0]()
	open = open[1:]
	waitFor(t, 10*time.Second, "a freed live slot", func() bool {
		code, _, closeFeed := liveStatus(t, srv.URL, b)
		if code == 200 {
			open = append(open, closeFeed)
			return true
		}
		closeFeed()
		return false
	})
	// The refusals are counted.
	_, body := do(t, srv, "GET", "/metrics", mustToken(t, s, RoleAdmin, "root", time.Hour), nil)
	for _, want := range []string{`facewatch_alert_live_clients_refused_total{code="429"} `, `facewatch_alert_live_clients_refused_total{code="503"} `} {
		if !strings.Contains(string(body), want) {
			t.Errorf("GET /metrics lacks %q", want)
		}
	}
}

// TestLiveFeedAuditedOnOpenAndClose: a feed showing many bursts writes two
// audit rows (its opening and its end, naming what it showed), not one
// synced row per burst.
func TestLiveFeedAuditedOnOpenAndClose(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, filepath.Join(dir, "js"))
	_, js := connectJS(t, ns.ClientURL())
	if err := natsbus.EnsureStreams(context.Background(), js, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	s := openService(t, filepath.Join(dir, "data"), Options{})
	runService(t, s, js)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	op := mustToken(t, s, RoleOperator, "otto", time.Hour)
	events, stop := openLive(t, srv, op, "")
	const bursts = 10
	base := time.Now().UTC()
	for i := range bursts {
		h, c := makeHit(i, base)
		publishHit(t, js, h, c)
		if got := nextEvent(t, events); got.HitID != h.ID {
			t.Fatalf("live alert %d = %s, want %s", i, got.HitID, h.ID)
		}
	}
	stop()
	type row struct{ action, detail string }
	var rows []row
	waitFor(t, 10*time.Second, "the live feed's close entry", func() bool {
		rows = rows[:0]
		rs, err := s.db.r.Query(`SELECT action, detail FROM audit WHERE actor_name = 'otto' ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		for rs.Next() {
			var r row
			rs.Scan(&r.action, &r.detail)
			rows = append(rows, r)
		}
		return len(rows) > 0 && rows[len(rows)-1].action == "live_close"
	})
	if len(rows) != 2 || rows[0].action != "live" {
		t.Fatalf("audit rows of a feed that showed %d bursts = %v, want 2 (live, live_close)", bursts, rows)
	}
	var shown struct {
		First, Last int64
		Count       int
	}
	json.Unmarshal([]byte(strings.NewReplacer("first_id", "First", "last_id", "Last", "count", "Count").Replace(rows[1].detail)), &shown)
	if shown.First != 1 || shown.Last != bursts || shown.Count != bursts {
		t.Errorf("live_close detail = %s, want alerts 1..%d, %d shown", rows[1].detail, bursts, bursts)
	}
}

// TestLiveFeedOutlivesServerTimeouts: behind the API's limited server, a
// live feed outlasts the read and write timeouts that cut slow requests.
func TestLiveFeedOutlivesServerTimeouts(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, filepath.Join(dir, "js"))
	_, js := connectJS(t, ns.ClientURL())
	if err := natsbus.EnsureStreams(context.Background(), js, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	s := openService(t, filepath.Join(dir, "data"), Options{})
	runService(t, s, js)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := s.HTTPLimits()
	lim.ReadTimeout, lim.WriteTimeout = time.Second, time.Second
	hs := httpserve.New(ln, s.Handler(), lim)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ctx, time.Second) }()
	defer func() { cancel(); <-served }()
	op := mustToken(t, s, RoleOperator, "otto", time.Hour)
	events, stop := openLiveURL(t, http.DefaultClient, "http://"+ln.Addr().String(), op, "")
	defer stop()
	time.Sleep(2500 * time.Millisecond) // past both timeouts
	h, c := makeHit(1, time.Now().UTC())
	publishHit(t, js, h, c)
	if got := nextEvent(t, events); got.HitID != h.ID {
		t.Errorf("live alert after the server's timeouts = %s, want %s", got.HitID, h.ID)
	}
}

// TestForgedWatchlistLabelsBounded: hits naming 10,000 made-up watchlists
// create a bounded number of series; known lists keep their own.
func TestForgedWatchlistLabelsBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	known := []string{"missing", "wanted"}
	s := openService(t, t.TempDir(), Options{Registry: reg, Watchlists: func(context.Context) ([]string, error) { return known, nil }})
	const forged = 10000
	base := time.Now().UTC()
	var batch []pendingHit
	flush := func() {
		if _, err := s.storeBatch(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := range forged {
		h, _ := makeHit(i, base)
		h.Watchlist = fmt.Sprintf("forged-%05d", i)
		batch = append(batch, pendingHit{hit: h}) // no crop: only the rows matter here
		if len(batch) == 500 {
			flush()
		}
	}
	h, c := makeHit(forged, base)
	h.Watchlist = "wanted"
	batch = append(batch, pendingHit{hit: h, crop: c})
	flush()

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "facewatch_alert_alerts_stored_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			series[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if max := len(known) + maxUnknownLabels + 1; len(series) > max {
		t.Errorf("stored_total has %d series after %d forged watchlist names, want at most %d", len(series), forged, max)
	}
	if series["wanted"] != 1 {
		t.Errorf(`stored_total{watchlist="wanted"} = %v, want 1 (a known list keeps its own series)`, series["wanted"])
	}
	var sum float64
	for _, v := range series {
		sum += v
	}
	if sum != forged+1 || series[OtherLabel] != forged-maxUnknownLabels {
		t.Errorf("stored_total sums to %v with %v under %q, want %d with %d", sum, series[OtherLabel], OtherLabel, forged+1, forged-maxUnknownLabels)
	}
}
