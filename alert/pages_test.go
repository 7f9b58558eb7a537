package alert

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/facewatch/facewatch/internal/audit"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/curate"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/wire"
	"github.com/facewatch/facewatch/match"
)

// TestOpenAPIMatchesRouter checks the OpenAPI document against the router
// both ways: every route is described with the roles the router enforces
// (x-roles), and every described operation is a route or a public
// endpoint, so that neither can drift from the other.
func TestOpenAPIMatchesRouter(t *testing.T) {
	s := openService(t, t.TempDir(), Options{})
	var doc struct {
		Paths map[string]map[string]struct {
			Roles []Role `json:"x-roles"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openAPIJSON, &doc); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	routed := map[string]route{}
	for _, rt := range s.routes {
		key := strings.ToLower(rt.Method) + " " + openAPIPath(rt.Pattern)
		routed[key] = rt
		op, ok := doc.Paths[openAPIPath(rt.Pattern)][strings.ToLower(rt.Method)]
		if !ok {
			t.Errorf("openapi.json lacks %s %s", rt.Method, rt.Pattern)
			continue
		}
		if !slices.Equal(op.Roles, rt.Roles) {
			t.Errorf("openapi.json x-roles of %s %s = %v, the router allows %v", rt.Method, rt.Pattern, op.Roles, rt.Roles)
		}
	}
	public := map[string]bool{}
	for _, pr := range publicRoutes() {
		public[strings.ToLower(pr.Method)+" "+pr.Pattern] = true
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			key := method + " " + path
			if _, ok := routed[key]; !ok && !public[key] {
				t.Errorf("openapi.json describes %s %s, which the router does not serve", strings.ToUpper(method), path)
			}
		}
	}
}

// roleCase is one row of the route × role table: a request, the roles
// (letters of rolePrincipals) that may make it, and the status each gets.
type roleCase struct {
	key    string // the route, "METHOD PATTERN"
	path   string
	body   string
	ctype  string
	roles  string // a admin, c curator, o operator, i investigator, g integrator
	status int    // for a role that may call it, site-wide
	scoped int    // for the same role scoped to camera group north
}

// roleTable is the access-control specification, written out by hand: a
// change to a route's roles or scope rule must change this table too.
// Alert 1 is on cam-1 (in group north), alert 2 on cam-2 (outside it).
var roleTable = []roleCase{
	{"GET /healthz", "/healthz", "", "", "acoig", 200, 200},
	{"GET /readyz", "/readyz", "", "", "acoig", 503, 503}, // not consuming: Run is not running
	{"GET /metrics", "/metrics", "", "", "ag", 200, 200},
	{"GET /openapi.json", "/openapi.json", "", "", "acoig", 200, 200},
	{"GET /api/v1/whoami", "/api/v1/whoami", "", "", "acoig", 200, 200},
	{"GET /console", "/console", "", "", "o", 200, 200},
	{"POST /signout", "/signout", "", "", "acoig", 200, 200},
	{"GET /api/v1/queue", "/api/v1/queue", "", "", "o", 200, 200},
	{"GET /api/v1/live", "/api/v1/live", "", "", "o", 200, 200},
	{"GET /api/v1/alerts", "/api/v1/alerts?case=TEST-1", "", "", "i", 200, 200},
	{"GET /api/v1/alerts", "/api/v1/alerts", "", "", "i", 400, 400}, // no case reference
	{"GET /api/v1/alerts/export", "/api/v1/alerts/export?case=TEST-1&format=csv", "", "", "i", 200, 200},
	{"GET /api/v1/alerts/{id}", "/api/v1/alerts/1?case=TEST-1", "", "", "oi", 200, 200},
	{"GET /api/v1/alerts/{id}", "/api/v1/alerts/2?case=TEST-1", "", "", "oi", 200, 404},
	{"GET /api/v1/alerts/{id}/crop", "/api/v1/alerts/1/crop?case=TEST-1", "", "", "oi", 200, 200},
	{"GET /api/v1/alerts/{id}/crop", "/api/v1/alerts/2/crop?case=TEST-1", "", "", "oi", 200, 404},
	{"GET /api/v1/alerts/{id}/scene", "/api/v1/alerts/1/scene?case=TEST-1", "", "", "oi", 200, 200},
	{"GET /api/v1/alerts/{id}/scene", "/api/v1/alerts/2/scene?case=TEST-1", "", "", "oi", 200, 404},
	{"GET /api/v1/alerts/{id}/enrolled-face", "/api/v1/alerts/1/enrolled-face?case=TEST-1", "", "", "oi", 200, 200},
	{"GET /api/v1/alerts/{id}/enrolled-face", "/api/v1/alerts/2/enrolled-face?case=TEST-1", "", "", "oi", 200, 404},
	{"GET /api/v1/incidents", "/api/v1/incidents?case=TEST-1", "", "", "oi", 200, 200},
	{"GET /api/v1/incidents/{id}", "/api/v1/incidents/1?case=TEST-1", "", "", "oi", 200, 200},
	{"GET /api/v1/incidents/{id}", "/api/v1/incidents/2?case=TEST-1", "", "", "oi", 200, 404},
	{"POST /api/v1/incidents/{id}/review", "/api/v1/incidents/1/review", `{"decision":"maybe"}`, "application/json", "o", 400, 400},
	{"POST /api/v1/alerts/{id}/review", "/api/v1/alerts/1/review", `{"decision":"maybe"}`, "application/json", "o", 400, 400},
	{"GET /api/v1/alerts/{id}/evidence", "/api/v1/alerts/1/evidence?case=TEST-1", "", "", "i", 200, 200},
	{"GET /api/v1/alerts/{id}/evidence", "/api/v1/alerts/2/evidence?case=TEST-1", "", "", "i", 200, 404},
	{"GET /api/v1/photos/{sha256}", "/api/v1/photos/" + rolePhoto + "?case=TEST-1", "", "", "oic", 200, 200},
	{"GET /api/v1/stats/precision", "/api/v1/stats/precision", "", "", "acoi", 200, 200},
	{"GET /api/v1/audit/verify", "/api/v1/audit/verify", "", "", "a", 200, 200},
	{"GET /{$}", "/", "", "", "acoig", 303, 303},
	{"GET /investigator", "/investigator", "", "", "i", 200, 200},
	{"GET /curator", "/curator", "", "", "c", 200, 200},
	{"GET /admin", "/admin", "", "", "a", 200, 200},
	{"GET /integrator", "/integrator", "", "", "g", 200, 200},
	{"GET /assets/pages.js", "/assets/pages.js", "", "", "acoig", 200, 200},
	{"GET /assets/pages.css", "/assets/pages.css", "", "", "acoig", 200, 200},
	{"GET /api/v1/cameras", "/api/v1/cameras", "", "", "ag", 200, 200},
	{"GET /api/v1/tokens", "/api/v1/tokens", "", "", "a", 200, 200},
	{"POST /api/v1/tokens", "/api/v1/tokens", `{"role":"overlord","person":"x","scope":"all"}`, "application/json", "a", 400, 400},
	{"DELETE /api/v1/tokens/{id}", "/api/v1/tokens/000000000000", "", "", "a", 404, 404},
	{"GET /api/v1/settings/retention", "/api/v1/settings/retention", "", "", "a", 200, 200},
	{"GET /api/v1/watchlists", "/api/v1/watchlists", "", "", "ca", 200, 200},
	{"POST /api/v1/watchlists", "/api/v1/watchlists", `{"name":"x","kind":"nosuch"}`, "application/json", "c", 400, 400},
	{"GET /api/v1/watchlists/{name}", "/api/v1/watchlists/nosuch", "", "", "c", 404, 404},
	{"PATCH /api/v1/watchlists/{name}", "/api/v1/watchlists/nosuch", `{"threshold":0.5}`, "application/json", "c", 404, 404},
	{"DELETE /api/v1/watchlists/{name}", "/api/v1/watchlists/nosuch", "", "", "c", 404, 404},
	{"POST /api/v1/watchlists/{name}/photos", "/api/v1/watchlists/nosuch/photos", "x", "text/plain", "c", 415, 415},
	{"GET /api/v1/eval", "/api/v1/eval", "", "", "c", 422, 422}, // an empty gallery has nothing to evaluate
	{"GET /api/v1/eval/plot", "/api/v1/eval/plot", "", "", "c", 422, 422},
}

// rolePhoto is the enrolled photo the role table's alerts name.
var rolePhoto = strings.Repeat("cd", 32)

// rolePrincipals are the table's callers: each role site-wide, and the
// roles that may hold a scope, scoped to camera group north.
var rolePrincipals = []struct {
	letter byte
	role   Role
	scoped bool
}{
	{'a', RoleAdmin, false}, {'c', RoleCurator, false}, {'o', RoleOperator, false}, {'i', RoleInvestigator, false}, {'g', RoleIntegrator, false},
	{'o', RoleOperator, true}, {'i', RoleInvestigator, true}, {'g', RoleIntegrator, true},
}

// openGalleryAPI opens a real gallery under dir (with audit keys apart
// from it) and the curator API over it; recog may be nil.
func openGalleryAPI(t testing.TB, dir string, recog curate.Recognition) (*match.Gallery, *curate.API) {
	t.Helper()
	keys, err := audit.LoadKeys(filepath.Join(dir, "gallery-audit"), dir)
	if err != nil {
		t.Fatal(err)
	}
	g, err := match.OpenGallery(context.Background(), dir, match.GalleryOptions{Audit: keys, Actor: audit.Actor{ID: "system:test", Name: "test", Role: "system"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	cfg := config.Defaults().Match
	api := curate.New(curate.Options{Gallery: g, Match: cfg, MaxPixels: 40_000_000, Recognition: recog})
	t.Cleanup(api.Close)
	return g, api
}

// TestRouteRoleTable calls every route as every role, site-wide and
// scoped, and checks each status against roleTable; it fails for a route
// the table does not cover.
func TestRouteRoleTable(t *testing.T) {
	dir := t.TempDir()
	_, gapi := openGalleryAPI(t, filepath.Join(dir, "gallery"), nil)
	photoDir := filepath.Join(dir, "photos")
	os.MkdirAll(filepath.Join(photoDir, rolePhoto[:2]), 0o750)
	if err := os.WriteFile(filepath.Join(photoDir, rolePhoto[:2], rolePhoto+".jpg"), realJPEG(t, 1), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.CameraGroups = map[string][]string{"north": {"cam-1"}, "south": {"cam-2"}}
	s, err := Open(context.Background(), filepath.Join(dir, "alert"), cfg, Options{Registry: prometheus.NewRegistry(), PhotoDir: photoDir, Gallery: gapi})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for i := 1; i <= 2; i++ {
		h, _ := makeHit(i, time.Now().Add(-time.Minute))
		h.EnrolledPhoto = rolePhoto
		// Alerts 1 and 2 are persons 1 and 2: incidents 1 and 2.
		im := wire.HitImages{Crop: realJPEG(t, i), Scene: realJPEG(t, i+2), EnrolledChip: realJPEG(t, i+4)}
		h.CropLen, h.SceneLen, h.EnrolledChipLen = len(im.Crop), len(im.Scene), len(im.EnrolledChip)
		if _, err := s.StoreImages(context.Background(), h, im); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	toks := make([]string, len(rolePrincipals))
	for n, p := range rolePrincipals {
		sc := Scope{}
		if p.scoped {
			sc = Scope{Groups: []string{"north"}}
		}
		if toks[n], err = scopedToken(s, p.role, "tester "+string(p.letter), sc); err != nil {
			t.Fatal(err)
		}
	}
	covered := map[string]bool{}
	known := map[string]bool{}
	for _, rt := range s.routes {
		known[rt.Method+" "+rt.Pattern] = true
	}
	for _, rc := range roleTable {
		if !known[rc.key] {
			t.Errorf("roleTable names %s, which the router does not serve", rc.key)
			continue
		}
		covered[rc.key] = true
		method := strings.Fields(rc.key)[0]
		for n, p := range rolePrincipals {
			name := string(p.role)
			if p.scoped {
				name = "scoped " + name
			}
			t.Run(rc.key+"/"+rc.path+"/"+name, func(t *testing.T) {
				want := http.StatusForbidden
				if strings.IndexByte(rc.roles, p.letter) >= 0 {
					want = rc.status
					if p.scoped {
						want = rc.scoped
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				var body io.Reader
				if rc.body != "" {
					body = strings.NewReader(rc.body)
				}
				req, _ := http.NewRequestWithContext(ctx, method, srv.URL+rc.path, body)
				req.Header.Set("Authorization", "Bearer "+toks[n])
				if rc.ctype != "" {
					req.Header.Set("Content-Type", rc.ctype)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", method, rc.path, err)
				}
				defer resp.Body.Close()
				var out []byte
				if rc.key != "GET /api/v1/live" || resp.StatusCode != http.StatusOK {
					out, _ = io.ReadAll(io.LimitReader(resp.Body, 300))
				}
				if resp.StatusCode != want {
					t.Errorf("%s %s as %s = %d %s, want %d", method, rc.path, name, resp.StatusCode, out, want)
				}
			})
		}
	}
	for key := range known {
		if !covered[key] {
			t.Errorf("route %s is not in roleTable: add its expected status for every role", key)
		}
	}
}

// TestTokenAPI issues, lists and revokes tokens over the admin API as a
// person, and checks that each change is audited under that person, that
// the secret is shown once and works, and that the role and scope rules of
// the command line hold (a curator token cannot be scoped).
func TestTokenAPI(t *testing.T) {
	s := openService(t, t.TempDir(), Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	admin := mustPersonToken(t, s, RoleAdmin, "Ada Admin", "ada", time.Hour)

	tests := []struct {
		name string
		body string
		code int
	}{
		{"scoped operator", `{"role":"operator","person":"Olga Op","scope":"group:north","ttl":"24h"}`, http.StatusCreated},
		{"site-wide curator", `{"role":"curator","person":"Cem Cur","scope":"all"}`, http.StatusCreated},
		{"scoped curator", `{"role":"curator","person":"Cem Cur","scope":"group:north"}`, http.StatusBadRequest},
		{"no scope", `{"role":"operator","person":"Olga Op","scope":""}`, http.StatusBadRequest},
		{"no person", `{"role":"operator","person":"","scope":"all"}`, http.StatusBadRequest},
		{"bad ttl", `{"role":"operator","person":"Olga Op","scope":"all","ttl":"forever"}`, http.StatusBadRequest},
		{"unknown field", `{"role":"operator","person":"Olga Op","scope":"all","admin":true}`, http.StatusBadRequest},
	}
	issued := map[string]string{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, out := do(t, srv, "POST", "/api/v1/tokens", admin, []byte(tc.body))
			if resp.StatusCode != tc.code {
				t.Fatalf("POST /api/v1/tokens %s = %d %s, want %d", tc.body, resp.StatusCode, out, tc.code)
			}
			if tc.code != http.StatusCreated {
				return
			}
			var got struct {
				Token string    `json:"token"`
				Info  TokenInfo `json:"info"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			// The secret works once issued.
			if r, who := do(t, srv, "GET", "/api/v1/whoami", got.Token, nil); r.StatusCode != http.StatusOK || !bytes.Contains(who, []byte(got.Info.Person)) {
				t.Errorf("whoami with the issued token = %d %s, want 200 naming %s", r.StatusCode, who, got.Info.Person)
			}
			issued[tc.name] = got.Info.ID
		})
	}
	resp, out := do(t, srv, "GET", "/api/v1/tokens", admin, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/tokens = %d %s", resp.StatusCode, out)
	}
	for _, id := range issued {
		if !bytes.Contains(out, []byte(id)) {
			t.Errorf("GET /api/v1/tokens does not list issued token %s: %s", id, out)
		}
	}
	if bytes.Contains(out, []byte("fwt_")) {
		t.Errorf("GET /api/v1/tokens shows a secret: %s", out)
	}
	op := issued["scoped operator"]
	if resp, out := do(t, srv, "DELETE", "/api/v1/tokens/"+op, admin, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("DELETE token %s = %d %s, want 200", op, resp.StatusCode, out)
	}
	if resp, _ := do(t, srv, "DELETE", "/api/v1/tokens/"+op, admin, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("DELETE token %s again = %d, want 404", op, resp.StatusCode)
	}
	// Every change is in the audit log under the admin's person.
	var n int
	if err := s.db.r.QueryRow(`SELECT COUNT(*) FROM audit WHERE actor_name = 'Ada Admin' AND action IN ('token_create', 'token_revoke')`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("audit entries of Ada Admin's token changes = %d, want 3 (two issued, one revoked)", n)
	}
}

// TestCameraHealth publishes camera statuses over a real NATS server to a
// running service: the integrator's list shows each camera's newest state
// and counters, a configured camera nothing was heard from is listed as
// unknown, and a token scoped to a camera group sees its cameras only.
func TestCameraHealth(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, t.TempDir())
	nc, js := connectJS(t, ns.ClientURL())
	cfg := testConfig()
	cfg.CameraGroups = map[string][]string{"north": {"cam-n1", "cam-n2"}, "south": {"cam-s1"}}
	s, err := Open(context.Background(), dir, cfg, Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := natsbus.EnsureStreams(context.Background(), js, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, js) }() // stopped by cancel below
	defer func() { cancel(); <-done }()
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	wide := mustToken(t, s, RoleIntegrator, "ivy", time.Hour)
	north, err := scopedToken(s, RoleIntegrator, "nils", Scope{Groups: []string{"north"}})
	if err != nil {
		t.Fatal(err)
	}
	byWatchlist, err := scopedToken(s, RoleIntegrator, "wanda", Scope{Watchlists: []string{"wanted"}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	publish := func(st wire.CameraStatus) {
		b, err := wire.EncodeCameraStatus(st)
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish(wire.StatusSubject(st.Camera), b); err != nil {
			t.Fatal(err)
		}
	}
	list := func(tok string) map[string]CameraHealth {
		resp, out := do(t, srv, "GET", "/api/v1/cameras", tok, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/v1/cameras = %d %s", resp.StatusCode, out)
		}
		var got struct{ Cameras []CameraHealth }
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		m := map[string]CameraHealth{}
		for _, c := range got.Cameras {
			m[c.Camera] = c
		}
		return m
	}
	// Publish until the subscription is in place (core NATS drops what
	// nobody listens to), then the newest status wins.
	waitFor(t, 30*time.Second, "the first camera status", func() bool {
		publish(wire.CameraStatus{Version: wire.Version, Camera: "cam-n1", State: "connecting", Since: now})
		nc.Flush()
		time.Sleep(50 * time.Millisecond)
		return list(wide)["cam-n1"].Known
	})
	publish(wire.CameraStatus{Version: wire.Version, Camera: "cam-n1", State: "streaming", Since: now, FPSIn: 12.5, FPSOut: 5, Stalls: 2,
		Drops: map[string]uint64{"queue_full": 7}, LastFrame: now})
	publish(wire.CameraStatus{Version: wire.Version, Camera: "cam-s1", State: "stalled", Since: now, Stalls: 1})
	nc.Publish(wire.StatusSubject("cam-bad"), []byte(`{"v":1,"camera":"cam-bad","state":"exploding"}`)) // refused: unknown state
	nc.Flush()
	waitFor(t, 30*time.Second, "the newest statuses", func() bool {
		m := list(wide)
		return m["cam-n1"].Status != nil && m["cam-n1"].Status.State == "streaming" && m["cam-s1"].Known
	})
	m := list(wide)
	n1 := m["cam-n1"]
	if n1.Status.FPSIn != 12.5 || n1.Status.Stalls != 2 || n1.Status.Drops["queue_full"] != 7 || !slices.Equal(n1.Groups, []string{"north"}) {
		t.Errorf("cam-n1 = %+v %+v, want streaming at 12.5 fps, 2 stalls, 7 dropped, group north", n1, *n1.Status)
	}
	if c, ok := m["cam-n2"]; !ok || c.Known {
		t.Errorf("cam-n2 (configured, silent) = %+v, %v; want listed as not known", c, ok)
	}
	if _, ok := m["cam-bad"]; ok {
		t.Errorf("a malformed status was recorded: %+v", m["cam-bad"])
	}
	got := list(north)
	if _, ok := got["cam-s1"]; ok || len(got) != 2 {
		t.Errorf("north-scoped integrator sees %v, want cam-n1 and cam-n2 only", keys(got))
	}
	if got := list(byWatchlist); len(got) != 0 {
		t.Errorf("watchlist-scoped integrator sees cameras %v, want none", keys(got))
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestAuditVerifyCoversGallery: where the service holds the gallery, the
// admin's audit check verifies the gallery's log too, and an edit to it
// (made behind the append-only triggers' back) turns the verdict.
func TestAuditVerifyCoversGallery(t *testing.T) {
	dir := t.TempDir()
	gdir := filepath.Join(dir, "gallery")
	g, gapi := openGalleryAPI(t, gdir, nil)
	s, err := Open(context.Background(), filepath.Join(dir, "alert"), testConfig(), Options{Registry: prometheus.NewRegistry(), Gallery: gapi})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	admin := mustToken(t, s, RoleAdmin, "ada", time.Hour)
	if _, err := g.CreateWatchlist(context.Background(), match.WatchlistSpec{Name: "w", Kind: match.KindMissing, Owner: "o", LegalBasis: "b"}); err != nil {
		t.Fatal(err)
	}
	type verdict struct {
		OK      bool `json:"ok"`
		Gallery *struct {
			OK      bool   `json:"ok"`
			Entries int    `json:"entries"`
			Error   string `json:"error"`
		} `json:"gallery"`
	}
	check := func() verdict {
		resp, out := do(t, srv, "GET", "/api/v1/audit/verify", admin, nil)
		var v verdict
		if err := json.Unmarshal(out, &v); resp.StatusCode != 200 || err != nil || v.Gallery == nil {
			t.Fatalf("GET /api/v1/audit/verify = %d %s, want 200 with the gallery's verdict", resp.StatusCode, out)
		}
		return v
	}
	if v := check(); !v.OK || !v.Gallery.OK || v.Gallery.Entries < 2 {
		t.Fatalf("verdict on an intact gallery log = %+v %+v, want ok with its entries", v, *v.Gallery)
	}
	db, err := sql.Open("sqlite3", filepath.Join(gdir, match.GalleryFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DROP TRIGGER audit_no_update; UPDATE audit SET detail = '{"edited":true}' WHERE seq = (SELECT MAX(seq) FROM audit)`); err != nil {
		t.Fatal(err)
	}
	if v := check(); v.OK || v.Gallery.OK || v.Gallery.Error == "" {
		t.Errorf("verdict after editing the gallery log = ok %v, gallery %+v; want both false with the error", v.OK, *v.Gallery)
	}
}
