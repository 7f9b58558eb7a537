package alert

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/wire"
)

// sighting is one hit of the incident tests.
type sighting struct {
	camera, identity, watchlist string
	at                          time.Duration // after the test's base time
}

// storeSighting stores sg as hit number track (its track ID) and returns
// its alert id.
func storeSighting(t *testing.T, s *Service, track int, sg sighting, base time.Time, scene []byte) int64 {
	t.Helper()
	h, crop := makeHit(track, base)
	h.Camera, h.Identity, h.Watchlist, h.Time = sg.camera, sg.identity, sg.watchlist, base.Add(sg.at)
	h.IdentityName = "Person " + sg.identity
	h.ID = wire.HitID(h.Camera, h.Track, h.Identity)
	if created, err := s.StoreImages(context.Background(), h, wire.HitImages{Crop: crop, Scene: scene}); err != nil || !created {
		t.Fatalf("StoreImages(%s) = %v, %v; want created", h.ID, created, err)
	}
	var id int64
	if err := s.db.r.QueryRow(`SELECT id FROM alerts WHERE hit_id = ?`, h.ID).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// incidentOf returns the incident alert id belongs to.
func incidentOf(t *testing.T, s *Service, id int64) int64 {
	t.Helper()
	var inc int64
	if err := s.db.r.QueryRow(`SELECT incident_id FROM alerts WHERE id = ?`, id).Scan(&inc); err != nil {
		t.Fatal(err)
	}
	return inc
}

// getIncident fetches incident id through the API.
func getIncident(t *testing.T, srv *httptest.Server, tok string, id int64) (int, Incident, []byte) {
	t.Helper()
	resp, body := do(t, srv, "GET", "/api/v1/incidents/"+strconv.FormatInt(id, 10), tok, nil)
	var inc Incident
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &inc); err != nil {
			t.Fatalf("incident %d: %v: %s", id, err, body)
		}
	}
	return resp.StatusCode, inc, body
}

func sightingIDs(inc Incident) []int64 {
	var out []int64
	for _, a := range inc.Sightings {
		out = append(out, a.ID)
	}
	return out
}

// TestIncidentGrouping: sightings of one identity and watchlist within
// alert.incident_window of the incident's sightings are one incident, on
// one camera or across cameras; further apart, another person or another
// list, a new one. want gives each sighting a group label: equal labels,
// one incident. The API shows each incident with exactly its sightings.
func TestIncidentGrouping(t *testing.T) {
	const w = 5 * time.Minute
	tests := []struct {
		name   string
		window time.Duration
		seen   []sighting
		want   []int
	}{
		{"same camera within window", w, []sighting{{"cam-a", "p1", "wanted", 0}, {"cam-a", "p1", "wanted", 2 * time.Minute}}, []int{0, 0}},
		{"same camera outside window", w, []sighting{{"cam-a", "p1", "wanted", 0}, {"cam-a", "p1", "wanted", 6 * time.Minute}}, []int{0, 1}},
		{"across cameras within window", w, []sighting{{"cam-a", "p1", "wanted", 0}, {"cam-b", "p1", "wanted", 4 * time.Minute}}, []int{0, 0}},
		{"across cameras outside window", w, []sighting{{"cam-a", "p1", "wanted", 0}, {"cam-b", "p1", "wanted", 5*time.Minute + time.Second}}, []int{0, 1}},
		{"a chain, each within the window of the last", w, []sighting{{"cam-a", "p1", "wanted", 0}, {"cam-b", "p1", "wanted", 4 * time.Minute},
			{"cam-a", "p1", "wanted", 8 * time.Minute}}, []int{0, 0, 0}},
		{"another person at the same time", w, []sighting{{"cam-a", "p1", "wanted", 0}, {"cam-a", "p2", "wanted", time.Second}}, []int{0, 1}},
		{"the same person on another list", w, []sighting{{"cam-a", "p1", "wanted", 0}, {"cam-a", "p1", "missing", time.Second}}, []int{0, 1}},
		{"a sighting arriving late, before the first", w, []sighting{{"cam-a", "p1", "wanted", 3 * time.Minute}, {"cam-b", "p1", "wanted", 0}}, []int{0, 0}},
		{"grouping off", 0, []sighting{{"cam-a", "p1", "wanted", 0}, {"cam-a", "p1", "wanted", time.Second}}, []int{0, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.IncidentWindow = tc.window
			s := openServiceCfg(t, t.TempDir(), cfg, Options{})
			srv := httptest.NewServer(s.Handler())
			defer srv.Close()
			op := mustToken(t, s, RoleOperator, "olga", time.Hour)
			base := time.Now().Add(-time.Hour).UTC()
			var ids, incs []int64
			for i, sg := range tc.seen {
				id := storeSighting(t, s, i+1, sg, base, nil)
				ids = append(ids, id)
				incs = append(incs, incidentOf(t, s, id))
			}
			for i := range tc.seen {
				for j := range i {
					if same, want := incs[i] == incs[j], tc.want[i] == tc.want[j]; same != want {
						t.Errorf("sightings %d and %d in one incident = %v, want %v (incidents %v)", j, i, same, want, incs)
					}
				}
			}
			for i := range tc.seen {
				var want []int64
				var cams []string
				for j := range tc.seen {
					if tc.want[j] == tc.want[i] {
						want = append(want, ids[j])
						if !slices.Contains(cams, tc.seen[j].camera) {
							cams = append(cams, tc.seen[j].camera)
						}
					}
				}
				code, inc, body := getIncident(t, srv, op, incs[i])
				got := sightingIDs(inc)
				slices.Sort(got)
				slices.Sort(cams)
				slices.Sort(inc.Cameras)
				if code != http.StatusOK || !slices.Equal(got, want) || !slices.Equal(inc.Cameras, cams) || inc.Open != len(want) || inc.Status != StatusPending {
					t.Errorf("GET incident %d = %d, sightings %v, cameras %v, open %d, status %s; want 200, %v, %v, %d, pending: %.300s",
						incs[i], code, got, inc.Cameras, inc.Open, inc.Status, want, cams, len(want), body)
				}
			}
		})
	}
}

// TestIncidentBestAndTimes: the incident shows the closest sighting as
// its best, first and last times over its sightings.
func TestIncidentBestAndTimes(t *testing.T) {
	s := openService(t, t.TempDir(), Options{})
	base := time.Now().Add(-time.Hour).UTC()
	var ids []int64
	for i, d := range []float64{0.41, 0.33, 0.38} {
		h, crop := makeHit(i+1, base)
		h.Camera, h.Identity, h.Watchlist, h.Distance = []string{"cam-a", "cam-b", "cam-a"}[i], "p1", "wanted", d
		h.Time = base.Add(time.Duration(i) * time.Minute)
		h.ID = wire.HitID(h.Camera, h.Track, h.Identity)
		if _, err := s.Store(context.Background(), h, crop); err != nil {
			t.Fatal(err)
		}
		var id int64
		s.db.r.QueryRow(`SELECT id FROM alerts WHERE hit_id = ?`, h.ID).Scan(&id)
		ids = append(ids, id)
	}
	inc, err := loadIncident(context.Background(), s.db.r, incidentOf(t, s, ids[0]), incidentView{})
	if err != nil {
		t.Fatal(err)
	}
	if inc.Best != ids[1] || !inc.First.Equal(base) || !inc.Last.Equal(base.Add(2*time.Minute)) || len(inc.Sightings) != 3 {
		t.Errorf("incident best %d, first %v, last %v, %d sightings; want best %d (distance 0.33), %v, %v, 3",
			inc.Best, inc.First, inc.Last, len(inc.Sightings), ids[1], base, base.Add(2*time.Minute))
	}
}

// TestIncidentScopeNeverLeaks: one person seen in the north and in the
// south within the window is one incident; a north operator sees it with
// its north sighting only (no south camera, hit or time anywhere in the
// answer), reviews only that one, and a scope that admits none of its
// sightings gets 404 exactly as for an incident that never existed.
func TestIncidentScopeNeverLeaks(t *testing.T) {
	cfg := testConfig()
	cfg.CameraGroups = scopeGroups
	s := openServiceCfg(t, t.TempDir(), cfg, Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	base := time.Now().Add(-time.Hour).UTC()
	north := storeSighting(t, s, 1, sighting{"cam-north-1", "p1", "wanted", 0}, base, nil)
	south := storeSighting(t, s, 2, sighting{"cam-south-1", "p1", "wanted", time.Minute}, base, nil)
	inc := incidentOf(t, s, north)
	if got := incidentOf(t, s, south); got != inc {
		t.Fatalf("north and south sightings in incidents %d and %d, want one", inc, got)
	}
	var southHit string
	s.db.r.QueryRow(`SELECT hit_id FROM alerts WHERE id = ?`, south).Scan(&southHit)
	southTime := base.Add(time.Minute).Format(time.RFC3339Nano)
	tok := func(scope string) string {
		sc, err := ParseScope(scope)
		if err != nil {
			t.Fatal(err)
		}
		tk, err := scopedToken(s, RoleOperator, "op "+strings.ReplaceAll(scope, ":", " "), sc)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	northTok, emptyTok := tok("group:north"), tok("group:empty-ish")
	wide := mustToken(t, s, RoleOperator, "wide", time.Hour)

	for _, path := range []string{"/api/v1/incidents", "/api/v1/incidents?status=all", "/api/v1/incidents/" + strconv.FormatInt(inc, 10)} {
		resp, body := do(t, srv, "GET", path, northTok, nil)
		for _, leak := range []string{"cam-south-1", southHit, southTime, `"id": ` + strconv.FormatInt(south, 10) + ","} {
			if bytes.Contains(body, []byte(leak)) {
				t.Errorf("GET %s as north = %d, names the south sighting (%q): %.400s", path, resp.StatusCode, leak, body)
			}
		}
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("cam-north-1")) {
			t.Errorf("GET %s as north = %d, want 200 with the north sighting: %.300s", path, resp.StatusCode, body)
		}
		// Control: the site-wide operator sees the south sighting there.
		if _, wbody := do(t, srv, "GET", path, wide, nil); !bytes.Contains(wbody, []byte("cam-south-1")) {
			t.Errorf("control: GET %s site-wide does not show the south sighting: %.300s", path, wbody)
		}
	}
	_, ni, _ := getIncident(t, srv, northTok, inc)
	if !slices.Equal(sightingIDs(ni), []int64{north}) || !slices.Equal(ni.Cameras, []string{"cam-north-1"}) || !ni.Last.Equal(base) {
		t.Errorf("north view: sightings %v, cameras %v, last %v; want [%d], [cam-north-1], %v", sightingIDs(ni), ni.Cameras, ni.Last, north, base)
	}

	// Out of scope entirely: like an incident that never existed.
	resp, body := do(t, srv, "GET", "/api/v1/incidents/"+strconv.FormatInt(inc, 10), emptyTok, nil)
	gresp, gbody := do(t, srv, "GET", "/api/v1/incidents/9999", emptyTok, nil)
	if want := strings.ReplaceAll(string(gbody), "9999", strconv.FormatInt(inc, 10)); resp.StatusCode != http.StatusNotFound || gresp.StatusCode != http.StatusNotFound || string(body) != want {
		t.Errorf("GET incident %d out of scope = %d %s, want 404 %s like a missing one", inc, resp.StatusCode, body, want)
	}
	review := []byte(`{"decision":"confirm","comment":"north camera shows him"}`)
	if resp, body := do(t, srv, "POST", "/api/v1/incidents/"+strconv.FormatInt(inc, 10)+"/review", emptyTok, review); resp.StatusCode != http.StatusNotFound {
		t.Errorf("review of an out-of-scope incident = %d %s, want 404", resp.StatusCode, body)
	}

	// The north review decides the north sighting only.
	if resp, body := do(t, srv, "POST", "/api/v1/incidents/"+strconv.FormatInt(inc, 10)+"/review", northTok, review); resp.StatusCode != http.StatusOK || bytes.Contains(body, []byte("cam-south-1")) {
		t.Fatalf("review as north = %d %.300s, want 200 without the south sighting", resp.StatusCode, body)
	}
	for id, want := range map[int64]Status{north: StatusConfirmed, south: StatusPending} {
		var st string
		s.db.r.QueryRow(`SELECT status FROM alerts WHERE id = ?`, id).Scan(&st)
		if Status(st) != want {
			t.Errorf("after the north review, alert %d is %s, want %s", id, st, want)
		}
	}
}

// TestIncidentReviewPerSighting: reviewing an incident reviews each of its
// open sightings the reviewer saw, one review row and one audit entry per
// sighting naming the incident; a sighting arrived since waits; the
// two-person rule holds per sighting, the first reviewer's second try is
// refused saying who reviewed first, and another person completes it.
func TestIncidentReviewPerSighting(t *testing.T) {
	s := openService(t, t.TempDir(), Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	base := time.Now().Add(-time.Hour).UTC()
	store := func(track int, at time.Duration, second bool) int64 {
		h, crop := makeHit(track, base)
		h.Camera, h.Identity, h.Watchlist, h.Time, h.SecondReviewer = "cam-a", "p1", "wanted", base.Add(at), second
		h.ID = wire.HitID(h.Camera, h.Track, h.Identity)
		if _, err := s.Store(context.Background(), h, crop); err != nil {
			t.Fatal(err)
		}
		var id int64
		s.db.r.QueryRow(`SELECT id FROM alerts WHERE hit_id = ?`, h.ID).Scan(&id)
		return id
	}
	a1, a2, a3 := store(1, 0, true), store(2, time.Minute, true), store(3, 2*time.Minute, true)
	inc := incidentOf(t, s, a1)
	ana := mustPersonToken(t, s, RoleOperator, "Ana Silva", "desk", time.Hour)
	anaPhone := mustPersonToken(t, s, RoleOperator, "ana  silva", "phone", time.Hour)
	bo := mustPersonToken(t, s, RoleOperator, "Bo Lund", "desk", time.Hour)
	path := "/api/v1/incidents/" + strconv.FormatInt(inc, 10) + "/review"
	body := func(decision string, ids ...int64) []byte {
		b, _ := json.Marshal(map[string]any{"decision": decision, "comment": "it is him", "sightings": ids})
		return b
	}
	var seq0 int64
	s.db.r.QueryRow(`SELECT COALESCE(MAX(seq), 0) FROM audit`).Scan(&seq0)

	// Ana saw a1 and a2 only (a3 arrived after her page showed the card).
	resp, rb := do(t, srv, "POST", path, ana, body("confirm", a1, a2))
	var got Incident
	json.Unmarshal(rb, &got)
	if resp.StatusCode != http.StatusOK || got.Status != StatusPending || got.Open != 3 {
		t.Fatalf("first review = %d, status %s, open %d; want 200, pending (a3 untouched), 3 open: %s", resp.StatusCode, got.Status, got.Open, rb)
	}
	statuses := func() []Status {
		var out []Status
		for _, id := range []int64{a1, a2, a3} {
			var st string
			s.db.r.QueryRow(`SELECT status FROM alerts WHERE id = ?`, id).Scan(&st)
			out = append(out, Status(st))
		}
		return out
	}
	if got, want := statuses(), []Status{StatusAwaitingSecond, StatusAwaitingSecond, StatusPending}; !slices.Equal(got, want) {
		t.Errorf("after Ana's review statuses = %v, want %v", got, want)
	}
	// Audited per sighting, each naming the incident.
	rows, err := s.db.r.Query(`SELECT target, detail FROM audit WHERE action = 'review' AND seq > ? ORDER BY seq`, seq0)
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for rows.Next() {
		var target, detail string
		rows.Scan(&target, &detail)
		targets = append(targets, target)
		var d map[string]any
		if json.Unmarshal([]byte(detail), &d) != nil || d["incident"] != float64(inc) || d["decision"] != "confirm" {
			t.Errorf("audit entry of %s = %s, want decision confirm and incident %d", target, detail, inc)
		}
	}
	rows.Close()
	if want := []string{fmt.Sprintf("alert/%d", a1), fmt.Sprintf("alert/%d", a2)}; !slices.Equal(targets, want) {
		t.Errorf("review audit targets = %v, want %v", targets, want)
	}

	// Ana (another token of hers) again: a3 is hers to review first; a1
	// and a2 wait for someone else.
	if resp, rb := do(t, srv, "POST", path, anaPhone, body("confirm", a1, a2, a3)); resp.StatusCode != http.StatusOK {
		t.Fatalf("Ana's review of the new sighting = %d %s, want 200", resp.StatusCode, rb)
	}
	if got, want := statuses(), []Status{StatusAwaitingSecond, StatusAwaitingSecond, StatusAwaitingSecond}; !slices.Equal(got, want) {
		t.Errorf("after Ana's second review statuses = %v, want %v", got, want)
	}
	resp, rb = do(t, srv, "POST", path, ana, body("confirm"))
	if resp.StatusCode != http.StatusConflict || !bytes.Contains(bytes.ToLower(rb), []byte("silva reviewed it first")) || !bytes.Contains(rb, []byte("different person")) {
		t.Errorf("Ana reviewing her own incident again = %d %s, want 409 saying she reviewed first", resp.StatusCode, rb)
	}
	// The second reviewer sees who reviewed first.
	_, seen, _ := getIncident(t, srv, bo, inc)
	for _, a := range seen.Sightings {
		if len(a.Reviews) != 1 || !samePerson(a.Reviews[0].ReviewerName, "Ana Silva") {
			t.Errorf("Bo's view of sighting %d: reviews %+v, want Ana Silva's first review", a.ID, a.Reviews)
		}
	}
	resp, rb = do(t, srv, "POST", path, bo, body("confirm"))
	json.Unmarshal(rb, &got)
	if resp.StatusCode != http.StatusOK || got.Status != StatusConfirmed || got.Open != 0 {
		t.Errorf("Bo's review = %d, status %s, open %d; want 200, confirmed, 0: %s", resp.StatusCode, got.Status, got.Open, rb)
	}
	resp, rb = do(t, srv, "POST", path, bo, body("dismiss"))
	if resp.StatusCode != http.StatusConflict || !bytes.Contains(rb, []byte("no sighting of this incident awaits review")) {
		t.Errorf("review of a decided incident = %d %s, want 409 saying nothing awaits review", resp.StatusCode, rb)
	}
	var n int
	s.db.r.QueryRow(`SELECT COUNT(*) FROM audit WHERE action = 'review' AND seq > ?`, seq0).Scan(&n)
	if n != 6 {
		t.Errorf("review audit entries = %d, want 6 (three sightings, two reviews each)", n)
	}
}

// TestIncidentSurvivesRestart: incidents and their reviews are in the
// database: after a restart a new sighting within the window joins the
// incident opened before, and the earlier review is still there.
func TestIncidentSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	base := time.Now().Add(-time.Hour).UTC()
	s := openServiceCfg(t, dir, cfg, Options{})
	first := storeSighting(t, s, 1, sighting{"cam-a", "p1", "wanted", 0}, base, nil)
	inc := incidentOf(t, s, first)
	if _, err := s.recordIncidentReview(context.Background(), principal{ID: "tok1", Person: "Ana", Role: RoleOperator}, inc, "confirm", "him", "", nil); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openServiceCfg(t, dir, cfg, Options{})
	second := storeSighting(t, s, 2, sighting{"cam-b", "p1", "wanted", 3 * time.Minute}, base, nil)
	if got := incidentOf(t, s, second); got != inc {
		t.Errorf("sighting after restart is in incident %d, want %d (opened before the restart)", got, inc)
	}
	got, err := loadIncident(context.Background(), s.db.r, inc, incidentView{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Sightings) != 2 || got.Sightings[0].Status != StatusConfirmed || len(got.Sightings[0].Reviews) != 1 || got.Status != StatusPending {
		t.Errorf("after restart: %d sightings, first %s with %d reviews, incident %s; want 2, confirmed with 1, pending (the new one)",
			len(got.Sightings), got.Sightings[0].Status, len(got.Sightings[0].Reviews), got.Status)
	}
}

// TestIncidentRetention: the sweep removes sightings with their scene
// files; an incident goes with its last sighting, keeps its remaining
// ones otherwise, and incident ids are never reused.
func TestIncidentRetention(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	cfg.Retention = time.Hour
	cfg.IncidentWindow = time.Hour
	clk := &clock{t: time.Now().UTC()}
	s := openServiceCfg(t, dir, cfg, Options{Now: clk.now})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	op := mustToken(t, s, RoleOperator, "olga", 48*time.Hour)
	scene := testJPEG(t, 64, 36)
	old := storeSighting(t, s, 1, sighting{"cam-a", "p1", "wanted", 0}, clk.now(), scene)
	inc := incidentOf(t, s, old)
	resp, got := do(t, srv, "GET", fmt.Sprintf("/api/v1/alerts/%d/scene", old), op, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, scene) {
		t.Fatalf("GET scene = %d, %d bytes; want 200 and the %d bytes stored", resp.StatusCode, len(got), len(scene))
	}
	sceneFile := filepath.Join(cropDir(dir), sha(scene)+".jpg")
	if _, err := os.Stat(sceneFile); err != nil {
		t.Fatalf("scene file: %v", err)
	}
	clk.add(50 * time.Minute)
	young := storeSighting(t, s, 2, sighting{"cam-b", "p1", "wanted", 0}, clk.now(), nil)
	if incidentOf(t, s, young) != inc {
		t.Fatalf("second sighting not in incident %d", inc)
	}
	clk.add(20 * time.Minute) // old is past retention, young is not
	if n, err := s.Sweep(context.Background()); err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1", n, err)
	}
	if _, err := os.Stat(sceneFile); !os.IsNotExist(err) {
		t.Errorf("scene file of the swept alert: stat = %v, want gone", err)
	}
	if got, err := loadIncident(context.Background(), s.db.r, inc, incidentView{}); err != nil || !slices.Equal(sightingIDs(got), []int64{young}) {
		t.Errorf("incident after the first sweep = %v, %v; want only sighting %d", sightingIDs(got), err, young)
	}
	clk.add(2 * time.Hour)
	if n, err := s.Sweep(context.Background()); err != nil || n != 1 {
		t.Fatalf("second Sweep = %d, %v; want 1", n, err)
	}
	var left int
	s.db.r.QueryRow(`SELECT COUNT(*) FROM incidents`).Scan(&left)
	if left != 0 {
		t.Errorf("incidents left after every sighting was swept = %d, want 0", left)
	}
	next := storeSighting(t, s, 3, sighting{"cam-a", "p1", "wanted", 0}, clk.now(), nil)
	if got := incidentOf(t, s, next); got <= inc {
		t.Errorf("incident after the sweep = %d, want above %d (ids never reused)", got, inc)
	}
}

// TestSceneOnlyForHitsThatCarryOne: a hit without a scene has none to
// show (404), and a scene that is not a JPEG is refused while the alert is
// kept.
func TestSceneOnlyForHitsThatCarryOne(t *testing.T) {
	s := openService(t, t.TempDir(), Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	op := mustToken(t, s, RoleOperator, "olga", time.Hour)
	base := time.Now().UTC()
	tests := []struct {
		name  string
		scene []byte
		want  int
	}{
		{"no scene", nil, http.StatusNotFound},
		{"not a JPEG", []byte("GIF89a not a jpeg"), http.StatusNotFound},
		{"a JPEG", testJPEG(t, 40, 20), http.StatusOK},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := storeSighting(t, s, i+1, sighting{"cam-a", fmt.Sprintf("p%d", i), "wanted", 0}, base, tc.scene)
			resp, body := do(t, srv, "GET", fmt.Sprintf("/api/v1/alerts/%d/scene", id), op, nil)
			if resp.StatusCode != tc.want || (tc.want == http.StatusOK && !bytes.Equal(body, tc.scene)) {
				t.Errorf("GET scene of %s = %d (%d bytes), want %d", tc.name, resp.StatusCode, len(body), tc.want)
			}
		})
	}
}

// TestMigrationGroupsOldAlerts: a database from before incidents (schema
// version 5) is migrated with each alert an incident of its own, numbered
// as the alert; a new sighting of the same person within the window joins
// that incident, and a new incident is numbered above every old one.
func TestMigrationGroupsOldAlerts(t *testing.T) {
	dir := t.TempDir()
	path := DBPath(dir)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	w, err := sql.Open("sqlite3", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_ns INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	const before = 5 // the last migration before incidents
	for v := 1; v <= before; v++ {
		if _, err := w.Exec(migrations[v-1]); err != nil {
			t.Fatalf("migration %d: %v", v, err)
		}
		w.Exec(`INSERT INTO schema_migrations (version, applied_ns) VALUES (?, 0)`, v)
	}
	base := time.Now().Add(-time.Hour).UTC()
	for i, who := range []string{"p1", "p2"} {
		id := int64(7 + i*5) // 7 and 12: ids with gaps, as after a sweep
		if _, err := w.Exec(`INSERT INTO alerts (id, hit_id, camera, track, time_ns, stored_ns, watchlist, watchlist_kind, priority, second_reviewer,
			identity, identity_name, distance, threshold, second_distance, model_name, model_sha256, crop_sha256, enrolled_photo, extra)
			VALUES (?, ?, 'cam-a', ?, ?, ?, 'wanted', 'wanted', 1, 0, ?, ?, 0.3, 0.5, 0.7, 'm', ?, '', '', '{}')`,
			id, wire.HitID("cam-a", uint64(id), who), id, base.UnixNano(), base.UnixNano(), who, "Person "+who, strings.Repeat("ab", 32)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()

	s := openService(t, dir, Options{})
	for _, id := range []int64{7, 12} {
		if got := incidentOf(t, s, id); got != id {
			t.Errorf("old alert %d is in incident %d after the migration, want %d", id, got, id)
		}
	}
	joined := storeSighting(t, s, 40, sighting{"cam-b", "p2", "wanted", 2 * time.Minute}, base, nil)
	if got := incidentOf(t, s, joined); got != 12 {
		t.Errorf("new sighting of p2 is in incident %d, want 12 (the old alert's)", got)
	}
	fresh := storeSighting(t, s, 41, sighting{"cam-b", "p3", "wanted", 0}, base, nil)
	if got := incidentOf(t, s, fresh); got <= 12 {
		t.Errorf("a new person's incident = %d, want above every old one (12)", got)
	}
}

// TestIncidentOperatorWindow: an operator sees an incident's open
// sightings and the decided ones stored in the last 24 h; an older decided
// sighting of it is history, shown to an investigator with a case
// reference only.
func TestIncidentOperatorWindow(t *testing.T) {
	clk := &clock{t: time.Now().UTC()}
	cfg := testConfig()
	cfg.IncidentWindow = 24 * time.Hour
	s := openServiceCfg(t, t.TempDir(), cfg, Options{Now: clk.now})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	op := mustToken(t, s, RoleOperator, "olga", 72*time.Hour)
	inv := mustToken(t, s, RoleInvestigator, "ivy", 72*time.Hour)
	base := clk.now().Add(-time.Minute)
	old := storeSighting(t, s, 1, sighting{"cam-a", "p1", "wanted", 0}, base, nil)
	inc := incidentOf(t, s, old)
	if _, err := s.recordIncidentReview(context.Background(), principal{ID: "t", Person: "Ana", Role: RoleOperator}, inc, "confirm", "him", "", nil); err != nil {
		t.Fatal(err)
	}
	clk.add(25 * time.Hour)
	recent := storeSighting(t, s, 2, sighting{"cam-b", "p1", "wanted", 2 * time.Hour}, base, nil)
	if incidentOf(t, s, recent) != inc {
		t.Fatalf("second sighting not in incident %d", inc)
	}
	tests := []struct {
		name, tok, query string
		want             []int64
	}{
		{"operator", op, "", []int64{recent}},
		{"investigator with a case", inv, "?case=2026/0147", []int64{old, recent}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, srv, "GET", fmt.Sprintf("/api/v1/incidents/%d%s", inc, tc.query), tc.tok, nil)
			var got Incident
			json.Unmarshal(body, &got)
			if resp.StatusCode != http.StatusOK || !slices.Equal(sightingIDs(got), tc.want) {
				t.Errorf("GET incident %d as %s = %d, sightings %v; want 200, %v: %.300s", inc, tc.name, resp.StatusCode, sightingIDs(got), tc.want, body)
			}
		})
	}
	if resp, _ := do(t, srv, "GET", fmt.Sprintf("/api/v1/incidents/%d", inc), inv, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("investigator without a case reference = %d, want 400", resp.StatusCode)
	}
}
