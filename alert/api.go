package alert

import (
	"bytes"
	"context"
	"database/sql"
	_ "embed" // the console page and the OpenAPI description
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

//go:embed console.html
var consoleHTML []byte

//go:embed login.html
var loginHTML []byte

//go:embed openapi.json
var openAPIJSON []byte

// route is one API endpoint: the roles allowed to call it and its handler.
// The table (routeTable) is the only place routes are registered, and the
// access-control tests enumerate it, so no route escapes authentication.
type route struct {
	Method  string
	Pattern string
	Roles   []Role
	Summary string
	h       func(w http.ResponseWriter, r *http.Request, p principal)
}

// routeTable is the role → route permission table.
func (s *Service) routeTable() []route {
	all := Roles()
	return append([]route{
		{"GET", "/healthz", all, "liveness", s.healthz},
		{"GET", "/readyz", all, "readiness: database answers and hits are being consumed", s.readyz},
		{"GET", "/metrics", []Role{RoleAdmin, RoleIntegrator}, "Prometheus metrics", s.metrics},
		{"GET", "/openapi.json", all, "this API's OpenAPI description", s.openapi},
		{"GET", "/api/v1/whoami", all, "the caller's token ID, name, role and scope", s.whoami},
		{"GET", "/console", []Role{RoleOperator}, "operator console (HTML)", s.console},
		{"POST", "/signout", all, "console sign-out: clears the session cookie (audited)", s.signOut},
		{"GET", "/api/v1/queue", []Role{RoleOperator}, "alerts awaiting review", s.queue},
		{"GET", "/api/v1/live", []Role{RoleOperator}, "live feed of new alerts (Server-Sent Events)", s.live},
		{"GET", "/api/v1/alerts", []Role{RoleInvestigator}, "history query (needs a case reference)", s.list},
		{"GET", "/api/v1/alerts/export", []Role{RoleInvestigator}, "history export as CSV or JSON (needs a case reference)", s.export},
		{"GET", "/api/v1/alerts/{id}", []Role{RoleOperator, RoleInvestigator}, "one alert with its reviews", s.view},
		{"GET", "/api/v1/alerts/{id}/crop", []Role{RoleOperator, RoleInvestigator}, "the probe face crop (JPEG)", s.crop},
		{"GET", "/api/v1/alerts/{id}/scene", []Role{RoleOperator, RoleInvestigator}, "the scene: the frame downscaled with the face box drawn (JPEG)", s.scene},
		{"GET", "/api/v1/alerts/{id}/enrolled-face", []Role{RoleOperator, RoleInvestigator}, "the enrolled face that matched: its aligned chip (JPEG)", s.enrolledFace},
		{"GET", "/api/v1/incidents", []Role{RoleOperator, RoleInvestigator}, "incidents (sightings of one identity grouped), open ones by default", s.incidents},
		{"GET", "/api/v1/incidents/{id}", []Role{RoleOperator, RoleInvestigator}, "one incident with its sightings and their reviews", s.incident},
		{"POST", "/api/v1/incidents/{id}/review", []Role{RoleOperator}, "confirm or dismiss an incident's open sightings with a comment", s.reviewIncidentH},
		{"POST", "/api/v1/alerts/{id}/review", []Role{RoleOperator}, "confirm or dismiss an alert with a comment", s.reviewH},
		{"GET", "/api/v1/alerts/{id}/evidence", []Role{RoleInvestigator}, "signed evidence bundle of one alert (needs a case reference)", s.evidenceH},
		{"GET", "/api/v1/photos/{sha256}", []Role{RoleOperator, RoleInvestigator, RoleCurator}, "an enrolled photo (JPEG)", s.photo},
		{"GET", "/api/v1/stats/precision", []Role{RoleAdmin, RoleCurator, RoleOperator, RoleInvestigator}, "measured precision per camera and watchlist from review outcomes", s.precision},
		{"GET", "/api/v1/audit/verify", []Role{RoleAdmin}, "verify the audit chain", s.auditVerify},
	}, s.rolePageRoutes()...)
}

// statusWriter records the status code for the request metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// tokenCookie is where the console keeps its token, so that the browser
// sends it with page loads, images and the live feed.
const tokenCookie = "facewatch_token"

// Handler returns the whole API and console. Every request is
// authenticated first (401 for a missing, malformed, unknown, revoked or
// expired token, whatever the path), then routed, then checked against
// the route's roles (403).
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	scopes := routeScopes()
	for _, rt := range s.routes {
		rt := rt
		mux.HandleFunc(rt.Method+" "+rt.Pattern, func(w http.ResponseWriter, r *http.Request) {
			p := r.Context().Value(principalKey{}).(principal)
			sw := &statusWriter{ResponseWriter: w}
			defer func() {
				code := sw.code
				if code == 0 {
					code = http.StatusOK
				}
				s.m.requests.WithLabelValues(rt.Pattern, strconv.Itoa(code)).Inc()
			}()
			if !slices.Contains(rt.Roles, p.Role) {
				writeError(sw, http.StatusForbidden, fmt.Sprintf("role %s may not call %s %s", p.Role, rt.Method, rt.Pattern))
				return
			}
			// A route nobody decided a scope rule for is closed to scoped
			// tokens rather than open to them.
			if rule, ok := scopes[rt.Method+" "+rt.Pattern]; !p.Scope.All() && (!ok || rule == scopeSiteWide) {
				writeError(sw, http.StatusForbidden, fmt.Sprintf("a scoped token may not call %s %s", rt.Method, rt.Pattern))
				return
			}
			rt.h(sw, r, p)
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		// Nothing goes to other sites; same-site requests keep their
		// Origin header, which the CSRF checks need (under no-referrer a
		// browser sends "Origin: null" even to its own site).
		w.Header().Set("Referrer-Policy", "same-origin")
		if r.TLS != nil && s.cfg.TLS.HSTSMaxAge > 0 {
			// Once a browser has seen the API over HTTPS it refuses to
			// send the token cookie over plain HTTP again.
			w.Header().Set("Strict-Transport-Security", fmt.Sprintf("max-age=%d", int64(s.cfg.TLS.HSTSMaxAge/time.Second)))
		}
		if r.URL.Path == "/signin" {
			s.signIn(w, r)
			return
		}
		tok, fromCookie, err := bearer(r)
		var p principal
		if err == nil {
			p, err = s.authenticate(r.Context(), tok)
		}
		if err != nil {
			s.unauthorized(w, r, err, fromCookie)
			return
		}
		if len(r.URL.RawQuery) > MaxQueryLen {
			writeError(w, http.StatusRequestURITooLong, fmt.Sprintf("query string of %d bytes exceeds %d", len(r.URL.RawQuery), MaxQueryLen))
			return
		}
		// A cookie is sent by the browser on its own; a state-changing call
		// must also carry the session's CSRF token, which a cross-site page
		// can neither read nor send (see session.go), and no foreign Origin.
		if fromCookie && r.Method != http.MethodGet && r.Method != http.MethodHead && (!csrfOK(r, tok) || !sameOrigin(r)) {
			writeError(w, http.StatusForbidden, "cookie-authenticated requests that change state need the session's "+csrfHeader+" header (the console sends it) and no foreign Origin")
			return
		}
		mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

type principalKey struct{}

// bearer extracts the presented token: the Authorization header, or the
// console's cookie when there is no header.
func bearer(r *http.Request) (tok string, fromCookie bool, err error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", false, errMalformedToken
		}
		return strings.TrimSpace(tok), false, nil
	}
	if c, err := r.Cookie(tokenCookie); err == nil && c.Value != "" {
		return c.Value, true, nil
	}
	return "", false, errNoToken
}

func (s *Service) unauthorized(w http.ResponseWriter, r *http.Request, err error, fromCookie bool) {
	if !errors.Is(err, errNoToken) && !errors.Is(err, errMalformedToken) && !errors.Is(err, errUnknownToken) && !errors.Is(err, errExpiredToken) {
		s.log.Error("authenticating request", "err", err)
		writeError(w, http.StatusInternalServerError, "authentication is unavailable")
		return
	}
	reason := strings.TrimSuffix(strings.Fields(err.Error())[0], ":")
	s.m.authFailures.WithLabelValues(reason).Inc()
	s.log.Debug("request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "reason", err.Error())
	w.Header().Set("WWW-Authenticate", `Bearer realm="facewatch", error="invalid_token"`)
	// A browser opening the console gets the sign-in form (still a 401:
	// the form holds no data), saying why when its cookie was refused.
	if r.Method == http.MethodGet && isPage(r.URL.Path) && strings.Contains(r.Header.Get("Accept"), "text/html") {
		msg := ""
		if fromCookie {
			msg = "Your session ended: " + signInMessage(err)
		}
		writeLogin(w, http.StatusUnauthorized, msg)
		return
	}
	writeError(w, http.StatusUnauthorized, err.Error())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// caseFormat is what a case reference looks like: a file number such as
// "2026/0147" or "INC-88231".
var caseFormat = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._/:#-]{2,63}$`)

// caseRef returns the request's case reference (the case parameter or the
// X-Case-Reference header), "" when none, or an error when malformed.
func caseRef(r *http.Request) (string, error) {
	c := r.URL.Query().Get("case")
	if c == "" {
		c = r.Header.Get("X-Case-Reference")
	}
	if c == "" {
		return "", nil
	}
	if !caseFormat.MatchString(c) {
		return "", errors.New("case reference must be 3-64 letters, digits or ' ._/:#-', starting with a letter or digit")
	}
	return c, nil
}

// needCase is caseRef for routes that require one.
func needCase(w http.ResponseWriter, r *http.Request) (string, bool) {
	c, err := caseRef(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", false
	}
	if c == "" {
		writeError(w, http.StatusBadRequest, "a case reference is required (case parameter or X-Case-Reference header)")
		return "", false
	}
	return c, true
}

// audit appends one entry for p in its own transaction. A failure
// refuses the request: nothing is shown that is not recorded.
func (s *Service) audit(ctx context.Context, p principal, action, target, caseRef string, detail any) error {
	return s.auditAs(ctx, p.actor(), action, target, caseRef, detail)
}

func (s *Service) auditOr500(w http.ResponseWriter, r *http.Request, p principal, action, target, caseRef string, detail any) bool {
	if err := s.audit(r.Context(), p, action, target, caseRef, detail); err != nil {
		s.log.Error("audit append failed; request refused", "action", action, "err", err)
		writeError(w, http.StatusInternalServerError, "could not write the audit log; request refused")
		return false
	}
	return true
}

func (s *Service) healthz(w http.ResponseWriter, r *http.Request, _ principal) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Service) readyz(w http.ResponseWriter, r *http.Request, _ principal) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.ping(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": "database: " + err.Error()})
		return
	}
	if s.consuming.Load() == 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": "not consuming hits"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Service) metrics(w http.ResponseWriter, r *http.Request, p principal) {
	promhttp.HandlerFor(s.scopeOf(p).gatherer(s.reg), promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

func (s *Service) openapi(w http.ResponseWriter, r *http.Request, _ principal) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPIJSON)
}

func (s *Service) whoami(w http.ResponseWriter, r *http.Request, p principal) {
	writeJSON(w, http.StatusOK, map[string]any{"id": p.ID, "name": p.Name, "person": p.Person, "role": string(p.Role), "scope": p.Scope.String(),
		"camera_groups": nonNil(p.Scope.Groups), "watchlists": nonNil(p.Scope.Watchlists), "pages": s.pagesFor(p.Role)})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Service) console(w http.ResponseWriter, r *http.Request, p principal) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
	w.Header().Set("X-Frame-Options", "DENY")
	// The page reads its CSRF token from a meta tag; the session token
	// itself stays in the HttpOnly cookie.
	tok, _, _ := bearer(r)
	w.Write(bytes.Replace(consoleHTML, []byte("{{csrf}}"), []byte(csrfToken(tok)), 1))
}

// pathID is the alert id of the request's path; a bad one is answered 400.
func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	return positivePathID(w, r, "alert")
}

// positivePathID parses the path's {id} as a positive integer, answering
// 400 naming what the id is of when it is not one.
func positivePathID(w http.ResponseWriter, r *http.Request, of string) (int64, bool) {
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 || len(v) > 19 {
		writeError(w, http.StatusBadRequest, of+" id must be a positive integer")
		return 0, false
	}
	return id, true
}

// viewCase returns the case reference of an alert view: optional for an
// operator working the live queue, required for an investigator.
func viewCase(w http.ResponseWriter, r *http.Request, p principal) (string, bool) {
	if p.Role == RoleInvestigator {
		return needCase(w, r)
	}
	c, err := caseRef(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", false
	}
	return c, true
}

// OperatorWindow is how far back an operator sees alerts that are already
// decided: older ones are history, for an investigator with a case
// reference. Alerts still awaiting review stay visible to operators.
const OperatorWindow = 24 * time.Hour

// operatorMay refuses (403) an operator's look at a decided alert stored
// before the operator window.
func (s *Service) operatorMay(w http.ResponseWriter, p principal, stored time.Time, st Status) bool {
	if p.Role != RoleOperator || st == StatusPending || st == StatusAwaitingSecond || s.now().Sub(stored) <= OperatorWindow {
		return true
	}
	writeError(w, http.StatusForbidden, "operators see decided alerts of the last 24h only; older ones are history for an investigator with a case reference")
	return false
}

func (s *Service) view(w http.ResponseWriter, r *http.Request, p principal) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	c, ok := viewCase(w, r, p)
	if !ok {
		return
	}
	a, err := s.getAlert(r.Context(), s.db.r, id)
	if errors.Is(err, errNotFound) || (err == nil && !s.scopeOf(p).allows(a.Camera, a.Watchlist)) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("alert %d not found", id))
		return
	}
	if err != nil {
		s.log.Error("loading alert", "id", id, "err", err)
		writeError(w, http.StatusInternalServerError, "loading the alert failed")
		return
	}
	if !s.operatorMay(w, p, a.StoredAt, a.Status) {
		return
	}
	if !s.auditOr500(w, r, p, "view", "alert/"+strconv.FormatInt(id, 10), c, nil) {
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Service) crop(w http.ResponseWriter, r *http.Request, p principal) {
	s.alertImage(w, r, p, "crop_sha256", "crop", "view_crop")
}

var sha256Format = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (s *Service) photo(w http.ResponseWriter, r *http.Request, p principal) {
	sum := r.PathValue("sha256")
	if !sha256Format.MatchString(sum) {
		writeError(w, http.StatusBadRequest, "photo must be named by its lowercase hex SHA-256")
		return
	}
	c, ok := viewCase(w, r, p)
	if !ok {
		return
	}
	if s.photoDir == "" {
		writeError(w, http.StatusNotFound, "no photo directory is configured")
		return
	}
	// A scoped caller sees only a photo an alert in its scope names.
	if v := s.scopeOf(p); !v.all() {
		cond, args := v.and()
		var one int
		err := s.db.r.QueryRowContext(r.Context(), `SELECT 1 FROM alerts WHERE enrolled_photo = ?`+cond+` LIMIT 1`, append([]any{sum}, args...)...).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			writeError(w, http.StatusNotFound, "photo not found")
			return
		}
		if err != nil {
			writeError(w, http.StatusInternalServerError, "loading the photo failed")
			return
		}
	}
	f, ctype, err := openPhoto(s.photoDir, sum)
	if err != nil {
		writeError(w, http.StatusNotFound, "photo not found")
		return
	}
	defer f.Close()
	if !s.auditOr500(w, r, p, "view_photo", "photo/"+sum, c, nil) {
		return
	}
	w.Header().Set("Content-Type", ctype)
	io.Copy(w, f)
}

// openPhoto finds the enrolled photo named sum (hex, checked by the
// caller) in dir, sharded by the hash's first two digits
// (<sha[:2]>/<sha256>.<ext>, the gallery's layout) or flat
// (<sha256>.<ext>), whatever its extension, and returns it with its
// content type, taken from its bytes: only JPEG and PNG are served.
func openPhoto(dir, sum string) (*os.File, string, error) {
	sharded, _ := filepath.Glob(filepath.Join(dir, sum[:2], sum+".*"))
	flat, _ := filepath.Glob(filepath.Join(dir, sum+".*"))
	for _, name := range append(sharded, flat...) {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		head := make([]byte, 512)
		n, _ := io.ReadFull(f, head)
		ctype := http.DetectContentType(head[:n])
		if ctype == "image/jpeg" || ctype == "image/png" {
			if _, err := f.Seek(0, io.SeekStart); err == nil {
				return f, ctype, nil
			}
		}
		f.Close()
	}
	return nil, "", os.ErrNotExist
}

func (s *Service) queue(w http.ResponseWriter, r *http.Request, p principal) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("parameter limit: %q is not an integer in [1, %d]", v, MaxLimit))
			return
		}
		limit = n
	}
	c, err := caseRef(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	cond, args := s.scopeOf(p).and()
	rows, err := s.db.r.QueryContext(r.Context(), `SELECT `+alertColumns+` FROM alerts WHERE status IN (?, ?)`+cond+` ORDER BY time_ns DESC, id DESC LIMIT ?`,
		append(append([]any{string(StatusPending), string(StatusAwaitingSecond)}, args...), limit)...)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "query failed")
		return
	}
	defer rows.Close()
	out := page{Alerts: []Alert{}}
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "query failed")
			return
		}
		out.Alerts = append(out.Alerts, a)
	}
	if rows.Err() != nil {
		writeError(w, http.StatusInternalServerError, "query failed")
		return
	}
	rows.Close()
	// An alert awaiting its second reviewer comes with its first review,
	// so the console shows its first reviewer "awaiting second reviewer"
	// and the others who reviewed first.
	for i, a := range out.Alerts {
		if a.Status != StatusAwaitingSecond {
			continue
		}
		full, err := loadAlert(r.Context(), s.db.r, a.ID)
		if err != nil {
			s.log.Error("loading reviews", "id", a.ID, "err", err)
			writeError(w, http.StatusInternalServerError, "query failed")
			return
		}
		out.Alerts[i].Reviews = full.Reviews
	}
	ids := make([]int64, len(out.Alerts))
	for i, a := range out.Alerts {
		ids[i] = a.ID
	}
	if !s.auditOr500(w, r, p, "view_queue", "queue", c, map[string][]int64{"ids": ids}) {
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) auditVerify(w http.ResponseWriter, r *http.Request, p principal) {
	rep, err := s.verifyAudit(r.Context())
	out := map[string]any{"ok": err == nil, "entries": rep.Entries, "report": rep}
	if err != nil {
		out["error"] = err.Error()
	}
	// The gallery's log, when this process holds the gallery: "ok" is
	// both logs' verdict.
	if s.galleryAPI != nil {
		grep, gerr := s.galleryAPI.VerifyAudit(r.Context())
		g := map[string]any{"ok": gerr == nil, "entries": grep.Entries, "report": grep}
		if gerr != nil {
			g["error"] = gerr.Error()
			out["ok"] = false
		}
		out["gallery"] = g
	}
	writeJSON(w, http.StatusOK, out)
}
