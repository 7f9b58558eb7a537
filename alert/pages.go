package alert

// Role pages: the investigator, curator, admin and integrator pages beside
// the operator console, and the API routes only they use (tokens,
// retention settings, camera health, and the gallery routes the Gallery
// interface answers). Each page is one embedded HTML shell with one
// shared script and style sheet served from this binary: no CDN, no
// inline script, so the pages run offline under a strict CSP.

import (
	"bytes"
	"context"
	_ "embed" // the role pages, their script and style
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/facewatch/facewatch/internal/audit"
	"github.com/facewatch/facewatch/internal/wire"
)

//go:embed pages.html
var pagesHTML []byte

//go:embed pages.js
var pagesJS []byte

//go:embed pages.css
var pagesCSS []byte

// Gallery answers the curator routes: watchlists, enrolment by upload and
// the threshold evaluation. Package internal/curate implements it over
// match's gallery and internal/enroll (the command line's code paths), and
// the command that runs the service wires it in: the alert stage never
// imports the match stage. Each handler is called after the route's role
// and scope checks, with the signed-in person as by; path values
// ({name}) are on r. It writes JSON ({"error": …} when refused).
type Gallery interface {
	ListWatchlists(w http.ResponseWriter, r *http.Request, by audit.Actor)
	CreateWatchlist(w http.ResponseWriter, r *http.Request, by audit.Actor)
	ShowWatchlist(w http.ResponseWriter, r *http.Request, by audit.Actor)
	UpdateWatchlist(w http.ResponseWriter, r *http.Request, by audit.Actor)
	DeleteWatchlist(w http.ResponseWriter, r *http.Request, by audit.Actor)
	Enrol(w http.ResponseWriter, r *http.Request, by audit.Actor)
	Eval(w http.ResponseWriter, r *http.Request, by audit.Actor)
	EvalPlot(w http.ResponseWriter, r *http.Request, by audit.Actor)
	// VerifyAudit verifies the gallery's own audit log.
	VerifyAudit(ctx context.Context) (audit.Report, error)
}

// navPage is one HTML page of the console: its path, its title in the
// navigation, and the roles that may open it (those of its route).
type navPage struct {
	Path  string `json:"path"`
	Title string `json:"title"`
}

// pageOrder is the navigation's order; titles are what it shows.
var pageOrder = []navPage{
	{"/console", "Live alerts"},
	{"/investigator", "Investigations"},
	{"/curator", "Watchlists"},
	{"/admin", "Administration"},
	{"/integrator", "Camera health"},
}

// pagesFor lists the pages role may open, from the route table: the
// navigation never offers a page its route would refuse.
func (s *Service) pagesFor(role Role) []navPage {
	var out []navPage
	for _, pg := range pageOrder {
		for _, rt := range s.routes {
			if rt.Method == http.MethodGet && rt.Pattern == pg.Path && slices.Contains(rt.Roles, role) {
				out = append(out, pg)
			}
		}
	}
	return out
}

// rolePageRoutes are the role pages' routes and the API routes only they
// use; routeTable appends them.
func (s *Service) rolePageRoutes() []route {
	all := Roles()
	curator := []Role{RoleCurator}
	admin := []Role{RoleAdmin}
	return []route{
		{"GET", "/{$}", all, "the signed-in role's first page (redirect)", s.home},
		{"GET", "/investigator", []Role{RoleInvestigator}, "investigator page: history search with a case reference, timeline, evidence (HTML)", s.pageH},
		{"GET", "/curator", curator, "curator page: watchlists, enrolment by upload, look-alikes, threshold evaluation (HTML)", s.pageH},
		{"GET", "/admin", admin, "admin page: tokens and people, audit verification, retention (HTML)", s.pageH},
		{"GET", "/integrator", []Role{RoleIntegrator}, "integrator page: camera health (HTML)", s.pageH},
		{"GET", "/assets/pages.js", all, "the role pages' script", s.asset},
		{"GET", "/assets/pages.css", all, "the role pages' style sheet", s.asset},
		{"GET", "/api/v1/cameras", []Role{RoleIntegrator, RoleAdmin}, "camera health: state, frame rates, last frame, stalls, drops", s.cameras},
		{"GET", "/api/v1/tokens", admin, "tokens with their people, roles and scopes (never the secrets)", s.listTokensH},
		{"POST", "/api/v1/tokens", admin, "issue a token for a person with a role and scope (the secret is shown once)", s.createTokenH},
		{"DELETE", "/api/v1/tokens/{id}", admin, "revoke a token", s.revokeTokenH},
		{"GET", "/api/v1/settings/retention", admin, "retention settings in force", s.retention},
		{"GET", "/api/v1/watchlists", []Role{RoleCurator, RoleAdmin}, "watchlists with kind, owner, legal basis, expiry, threshold and counts", s.gallery(Gallery.ListWatchlists)},
		{"POST", "/api/v1/watchlists", curator, "create a watchlist", s.gallery(Gallery.CreateWatchlist)},
		{"GET", "/api/v1/watchlists/{name}", curator, "one watchlist with its identities and look-alikes", s.gallery(Gallery.ShowWatchlist)},
		{"PATCH", "/api/v1/watchlists/{name}", curator, "set a watchlist's threshold and/or expiry", s.gallery(Gallery.UpdateWatchlist)},
		{"DELETE", "/api/v1/watchlists/{name}", curator, "delete a watchlist with its identities, descriptors and photos", s.gallery(Gallery.DeleteWatchlist)},
		{"POST", "/api/v1/watchlists/{name}/photos", curator, "enrol an uploaded photo (multipart) as an identity of the list; a refusal says why", s.gallery(Gallery.Enrol)},
		{"GET", "/api/v1/eval", curator, "threshold evaluation over the gallery's own enrolments (the eval report)", s.gallery(Gallery.Eval)},
		{"GET", "/api/v1/eval/plot", curator, "the evaluation's plot (PNG)", s.gallery(Gallery.EvalPlot)},
	}
}

// rolePageScopes are the scope decisions of rolePageRoutes; routeScopes
// merges them.
func rolePageScopes() map[string]scopeRule {
	return map[string]scopeRule{
		"GET /{$}":                              scopeNoAlertData,
		"GET /investigator":                     scopeNoAlertData, // their data comes from the API
		"GET /curator":                          scopeNoAlertData,
		"GET /admin":                            scopeNoAlertData,
		"GET /integrator":                       scopeNoAlertData,
		"GET /assets/pages.js":                  scopeNoAlertData,
		"GET /assets/pages.css":                 scopeNoAlertData,
		"GET /api/v1/cameras":                   scopeFiltered,
		"GET /api/v1/tokens":                    scopeSiteWide,
		"POST /api/v1/tokens":                   scopeSiteWide,
		"DELETE /api/v1/tokens/{id}":            scopeSiteWide,
		"GET /api/v1/settings/retention":        scopeSiteWide,
		"GET /api/v1/watchlists":                scopeSiteWide,
		"POST /api/v1/watchlists":               scopeSiteWide,
		"GET /api/v1/watchlists/{name}":         scopeSiteWide,
		"PATCH /api/v1/watchlists/{name}":       scopeSiteWide,
		"DELETE /api/v1/watchlists/{name}":      scopeSiteWide,
		"POST /api/v1/watchlists/{name}/photos": scopeSiteWide,
		"GET /api/v1/eval":                      scopeSiteWide,
		"GET /api/v1/eval/plot":                 scopeSiteWide,
	}
}

// pageCSP is the role pages' policy: scripts and styles only from this
// service's own files, nothing inline.
const pageCSP = "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// isPage reports whether path is an HTML page (the sign-in form answers a
// browser that opens one without a session).
func isPage(path string) bool {
	if path == "/" {
		return true
	}
	for _, pg := range pageOrder {
		if pg.Path == path {
			return true
		}
	}
	return false
}

// openAPIPath is how the OpenAPI document names a route's pattern: "/{$}"
// (the root alone, in ServeMux's syntax) is "/".
func openAPIPath(pattern string) string { return strings.TrimSuffix(pattern, "{$}") }

// homePage is where role lands after signing in: its first page.
func (s *Service) homePage(role Role) string {
	if ps := s.pagesFor(role); len(ps) > 0 {
		return ps[0].Path
	}
	return "/api/v1/whoami"
}

func (s *Service) home(w http.ResponseWriter, r *http.Request, p principal) {
	http.Redirect(w, r, s.homePage(p.Role), http.StatusSeeOther)
}

// pageH serves a role page: the shared shell naming the page, with the
// session's CSRF token (the session token stays in the HttpOnly cookie).
func (s *Service) pageH(w http.ResponseWriter, r *http.Request, p principal) {
	name := strings.TrimPrefix(r.URL.Path, "/")
	title := name
	for _, pg := range pageOrder {
		if pg.Path == r.URL.Path {
			title = pg.Title
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", pageCSP)
	w.Header().Set("X-Frame-Options", "DENY")
	tok, _, _ := bearer(r)
	out := bytes.ReplaceAll(pagesHTML, []byte("{{page}}"), []byte(name))
	out = bytes.ReplaceAll(out, []byte("{{title}}"), []byte(title))
	out = bytes.Replace(out, []byte("{{csrf}}"), []byte(csrfToken(tok)), 1)
	w.Write(out)
}

func (s *Service) asset(w http.ResponseWriter, r *http.Request, _ principal) {
	switch r.URL.Path {
	case "/assets/pages.js":
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Write(pagesJS)
	default:
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Write(pagesCSS)
	}
}

// gallery adapts a Gallery method to a route handler: 503 when this
// process holds no gallery (the alert stage alone, on a host without it).
func (s *Service) gallery(h func(Gallery, http.ResponseWriter, *http.Request, audit.Actor)) func(http.ResponseWriter, *http.Request, principal) {
	return func(w http.ResponseWriter, r *http.Request, p principal) {
		if s.galleryAPI == nil {
			writeError(w, http.StatusServiceUnavailable, "the gallery is not served by this process: run `facewatch run`, or use `facewatch watchlist` and `facewatch enroll` on the host that holds it")
			return
		}
		h(s.galleryAPI, w, r, p.actor())
	}
}

// maxTokenBody bounds a token request's body.
const maxTokenBody = 4 << 10

// tokenRequest is POST /api/v1/tokens' body.
type tokenRequest struct {
	Role   string `json:"role"`
	Person string `json:"person"`
	Name   string `json:"name"`
	// TTL is a Go duration ("720h"); empty is DefaultTokenTTL.
	TTL string `json:"ttl"`
	// Scope is as ParseScope reads it: "all" or group:NAME,watchlist:NAME.
	Scope string `json:"scope"`
}

func (s *Service) listTokensH(w http.ResponseWriter, r *http.Request, p principal) {
	toks, err := listTokens(r.Context(), s.db.r)
	if err != nil {
		s.log.Error("listing tokens", "err", err)
		writeError(w, http.StatusInternalServerError, "listing tokens failed")
		return
	}
	if !s.auditOr500(w, r, p, "token_list", "tokens", "", nil) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": nonNilTokens(toks)})
}

func nonNilTokens(t []TokenInfo) []TokenInfo {
	if t == nil {
		return []TokenInfo{}
	}
	return t
}

func (s *Service) createTokenH(w http.ResponseWriter, r *http.Request, p principal) {
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenBody)
	var in tokenRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "the body must be JSON {role, person, name, ttl, scope}: "+err.Error())
		return
	}
	role, err := ParseRole(in.Role)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ttl := DefaultTokenTTL
	if in.TTL != "" {
		if ttl, err = time.ParseDuration(in.TTL); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("ttl %q is not a duration such as 720h", in.TTL))
			return
		}
	}
	scope, err := ParseScope(in.Scope)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	tok, info, err := s.CreateToken(r.Context(), p.actor(), TokenSpec{Role: role, Person: in.Person, Name: in.Name, TTL: ttl, Scope: scope})
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"token": tok, "info": info})
}

func (s *Service) revokeTokenH(w http.ResponseWriter, r *http.Request, p principal) {
	id := r.PathValue("id")
	if id == p.ID {
		writeError(w, http.StatusConflict, "a token cannot revoke itself from the console (sign out, or revoke it from another admin's session)")
		return
	}
	err := revokeToken(r.Context(), s.db.w, s.alog, p.actor(), "", id, s.now())
	if err != nil {
		if errors.Is(err, errNoSuchToken) {
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
		s.log.Error("revoking token", "id", id, "err", err)
		writeError(w, http.StatusInternalServerError, "revoking the token failed")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "revoked", "id": id})
}

func (s *Service) retention(w http.ResponseWriter, r *http.Request, _ principal) {
	writeJSON(w, http.StatusOK, map[string]string{
		"alerts":           s.cfg.Retention.String(),
		"unmatched_faces":  s.cfg.UnmatchedRetention.String(),
		"review_comments":  durationOrOff(s.cfg.CommentRetention),
		"sweep_interval":   s.cfg.SweepInterval.String(),
		"same_appearance":  durationOrOff(s.cfg.SameAppearance),
		"audit_log":        "entries kept forever (never swept)",
		"audit_details":    durationOrOff(s.cfg.AuditDetailRetention),
		"operator_history": OperatorWindow.String(),
	})
}

func durationOrOff(d time.Duration) string {
	if d <= 0 {
		return "off"
	}
	return d.String()
}

// cameraHealth keeps the newest status each camera published
// (wire.StatusSubject), for the integrator page.
type cameraHealth struct {
	mu sync.Mutex // guards last
	// last is each camera's newest status with when it arrived.
	last map[string]cameraSeen
}

type cameraSeen struct {
	status   wire.CameraStatus
	received time.Time
}

// maxCamerasTracked bounds the status table: a flood of made-up camera
// IDs cannot grow it without end.
const maxCamerasTracked = 4096

func (h *cameraHealth) put(st wire.CameraStatus, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.last[st.Camera]; !ok && len(h.last) >= maxCamerasTracked {
		return
	}
	h.last[st.Camera] = cameraSeen{st, at}
}

// cameraStatusLoop records the cameras' statuses until ctx ends. Status is
// core NATS: a lost message is replaced by the next.
func (s *Service) cameraStatusLoop(ctx context.Context, nc *nats.Conn) {
	sub, err := nc.Subscribe(wire.StatusWildcard, func(m *nats.Msg) {
		st, err := wire.DecodeCameraStatus(m.Data)
		if err != nil {
			s.log.Debug("camera status refused", "subject", m.Subject, "err", err)
			return
		}
		s.health.put(st, s.now())
	})
	if err != nil {
		s.log.Warn("subscribing to camera status; the camera health page stays empty", "err", err)
		return
	}
	<-ctx.Done()
	sub.Unsubscribe()
}

// CameraHealth is one camera's row on the integrator page.
type CameraHealth struct {
	Camera string `json:"camera"`
	// Groups are the camera groups (alert.camera_groups) it belongs to.
	Groups []string `json:"groups"`
	// Known is false for a configured camera no status has come from.
	Known bool `json:"known"`
	// Received is when its newest status arrived; AgeSeconds how long ago.
	Received   time.Time          `json:"received,omitzero"`
	AgeSeconds float64            `json:"age_seconds"`
	Status     *wire.CameraStatus `json:"status,omitempty"`
}

func (s *Service) cameras(w http.ResponseWriter, r *http.Request, p principal) {
	v := s.scopeOf(p)
	groups := map[string][]string{}
	for g, cams := range s.cfg.CameraGroups {
		for _, c := range cams {
			groups[c] = append(groups[c], g)
		}
	}
	rows := map[string]*CameraHealth{}
	for c := range groups {
		rows[c] = &CameraHealth{Camera: c}
	}
	now := s.now()
	s.health.mu.Lock()
	for c, seen := range s.health.last {
		st := seen.status
		rows[c] = &CameraHealth{Camera: c, Known: true, Received: seen.received, AgeSeconds: now.Sub(seen.received).Seconds(), Status: &st}
	}
	s.health.mu.Unlock()
	out := []CameraHealth{}
	for c, row := range rows {
		// A camera serves every watchlist: a watchlist scope sees none,
		// a camera-group scope its groups' cameras only.
		if v.watchlists != nil || (v.cameras != nil && !v.cameras[c]) {
			continue
		}
		row.Groups = nonNil(groups[c])
		sort.Strings(row.Groups)
		out = append(out, *row)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Camera < out[j].Camera })
	writeJSON(w, http.StatusOK, map[string]any{"cameras": out})
}

// errNoSuchToken is revokeToken's error for an unknown or revoked ID.
var errNoSuchToken = errors.New("no such active token")
