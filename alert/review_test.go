package alert

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/audit"
	"github.com/facewatch/facewatch/internal/wire"
)

func TestReviewRules(t *testing.T) {
	type step struct {
		reviewer string // token: ana, ana-phone (Ana's second token), ben, cleo
		decision string
		comment  string
		code     int
		status   Status // after the step, when code is 200
	}
	cases := []struct {
		name   string
		second bool
		steps  []step
	}{
		{"confirm", false, []step{{"ana", "confirm", "same person, same jacket", 200, StatusConfirmed}}},
		{"dismiss", false, []step{{"ana", "dismiss", "different person", 200, StatusDismissed}}},
		{"no second review on a one-reviewer list", false, []step{
			{"ana", "confirm", "yes", 200, StatusConfirmed},
			{"ben", "dismiss", "no", 409, ""}}},
		{"second reviewer agrees", true, []step{
			{"ana", "confirm", "yes", 200, StatusAwaitingSecond},
			{"ben", "confirm", "agree", 200, StatusConfirmed}}},
		{"second reviewer disagrees", true, []step{
			{"ana", "confirm", "yes", 200, StatusAwaitingSecond},
			{"ben", "dismiss", "not him", 200, StatusDisputed}}},
		{"same reviewer twice", true, []step{
			{"ana", "confirm", "yes", 200, StatusAwaitingSecond},
			{"ana", "confirm", "really yes", 409, ""},
			{"ben", "dismiss", "both dismiss", 200, StatusDisputed},
			{"cleo", "confirm", "third", 409, ""}}},
		{"one person, two tokens", true, []step{
			{"ana", "confirm", "yes", 200, StatusAwaitingSecond},
			{"ana-phone", "confirm", "yes from my phone", 409, ""},
			{"ben", "confirm", "agree", 200, StatusConfirmed}}},
		{"one person's second token reviews first", true, []step{
			{"ana-phone", "dismiss", "no", 200, StatusAwaitingSecond},
			{"ana", "dismiss", "still no", 409, ""},
			{"cleo", "confirm", "it is him", 200, StatusDisputed}}},
		{"empty comment", false, []step{{"ana", "confirm", "   ", 400, ""}}},
		{"long comment", false, []step{{"ana", "confirm", strings.Repeat("c", MaxComment+1), 400, ""}}},
		{"bad decision", false, []step{{"ana", "approve", "x", 400, ""}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := openService(t, t.TempDir(), Options{})
			h, crop := makeHit(1, time.Now())
			h.SecondReviewer = c.second
			if _, err := s.Store(context.Background(), h, crop); err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(s.Handler())
			defer srv.Close()
			toks := map[string]string{}
			for _, n := range []string{"ana", "ben", "cleo"} {
				toks[n] = mustToken(t, s, RoleOperator, n, time.Hour)
			}
			// The same person, spelt with other case and spacing.
			toks["ana-phone"] = mustPersonToken(t, s, RoleOperator, " ANA ", "ana phone", time.Hour)
			want := StatusPending
			reviews := 0
			for i, st := range c.steps {
				body, _ := json.Marshal(reviewRequest{Decision: st.decision, Comment: st.comment})
				resp, out := do(t, srv, "POST", "/api/v1/alerts/1/review", toks[st.reviewer], body)
				if resp.StatusCode != st.code {
					t.Fatalf("step %d: review(%s, %s) = %d %s, want %d", i, st.reviewer, st.decision, resp.StatusCode, out, st.code)
				}
				if st.code == 200 {
					want = st.status
					reviews++
					var a Alert
					if err := json.Unmarshal(out, &a); err != nil {
						t.Fatal(err)
					}
					if a.Status != want {
						t.Errorf("step %d: status = %s, want %s", i, a.Status, want)
					}
				}
			}
			a, err := s.getAlert(context.Background(), s.db.r, 1)
			if err != nil {
				t.Fatal(err)
			}
			if a.Status != want || len(a.Reviews) != reviews {
				t.Errorf("after all steps: status %s with %d reviews, want %s with %d", a.Status, len(a.Reviews), want, reviews)
			}
			// Every accepted review is in the audit log, with its comment.
			var audited int
			s.db.r.QueryRow(`SELECT COUNT(*) FROM audit WHERE action = 'review' AND target = 'alert/1'`).Scan(&audited)
			if audited != reviews {
				t.Errorf("review audit entries = %d, want %d", audited, reviews)
			}
		})
	}
}

func TestReviewErrors(t *testing.T) {
	s := openService(t, t.TempDir(), Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	op := mustToken(t, s, RoleOperator, "ana", time.Hour)
	for _, c := range []struct {
		name, path, body string
		hdr              []string
		code             int
	}{
		{"no such alert", "/api/v1/alerts/99/review", `{"decision":"confirm","comment":"x"}`, nil, 404},
		{"bad id", "/api/v1/alerts/abc/review", `{"decision":"confirm","comment":"x"}`, nil, 400},
		{"unknown field", "/api/v1/alerts/1/review", `{"decision":"confirm","comment":"x","status":"confirmed"}`, nil, 400},
		{"not json", "/api/v1/alerts/1/review", `decision=confirm`, nil, 400},
		{"huge body", "/api/v1/alerts/1/review", `{"decision":"confirm","comment":"` + strings.Repeat("x", 20000) + `"}`, nil, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, out := do(t, srv, "POST", c.path, op, []byte(c.body), c.hdr...)
			if resp.StatusCode != c.code {
				t.Errorf("POST %s %.40s = %d %s, want %d", c.path, c.body, resp.StatusCode, out, c.code)
			}
		})
	}
}

func TestOperatorWindow(t *testing.T) {
	clk := &clock{t: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)}
	s := openService(t, t.TempDir(), Options{Now: clk.now})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for i := range 2 {
		h, crop := makeHit(i, clk.now())
		s.Store(context.Background(), h, crop)
	}
	op := mustToken(t, s, RoleOperator, "otto", 72*time.Hour)
	inv := mustToken(t, s, RoleInvestigator, "ivy", 72*time.Hour)
	if resp, out := do(t, srv, "POST", "/api/v1/alerts/1/review", op, []byte(`{"decision":"confirm","comment":"yes"}`)); resp.StatusCode != 200 {
		t.Fatalf("review = %d %s", resp.StatusCode, out)
	}
	clk.add(OperatorWindow + time.Minute)
	for _, c := range []struct {
		name, tok, path string
		code            int
	}{
		{"operator, old decided alert", op, "/api/v1/alerts/1", 403},
		{"operator, old decided crop", op, "/api/v1/alerts/1/crop", 403},
		{"operator, old pending alert", op, "/api/v1/alerts/2", 200},
		{"operator, old pending crop", op, "/api/v1/alerts/2/crop", 200},
		{"investigator, old decided alert", inv, "/api/v1/alerts/1?case=CASE-3", 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			if resp, out := do(t, srv, "GET", c.path, c.tok, nil); resp.StatusCode != c.code {
				t.Errorf("GET %s = %d %s, want %d", c.path, resp.StatusCode, out, c.code)
			}
		})
	}
}

func TestAuditChain(t *testing.T) {
	dir := t.TempDir()
	s := openService(t, dir, Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for i := range 4 {
		h, crop := makeHit(i, time.Now())
		s.Store(context.Background(), h, crop)
	}
	inv := mustToken(t, s, RoleInvestigator, "ivy", time.Hour)
	op := mustToken(t, s, RoleOperator, "otto", time.Hour)
	admin := mustToken(t, s, RoleAdmin, "ada", time.Hour)
	// The keyed-era entry and the three token issues come first.
	base, _, err := audit.Head(context.Background(), s.db.r)
	if err != nil || base != 4 {
		t.Fatalf("audit head after issuing 3 tokens = %d, %v, want 4 (keyed-era entry + 3 token_create)", base, err)
	}
	// Activity: every kind of audited action.
	calls := []struct {
		tok, method, path, body, action string
	}{
		{inv, "GET", "/api/v1/alerts?case=CASE-7&camera=cam-1", "", "query"},
		{inv, "GET", "/api/v1/alerts/export?case=CASE-7&format=csv", "", "export"},
		{inv, "GET", "/api/v1/alerts/2?case=CASE-7", "", "view"},
		{inv, "GET", "/api/v1/alerts/2/crop?case=CASE-7", "", "view_crop"},
		{op, "GET", "/api/v1/queue", "", "view_queue"},
		{op, "GET", "/api/v1/alerts/3", "", "view"},
		{op, "POST", "/api/v1/alerts/3/review", `{"decision":"dismiss","comment":"not her"}`, "review"},
	}
	for _, c := range calls {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		if resp, out := do(t, srv, c.method, c.path, c.tok, body); resp.StatusCode != 200 {
			t.Fatalf("%s %s = %d %s", c.method, c.path, resp.StatusCode, out)
		}
	}
	// Refused calls are not audited as access.
	do(t, srv, "GET", "/api/v1/alerts", inv, nil)
	rows, err := s.db.r.Query(`SELECT action, actor_name, case_ref FROM audit WHERE seq > ? ORDER BY seq`, base)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var a, n, c string
		rows.Scan(&a, &n, &c)
		got = append(got, a)
		if n == "ivy" && c != "CASE-7" {
			t.Errorf("audit entry %s by ivy has case %q, want CASE-7", a, c)
		}
	}
	rows.Close()
	if len(got) != len(calls) {
		t.Fatalf("audit actions = %v, want %d entries", got, len(calls))
	}
	for i, c := range calls {
		if got[i] != c.action {
			t.Errorf("audit entry %d = %s, want %s", i+1, got[i], c.action)
		}
	}
	if _, err := s.CheckpointAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	total := int(base) + len(calls)
	rep, err := VerifyAudit(context.Background(), dir, "", nil)
	var lastHash string
	s.db.r.QueryRow(`SELECT hash FROM audit WHERE seq = ?`, total).Scan(&lastHash)
	if err != nil || rep.Entries != total || rep.HeadSeq != int64(total) || rep.Head != lastHash || rep.Checkpointed != int64(total) {
		t.Fatalf("VerifyAudit after activity = %+v, %v, want %d entries, head %s, all checkpointed", rep, err, total, lastHash)
	}
	resp, out := do(t, srv, "GET", "/api/v1/audit/verify", admin, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(out), `"ok": true`) {
		t.Errorf("GET /api/v1/audit/verify = %d %s, want ok", resp.StatusCode, out)
	}

	// The log refuses edits through SQL's front door...
	if _, err := s.db.w.Exec(`UPDATE audit SET case_ref = 'X' WHERE seq = 1`); err == nil {
		t.Error("UPDATE audit succeeded, want the append-only trigger to refuse it")
	}
	if _, err := s.db.w.Exec(`DELETE FROM audit WHERE seq = 1`); err == nil {
		t.Error("DELETE FROM audit succeeded, want the append-only trigger to refuse it")
	}
	// ...and someone with write access to the database file (not to the
	// audit directory) who drops the triggers is caught.
	e := func(k int) int { return int(base) + k }
	tamper := []struct {
		name string
		sql  string
		want string
	}{
		{"edited case", fmt.Sprintf(`UPDATE audit SET case_ref = 'OTHER' WHERE seq = %d`, e(3)), fmt.Sprintf("entry %d: content does not match its keyed hash", e(3))},
		{"edited actor", fmt.Sprintf(`UPDATE audit SET actor_name = 'mallory' WHERE seq = %d`, e(2)), fmt.Sprintf("entry %d: content does not match", e(2))},
		{"deleted entry", fmt.Sprintf(`DELETE FROM audit WHERE seq = %d`, e(5)), fmt.Sprintf("entry %d: missing", e(5))},
		{"rehashed entry", fmt.Sprintf(`UPDATE audit SET detail = '{}', hash = 'ff' WHERE seq = %d`, e(4)), fmt.Sprintf("entry %d:", e(4))},
		{"truncated tail", fmt.Sprintf(`DELETE FROM audit WHERE seq > %d`, e(2)), "truncated"},
		{"edited and rechained with SHA-256", fmt.Sprintf(`UPDATE audit SET case_ref = 'OTHER' WHERE seq = %d`, e(3)), "chained with plain SHA-256"},
	}
	for _, c := range tamper {
		t.Run(c.name, func(t *testing.T) {
			// Work on a copy so that each case breaks one thing.
			cp := copyData(t, s, dir)
			d, err := sql.Open("sqlite3", "file:"+DBPath(cp))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if _, err := d.Exec(`DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; ` + c.sql); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(c.name, "rechained") {
				rechainPlain(t, d)
			}
			_, err = VerifyAudit(context.Background(), cp, "", nil)
			if !errors.Is(err, ErrAuditBroken) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("VerifyAudit after %s = %v, want ErrAuditBroken saying %q", c.name, err, c.want)
			}
		})
	}
	if _, err := VerifyAudit(context.Background(), filepath.Join(dir, "nope"), "", nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("VerifyAudit(missing file) = %v, want not-exist", err)
	}
}

// copyData copies s's database (consistently, VACUUM INTO) and audit
// directory into a new data directory.
func copyData(t *testing.T, s *Service, dir string) string {
	t.Helper()
	cp := t.TempDir()
	os.MkdirAll(filepath.Dir(DBPath(cp)), 0o700)
	if _, err := s.db.w.Exec(`VACUUM INTO ?`, DBPath(cp)); err != nil {
		t.Fatal(err)
	}
	src, dst := audit.DefaultDir(dir), audit.DefaultDir(cp)
	os.MkdirAll(dst, 0o700)
	ents, _ := os.ReadDir(src)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600)
	}
	return cp
}

// rechainPlain recomputes every hash of the audit table with plain
// SHA-256 from the genesis hash, as anyone without the key can (the
// algorithm is public; written out independently of the package).
func rechainPlain(t *testing.T, d *sql.DB) {
	t.Helper()
	rows, err := d.Query(`SELECT seq, time_ns, actor, actor_name, role, action, target, case_ref, detail FROM audit ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		seq, ns int64
		f       [7]string
	}
	var all []row
	for rows.Next() {
		var r row
		rows.Scan(&r.seq, &r.ns, &r.f[0], &r.f[1], &r.f[2], &r.f[3], &r.f[4], &r.f[5], &r.f[6])
		all = append(all, r)
	}
	rows.Close()
	prev := strings.Repeat("0", 64)
	for _, r := range all {
		b, _ := json.Marshal([]any{r.seq, r.ns, r.f[0], r.f[1], r.f[2], r.f[3], r.f[4], r.f[5], r.f[6]})
		h := sha(append([]byte(prev+"\n"), b...))
		if _, err := d.Exec(`UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?`, prev, h, r.seq); err != nil {
			t.Fatal(err)
		}
		prev = h
	}
}

func TestRetentionSweep(t *testing.T) {
	clk := &clock{t: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}
	s := openService(t, t.TempDir(), Options{Now: clk.now})
	retention := s.cfg.Retention
	var old, fresh []wire.Hit
	for i := range 6 {
		h, crop := makeHit(i, clk.now())
		if _, err := s.Store(context.Background(), h, crop); err != nil {
			t.Fatal(err)
		}
		old = append(old, h)
	}
	// A review of an old alert goes with it.
	if _, err := s.recordReview(context.Background(), principal{ID: "t1", Name: "ana", Role: RoleOperator}, 1, "confirm", "yes", ""); err != nil {
		t.Fatal(err)
	}
	clk.add(retention / 2)
	for i := 6; i < 10; i++ {
		h, crop := makeHit(i, clk.now())
		s.Store(context.Background(), h, crop)
		fresh = append(fresh, h)
	}
	// A temporary file left by a crash inside a batch.
	leftover := filepath.Join(s.crops, ".tmp-12345")
	if err := os.WriteFile(leftover, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Not yet expired: nothing goes.
	if n, err := s.Sweep(context.Background()); err != nil || n != 0 {
		t.Fatalf("Sweep before expiry = %d, %v, want 0", n, err)
	}
	clk.add(retention/2 + time.Second) // the first six are now older than retention
	n, err := s.Sweep(context.Background())
	if err != nil || n != len(old) {
		t.Fatalf("Sweep after expiry = %d, %v, want %d", n, err, len(old))
	}
	var ids []string
	rows, _ := s.db.r.Query(`SELECT hit_id FROM alerts ORDER BY id`)
	for rows.Next() {
		var id string
		rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	if len(ids) != len(fresh) {
		t.Fatalf("alerts left = %v, want the %d fresh ones", ids, len(fresh))
	}
	for i, h := range fresh {
		if ids[i] != h.ID {
			t.Errorf("alert left %d = %s, want %s", i, ids[i], h.ID)
		}
	}
	var reviews int
	s.db.r.QueryRow(`SELECT COUNT(*) FROM reviews`).Scan(&reviews)
	if reviews != 0 {
		t.Errorf("reviews left = %d, want 0 (they expire with their alert)", reviews)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary crop file after sweep: %v, want it removed", err)
	}
	ents, _ := os.ReadDir(s.crops)
	if len(ents) != len(fresh) {
		t.Errorf("crop files left = %d, want %d", len(ents), len(fresh))
	}
	for i := range fresh {
		if _, err := os.Stat(filepath.Join(s.crops, sha(fakeJPEG(6+i))+".jpg")); err != nil {
			t.Errorf("crop of fresh alert %d: %v", i, err)
		}
	}
	for i := range old {
		if _, err := os.Stat(filepath.Join(s.crops, sha(fakeJPEG(i))+".jpg")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("crop of expired alert %d still on disk (%v)", i, err)
		}
	}
}

func TestPrecisionFromReviews(t *testing.T) {
	s := openService(t, t.TempDir(), Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	// decisions[i] is what happens to hit i: "" stays open.
	decisions := []string{"confirm", "dismiss", "confirm", "confirm", "", "dismiss", "confirm", "", "dismiss", "confirm", "confirm", ""}
	type tally struct{ c, d, open int }
	byCam, byList := map[string]*tally{}, map[string]*tally{}
	add := func(m map[string]*tally, k, dec string) {
		if m[k] == nil {
			m[k] = &tally{}
		}
		switch dec {
		case "confirm":
			m[k].c++
		case "dismiss":
			m[k].d++
		default:
			m[k].open++
		}
	}
	op := principal{ID: "op1", Name: "otto", Role: RoleOperator}
	for i, dec := range decisions {
		h, crop := makeHit(i, base)
		if _, err := s.Store(context.Background(), h, crop); err != nil {
			t.Fatal(err)
		}
		if dec != "" {
			if _, err := s.recordReview(context.Background(), op, int64(i+1), dec, "checked", ""); err != nil {
				t.Fatal(err)
			}
		}
		add(byCam, h.Camera, dec)
		add(byList, h.Watchlist, dec)
	}
	tok := mustToken(t, s, RoleCurator, "cura", time.Hour)
	resp, body := do(t, srv, "GET", "/api/v1/stats/precision", tok, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET precision = %d %s", resp.StatusCode, body)
	}
	var p Precision
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	check := func(what string, got []Outcome, want map[string]*tally) {
		if len(got) != len(want) {
			t.Errorf("precision by %s has %d rows, want %d", what, len(got), len(want))
		}
		for _, o := range got {
			w := want[o.Key]
			if w == nil {
				t.Errorf("precision by %s: unexpected %q", what, o.Key)
				continue
			}
			if o.Confirmed != w.c || o.Dismissed != w.d || o.Open != w.open {
				t.Errorf("precision by %s %s = %d/%d/%d open, want %d/%d/%d", what, o.Key, o.Confirmed, o.Dismissed, o.Open, w.c, w.d, w.open)
			}
			if o.Precision == nil || *o.Precision != float64(w.c)/float64(w.c+w.d) {
				t.Errorf("precision by %s %s = %v, want %d/%d", what, o.Key, o.Precision, w.c, w.c+w.d)
			}
		}
	}
	check("camera", p.ByCamera, byCam)
	check("watchlist", p.ByWatchlist, byList)
	// A time range that holds nothing gives empty tables, not an error.
	resp, body = do(t, srv, "GET", "/api/v1/stats/precision?from=2030-01-01T00:00:00Z", tok, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"by_camera": []`) {
		t.Errorf("GET precision in the future = %d %s, want empty tables", resp.StatusCode, body)
	}
	if resp, _ := do(t, srv, "GET", "/api/v1/stats/precision?camera=cam-1", tok, nil); resp.StatusCode != 400 {
		t.Errorf("GET precision?camera= = %d, want 400", resp.StatusCode)
	}
}
