package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
)

// The fuzzers of this file cover what a stranger sends the API before any
// data is touched: the bearer token and the console cookie, the case
// reference, Last-Event-ID and the review body. Each asserts a property
// against an oracle written here, not only the absence of a panic. The
// seeds are the table cases of the tests beside them; `make fuzz` runs each
// briefly.

// bearerCases seed FuzzBearer and pin the table: header, cookie, the token
// wanted (or "" when refused) and whether it came from the cookie.
var bearerCases = []struct {
	name, header, cookie, tok string
	fromCookie                bool
}{
	{"bearer", "Bearer fwt_abc", "", "fwt_abc", false},
	{"scheme case-insensitive", "bEaReR fwt_abc", "", "fwt_abc", false},
	{"spaces trimmed", "Bearer   fwt_abc  ", "", "fwt_abc", false},
	{"basic refused", "Basic dXNlcjpwdw==", "", "", false},
	{"no space refused", "Bearerfwt_abc", "", "", false},
	{"header wins over cookie", "Bearer fwt_h", "fwt_c", "fwt_h", false},
	{"cookie", "", "fwt_c", "fwt_c", true},
	{"empty cookie refused", "", "", "", false},
}

func TestBearer(t *testing.T) {
	for _, tc := range bearerCases {
		t.Run(tc.name, func(t *testing.T) {
			tok, fromCookie, err := bearer(bearerRequest(tc.header, tc.cookie))
			if tok != tc.tok || fromCookie != tc.fromCookie || (err == nil) != (tc.tok != "") {
				t.Errorf("bearer(%q, cookie %q) = %q, %v, %v, want %q, %v", tc.header, tc.cookie, tok, fromCookie, err, tc.tok, tc.fromCookie)
			}
		})
	}
}

func bearerRequest(header, cookie string) *http.Request {
	r := httptest.NewRequest("GET", "/api/v1/whoami", nil)
	if header != "" {
		r.Header.Set("Authorization", header)
	}
	if cookie != "" {
		r.AddCookie(&http.Cookie{Name: tokenCookie, Value: cookie})
	}
	return r
}

// FuzzBearer: whatever the Authorization header and console cookie hold,
// bearer and authenticate (against a real token store) never panic, a
// header token is exactly what follows "Bearer ", only the one issued
// token authenticates, and every refusal is one of the 401 reasons.
func FuzzBearer(f *testing.F) {
	s := openService(f, f.TempDir(), Options{})
	valid := mustToken(f, s, RoleOperator, "fuzz", time.Hour)
	for _, tc := range bearerCases {
		f.Add(tc.header, tc.cookie)
	}
	f.Add("Bearer "+valid, "")
	f.Add("", valid)
	f.Add("Bearer "+valid[:len(valid)-1]+"A", "")
	f.Fuzz(func(t *testing.T, header, cookie string) {
		r := bearerRequest(header, "")
		if cookie != "" {
			r.Header.Set("Cookie", tokenCookie+"="+cookie)
		}
		tok, fromCookie, err := bearer(r)
		switch {
		case header != "":
			scheme, rest, ok := strings.Cut(header, " ")
			want := ok && strings.EqualFold(scheme, "Bearer")
			if (err == nil) != want || fromCookie || (want && tok != strings.TrimSpace(rest)) {
				t.Fatalf("bearer(%q) = %q, %v, %v; want the text after the scheme: %v", header, tok, fromCookie, err, want)
			}
		case err == nil && (!fromCookie || tok == ""):
			t.Fatalf("bearer(cookie %q) = %q, %v, %v; want a non-empty cookie token", cookie, tok, fromCookie, err)
		}
		if err != nil {
			return
		}
		p, aerr := s.authenticate(context.Background(), tok)
		if tok == valid {
			if aerr != nil || p.Role != RoleOperator {
				t.Fatalf("authenticate(the issued token) = %+v, %v, want the operator", p, aerr)
			}
			return
		}
		if aerr == nil {
			t.Fatalf("authenticate(%q) = %+v, want a refusal (only %q was issued)", tok, p, valid)
		}
		if !errors.Is(aerr, errNoToken) && !errors.Is(aerr, errMalformedToken) && !errors.Is(aerr, errUnknownToken) {
			t.Fatalf("authenticate(%q) = %v, want a 401 reason", tok, aerr)
		}
		if tokenFormat.MatchString(tok) {
			if got, _, err := bearer(bearerRequest("Bearer "+tok, "")); err != nil || got != tok {
				t.Fatalf("bearer(Bearer %q) = %q, %v, want the token back", tok, got, err)
			}
		}
	})
}

// validCase is the case-reference rule written out by hand, the oracle of
// FuzzCaseRef: 3-64 bytes, a letter or digit first, then letters, digits,
// space and ._/:#-.
func validCase(c string) bool {
	if len(c) < 3 || len(c) > 64 {
		return false
	}
	for i, r := range c {
		alnum := r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r))
		if i == 0 && !alnum || i > 0 && !alnum && !strings.ContainsRune(" ._/:#-", r) {
			return false
		}
	}
	return true
}

var caseCases = []struct {
	name, in string
	ok       bool
}{
	{"file number", "2026/0147", true},
	{"incident", "INC-88231", true},
	{"with space and hash", "case #12 a.b:c", true},
	{"too short", "ab", false},
	{"65 bytes", strings.Repeat("a", 65), false},
	{"64 bytes", strings.Repeat("a", 64), true},
	{"leading dash", "-abc", false},
	{"newline", "abc\ndef", false},
	{"quote", `abc"def`, false},
	{"non-ASCII letter", "café-1", false},
	{"SQL", "x' OR '1'='1", false},
}

func TestCaseRef(t *testing.T) {
	for _, tc := range caseCases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api/v1/alerts?case="+url.QueryEscape(tc.in), nil)
			got, err := caseRef(r)
			if (err == nil) != tc.ok || (tc.ok && got != tc.in) {
				t.Errorf("caseRef(%q) = %q, %v, want ok %v", tc.in, got, err, tc.ok)
			}
			if validCase(tc.in) != tc.ok {
				t.Errorf("validCase(%q) = %v, want %v (the oracle disagrees with the table)", tc.in, !tc.ok, tc.ok)
			}
		})
	}
}

// FuzzCaseRef: a case reference from the query or the header is accepted
// exactly when the hand-written rule allows it, and comes back unchanged
// (it is written to the audit log as given).
func FuzzCaseRef(f *testing.F) {
	for _, tc := range caseCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, c string) {
		for _, r := range []*http.Request{
			httptest.NewRequest("GET", "/api/v1/alerts?case="+url.QueryEscape(c), nil),
			func() *http.Request {
				r := httptest.NewRequest("GET", "/api/v1/alerts", nil)
				r.Header.Set("X-Case-Reference", c)
				return r
			}(),
		} {
			got, err := caseRef(r)
			switch {
			case c == "":
				if got != "" || err != nil {
					t.Fatalf("caseRef(none) = %q, %v, want none", got, err)
				}
			case validCase(c):
				if err != nil || got != c {
					t.Fatalf("caseRef(%q) = %q, %v, want it back", c, got, err)
				}
			case err == nil:
				t.Fatalf("caseRef(%q) = %q, want a refusal", c, got)
			}
		}
	})
}

var lastEventCases = []struct {
	name, in string
	want     int64
	ok       bool
}{
	{"none", "", 0, true},
	{"id", "42", 42, true},
	{"zero", "0", 0, true},
	{"max", "9223372036854775807", 1<<63 - 1, true},
	{"overflow", "9223372036854775808", 0, false},
	{"negative", "-1", 0, false},
	{"plus", "+5", 0, false},
	{"minus zero", "-0", 0, false},
	{"leading zeros too long", "00000000000000000042", 0, false},
	{"text", "abc", 0, false},
	{"space", " 42", 0, false},
}

func TestParseLastEventID(t *testing.T) {
	for _, tc := range lastEventCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseLastEventID(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("parseLastEventID(%q) = %d, %v, want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

// FuzzLastEventID: accepted exactly when the header is empty or 1-19
// decimal digits that fit an int64, and the id read is the number written.
func FuzzLastEventID(f *testing.F) {
	for _, tc := range lastEventCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, v string) {
		n, err := parseLastEventID(v)
		digits := len(v) >= 1 && len(v) <= 19 && strings.Trim(v, "0123456789") == ""
		if digits {
			// 19 digits may still overflow: compare as decimal strings.
			trimmed := strings.TrimLeft(v, "0")
			if len(trimmed) == 19 && trimmed > "9223372036854775807" {
				digits = false
			}
		}
		switch {
		case v == "":
			if n != 0 || err != nil {
				t.Fatalf("parseLastEventID(\"\") = %d, %v, want 0", n, err)
			}
		case digits:
			if err != nil || strconv.FormatInt(n, 10) != strings.TrimLeft(v, "0") && !(n == 0 && strings.Trim(v, "0") == "") {
				t.Fatalf("parseLastEventID(%q) = %d, %v, want the number", v, n, err)
			}
		case err == nil:
			t.Fatalf("parseLastEventID(%q) = %d, want a refusal", v, n)
		}
	})
}

var reviewBodies = []struct {
	name, body string
	ok         bool
}{
	{"confirm", `{"decision":"confirm","comment":"seen on camera 3"}`, true},
	{"dismiss", `{"decision":"dismiss","comment":"different person"}`, true},
	{"unknown field", `{"decision":"confirm","comment":"x","by":"admin"}`, false},
	{"bad decision", `{"decision":"maybe","comment":"x"}`, false},
	{"empty comment", `{"decision":"confirm","comment":"   "}`, false},
	{"control character", `{"decision":"confirm","comment":"a\u0007b"}`, false},
	{"too long", `{"decision":"confirm","comment":"` + strings.Repeat("a", MaxComment+1) + `"}`, false},
	{"two objects", `{"decision":"confirm","comment":"x"}{"decision":"dismiss","comment":"y"}`, false},
	{"trailing garbage", `{"decision":"confirm","comment":"x"} junk`, false},
	{"array", `[]`, false},
	{"empty", ``, false},
}

// FuzzReviewBody sends each body to the real review route (real SQLite)
// for an alert that does not exist: a body that decodeReview and
// checkReview accept must reach the lookup (404), any other must be a 400,
// and nothing may be a 500. An accepted body also round-trips through
// JSON. The same body goes to an incident's review route, whose body may
// also list the sightings seen (decodeIncidentReview).
func FuzzReviewBody(f *testing.F) {
	s := openService(f, f.TempDir(), Options{})
	tok := mustToken(f, s, RoleOperator, "fuzz", time.Hour)
	h := s.Handler()
	for _, tc := range reviewBodies {
		f.Add([]byte(tc.body))
	}
	f.Add([]byte(`{"decision":"confirm","comment":"him","sightings":[1,2,3]}`))
	f.Add([]byte(`{"decision":"dismiss","comment":"no","sightings":[]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeReview(bytes.NewReader(body))
		ok := err == nil
		if ok {
			again, err := decodeReview(bytes.NewReader(mustJSON(t, req)))
			if err != nil || again != req {
				t.Fatalf("decodeReview(json(%+v)) = %+v, %v, want the same review", req, again, err)
			}
			st, comment, err := checkReview(req.Decision, req.Comment)
			ok = err == nil
			if ok && (st != StatusConfirmed && st != StatusDismissed || comment == "" || len(comment) > MaxComment || comment != strings.TrimSpace(comment)) {
				t.Fatalf("checkReview(%q, %q) = %q, %q, want a final status and a trimmed 1-%d byte comment", req.Decision, req.Comment, st, comment, MaxComment)
			}
		}
		r := httptest.NewRequest("POST", "/api/v1/alerts/987654/review", bytes.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+tok)
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		want := http.StatusBadRequest
		if ok {
			want = http.StatusNotFound
		}
		if w.Code != want && !(w.Code == http.StatusRequestEntityTooLarge && len(body) > maxReviewBody) && !(len(body) > maxReviewBody && w.Code == http.StatusBadRequest) {
			t.Fatalf("POST review %q = %d %s, want %d", body, w.Code, w.Body, want)
		}
		// The same for an incident's review, whose body may also list
		// the sightings seen.
		ireq, err := decodeIncidentReview(bytes.NewReader(body))
		iok := err == nil
		if iok {
			_, _, err = checkReview(ireq.Decision, ireq.Comment)
			iok = err == nil && len(ireq.Sightings) <= maxIncidentSightings
		}
		r = httptest.NewRequest("POST", "/api/v1/incidents/987654/review", bytes.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+tok)
		r.Header.Set("Content-Type", "application/json")
		w = httptest.NewRecorder()
		h.ServeHTTP(w, r)
		want = http.StatusBadRequest
		if iok {
			want = http.StatusNotFound
		}
		if w.Code != want && !(len(body) > maxReviewBody && w.Code == http.StatusBadRequest) {
			t.Fatalf("POST incident review %q = %d %s, want %d", body, w.Code, w.Body, want)
		}
	})
}

func TestReviewBodies(t *testing.T) {
	for _, tc := range reviewBodies {
		t.Run(tc.name, func(t *testing.T) {
			req, err := decodeReview(strings.NewReader(tc.body))
			if err == nil {
				_, _, err = checkReview(req.Decision, req.Comment)
			}
			if (err == nil) != tc.ok {
				t.Errorf("review body %q: err = %v, want ok %v", tc.body, err, tc.ok)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal(%+v) = %v", v, err)
	}
	return b
}
