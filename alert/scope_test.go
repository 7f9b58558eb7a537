package alert

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/jpeg"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/facewatch/facewatch/internal/wire"
)

func TestParseScope(t *testing.T) {
	cases := []struct {
		in      string
		want    string // String() of the result; "" for an error
		wantErr string
	}{
		{"all", "all", ""},
		{" all ", "all", ""},
		{"group:north", "group:north", ""},
		{"watchlist:wanted,group:south,group:north,group:north", "group:north,group:south,watchlist:wanted", ""},
		{"", "", "scope is empty"},
		{"   ", "", "scope is empty"},
		{"north", "", "is not group:NAME"},
		{"group:", "", "is not group:NAME"},
		{"group:a.b", "", "is not group:NAME"},
		{"camera:cam-1", "", `kind "camera"`},
		{"all,group:north", "", "is not group:NAME"},
		{strings.Repeat("group:g,", 64) + "group:g", "", "exceeds 64"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			sc, err := ParseScope(c.in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Errorf("ParseScope(%q) = %v, %v, want an error saying %q", c.in, sc, err, c.wantErr)
				}
				return
			}
			if err != nil || sc.String() != c.want {
				t.Errorf("ParseScope(%q) = %q, %v, want %q", c.in, sc, err, c.want)
			}
			if back, err := ParseScope(sc.String()); err != nil || back.String() != sc.String() {
				t.Errorf("ParseScope(%q) = %q, %v, want the same scope back", sc.String(), back, err)
			}
		})
	}
}

func TestScopeOnlyForOperatorInvestigatorIntegrator(t *testing.T) {
	s := openService(t, t.TempDir(), Options{})
	north := Scope{Groups: []string{"north"}}
	for _, r := range Roles() {
		_, err := scopedToken(s, r, "x", north)
		if want := scopedRole(r); (err == nil) != want {
			t.Errorf("CreateToken(%s, scope %s) = %v, want allowed %v", r, north, err, want)
		}
	}
}

// scopeAlert is one alert of the scope fixture.
type scopeAlert struct {
	camera, watchlist, identity, name string
}

var scopeAlerts = []scopeAlert{
	{"cam-north-1", "wl-wanted-n", "id-anna", "Anna Northby"},
	{"cam-south-1", "wl-south", "id-zed", "Zed Southerly"},
	{"cam-north-2", "wl-missing-n", "id-bo", "Bo Northam"},
}

// scopeGroups is the fixture's alert.camera_groups.
var scopeGroups = map[string][]string{"north": {"cam-north-1", "cam-north-2"}, "south": {"cam-south-1"}, "empty-ish": {"cam-nowhere"}}

// scopeFixture is one service holding the scope fixture's alerts (ids 1,
// 2, 3 in the order of scopeAlerts), their crops and enrolled photos.
type scopeFixture struct {
	s      *Service
	srv    *httptest.Server
	hits   []wire.Hit
	photos []string // enrolled photo SHA-256 of each alert
	track  uint64
}

func newScopeFixture(t *testing.T) *scopeFixture {
	t.Helper()
	cfg := testConfig()
	cfg.CameraGroups = scopeGroups
	photoDir := t.TempDir()
	s, err := Open(context.Background(), t.TempDir(), cfg, Options{Registry: prometheus.NewRegistry(), PhotoDir: photoDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f := &scopeFixture{s: s}
	for i, sa := range scopeAlerts {
		img := image.NewGray(image.Rect(0, 0, 8+i, 8))
		var b bytes.Buffer
		if err := jpeg.Encode(&b, img, nil); err != nil {
			t.Fatal(err)
		}
		sum := sha(b.Bytes())
		os.MkdirAll(filepath.Join(photoDir, sum[:2]), 0o750)
		if err := os.WriteFile(filepath.Join(photoDir, sum[:2], sum+".jpg"), b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		f.photos = append(f.photos, sum)
		f.hits = append(f.hits, f.store(t, sa, sum))
	}
	f.srv = httptest.NewServer(s.Handler())
	t.Cleanup(f.srv.Close)
	return f
}

// store stores a new alert like sa and returns its hit.
func (f *scopeFixture) store(t *testing.T, sa scopeAlert, photo string) wire.Hit {
	t.Helper()
	f.track++
	h, crop := makeHit(int(f.track), time.Now().Add(-time.Hour))
	h.Camera, h.Watchlist, h.Identity, h.IdentityName, h.EnrolledPhoto = sa.camera, sa.watchlist, sa.identity, sa.name, photo
	h.ID = wire.HitID(h.Camera, h.Track, h.Identity)
	if created, err := f.s.StoreImages(context.Background(), h, wire.HitImages{Crop: crop, Scene: testJPEG(t, 32+int(f.track), 18), EnrolledChip: testJPEG(t, 10, 10+int(f.track))}); err != nil || !created {
		t.Fatalf("Store(%s) = %v, %v", h.ID, created, err)
	}
	return h
}

// scopeRequest is one call of a route.
type scopeRequest struct {
	path   string
	body   []byte
	target string // "in" or "out": one alert in or out of scope; "list": a list or aggregate; "": no alert data
	alert  int    // index into scopeAlerts for "in" and "out"
}

// requestsFor is how the test calls each route of the table; a route it
// does not know fails the test (every route needs a scope decision and a
// check here).
func requestsFor(method, pattern string, in []bool) ([]scopeRequest, bool) {
	one := func(pathf func(i int) string, body []byte) []scopeRequest {
		var out []scopeRequest
		for i := range scopeAlerts {
			target := "out"
			if in[i] {
				target = "in"
			}
			out = append(out, scopeRequest{path: pathf(i), body: body, target: target, alert: i})
		}
		return out
	}
	id := func(i int) string { return strconv.Itoa(i + 1) }
	review := []byte(`{"decision":"confirm","comment":"seen"}`)
	switch method + " " + pattern {
	case "GET /healthz", "GET /readyz", "GET /openapi.json", "GET /api/v1/whoami", "GET /console", "GET /api/v1/audit/verify", "POST /signout":
		return []scopeRequest{{path: pattern}}, true
	case "GET /metrics":
		return []scopeRequest{{path: pattern, target: "list"}}, true
	case "GET /api/v1/queue":
		return []scopeRequest{{path: pattern, target: "list"}}, true
	case "GET /api/v1/live":
		return nil, true // a stream: checked on its own below
	case "GET /api/v1/alerts":
		return []scopeRequest{{path: pattern + "?case=TEST-1", target: "list"}, {path: pattern + "?case=TEST-1&camera=cam-south-1", target: "list"}}, true
	case "GET /api/v1/alerts/export":
		return []scopeRequest{{path: pattern + "?case=TEST-1&format=json", target: "list"}, {path: pattern + "?case=TEST-1&format=csv", target: "list"}}, true
	case "GET /api/v1/stats/precision":
		return []scopeRequest{{path: pattern, target: "list"}}, true
	case "GET /api/v1/alerts/{id}":
		return one(func(i int) string { return "/api/v1/alerts/" + id(i) + "?case=TEST-1" }, nil), true
	case "GET /api/v1/alerts/{id}/crop":
		return one(func(i int) string { return "/api/v1/alerts/" + id(i) + "/crop?case=TEST-1" }, nil), true
	case "GET /api/v1/alerts/{id}/scene":
		return one(func(i int) string { return "/api/v1/alerts/" + id(i) + "/scene?case=TEST-1" }, nil), true
	case "GET /api/v1/alerts/{id}/enrolled-face":
		return one(func(i int) string { return "/api/v1/alerts/" + id(i) + "/enrolled-face?case=TEST-1" }, nil), true
	case "GET /api/v1/incidents":
		return []scopeRequest{{path: pattern + "?case=TEST-1", target: "list"}, {path: pattern + "?case=TEST-1&status=all", target: "list"}}, true
	case "GET /api/v1/incidents/{id}":
		// The fixture's alerts are three people: incidents 1, 2, 3.
		return one(func(i int) string { return "/api/v1/incidents/" + id(i) + "?case=TEST-1" }, nil), true
	case "POST /api/v1/incidents/{id}/review":
		return one(func(i int) string { return "/api/v1/incidents/" + id(i) + "/review" }, review), true
	case "GET /api/v1/alerts/{id}/evidence":
		return one(func(i int) string { return "/api/v1/alerts/" + id(i) + "/evidence?case=TEST-1" }, nil), true
	case "POST /api/v1/alerts/{id}/review":
		return one(func(i int) string { return "/api/v1/alerts/" + id(i) + "/review" }, review), true
	case "GET /api/v1/photos/{sha256}":
		return nil, true // needs the fixture's hashes: built in the test
	case "GET /{$}":
		return []scopeRequest{{path: "/"}}, true
	case "GET /investigator", "GET /curator", "GET /admin", "GET /integrator", "GET /assets/pages.js", "GET /assets/pages.css",
		"GET /api/v1/tokens", "GET /api/v1/settings/retention", "GET /api/v1/watchlists", "GET /api/v1/eval", "GET /api/v1/eval/plot":
		return []scopeRequest{{path: pattern}}, true
	case "POST /api/v1/tokens", "POST /api/v1/watchlists":
		return []scopeRequest{{path: pattern, body: []byte(`{}`)}}, true
	case "DELETE /api/v1/tokens/{id}":
		return []scopeRequest{{path: "/api/v1/tokens/000000000000"}}, true
	case "GET /api/v1/watchlists/{name}", "PATCH /api/v1/watchlists/{name}", "DELETE /api/v1/watchlists/{name}", "POST /api/v1/watchlists/{name}/photos":
		return []scopeRequest{{path: strings.Replace(pattern, "{name}", "wl-south", 1), body: []byte(`{}`)}}, true
	case "GET /api/v1/cameras":
		return []scopeRequest{{path: pattern, target: "list"}}, true
	}
	return nil, false
}

// TestScopedTokenSeesNothingOutside enumerates every route of the table
// with scoped operator, investigator and integrator tokens against alerts
// in and out of their scope: no out-of-scope alert's hit id, camera,
// watchlist or person appears in any body, one out-of-scope alert is 404
// exactly like one that does not exist, and the live feed (replay and new
// alerts) delivers in-scope alerts only. A site-wide token of the same
// role, making the same calls, does see what the scoped one must not: the
// fixture really holds it.
func TestScopedTokenSeesNothingOutside(t *testing.T) {
	rules := routeScopes()
	cases := []struct {
		scope string
		in    []bool // which of scopeAlerts the scope admits (the test's own reading of the scope)
	}{
		{"group:north", []bool{true, false, true}},
		{"watchlist:wl-wanted-n", []bool{true, false, false}},
		{"group:north,watchlist:wl-missing-n", []bool{false, false, true}},
		{"group:south,group:north,watchlist:wl-south", []bool{false, true, false}},
		{"group:empty-ish", []bool{false, false, false}},
	}
	for _, c := range cases {
		for _, role := range []Role{RoleOperator, RoleInvestigator, RoleIntegrator} {
			t.Run(c.scope+"/"+string(role), func(t *testing.T) {
				f := newScopeFixture(t)
				sc, err := ParseScope(c.scope)
				if err != nil {
					t.Fatal(err)
				}
				tok, err := scopedToken(f.s, role, "scoped tester", sc)
				if err != nil {
					t.Fatal(err)
				}
				wide := mustToken(t, f.s, role, "site-wide tester", time.Hour)
				var forbidden, allowed []string
				for i, sa := range scopeAlerts {
					strs := []string{f.hits[i].ID, sa.camera, sa.watchlist, sa.identity, sa.name, f.photos[i]}
					if c.in[i] {
						allowed = append(allowed, strs...)
					} else {
						forbidden = append(forbidden, strs...)
					}
				}
				leaks := func(body []byte) []string {
					body = expandBundle(body)
					var out []string
					for _, s := range forbidden {
						if bytes.Contains(body, []byte(s)) {
							out = append(out, s)
						}
					}
					return out
				}
				for _, rt := range f.s.routes {
					key := rt.Method + " " + rt.Pattern
					controlled := false // the site-wide token saw something the scoped one must not
					shown := false      // a list showed something in scope
					if _, ok := rules[key]; !ok {
						t.Errorf("route %s has no scope decision in routeScopes", key)
					}
					reqs, ok := requestsFor(rt.Method, rt.Pattern, c.in)
					if !ok {
						t.Errorf("route %s is not exercised by TestScopedTokenSeesNothingOutside: add it to requestsFor", key)
						continue
					}
					if rt.Pattern == "/api/v1/photos/{sha256}" {
						for i := range scopeAlerts {
							target := "out"
							if c.in[i] {
								target = "in"
							}
							reqs = append(reqs, scopeRequest{path: "/api/v1/photos/" + f.photos[i] + "?case=TEST-1", target: target, alert: i})
						}
					}
					mayCall := slices.Contains(rt.Roles, role)
					for _, rq := range reqs {
						resp, body := do(t, f.srv, rt.Method, rq.path, tok, rq.body)
						body = expandBundle(body)
						if l := leaks(body); len(l) > 0 {
							t.Errorf("%s %s as scoped %s = %d, body names out-of-scope %q: %.300s", rt.Method, rq.path, role, resp.StatusCode, l, body)
						}
						if !mayCall {
							if resp.StatusCode != http.StatusForbidden {
								t.Errorf("%s %s as %s = %d, want 403 (role may not call it)", rt.Method, rq.path, role, resp.StatusCode)
							}
							continue
						}
						switch rq.target {
						case "in", "list":
							if resp.StatusCode != http.StatusOK {
								t.Errorf("%s %s as scoped %s = %d %.200s, want 200", rt.Method, rq.path, role, resp.StatusCode, body)
							}
						case "out":
							// Exactly what an alert (or photo) that never existed gives.
							ghost := strings.Replace(rq.path, "/"+strconv.Itoa(rq.alert+1)+"/", "/999/", 1)
							ghost = strings.Replace(ghost, "/"+strconv.Itoa(rq.alert+1)+"?", "/999?", 1)
							ghost = strings.Replace(ghost, f.photos[rq.alert], strings.Repeat("e", 64), 1)
							gresp, gbody := do(t, f.srv, rt.Method, ghost, tok, rq.body)
							want := strings.ReplaceAll(string(gbody), "999", strconv.Itoa(rq.alert+1))
							if resp.StatusCode != http.StatusNotFound || gresp.StatusCode != http.StatusNotFound || string(body) != want {
								t.Errorf("%s %s as scoped %s = %d %q, want 404 %q like a missing one (%s = %d)", rt.Method, rq.path, role, resp.StatusCode, body, want, ghost, gresp.StatusCode)
							}
							// A refused review changed nothing.
							var st string
							if err := f.s.db.r.QueryRow(`SELECT status FROM alerts WHERE id = ?`, rq.alert+1).Scan(&st); rt.Method == http.MethodPost && (err != nil || st != string(StatusPending)) {
								t.Errorf("out-of-scope alert %d has status %q (%v) after %s %s as scoped %s, want pending", rq.alert+1, st, err, rt.Method, rq.path, role)
							}
						}
						for _, a := range allowed {
							shown = shown || (rq.target == "list" && bytes.Contains(body, []byte(a)))
						}
						if rq.target == "in" || rq.target == "list" {
							// In-scope data is really shown (JSON bodies name it).
							if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && rq.target == "in" && !bytes.Contains(body, []byte(f.hits[rq.alert].ID)) {
								t.Errorf("%s %s as scoped %s does not show the in-scope alert %s: %.300s", rt.Method, rq.path, role, f.hits[rq.alert].ID, body)
							}
						}
						if rq.target == "out" || rq.target == "list" {
							// Control: the site-wide token of the role sees
							// what the scoped one must not.
							wresp, wbody := do(t, f.srv, rt.Method, rq.path, wide, rq.body)
							controlled = controlled || len(leaks(wbody)) > 0 || (rq.target == "out" && wresp.StatusCode == http.StatusOK)
						}
					}
					if rt.Method == http.MethodPost {
						// The reviews this route made (the control's too)
						// would turn the next review route's calls into 409s.
						if _, err := f.s.db.w.Exec(`DELETE FROM reviews`); err != nil {
							t.Fatal(err)
						}
						if _, err := f.s.db.w.Exec(`UPDATE alerts SET status = 'pending'`); err != nil {
							t.Fatal(err)
						}
					}
					// The live feed is checked on its own; metrics and camera
					// health show nothing to a watchlist scope (a camera serves
					// every watchlist), so they may rightly show nothing here.
					if mayCall && len(allowed) > 0 && rules[key] == scopeFiltered && rt.Pattern != "/api/v1/live" && rt.Pattern != "/metrics" && rt.Pattern != "/api/v1/cameras" && !shown {
						t.Errorf("%s as scoped %s shows nothing of its scope: the scope over-filters", key, role)
					}
					if mayCall && len(forbidden) > 0 && (rules[key] == scopeItem || rules[key] == scopeFiltered) && rt.Pattern != "/api/v1/live" && !controlled {
						t.Errorf("control: %s as a site-wide %s shows nothing the scope excludes; the fixture does not exercise the route", key, role)
					}
				}
				if role == RoleOperator {
					checkScopedLive(t, f, tok, c.in, leaks)
				}
			})
		}
	}
}

// checkScopedLive opens the live feed resuming after alert 1 (the replay
// holds alerts 2 and 3), then stores a new alert like each fixture alert:
// the feed delivers exactly the in-scope ones, in order.
func checkScopedLive(t *testing.T, f *scopeFixture, tok string, in []bool, leaks func([]byte) []string) {
	t.Helper()
	ch, stop := openLive(t, f.srv, tok, "1")
	defer stop()
	var want []string
	for i := 1; i < len(scopeAlerts); i++ {
		if in[i] {
			want = append(want, f.hits[i].ID)
		}
	}
	for i, sa := range scopeAlerts {
		h := f.store(t, sa, f.photos[i])
		if in[i] {
			want = append(want, h.ID)
		}
	}
	// A last in-scope-for-nobody marker is not possible with a feed that
	// filters, so wait for the wanted ones and then for quiet.
	var got []string
	deadline := time.After(10 * time.Second)
	for len(got) < len(want) {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("live feed closed after %v, want %v", got, want)
			}
			if l := leaks([]byte(ev.data)); len(l) > 0 {
				t.Errorf("live event %s names out-of-scope %q", ev.id, l)
			}
			var a Alert
			if err := json.Unmarshal([]byte(ev.data), &a); err != nil {
				t.Fatalf("live event %q: %v", ev.data, err)
			}
			got = append(got, a.HitID)
		case <-deadline:
			t.Fatalf("live feed delivered %v within 10s, want %v", got, want)
		}
	}
	select {
	case ev := <-ch:
		t.Errorf("live feed delivered %s after every in-scope alert %v, want nothing more", ev.data, want)
	case <-time.After(300 * time.Millisecond):
	}
	if !slices.Equal(got, want) {
		t.Errorf("live feed delivered %v, want %v", got, want)
	}
}

// TestScopeGroupsFollowConfig: a token's groups are resolved against the
// configuration when it is used, and a group the configuration no longer
// declares admits nothing (a scope never widens).
func TestScopeGroupsFollowConfig(t *testing.T) {
	dir := t.TempDir()
	open := func(groups map[string][]string) (*Service, *httptest.Server) {
		cfg := testConfig()
		cfg.CameraGroups = groups
		s, err := Open(context.Background(), dir, cfg, Options{Registry: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		return s, httptest.NewServer(s.Handler())
	}
	s, srv := open(map[string][]string{"north": {"cam-0"}})
	base := time.Now().Add(-time.Hour)
	for i := range 3 { // cameras cam-0, cam-1, cam-2
		h, crop := makeHit(i, base)
		if _, err := s.Store(context.Background(), h, crop); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := scopedToken(s, RoleOperator, "otto", Scope{Groups: []string{"north"}})
	if err != nil {
		t.Fatal(err)
	}
	queue := func(srv *httptest.Server) []string {
		resp, body := do(t, srv, "GET", "/api/v1/queue", tok, nil)
		var p page
		if resp.StatusCode != 200 || json.Unmarshal(body, &p) != nil {
			t.Fatalf("GET /api/v1/queue = %d %s", resp.StatusCode, body)
		}
		var cams []string
		for _, a := range p.Alerts {
			cams = append(cams, a.Camera)
		}
		slices.Sort(cams)
		return cams
	}
	steps := []struct {
		name   string
		groups map[string][]string
		want   []string
	}{
		{"north is cam-0", nil, []string{"cam-0"}},
		{"north grows", map[string][]string{"north": {"cam-0", "cam-2"}}, []string{"cam-0", "cam-2"}},
		{"north removed", map[string][]string{"south": {"cam-0", "cam-1", "cam-2"}}, nil},
	}
	for _, st := range steps {
		if st.groups != nil {
			srv.Close()
			s.Close()
			s, srv = open(st.groups)
		}
		if got := queue(srv); !slices.Equal(got, st.want) {
			t.Errorf("%s: queue cameras = %v, want %v", st.name, got, st.want)
		}
	}
	srv.Close()
	s.Close()
}

// TestScopedMetrics: a watchlist-scoped integrator sees the per-watchlist
// series of its watchlists only; a group-scoped one sees none (a count by
// watchlist mixes cameras).
func TestScopedMetrics(t *testing.T) {
	f := newScopeFixture(t)
	cases := []struct {
		scope      string
		want, hide []string
	}{
		{"watchlist:wl-south", []string{`watchlist="wl-south"`}, []string{`watchlist="wl-wanted-n"`, `watchlist="wl-missing-n"`}},
		{"group:north", nil, []string{`watchlist="wl-south"`, `watchlist="wl-wanted-n"`, `watchlist="wl-missing-n"`}},
		{"all", []string{`watchlist="wl-south"`, `watchlist="wl-wanted-n"`, `watchlist="wl-missing-n"`}, nil},
	}
	for _, c := range cases {
		t.Run(c.scope, func(t *testing.T) {
			sc, _ := ParseScope(c.scope)
			tok, err := scopedToken(f.s, RoleIntegrator, "graf", sc)
			if err != nil {
				t.Fatal(err)
			}
			resp, body := do(t, f.srv, "GET", "/metrics", tok, nil)
			if resp.StatusCode != 200 || !bytes.Contains(body, []byte("facewatch_alert_live_clients ")) {
				t.Fatalf("GET /metrics as %s = %d, want 200 with the service's metrics", c.scope, resp.StatusCode)
			}
			for _, w := range c.want {
				if !bytes.Contains(body, []byte(w)) {
					t.Errorf("GET /metrics as %s lacks %s", c.scope, w)
				}
			}
			for _, h := range c.hide {
				if bytes.Contains(body, []byte(h)) {
					t.Errorf("GET /metrics as %s shows %s", c.scope, h)
				}
			}
		})
	}
}

// TestRouteWithoutScopeDecisionClosedToScopedTokens: a route the scope
// table does not know is refused to a scoped token and served to a
// site-wide one.
func TestRouteWithoutScopeDecisionClosedToScopedTokens(t *testing.T) {
	s := openService(t, t.TempDir(), Options{})
	s.routes = append(s.routes, route{"GET", "/api/v1/undecided", []Role{RoleOperator}, "test route", func(w http.ResponseWriter, r *http.Request, p principal) {
		writeJSON(w, http.StatusOK, map[string]string{"ok": "yes"})
	}})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	scoped, err := scopedToken(s, RoleOperator, "o", Scope{Watchlists: []string{"w"}})
	if err != nil {
		t.Fatal(err)
	}
	wide := mustToken(t, s, RoleOperator, "w", time.Hour)
	if resp, body := do(t, srv, "GET", "/api/v1/undecided", scoped, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET /api/v1/undecided as scoped operator = %d %s, want 403", resp.StatusCode, body)
	}
	if resp, body := do(t, srv, "GET", "/api/v1/undecided", wide, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /api/v1/undecided as site-wide operator = %d %s, want 200", resp.StatusCode, body)
	}
}

// expandBundle appends the decoded parts of an evidence bundle to body
// (they are base64 in the file), so that a scan sees what they hold.
func expandBundle(body []byte) []byte {
	var b struct {
		Parts map[string]string `json:"parts"`
	}
	if json.Unmarshal(body, &b) != nil || len(b.Parts) == 0 {
		return body
	}
	out := slices.Clone(body)
	for _, p := range b.Parts {
		if d, err := base64.StdEncoding.DecodeString(p); err == nil {
			out = append(append(out, '\n'), d...)
		}
	}
	return out
}

// scopedToken issues a token of role for person, limited to sc.
func scopedToken(s *Service, role Role, person string, sc Scope) (string, error) {
	tok, _, err := s.CreateToken(context.Background(), testAdmin, TokenSpec{Role: role, Person: person, Name: person, TTL: time.Hour, Scope: sc})
	return tok, err
}
