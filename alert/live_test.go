package alert

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/natsbus"
)

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	id, event, data string
}

// openLive connects to the live feed and returns a channel of its events.
func openLive(t *testing.T, srv *httptest.Server, tok, lastID string) (<-chan sseEvent, func()) {
	t.Helper()
	return openLiveURL(t, srv.Client(), srv.URL, tok, lastID)
}

// openLiveURL is openLive for a server at url.
func openLiveURL(t *testing.T, client *http.Client, url, tok, lastID string) (<-chan sseEvent, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/api/v1/live", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /api/v1/live: %v", err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		t.Fatalf("GET /api/v1/live = %d %s, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ch := make(chan sseEvent, 16)
	go func() { // ends when the body is closed by cancel
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.data != "" {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
	}()
	return ch, func() { cancel(); resp.Body.Close() }
}

func nextEvent(t *testing.T, ch <-chan sseEvent) Alert {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("live feed closed")
		}
		var a Alert
		if ev.event != "alert" || json.Unmarshal([]byte(ev.data), &a) != nil || ev.id != strconv.FormatInt(a.ID, 10) {
			t.Fatalf("live event = %+v, want an alert event whose id is the alert's", ev)
		}
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no live event within 10s")
	}
	return Alert{}
}

func TestLiveFeedDeliversStoredAlert(t *testing.T) {
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
	waitFor(t, 10*time.Second, "readyz", func() bool {
		resp, _ := do(t, srv, "GET", "/readyz", op, nil)
		return resp.StatusCode == 200
	})

	events, stop := openLive(t, srv, op, "")
	base := time.Now().UTC()
	h1, c1 := makeHit(1, base)
	publishHit(t, js, h1, c1)
	a := nextEvent(t, events)
	if a.HitID != h1.ID || a.Camera != h1.Camera || a.Identity != h1.Identity || a.Distance != h1.Distance || a.CropSHA256 != sha(c1) {
		t.Errorf("live alert = %+v, want hit %s with crop %s", a, h1.ID, sha(c1))
	}
	// The crop the console shows beside it is the one received.
	resp, body := do(t, srv, "GET", "/api/v1/alerts/"+strconv.FormatInt(a.ID, 10)+"/crop", op, nil)
	if resp.StatusCode != 200 || string(body) != string(c1) || resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Errorf("GET crop of live alert = %d %q, want the probe crop", resp.StatusCode, body)
	}
	stop()

	// Alerts stored while disconnected are replayed on reconnect with
	// Last-Event-ID, in order, without the one already seen.
	h2, c2 := makeHit(2, base)
	h3, c3 := makeHit(3, base)
	publishHit(t, js, h2, c2)
	publishHit(t, js, h3, c3)
	waitFor(t, 10*time.Second, "3 alerts stored", func() bool { return countAlerts(t, s) == 3 })
	events, stop = openLive(t, srv, op, strconv.FormatInt(a.ID, 10))
	defer stop()
	for _, want := range []string{h2.ID, h3.ID} {
		if got := nextEvent(t, events); got.HitID != want {
			t.Errorf("replayed alert = %s, want %s", got.HitID, want)
		}
	}
	// And the live part follows the replay.
	h4, c4 := makeHit(4, base)
	publishHit(t, js, h4, c4)
	if got := nextEvent(t, events); got.HitID != h4.ID {
		t.Errorf("live alert after replay = %s, want %s", got.HitID, h4.ID)
	}
	// Every alert shown on the feed was recorded as seen, by whom: each
	// feed's close entry names the alerts it showed.
	stop()
	var shown map[int64]bool
	waitFor(t, 10*time.Second, "both feeds' close entries", func() bool {
		rows, err := s.db.r.Query(`SELECT detail, actor_name FROM audit WHERE action = 'live_close'`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		shown = map[int64]bool{}
		n := 0
		for rows.Next() {
			var detail, who string
			rows.Scan(&detail, &who)
			var d struct {
				First int64 `json:"first_id"`
				Last  int64 `json:"last_id"`
			}
			json.Unmarshal([]byte(detail), &d)
			for id := d.First; id > 0 && id <= d.Last; id++ {
				shown[id] = true
			}
			if who != "otto" {
				t.Errorf("live_close audited for %q, want otto", who)
			}
			n++
		}
		return n == 2
	})
	for id := int64(1); id <= 4; id++ {
		if !shown[id] {
			t.Errorf("alert %d shown on the live feed but not audited (audited: %v)", id, shown)
		}
	}
}

func TestFeedDropsSlowSubscriber(t *testing.T) {
	f := newFeed()
	slow, cancelSlow := f.subscribe()
	defer cancelSlow()
	fast, cancelFast := f.subscribe()
	defer cancelFast()
	dropped := 0
	for i := range feedBuffer + 1 {
		dropped += f.publish(Alert{ID: int64(i + 1)})
		<-fast
	}
	if dropped != 1 {
		t.Errorf("publish of %d alerts to a subscriber that reads none dropped %d, want 1", feedBuffer+1, dropped)
	}
	n := 0
	for range slow {
		n++
	}
	if n != feedBuffer {
		t.Errorf("slow subscriber got %d alerts before its channel closed, want %d", n, feedBuffer)
	}
	f.close()
	if _, ok := <-fast; ok {
		t.Error("subscriber channel open after feed close")
	}
}

func TestLiveReplayStaysWithinOperatorWindow(t *testing.T) {
	clk := &clock{t: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)}
	s := openService(t, t.TempDir(), Options{Now: clk.now})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	op := mustToken(t, s, RoleOperator, "otto", 72*time.Hour)
	for i := range 3 {
		h, crop := makeHit(i, clk.now())
		s.Store(context.Background(), h, crop)
	}
	clk.add(OperatorWindow + time.Minute)
	// Resuming after alert 1 a day later replays nothing old...
	events, stop := openLive(t, srv, op, "1")
	defer stop()
	h, crop := makeHit(9, clk.now())
	s.Store(context.Background(), h, crop)
	// ...so the first event is the new alert, not alerts 2 and 3.
	if got := nextEvent(t, events); got.HitID != h.ID {
		t.Errorf("first event after resuming a day later = %s, want the new alert %s", got.HitID, h.ID)
	}
}
