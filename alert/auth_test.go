package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/jpeg"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// concretePath fills a route pattern's wildcards with values that name
// something real: alert 1 (stored below) and a photo hash.
func concretePath(pattern string) string {
	r := strings.NewReplacer("{id}", "1", "{sha256}", strings.Repeat("cd", 32), "{name}", "wl-1", "{$}", "")
	return r.Replace(pattern)
}

func TestEveryRouteRejectsBadTokens(t *testing.T) {
	clk := &clock{t: time.Now()}
	s := openService(t, t.TempDir(), Options{Now: clk.now})
	h, crop := makeHit(1, time.Now())
	if _, err := s.Store(context.Background(), h, crop); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	valid := map[Role]string{}
	for _, r := range Roles() {
		valid[r] = mustToken(t, s, r, "tester "+string(r), time.Hour)
	}
	expired := mustToken(t, s, RoleAdmin, "old", time.Minute)
	clk.add(2 * time.Minute) // the one-minute token is now expired

	if len(s.routes) < 10 {
		t.Fatalf("route table has %d routes, want the whole API", len(s.routes))
	}
	bad := []struct {
		name string
		hdr  []string
	}{
		{"missing", nil},
		{"empty bearer", []string{"Authorization", "Bearer "}},
		{"basic scheme", []string{"Authorization", "Basic YWRtaW46YWRtaW4="}},
		{"malformed", []string{"Authorization", "Bearer not-a-token"}},
		{"sql in token", []string{"Authorization", "Bearer fwt_' OR '1'='1"}},
		{"unknown well-formed", []string{"Authorization", "Bearer fwt_" + strings.Repeat("A", 43)}},
		{"expired", []string{"Authorization", "Bearer " + expired}},
		{"bad cookie", []string{"Cookie", tokenCookie + "=fwt_nope"}},
	}
	for _, rt := range s.routes {
		path := concretePath(rt.Pattern) + "?case=TEST-1"
		// Authentication comes before anything else: an oversized query
		// without a token is still a 401.
		if resp, _ := do(t, srv, rt.Method, path+"&pad="+strings.Repeat("p", MaxQueryLen), "", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s with an oversized query and no token = %d, want 401", rt.Method, rt.Pattern, resp.StatusCode)
		}
		for _, b := range bad {
			t.Run(rt.Method+" "+rt.Pattern+"/"+b.name, func(t *testing.T) {
				var body []byte
				if rt.Method == http.MethodPost {
					body = []byte(`{"decision":"confirm","comment":"x"}`)
				}
				resp, out := do(t, srv, rt.Method, path, "", body, b.hdr...)
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("%s %s with %s token = %d %s, want 401", rt.Method, path, b.name, resp.StatusCode, out)
				}
				if strings.Contains(string(out), h.Identity) {
					t.Errorf("%s %s with %s token leaked alert data: %s", rt.Method, path, b.name, out)
				}
			})
		}
		for _, role := range Roles() {
			allowed := slices.Contains(rt.Roles, role)
			t.Run(rt.Method+" "+rt.Pattern+"/"+string(role), func(t *testing.T) {
				var body []byte
				if rt.Method == http.MethodPost {
					body = []byte(`{"decision":"confirm","comment":"looks right"}`)
				}
				if rt.Pattern == "/api/v1/live" {
					// A streaming route: a role that may call it gets a
					// stream, so check only the status line.
					req, _ := http.NewRequest(rt.Method, srv.URL+path, nil)
					req.Header.Set("Authorization", "Bearer "+valid[role])
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					resp, err := srv.Client().Do(req.WithContext(ctx))
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					checkRole(t, rt, role, allowed, resp.StatusCode, nil)
					return
				}
				resp, out := do(t, srv, rt.Method, path, valid[role], body)
				checkRole(t, rt, role, allowed, resp.StatusCode, out)
			})
		}
	}
	if got := testutil.ToFloat64(s.m.authFailures.WithLabelValues("expired")); got != float64(len(s.routes)) {
		t.Errorf("expired-token failures counted = %v, want %d (one per route)", got, len(s.routes))
	}
	// A path outside the table still needs a token first.
	if resp, _ := do(t, srv, "GET", "/no/such/route", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /no/such/route without token = %d, want 401", resp.StatusCode)
	}
	if resp, _ := do(t, srv, "GET", "/no/such/route", valid[RoleAdmin], nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /no/such/route with token = %d, want 404", resp.StatusCode)
	}
}

func checkRole(t *testing.T, rt route, role Role, allowed bool, code int, out []byte) {
	t.Helper()
	if allowed && (code == http.StatusUnauthorized || code == http.StatusForbidden) {
		t.Errorf("%s %s as %s = %d %s, want it allowed", rt.Method, rt.Pattern, role, code, out)
	}
	if !allowed && code != http.StatusForbidden {
		t.Errorf("%s %s as %s = %d %s, want 403", rt.Method, rt.Pattern, role, code, out)
	}
}

func TestRevokedTokenRejected(t *testing.T) {
	dir := t.TempDir()
	s := openService(t, dir, Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	tok := mustToken(t, s, RoleIntegrator, "ci", time.Hour)
	if resp, _ := do(t, srv, "GET", "/healthz", tok, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz with fresh token = %d, want 200", resp.StatusCode)
	}
	toks, err := ListTokens(context.Background(), DBPath(dir))
	if err != nil || len(toks) != 1 {
		t.Fatalf("ListTokens = %v, %v, want one token", toks, err)
	}
	if err := RevokeToken(context.Background(), local(dir), toks[0].ID); err != nil {
		t.Fatalf("RevokeToken(%s) = %v", toks[0].ID, err)
	}
	if resp, _ := do(t, srv, "GET", "/healthz", tok, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /healthz with revoked token = %d, want 401", resp.StatusCode)
	}
}

func TestTokensStoredHashed(t *testing.T) {
	dir := t.TempDir()
	tok, _, err := CreateToken(context.Background(), local(dir), TokenSpec{Role: RoleOperator, Person: "Ana Silva", Name: "ana", TTL: time.Hour})
	if err != nil {
		t.Fatalf("CreateToken = %v", err)
	}
	if !tokenFormat.MatchString(tok) {
		t.Errorf("CreateToken = %q, want the fwt_ format", tok)
	}
	s := openService(t, dir, Options{})
	var n int
	if err := s.db.r.QueryRow(`SELECT COUNT(*) FROM tokens WHERE hash = ? OR id = ? OR name = ?`, tok, tok, tok).Scan(&n); err != nil || n != 0 {
		t.Errorf("rows holding the plain token = %d (%v), want 0", n, err)
	}
	p, err := s.authenticate(context.Background(), tok)
	if err != nil || p.Role != RoleOperator || p.Name != "ana" || p.Person != "Ana Silva" {
		t.Errorf("authenticate(new token) = %+v, %v, want operator ana of person Ana Silva", p, err)
	}
	for _, c := range []struct {
		role         Role
		person, name string
		ttl          time.Duration
	}{{"root", "x", "x", time.Hour}, {RoleAdmin, "x", "x", 0}, {RoleAdmin, "x", "x", -time.Hour}, {RoleAdmin, "x", "bad\nname", time.Hour},
		{RoleAdmin, "x", strings.Repeat("n", 65), time.Hour}, {RoleAdmin, "", "x", time.Hour}, {RoleAdmin, "   ", "x", time.Hour}, {RoleAdmin, "bad<person>", "x", time.Hour}} {
		if _, _, err := CreateToken(context.Background(), local(dir), TokenSpec{Role: c.role, Person: c.person, Name: c.name, TTL: c.ttl}); err == nil {
			t.Errorf("CreateToken(%q, person %q, name %q, %v) = nil error, want refusal", c.role, c.person, c.name, c.ttl)
		}
	}
}

func TestConsoleLoginForm(t *testing.T) {
	s := openService(t, t.TempDir(), Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, out := do(t, srv, "GET", "/console", "", nil, "Accept", "text/html")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(out), "<form") {
		t.Errorf("GET /console from a browser without token = %d, want 401 with the sign-in form", resp.StatusCode)
	}
	op := mustToken(t, s, RoleOperator, "op", time.Hour)
	resp, out = do(t, srv, "GET", "/console", "", nil, "Cookie", tokenCookie+"="+op)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(out), "EventSource") {
		t.Errorf("GET /console with the token cookie = %d, want 200 with the console", resp.StatusCode)
	}
	// A cookie alone cannot change state (a cross-site form would carry it).
	h, crop := makeHit(3, time.Now())
	s.Store(context.Background(), h, crop)
	resp, _ = do(t, srv, "POST", "/api/v1/alerts/1/review", "", []byte(`{"decision":"confirm","comment":"ok"}`), "Cookie", tokenCookie+"="+op)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST review with cookie only = %d, want 403", resp.StatusCode)
	}
	resp, _ = do(t, srv, "POST", "/api/v1/alerts/1/review", "", []byte(`{"decision":"confirm","comment":"ok"}`), "Cookie", tokenCookie+"="+op, csrfHeader, csrfToken("fwt_someone_else"))
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST review with cookie and another session's CSRF token = %d, want 403", resp.StatusCode)
	}
	resp, out = do(t, srv, "POST", "/api/v1/alerts/1/review", "", []byte(`{"decision":"confirm","comment":"ok"}`), "Cookie", tokenCookie+"="+op, csrfHeader, csrfToken(op))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("POST review from the console = %d %s, want 200", resp.StatusCode, out)
	}
}

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	s := openService(t, t.TempDir(), Options{})
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPIJSON, &doc); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi version = %q, want 3.x", doc.OpenAPI)
	}
	for _, rt := range s.routes {
		if _, ok := doc.Paths[openAPIPath(rt.Pattern)][strings.ToLower(rt.Method)]; !ok {
			t.Errorf("openapi.json lacks %s %s", rt.Method, rt.Pattern)
		}
	}
	n := 0
	for _, ops := range doc.Paths {
		n += len(ops)
	}
	for _, pr := range publicRoutes() {
		if _, ok := doc.Paths[pr.Pattern][strings.ToLower(pr.Method)]; !ok {
			t.Errorf("openapi.json lacks public %s %s", pr.Method, pr.Pattern)
		}
	}
	if want := len(s.routes) + len(publicRoutes()); n != want {
		t.Errorf("openapi.json has %d operations, the router %d", n, want)
	}
}

func TestMetricsAndReadiness(t *testing.T) {
	reg := prometheus.NewRegistry()
	mine := prometheus.NewCounter(prometheus.CounterOpts{Name: "embedding_process_marker_total", Help: "registered by the embedding process"})
	reg.MustRegister(mine)
	s := openService(t, t.TempDir(), Options{Registry: reg})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	tok := mustToken(t, s, RoleIntegrator, "prometheus", time.Hour)
	for i := range 3 {
		h, crop := makeHit(i, time.Now())
		s.Store(context.Background(), h, crop)
	}
	h, crop := makeHit(0, time.Now())
	s.Store(context.Background(), h, crop) // a duplicate
	resp, body := do(t, srv, "GET", "/metrics", tok, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	for _, want := range []string{
		`facewatch_alert_alerts_stored_total{watchlist="missing"} 2`,
		`facewatch_alert_alerts_stored_total{watchlist="wanted"} 1`,
		`facewatch_alert_duplicates_total 1`,
		`embedding_process_marker_total 0`, // the registry passed in, not a private or global one
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("GET /metrics lacks %q", want)
		}
	}
	// Not consuming hits: not ready, and it says why.
	resp, body = do(t, srv, "GET", "/readyz", tok, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "not consuming") {
		t.Errorf("GET /readyz without Run = %d %s, want 503 saying not consuming", resp.StatusCode, body)
	}
	if resp, _ := do(t, srv, "GET", "/healthz", tok, nil); resp.StatusCode != 200 {
		t.Errorf("GET /healthz = %d, want 200", resp.StatusCode)
	}
	// Opening a second service on the same registry is refused, not a panic.
	if _, err := Open(context.Background(), t.TempDir(), testConfig(), Options{Registry: reg}); err == nil {
		t.Error("Open with an already used registry = nil error, want a registration error")
	}
}

func TestEnrolledPhotoLayouts(t *testing.T) {
	photos := t.TempDir()
	s := openService(t, t.TempDir(), Options{PhotoDir: photos})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	tok := mustToken(t, s, RoleCurator, "cura", time.Hour)
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	var jb, pb bytes.Buffer
	if err := jpeg.Encode(&jb, img, nil); err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(&pb, img); err != nil {
		t.Fatal(err)
	}
	put := func(rel string, b []byte) string {
		sum := sha(b)
		p := filepath.Join(photos, strings.ReplaceAll(rel, "SUM", sum))
		os.MkdirAll(filepath.Dir(p), 0o750)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return sum
	}
	notImage := []byte("<html><script>alert(1)</script></html>")
	cases := []struct {
		name  string
		sum   string
		code  int
		ctype string
		body  []byte
	}{
		{"flat jpeg", put("SUM.jpg", jb.Bytes()), 200, "image/jpeg", jb.Bytes()},
		{"sharded png (the gallery's layout)", put(sha(pb.Bytes())[:2]+"/SUM.png", pb.Bytes()), 200, "image/png", pb.Bytes()},
		{"sharded, other extension", put(sha(append(jb.Bytes(), 0))[:2]+"/SUM.jpeg", append(jb.Bytes(), 0)), 200, "image/jpeg", append(jb.Bytes(), 0)},
		{"not an image", put("SUM.jpg", notImage), 404, "", nil},
		{"absent", strings.Repeat("e", 64), 404, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := do(t, srv, "GET", "/api/v1/photos/"+c.sum, tok, nil)
			if resp.StatusCode != c.code {
				t.Fatalf("GET photo %s = %d, want %d", c.name, resp.StatusCode, c.code)
			}
			if c.code == 200 && (resp.Header.Get("Content-Type") != c.ctype || !bytes.Equal(body, c.body)) {
				t.Errorf("GET photo %s = %s, %d bytes, want %s, the file's %d bytes", c.name, resp.Header.Get("Content-Type"), len(body), c.ctype, len(c.body))
			}
		})
	}
	if resp, _ := do(t, srv, "GET", "/api/v1/photos/"+strings.ToUpper(strings.Repeat("e", 64)), tok, nil); resp.StatusCode != 400 {
		t.Errorf("GET photo with an upper-case name = %d, want 400", resp.StatusCode)
	}
	if resp, _ := do(t, srv, "GET", "/api/v1/photos/..%2f..%2fetc%2fpasswd", tok, nil); resp.StatusCode != 400 && resp.StatusCode != 404 {
		t.Errorf("GET photo with a path = %d, want 400 or 404", resp.StatusCode)
	}
}
