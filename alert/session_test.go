package alert

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/wire"
)

// noRedirect is a client of srv that shows redirects instead of following them.
func noRedirect(srv *httptest.Server) *http.Client {
	c := *srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func postForm(t *testing.T, srv *httptest.Server, path string, form url.Values, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("POST", srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := noRedirect(srv).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, b.String()
}

func sessionCookieOf(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == tokenCookie {
			return c
		}
	}
	return nil
}

// TestSignIn covers POST /signin: a good token (form or JSON) gets an
// HttpOnly, SameSite=Strict cookie (Secure under TLS) holding it; a bad
// one gets the sign-in page again with the reason and no cookie; a
// foreign Origin is refused.
func TestSignIn(t *testing.T) {
	s := openService(t, t.TempDir(), Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	op := mustToken(t, s, RoleOperator, "Olga Op", time.Hour)
	expired := mustToken(t, s, RoleOperator, "Old Op", time.Nanosecond)
	time.Sleep(time.Millisecond)

	cases := []struct {
		name     string
		token    string
		origin   string
		wantCode int
		wantMsg  string // in the body
		cookie   bool
	}{
		{"operator", op, "", http.StatusSeeOther, "", true},
		{"operator same origin", op, srv.URL, http.StatusSeeOther, "", true},
		{"unknown", "fwt_" + strings.Repeat("A", 43), "", http.StatusUnauthorized, "unknown or has been revoked", false},
		{"malformed", "hello", "", http.StatusUnauthorized, "not a facewatch token", false},
		{"empty", "", "", http.StatusUnauthorized, "Paste a token", false},
		{"expired", expired, "", http.StatusUnauthorized, "expired", false},
		{"foreign origin", op, "https://evil.example", http.StatusForbidden, "another site", false},
		{"null origin", op, "null", http.StatusForbidden, "another site", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hdr := []string{}
			if c.origin != "" {
				hdr = append(hdr, "Origin", c.origin)
			}
			resp, body := postForm(t, srv, "/signin", url.Values{"token": {c.token}}, hdr...)
			if resp.StatusCode != c.wantCode {
				t.Fatalf("POST /signin = %d, want %d (%s)", resp.StatusCode, c.wantCode, body)
			}
			if !strings.Contains(body, c.wantMsg) {
				t.Errorf("POST /signin body lacks %q: %s", c.wantMsg, body)
			}
			ck := sessionCookieOf(resp)
			if (ck != nil) != c.cookie {
				t.Fatalf("POST /signin set cookie = %v, want %v", ck != nil, c.cookie)
			}
			if ck == nil {
				return
			}
			if resp.Header.Get("Location") != "/console" {
				t.Errorf("POST /signin Location = %q, want /console", resp.Header.Get("Location"))
			}
			if ck.Value != c.token || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure || ck.Path != "/" {
				t.Errorf("cookie = %+v, want the token, HttpOnly, SameSite=Strict, not Secure over plain HTTP, Path=/", ck)
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		resp, out := do(t, srv, "POST", "/signin", "", []byte(`{"token":"`+op+`"}`))
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(out), `"role": "operator"`) || sessionCookieOf(resp) == nil {
			t.Errorf("POST /signin JSON = %d %s (cookie %v), want 200 with role operator and a cookie", resp.StatusCode, out, sessionCookieOf(resp))
		}
		resp, out = do(t, srv, "POST", "/signin", "", []byte(`{"token":"fwt_nope"}`))
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(out), `"error"`) || sessionCookieOf(resp) != nil {
			t.Errorf("POST /signin JSON bad token = %d %s, want 401 JSON error and no cookie", resp.StatusCode, out)
		}
	})
	t.Run("GET refused", func(t *testing.T) {
		resp, _ := do(t, srv, "GET", "/signin?token="+op, "", nil)
		if resp.StatusCode != http.StatusMethodNotAllowed || sessionCookieOf(resp) != nil {
			t.Errorf("GET /signin = %d, want 405 and no cookie (never a token in a URL)", resp.StatusCode)
		}
	})
	t.Run("audited", func(t *testing.T) {
		n := auditCount(t, s, "sign_in")
		if n < 3 { // two form sign-ins and one JSON
			t.Errorf("audit has %d sign_in entries, want at least 3", n)
		}
	})
}

func TestSignInSecureUnderTLS(t *testing.T) {
	s := openService(t, t.TempDir(), Options{})
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.TLS = &tls.Config{}
	srv.StartTLS()
	defer srv.Close()
	op := mustToken(t, s, RoleOperator, "op", time.Hour)
	resp, body := postForm(t, srv, "/signin", url.Values{"token": {op}})
	ck := sessionCookieOf(resp)
	if resp.StatusCode != http.StatusSeeOther || ck == nil || !ck.Secure || !ck.HttpOnly {
		t.Fatalf("POST /signin over TLS = %d cookie %+v (%s), want 303 and a Secure HttpOnly cookie", resp.StatusCode, ck, body)
	}
}

// TestSignOutAndCSRF: the console page carries its CSRF token; sign-out
// needs it, is audited and clears the cookie; a bearer client needs none.
func TestSignOutAndCSRF(t *testing.T) {
	s := openService(t, t.TempDir(), Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	op := mustToken(t, s, RoleOperator, "op", time.Hour)
	cookie := tokenCookie + "=" + op

	resp, page := do(t, srv, "GET", "/console", "", nil, "Cookie", cookie)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), `content="`+csrfToken(op)+`"`) || strings.Contains(string(page), op) {
		t.Fatalf("GET /console = %d, want 200 with the CSRF meta tag and without the session token", resp.StatusCode)
	}
	if csrfToken(op) == csrfToken(mustToken(t, s, RoleOperator, "op2", time.Hour)) {
		t.Error("two sessions share a CSRF token")
	}
	cases := []struct {
		name string
		hdr  []string
		want int
	}{
		{"cookie without CSRF", []string{"Cookie", cookie}, http.StatusForbidden},
		{"cookie with old header only", []string{"Cookie", cookie, "X-Requested-With", "facewatch-console"}, http.StatusForbidden},
		{"cookie, CSRF, foreign origin", []string{"Cookie", cookie, csrfHeader, csrfToken(op), "Origin", "https://evil.example"}, http.StatusForbidden},
		{"cookie, CSRF, null origin", []string{"Cookie", cookie, csrfHeader, csrfToken(op), "Origin", "null"}, http.StatusForbidden},
		{"bearer without CSRF", []string{"Authorization", "Bearer " + op}, http.StatusOK},
		{"cookie with CSRF", []string{"Cookie", cookie, csrfHeader, csrfToken(op), "Origin", srv.URL}, http.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := auditCount(t, s, "sign_out")
			resp, out := do(t, srv, "POST", "/signout", "", nil, c.hdr...)
			if resp.StatusCode != c.want {
				t.Fatalf("POST /signout = %d %s, want %d", resp.StatusCode, out, c.want)
			}
			after := auditCount(t, s, "sign_out")
			if ok := resp.StatusCode == http.StatusOK; (after == before+1) != ok {
				t.Errorf("sign_out audit entries %d -> %d, want one more exactly when signed out", before, after)
			}
			ck := sessionCookieOf(resp)
			if resp.StatusCode == http.StatusOK && (ck == nil || ck.MaxAge >= 0 || ck.Value != "") {
				t.Errorf("POST /signout cookie = %+v, want it cleared", ck)
			}
		})
	}
	// A refused session cookie shows the sign-in page with the reason.
	resp, page = do(t, srv, "GET", "/console", "", nil, "Accept", "text/html", "Cookie", tokenCookie+"=fwt_"+strings.Repeat("B", 43))
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(page), "Your session ended") || !strings.Contains(string(page), "<form") {
		t.Errorf("GET /console with a refused cookie = %d, want 401 with the sign-in form and the reason", resp.StatusCode)
	}
}

func auditCount(t *testing.T, s *Service, action string) int {
	t.Helper()
	var n int
	if err := s.db.r.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM audit WHERE action = ?`, action).Scan(&n); err != nil {
		t.Fatalf("counting audit %s: %v", action, err)
	}
	return n
}

// TestQueueCarriesFirstReview: an alert awaiting its second reviewer comes
// with its first review in the queue (the console tells its first reviewer
// to wait); a pending one comes with none.
func TestQueueCarriesFirstReview(t *testing.T) {
	s := openService(t, t.TempDir(), Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	ctx := context.Background()
	h1, c1 := makeHit(1, time.Now())
	h1.SecondReviewer = true
	h2, c2 := makeHit(2, time.Now())
	for _, h := range []struct {
		h wire.Hit
		c []byte
	}{{h1, c1}, {h2, c2}} {
		if _, err := s.Store(ctx, h.h, h.c); err != nil {
			t.Fatalf("Store(%s) = %v", h.h.ID, err)
		}
	}
	olga := mustPersonToken(t, s, RoleOperator, "Olga Operator", "desk", time.Hour)
	if resp, out := do(t, srv, "POST", "/api/v1/alerts/1/review", olga, []byte(`{"decision":"confirm","comment":"same person"}`)); resp.StatusCode != http.StatusOK {
		t.Fatalf("first review = %d %s", resp.StatusCode, out)
	}
	resp, out := do(t, srv, "GET", "/api/v1/queue", olga, nil)
	var q page
	if resp.StatusCode != http.StatusOK || json.Unmarshal(out, &q) != nil {
		t.Fatalf("GET queue = %d %s", resp.StatusCode, out)
	}
	got := map[int64]Alert{}
	for _, a := range q.Alerts {
		got[a.ID] = a
	}
	if a := got[1]; a.Status != StatusAwaitingSecond || len(a.Reviews) != 1 || a.Reviews[0].ReviewerName != "Olga Operator" || a.Reviews[0].Decision != "confirm" {
		t.Errorf("queue alert 1 = %s with reviews %+v, want awaiting_second with Olga Operator's confirm", a.Status, a.Reviews)
	}
	if a := got[2]; a.Status != StatusPending || len(a.Reviews) != 0 {
		t.Errorf("queue alert 2 = %s with reviews %+v, want pending with none", a.Status, a.Reviews)
	}
}
