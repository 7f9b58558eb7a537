package alert

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/wire"
)

// stored is what the test itself knows about a stored hit, to compute
// expected query results independently of the code under test.
type stored struct {
	id  int64
	hit wire.Hit
}

// fixture stores n hits (two of them sharing a capture time, to exercise
// the id tie-break) and serves the API.
func fixture(t *testing.T, n int, cfg config.Alert) (*Service, *httptest.Server, []stored, string) {
	t.Helper()
	s, err := Open(context.Background(), t.TempDir(), cfg, Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var hits []stored
	for i := range n {
		h, crop := makeHit(i, base)
		if i == n-1 && n > 3 {
			h.Time = hits[n/2].hit.Time // a tie on time
		}
		if created, err := s.Store(context.Background(), h, crop); err != nil || !created {
			t.Fatalf("Store(%d) = %v, %v", i, created, err)
		}
		hits = append(hits, stored{int64(i + 1), h})
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv, hits, mustToken(t, s, RoleInvestigator, "inv", time.Hour)
}

// expect filters and orders hits the way the API promises: newest capture
// time first, then highest id.
func expect(hits []stored, keep func(wire.Hit) bool) []string {
	var sel []stored
	for _, h := range hits {
		if keep(h.hit) {
			sel = append(sel, h)
		}
	}
	slices.SortFunc(sel, func(a, b stored) int {
		if c := b.hit.Time.Compare(a.hit.Time); c != 0 {
			return c
		}
		return int(b.id - a.id)
	})
	out := []string{}
	for _, h := range sel {
		out = append(out, h.hit.ID)
	}
	return out
}

func TestHistoryPagination(t *testing.T) {
	_, srv, hits, tok := fixture(t, 23, testConfig())
	base := hits[0].hit.Time
	cases := []struct {
		name  string
		query string
		keep  func(wire.Hit) bool
	}{
		{"all", "", func(wire.Hit) bool { return true }},
		{"camera", "camera=cam-1", func(h wire.Hit) bool { return h.Camera == "cam-1" }},
		{"identity", "identity=person-2", func(h wire.Hit) bool { return h.Identity == "person-2" }},
		{"watchlist", "watchlist=wanted", func(h wire.Hit) bool { return h.Watchlist == "wanted" }},
		{"time range", "from=" + url.QueryEscape(base.Add(5*time.Second).Format(time.RFC3339)) + "&to=" + url.QueryEscape(base.Add(15*time.Second).Format(time.RFC3339)),
			func(h wire.Hit) bool {
				return !h.Time.Before(base.Add(5*time.Second)) && !h.Time.After(base.Add(15*time.Second))
			}},
		{"distance", "min_distance=0.33&max_distance=0.36", func(h wire.Hit) bool { return h.Distance >= 0.33 && h.Distance <= 0.36 }},
		{"status", "status=pending&camera=cam-2", func(h wire.Hit) bool { return h.Camera == "cam-2" }},
		{"status none", "status=confirmed", func(wire.Hit) bool { return false }},
	}
	for _, c := range cases {
		for _, limit := range []int{1, 4, 500} {
			t.Run(fmt.Sprintf("%s/limit=%d", c.name, limit), func(t *testing.T) {
				want := expect(hits, c.keep)
				var got []string
				cursor := ""
				for pages := 0; ; pages++ {
					if pages > len(hits)+1 {
						t.Fatal("pagination does not end")
					}
					q := fmt.Sprintf("/api/v1/alerts?case=CASE-1&limit=%d&%s", limit, c.query)
					if cursor != "" {
						q += "&cursor=" + url.QueryEscape(cursor)
					}
					resp, body := do(t, srv, "GET", q, tok, nil)
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("GET %s = %d %s", q, resp.StatusCode, body)
					}
					var p page
					if err := json.Unmarshal(body, &p); err != nil {
						t.Fatal(err)
					}
					if len(p.Alerts) > limit {
						t.Fatalf("GET %s returned %d alerts, want at most %d", q, len(p.Alerts), limit)
					}
					for _, a := range p.Alerts {
						got = append(got, a.HitID)
					}
					if p.NextCursor == "" {
						break
					}
					cursor = p.NextCursor
				}
				if !slices.Equal(got, want) {
					t.Errorf("pages of %q (limit %d) = %v, want %v", c.query, limit, got, want)
				}
			})
		}
	}
}

func TestExport(t *testing.T) {
	cfg := testConfig()
	cfg.ExportLimit = 15
	_, srv, hits, tok := fixture(t, 23, cfg)
	t.Run("json", func(t *testing.T) {
		resp, body := do(t, srv, "GET", "/api/v1/alerts/export?case=CASE-1&camera=cam-0&format=json", tok, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("export json = %d %s", resp.StatusCode, body)
		}
		var got []Alert
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("export json does not parse: %v\n%s", err, body)
		}
		want := expect(hits, func(h wire.Hit) bool { return h.Camera == "cam-0" })
		var ids []string
		for _, a := range got {
			ids = append(ids, a.HitID)
		}
		if !slices.Equal(ids, want) {
			t.Errorf("export json ids = %v, want %v", ids, want)
		}
		if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, "attachment") {
			t.Errorf("Content-Disposition = %q, want attachment", cd)
		}
	})
	t.Run("csv", func(t *testing.T) {
		resp, body := do(t, srv, "GET", "/api/v1/alerts/export?case=CASE-1&watchlist=missing&format=csv", tok, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("export csv = %d %s", resp.StatusCode, body)
		}
		recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
		if err != nil {
			t.Fatalf("export csv does not parse: %v", err)
		}
		if !slices.Equal(recs[0], csvHeader) {
			t.Errorf("csv header = %v, want %v", recs[0], csvHeader)
		}
		want := expect(hits, func(h wire.Hit) bool { return h.Watchlist == "missing" })
		var ids []string
		for _, r := range recs[1:] {
			ids = append(ids, r[1])
			if r[5] != "missing" {
				t.Errorf("csv row %v: watchlist %q, want missing", r, r[5])
			}
		}
		if !slices.Equal(ids, want) {
			t.Errorf("export csv ids = %v, want %v", ids, want)
		}
	})
	t.Run("over the limit", func(t *testing.T) {
		resp, body := do(t, srv, "GET", "/api/v1/alerts/export?case=CASE-1", tok, nil)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "exceeds") {
			t.Errorf("export of 23 rows with limit 15 = %d %s, want 400 naming the limit", resp.StatusCode, body)
		}
	})
	t.Run("bad format", func(t *testing.T) {
		resp, _ := do(t, srv, "GET", "/api/v1/alerts/export?case=CASE-1&camera=cam-0&format=xml", tok, nil)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("export format=xml = %d, want 400", resp.StatusCode)
		}
	})
}

func TestCSVSafe(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"=HYPERLINK(1)", "'=HYPERLINK(1)"}, {"+cmd", "'+cmd"}, {"@SUM(A1)", "'@SUM(A1)"}, {"-0.5", "-0.5"}, {"Ana", "Ana"}, {"", ""},
	} {
		if got := csvSafe(c.in); got != c.want {
			t.Errorf("csvSafe(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestHostileQueryValues(t *testing.T) {
	s, srv, hits, tok := fixture(t, 6, testConfig())
	long := strings.Repeat("a", MaxValueLen+1)
	cases := []struct {
		name  string
		query string
		code  int
		count int // alerts expected when code is 200
	}{
		{"injection in identity", "identity=" + url.QueryEscape("x' OR '1'='1"), 200, 0},
		{"union in identity", "identity=" + url.QueryEscape("x' UNION SELECT hash,1,1,1 FROM tokens --"), 200, 0},
		{"drop in identity", "identity=" + url.QueryEscape("'; DROP TABLE alerts; --"), 200, 0},
		{"comment in identity", "identity=" + url.QueryEscape("person-1'--"), 200, 0},
		{"exact identity still works", "identity=" + hits[1].hit.Identity, 200, 2},
		{"injection in camera", "camera=" + url.QueryEscape("cam-1' OR 1=1 --"), 400, 0},
		{"injection in status", "status=" + url.QueryEscape("pending' OR '1'='1"), 400, 0},
		{"injection in limit", "limit=" + url.QueryEscape("1; DELETE FROM alerts"), 400, 0},
		{"injection in cursor", "cursor=" + url.QueryEscape("1) OR (1=1"), 400, 0},
		{"injection in from", "from=" + url.QueryEscape("2026-01-01' OR '1'='1"), 400, 0},
		{"oversized identity", "identity=" + long, 400, 0},
		{"oversized key", strings.Repeat("k", 200) + "=1", 400, 0},
		{"oversized query string", "identity=x&pad=" + strings.Repeat("p", MaxQueryLen), 414, 0},
		{"huge limit", "limit=100000000000000000000", 400, 0},
		{"negative limit", "limit=-1", 400, 0},
		{"zero limit", "limit=0", 400, 0},
		{"NaN distance", "max_distance=NaN", 400, 0},
		{"infinite distance", "min_distance=Inf", 400, 0},
		{"to before from", "from=2026-05-02T00:00:00Z&to=2026-05-01T00:00:00Z", 400, 0},
		{"repeated parameter", "camera=cam-1&camera=cam-2", 400, 0},
		{"unknown parameter", "camra=cam-1", 400, 0},
		{"control character", "identity=" + url.QueryEscape("a\x00b"), 400, 0},
		{"invalid utf-8", "identity=%ff%fe", 400, 0},
		{"year 10000", "from=" + url.QueryEscape("9999-12-31T23:59:59Z"), 400, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := "/api/v1/alerts?case=CASE-1&" + c.query
			resp, body := do(t, srv, "GET", q, tok, nil)
			if resp.StatusCode != c.code {
				t.Fatalf("GET %s = %d %s, want %d", q, resp.StatusCode, body, c.code)
			}
			var e struct {
				Error string `json:"error"`
			}
			if c.code != 200 {
				if json.Unmarshal(body, &e) != nil || e.Error == "" || strings.Contains(e.Error, "\n") {
					t.Errorf("GET %s error body = %q, want one line of JSON error", q, body)
				}
				return
			}
			var p page
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatal(err)
			}
			if len(p.Alerts) != c.count {
				t.Errorf("GET %s returned %d alerts, want %d", q, len(p.Alerts), c.count)
			}
		})
	}
	if n := countAlerts(t, s); n != len(hits) {
		t.Errorf("alerts after hostile queries = %d, want %d", n, len(hits))
	}
	var toks int
	s.db.r.QueryRow(`SELECT COUNT(*) FROM tokens`).Scan(&toks)
	if toks != 1 {
		t.Errorf("tokens after hostile queries = %d, want 1", toks)
	}
}

func TestHistoryNeedsCase(t *testing.T) {
	_, srv, _, tok := fixture(t, 2, testConfig())
	for _, c := range []struct {
		name string
		path string
		hdr  []string
		code int
	}{
		{"no case", "/api/v1/alerts", nil, 400},
		{"case param", "/api/v1/alerts?case=2026/0147", nil, 200},
		{"case header", "/api/v1/alerts", []string{"X-Case-Reference", "INC-88231"}, 200},
		{"malformed case", "/api/v1/alerts?case=" + url.QueryEscape("<script>"), nil, 400},
		{"too short case", "/api/v1/alerts?case=ab", nil, 400},
		{"export no case", "/api/v1/alerts/export", nil, 400},
		{"view no case", "/api/v1/alerts/1", nil, 400},
		{"view with case", "/api/v1/alerts/1?case=INC-1", nil, 200},
		{"crop no case", "/api/v1/alerts/1/crop", nil, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := do(t, srv, "GET", c.path, tok, nil, c.hdr...)
			if resp.StatusCode != c.code {
				t.Errorf("GET %s %v = %d %s, want %d", c.path, c.hdr, resp.StatusCode, body, c.code)
			}
		})
	}
}

// FuzzParseFilter checks that no query string crashes the parser and
// that whatever it accepts is within bounds and yields SQL whose
// placeholders match its arguments.
func FuzzParseFilter(f *testing.F) {
	for _, seed := range []string{
		"", "camera=cam-1&limit=5", "identity=x'%20OR%20'1'='1", "from=2026-05-01T00:00:00Z&to=2026-05-02T00:00:00Z",
		"min_distance=0.1&max_distance=0.5", "cursor=1714564800000000000.17", "status=awaiting_second", "limit=500",
		"cursor=-1.1", "max_distance=1e308", "identity=%ff", "case=X&format=csv",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		flt, err := ParseFilter(q)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("ParseFilter(%q) error has several lines: %q", raw, err)
			}
			return
		}
		if flt.Limit < 1 || flt.Limit > MaxLimit {
			t.Errorf("ParseFilter(%q).Limit = %d, want 1..%d", raw, flt.Limit, MaxLimit)
		}
		if len(flt.Identity) > MaxValueLen {
			t.Errorf("ParseFilter(%q).Identity has %d bytes, want <= %d", raw, len(flt.Identity), MaxValueLen)
		}
		if flt.Camera != "" && !wire.ValidToken(flt.Camera) || flt.Watchlist != "" && !wire.ValidToken(flt.Watchlist) {
			t.Errorf("ParseFilter(%q) accepted camera %q / watchlist %q", raw, flt.Camera, flt.Watchlist)
		}
		where, args := flt.where()
		if got := strings.Count(where, "?"); got != len(args) {
			t.Errorf("ParseFilter(%q).where() has %d placeholders for %d args", raw, got, len(args))
		}
		// The SQL text is built only from constant fragments: remove them
		// all and nothing may be left (no value was spliced in).
		rest := where
		for _, frag := range []string{"(time_ns < ? OR (time_ns = ? AND id < ?))", " WHERE ", " AND ", "identity = ?", "watchlist = ?", "camera = ?", "status = ?", "time_ns >= ?",
			"time_ns <= ?", "distance >= ?", "distance <= ?"} {
			rest = strings.ReplaceAll(rest, frag, "")
		}
		if rest != "" {
			t.Errorf("ParseFilter(%q).where() = %q holds non-constant text %q", raw, where, rest)
		}
	})
}
