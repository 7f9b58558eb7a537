package alert

import (
	"context"
	"database/sql"
	_ "embed" // the console page and the OpenAPI description
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

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
	return []route{
		{"GET", "/healthz", all, "liveness", s.healthz},
		{"GET", "/readyz", all, "readiness: database answers and hits are being consumed", s.readyz},
		{"GET", "/metrics", []Role{RoleAdmin, RoleIntegrator}, "Prometheus metrics", s.metrics},
		{"GET", "/openapi.json", all, "this API's OpenAPI description", s.openapi},
		{"GET", "/api/v1/whoami", all, "the caller's token ID, name and role", s.whoami},
		{"GET", "/console", []Role{RoleOperator}, "operator console (HTML)", s.console},
		{"GET", "/api/v1/queue", []Role{RoleOperator}, "alerts awaiting review", s.queue},
		{"GET", "/api/v1/live", []Role{RoleOperator}, "live feed of new alerts (Server-Sent Events)", s.live},
		{"GET", "/api/v1/alerts", []Role{RoleInvestigator}, "history query (needs a case reference)", s.list},
		{"GET", "/api/v1/alerts/export", []Role{RoleInvestigator}, "history export as CSV or JSON (needs a case reference)", s.export},
		{"GET", "/api/v1/alerts/{id}", []Role{RoleOperator, RoleInvestigator}, "one alert with its reviews", s.view},
		{"GET", "/api/v1/alerts/{id}/crop", []Role{RoleOperator, RoleInvestigator}, "the probe face crop (JPEG)", s.crop},
		{"POST", "/api/v1/alerts/{id}/review", []Role{RoleOperator}, "confirm or dismiss an alert with a comment", s.reviewH},
		{"GET", "/api/v1/photos/{sha256}", []Role{RoleOperator, RoleInvestigator, RoleCurator}, "an enrolled photo (JPEG)", s.photo},
		{"GET", "/api/v1/stats/precision", []Role{RoleAdmin, RoleCurator, RoleOperator, RoleInvestigator}, "measured precision per camera and watchlist from review outcomes", s.precision},
		{"GET", "/api/v1/audit/verify", []Role{RoleAdmin}, "verify the audit chain", s.auditVerify},
	}
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
			rt.h(sw, r, p)
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Referrer-Policy", "no-referrer")
		tok, fromCookie, err := bearer(r)
		var p principal
		if err == nil {
			p, err = s.authenticate(r.Context(), tok)
		}
		if err != nil {
			s.unauthorized(w, r, err)
			return
		}
		if len(r.URL.RawQuery) > MaxQueryLen {
			writeError(w, http.StatusRequestURITooLong, fmt.Sprintf("query string of %d bytes exceeds %d", len(r.URL.RawQuery), MaxQueryLen))
			return
		}
		// A cookie is sent by the browser on its own; a state-changing call
		// must also carry a header a cross-site form cannot set.
		if fromCookie && r.Method != http.MethodGet && r.Method != http.MethodHead && r.Header.Get("X-Requested-With") != "facewatch-console" {
			writeError(w, http.StatusForbidden, "cookie-authenticated requests that change state need X-Requested-With: facewatch-console")
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

func (s *Service) unauthorized(w http.ResponseWriter, r *http.Request, err error) {
	if !errors.Is(err, errNoToken) && !errors.Is(err, errMalformedToken) && !errors.Is(err, errUnknownToken) && !errors.Is(err, errExpiredToken) {
		s.log.Error("authenticating request", "err", err)
		writeError(w, http.StatusInternalServerError, "authentication is unavailable")
		return
	}
	reason := strings.TrimSuffix(strings.Fields(err.Error())[0], ":")
	s.m.authFailures.WithLabelValues(reason).Inc()
	s.log.Debug("request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "reason", err.Error())
	w.Header().Set("WWW-Authenticate", `Bearer realm="facewatch", error="invalid_token"`)
	// A browser opening the console gets the login form (still a 401:
	// the form holds no data; it stores the token and reloads).
	if r.Method == http.MethodGet && r.URL.Path == "/console" && strings.Contains(r.Header.Get("Accept"), "text/html") {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write(loginHTML)
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

// audit appends one entry in its own transaction. A failure refuses the
// request: nothing is shown that is not recorded.
func (s *Service) audit(ctx context.Context, p principal, action, target, caseRef string, detail any) error {
	d, _ := json.Marshal(detail)
	tx, err := s.db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("auditing %s: %w", action, err)
	}
	defer tx.Rollback()
	if err := appendAudit(ctx, tx, &AuditEntry{Time: s.now(), Actor: p.ID, ActorName: p.Name, Role: p.Role, Action: action, Target: target, Case: caseRef, Detail: string(d)}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("auditing %s: %w", action, err)
	}
	return nil
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

func (s *Service) metrics(w http.ResponseWriter, r *http.Request, _ principal) {
	promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

func (s *Service) openapi(w http.ResponseWriter, r *http.Request, _ principal) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPIJSON)
}

func (s *Service) whoami(w http.ResponseWriter, r *http.Request, p principal) {
	writeJSON(w, http.StatusOK, map[string]string{"id": p.ID, "name": p.Name, "role": string(p.Role)})
}

func (s *Service) console(w http.ResponseWriter, r *http.Request, p principal) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob:; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Write(consoleHTML)
}

// page is a history response.
type page struct {
	Alerts     []Alert `json:"alerts"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

func (s *Service) list(w http.ResponseWriter, r *http.Request, p principal) {
	c, ok := needCase(w, r)
	if !ok {
		return
	}
	f, err := ParseFilter(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.auditOr500(w, r, p, "query", "alerts", c, map[string]string{"query": r.URL.RawQuery}) {
		return
	}
	alerts, next, err := s.find(r.Context(), f)
	if err != nil {
		s.log.Error("history query", "err", err)
		writeError(w, http.StatusInternalServerError, "query failed")
		return
	}
	out := page{Alerts: alerts}
	if next != nil {
		out.NextCursor = next.String()
	}
	writeJSON(w, http.StatusOK, out)
}

// exportPage is how many rows an export reads per query.
const exportPage = 500

func (s *Service) export(w http.ResponseWriter, r *http.Request, p principal) {
	c, ok := needCase(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	format := q.Get("format")
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "csv" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("parameter format: %q is not one of csv, json", format))
		return
	}
	if q.Has("limit") || q.Has("cursor") {
		writeError(w, http.StatusBadRequest, "an export takes no limit or cursor: it returns every matching row")
		return
	}
	f, err := ParseFilter(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	where, args := f.where()
	var n int
	if err := s.db.r.QueryRowContext(r.Context(), `SELECT COUNT(*) FROM alerts`+where, args...).Scan(&n); err != nil {
		writeError(w, http.StatusInternalServerError, "query failed")
		return
	}
	if n > s.cfg.ExportLimit {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("export of %d rows exceeds the limit of %d; narrow the filter", n, s.cfg.ExportLimit))
		return
	}
	if !s.auditOr500(w, r, p, "export", "alerts", c, map[string]any{"query": r.URL.RawQuery, "rows": n}) {
		return
	}
	name := "facewatch-alerts-" + s.now().UTC().Format("20060102T150405Z") + "." + format
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	var cw *csv.Writer
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		cw = csv.NewWriter(w)
		cw.Write(csvHeader)
	} else {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "[")
	}
	f.Limit = exportPage
	first := true
	for {
		alerts, next, err := s.find(r.Context(), f)
		if err != nil {
			// Headers are sent; end the body short so the client sees a
			// broken document rather than a silently short one.
			s.log.Error("export query", "err", err)
			panic(http.ErrAbortHandler)
		}
		for _, a := range alerts {
			if cw != nil {
				cw.Write(csvRow(a))
				continue
			}
			if !first {
				io.WriteString(w, ",")
			}
			first = false
			b, _ := json.Marshal(a)
			w.Write(b)
		}
		if next == nil {
			break
		}
		f.After = next
	}
	if cw != nil {
		cw.Flush()
	} else {
		io.WriteString(w, "]\n")
	}
}

var csvHeader = []string{"id", "hit_id", "time", "camera", "track", "watchlist", "watchlist_kind", "identity", "identity_name",
	"distance", "threshold", "second_distance", "model_name", "model_sha256", "crop_sha256", "enrolled_photo", "status"}

func csvRow(a Alert) []string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
	row := []string{strconv.FormatInt(a.ID, 10), a.HitID, a.Time.Format(time.RFC3339Nano), a.Camera, strconv.FormatUint(a.Track, 10),
		a.Watchlist, a.WatchlistKind, a.Identity, a.IdentityName, f(a.Distance), f(a.Threshold), f(a.SecondDistance),
		a.Model.Name, a.Model.SHA256, a.CropSHA256, a.EnrolledPhoto, string(a.Status)}
	for i, c := range row {
		row[i] = csvSafe(c)
	}
	return row
}

// csvSafe defuses spreadsheet formulas in free-text cells.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return "'" + s
		}
	}
	return s
}

func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 || len(v) > 19 {
		writeError(w, http.StatusBadRequest, "alert id must be a positive integer")
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
	if errors.Is(err, errNotFound) {
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
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	c, ok := viewCase(w, r, p)
	if !ok {
		return
	}
	var sum, status string
	var storedNS int64
	err := s.db.r.QueryRowContext(r.Context(), `SELECT crop_sha256, stored_ns, status FROM alerts WHERE id = ?`, id).Scan(&sum, &storedNS, &status)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && sum == "") {
		writeError(w, http.StatusNotFound, fmt.Sprintf("alert %d has no crop", id))
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "loading the crop failed")
		return
	}
	if !s.operatorMay(w, p, time.Unix(0, storedNS), Status(status)) {
		return
	}
	f, err := s.readCrop(sum)
	if err != nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("crop of alert %d is gone", id))
		return
	}
	defer f.Close()
	if !s.auditOr500(w, r, p, "view_crop", "alert/"+strconv.FormatInt(id, 10), c, nil) {
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	io.Copy(w, f)
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
	rows, err := s.db.r.QueryContext(r.Context(), `SELECT `+alertColumns+` FROM alerts WHERE status IN (?, ?) ORDER BY time_ns DESC, id DESC LIMIT ?`,
		string(StatusPending), string(StatusAwaitingSecond), limit)
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
	ids := make([]int64, len(out.Alerts))
	for i, a := range out.Alerts {
		ids[i] = a.ID
	}
	if !s.auditOr500(w, r, p, "view_queue", "queue", c, map[string][]int64{"ids": ids}) {
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// reviewRequest is the body of a review.
type reviewRequest struct {
	Decision string `json:"decision"` // confirm or dismiss
	Comment  string `json:"comment"`
}

// MaxComment bounds a review comment, in bytes.
const MaxComment = 2000

// Errors of the review workflow (409 Conflict).
var (
	ErrAlreadyReviewed = errors.New("alert is already reviewed")
	ErrSameReviewer    = errors.New("the second review must come from a different reviewer")
)

func (s *Service) reviewH(w http.ResponseWriter, r *http.Request, p principal) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "body must be application/json")
		return
	}
	var req reviewRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body must be {\"decision\": \"confirm\"|\"dismiss\", \"comment\": \"...\"}")
		return
	}
	c, err := caseRef(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	a, err := s.recordReview(r.Context(), p, id, req.Decision, req.Comment, c)
	switch {
	case errors.Is(err, errNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("alert %d not found", id))
	case errors.Is(err, ErrAlreadyReviewed), errors.Is(err, ErrSameReviewer):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, errBadReview):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		s.log.Error("recording review", "id", id, "err", err)
		writeError(w, http.StatusInternalServerError, "recording the review failed")
	default:
		writeJSON(w, http.StatusOK, a)
	}
}

var errBadReview = errors.New("invalid review")

// recordReview records p's decision on alert id and its audit entry in one
// transaction and returns the updated alert. See Status for the workflow.
func (s *Service) recordReview(ctx context.Context, p principal, id int64, decision, comment, caseRef string) (Alert, error) {
	var final Status
	switch decision {
	case "confirm":
		final = StatusConfirmed
	case "dismiss":
		final = StatusDismissed
	default:
		return Alert{}, fmt.Errorf("%w: decision %q is not confirm or dismiss", errBadReview, decision)
	}
	comment = strings.TrimSpace(comment)
	if comment == "" || len(comment) > MaxComment || strings.ContainsFunc(comment, func(r rune) bool { return unicode.IsControl(r) && r != '\n' }) {
		return Alert{}, fmt.Errorf("%w: comment must be 1-%d bytes of text", errBadReview, MaxComment)
	}
	tx, err := s.db.w.BeginTx(ctx, nil)
	if err != nil {
		return Alert{}, fmt.Errorf("reviewing alert %d: %w", id, err)
	}
	defer tx.Rollback()
	var status string
	var second bool
	err = tx.QueryRowContext(ctx, `SELECT status, second_reviewer FROM alerts WHERE id = ?`, id).Scan(&status, &second)
	if errors.Is(err, sql.ErrNoRows) {
		return Alert{}, errNotFound
	}
	if err != nil {
		return Alert{}, fmt.Errorf("reviewing alert %d: %w", id, err)
	}
	next := final
	switch Status(status) {
	case StatusPending:
		if second {
			next = StatusAwaitingSecond
		}
	case StatusAwaitingSecond:
		var firstBy, firstDecision string
		if err := tx.QueryRowContext(ctx, `SELECT reviewer, decision FROM reviews WHERE alert_id = ? ORDER BY id LIMIT 1`, id).Scan(&firstBy, &firstDecision); err != nil {
			return Alert{}, fmt.Errorf("reviewing alert %d: reading first review: %w", id, err)
		}
		if firstBy == p.ID {
			return Alert{}, ErrSameReviewer
		}
		if firstDecision != decision {
			next = StatusDisputed
		}
	default:
		return Alert{}, fmt.Errorf("%w (status %s)", ErrAlreadyReviewed, status)
	}
	now := s.now()
	if _, err := tx.ExecContext(ctx, `INSERT INTO reviews (alert_id, reviewer, reviewer_name, decision, comment, time_ns) VALUES (?, ?, ?, ?, ?, ?)`,
		id, p.ID, p.Name, decision, comment, now.UnixNano()); err != nil {
		return Alert{}, fmt.Errorf("reviewing alert %d: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE alerts SET status = ? WHERE id = ?`, string(next), id); err != nil {
		return Alert{}, fmt.Errorf("reviewing alert %d: %w", id, err)
	}
	d, _ := json.Marshal(map[string]string{"decision": decision, "comment": comment, "status": string(next)})
	if err := appendAudit(ctx, tx, &AuditEntry{Time: now, Actor: p.ID, ActorName: p.Name, Role: p.Role, Action: "review",
		Target: "alert/" + strconv.FormatInt(id, 10), Case: caseRef, Detail: string(d)}); err != nil {
		return Alert{}, err
	}
	a, err := s.getAlert(ctx, tx, id)
	if err != nil {
		return Alert{}, err
	}
	if err := tx.Commit(); err != nil {
		return Alert{}, fmt.Errorf("reviewing alert %d: %w", id, err)
	}
	s.m.reviews.WithLabelValues(decision).Inc()
	return a, nil
}

// Outcome counts review outcomes for one camera or watchlist. Precision
// is confirmed / (confirmed + dismissed), null until one is decided;
// disputed alerts count in neither.
type Outcome struct {
	Key       string   `json:"key"`
	Confirmed int      `json:"confirmed"`
	Dismissed int      `json:"dismissed"`
	Disputed  int      `json:"disputed"`
	Open      int      `json:"open"`
	Precision *float64 `json:"precision"`
}

// Precision is the measured precision of alerts by camera and watchlist.
type Precision struct {
	ByCamera    []Outcome `json:"by_camera"`
	ByWatchlist []Outcome `json:"by_watchlist"`
}

// maxGroups bounds the rows of a precision table.
const maxGroups = 1000

// precisionStats aggregates review outcomes of alerts captured in
// [from, to] (zero = open).
func (s *Service) precisionStats(ctx context.Context, from, to time.Time) (Precision, error) {
	f := Filter{From: from, To: to, MinDistance: math.NaN(), MaxDistance: math.NaN()}
	where, args := f.where()
	var out Precision
	for _, g := range []struct {
		col string
		dst *[]Outcome
	}{{"camera", &out.ByCamera}, {"watchlist", &out.ByWatchlist}} {
		// g.col is one of two constants above, never input.
		rows, err := s.db.r.QueryContext(ctx, `SELECT `+g.col+`,
			SUM(status = 'confirmed'), SUM(status = 'dismissed'), SUM(status = 'disputed'), SUM(status IN ('pending', 'awaiting_second'))
			FROM alerts`+where+` GROUP BY `+g.col+` ORDER BY `+g.col+` LIMIT ?`, append(args, maxGroups)...)
		if err != nil {
			return Precision{}, fmt.Errorf("computing precision by %s: %w", g.col, err)
		}
		*g.dst = []Outcome{}
		for rows.Next() {
			var o Outcome
			if err := rows.Scan(&o.Key, &o.Confirmed, &o.Dismissed, &o.Disputed, &o.Open); err != nil {
				rows.Close()
				return Precision{}, fmt.Errorf("computing precision by %s: %w", g.col, err)
			}
			if n := o.Confirmed + o.Dismissed; n > 0 {
				p := float64(o.Confirmed) / float64(n)
				o.Precision = &p
			}
			*g.dst = append(*g.dst, o)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return Precision{}, fmt.Errorf("computing precision by %s: %w", g.col, err)
		}
	}
	return out, nil
}

func (s *Service) precision(w http.ResponseWriter, r *http.Request, _ principal) {
	q := r.URL.Query()
	f, err := ParseFilter(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	for k := range q {
		if k != "from" && k != "to" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("parameter %s: not accepted here (want from, to)", k))
			return
		}
	}
	p, err := s.precisionStats(r.Context(), f.From, f.To)
	if err != nil {
		s.log.Error("precision", "err", err)
		writeError(w, http.StatusInternalServerError, "computing precision failed")
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Service) auditVerify(w http.ResponseWriter, r *http.Request, p principal) {
	n, err := verifyAudit(r.Context(), s.db.r)
	if err != nil {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "entries": n, "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "entries": n})
}

// maxReplay bounds how many missed alerts a reconnecting live client gets.
const maxReplay = 200

func (s *Service) live(w http.ResponseWriter, r *http.Request, p principal) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	var last int64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "Last-Event-ID must be an alert id")
			return
		}
		last = n
	}
	c, err := caseRef(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.auditOr500(w, r, p, "live", "live", c, map[string]int64{"last_event_id": last}) {
		return
	}
	// Subscribe before replaying, so nothing stored in between is missed;
	// the id check below drops what the replay already sent.
	ch, cancel := s.feed.subscribe()
	defer cancel()
	s.m.sseClients.Inc()
	defer s.m.sseClients.Dec()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, ": facewatch live alerts\nretry: 2000\n\n")
	// send shows alerts to the client, after recording that it saw them:
	// one audit entry per burst, naming every alert in it.
	send := func(batch []Alert) bool {
		var ids []int64
		for _, a := range batch {
			if a.ID > last {
				ids = append(ids, a.ID)
			}
		}
		if len(ids) == 0 {
			return true
		}
		if err := s.audit(r.Context(), p, "live_view", "alerts", c, map[string][]int64{"ids": ids}); err != nil {
			s.log.Error("audit append failed; live feed closed", "err", err)
			return false
		}
		for _, a := range batch {
			if a.ID <= last {
				continue
			}
			last = a.ID
			b, _ := json.Marshal(a)
			if _, err := fmt.Fprintf(w, "id: %d\nevent: alert\ndata: %s\n\n", a.ID, b); err != nil {
				return false
			}
		}
		fl.Flush()
		return true
	}
	if last > 0 {
		// Only what an operator could have missed recently: the replay is
		// not a way around the history's case reference.
		rows, err := s.db.r.QueryContext(r.Context(), `SELECT `+alertColumns+` FROM alerts WHERE id > ? AND stored_ns >= ? ORDER BY id LIMIT ?`,
			last, s.now().Add(-OperatorWindow).UnixNano(), maxReplay)
		if err == nil {
			var replay []Alert
			for rows.Next() {
				if a, err := scanAlert(rows); err == nil {
					replay = append(replay, a)
				}
			}
			rows.Close()
			if !send(replay) {
				return
			}
		}
	}
	fl.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.closed:
			return
		case a, ok := <-ch:
			if !ok {
				return // fell behind or shutting down; the client resumes
			}
			batch := []Alert{a}
		drain:
			for len(batch) < feedBuffer {
				select {
				case a, ok := <-ch:
					if !ok {
						break drain
					}
					batch = append(batch, a)
				default:
					break drain
				}
			}
			if !send(batch) {
				return
			}
		case <-keepalive.C:
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}
