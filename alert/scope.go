package alert

// Scopes: a token of an operator, investigator or integrator is limited
// to camera groups (alert.camera_groups) and/or watchlists, and sees
// nothing outside them: an out-of-scope alert is 404 like one that does
// not exist, and lists, feeds and aggregates leave it out.

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/facewatch/facewatch/internal/wire"
)

// Scope is what a token may see: alerts of cameras in Groups AND of
// Watchlists, where an empty list does not restrict. Both empty is the
// whole site ("all"), which a token gets only when asked for by name.
type Scope struct {
	Groups     []string `json:"camera_groups,omitempty"`
	Watchlists []string `json:"watchlists,omitempty"`
}

// ScopeAll is the site-wide scope.
const ScopeAll = "all"

// maxScopeItems bounds the groups and watchlists of one scope.
const maxScopeItems = 64

// All reports whether sc is the whole site.
func (sc Scope) All() bool { return len(sc.Groups) == 0 && len(sc.Watchlists) == 0 }

// String is the scope as ParseScope reads it and the token table stores
// it: "all", or sorted "group:NAME" then "watchlist:NAME", comma-separated.
func (sc Scope) String() string {
	if sc.All() {
		return ScopeAll
	}
	var items []string
	for _, g := range sc.Groups {
		items = append(items, "group:"+g)
	}
	for _, w := range sc.Watchlists {
		items = append(items, "watchlist:"+w)
	}
	return strings.Join(items, ",")
}

// ParseScope reads a scope: "all" (the whole site), or a comma-separated
// list of group:NAME (a camera group of alert.camera_groups) and
// watchlist:NAME. An empty string is an error: the site-wide scope must
// be asked for by name.
func ParseScope(s string) (Scope, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Scope{}, fmt.Errorf("scope is empty: name camera groups and/or watchlists (group:NAME,watchlist:NAME) or %q for the whole site", ScopeAll)
	}
	if s == ScopeAll {
		return Scope{}, nil
	}
	var sc Scope
	items := strings.Split(s, ",")
	if len(items) > maxScopeItems {
		return Scope{}, fmt.Errorf("scope: %d items exceeds %d", len(items), maxScopeItems)
	}
	for _, it := range items {
		kind, name, ok := strings.Cut(strings.TrimSpace(it), ":")
		if !ok || !wire.ValidToken(name) {
			return Scope{}, fmt.Errorf("scope item %q is not group:NAME or watchlist:NAME (NAME of letters, digits, '-', '_')", it)
		}
		switch kind {
		case "group":
			sc.Groups = append(sc.Groups, name)
		case "watchlist":
			sc.Watchlists = append(sc.Watchlists, name)
		default:
			return Scope{}, fmt.Errorf("scope item %q: kind %q is not group or watchlist", it, kind)
		}
	}
	sort.Strings(sc.Groups)
	sort.Strings(sc.Watchlists)
	sc.Groups, sc.Watchlists = slices.Compact(sc.Groups), slices.Compact(sc.Watchlists)
	return sc, nil
}

// scopedRoles are the roles a scope applies to; admin and curator tokens
// manage the whole site and are always site-wide.
func scopedRole(r Role) bool {
	return r == RoleOperator || r == RoleInvestigator || r == RoleIntegrator
}

// checkScopeForRole refuses a scope a role cannot hold.
func checkScopeForRole(r Role, sc Scope) error {
	if !scopedRole(r) && !sc.All() {
		return fmt.Errorf("scope %s: %s tokens are site-wide (scopes apply to operator, investigator and integrator tokens)", sc, r)
	}
	return nil
}

// scopeView is a scope resolved against the configured camera groups:
// what one request may see. The zero value sees everything.
type scopeView struct {
	// cameras and watchlists are the sets an alert must be in; nil does
	// not restrict, an empty set admits nothing.
	cameras    map[string]bool
	watchlists map[string]bool
}

// scopeOf resolves p's scope. A group the configuration no longer declares
// contributes no camera: a scope never widens when the config changes.
func (s *Service) scopeOf(p principal) scopeView {
	var v scopeView
	if len(p.Scope.Groups) > 0 {
		v.cameras = map[string]bool{}
		for _, g := range p.Scope.Groups {
			cams, ok := s.cfg.CameraGroups[g]
			if !ok {
				s.log.Warn("token scope names a camera group the configuration does not declare; it admits no camera", "token", p.ID, "group", g)
			}
			for _, c := range cams {
				v.cameras[c] = true
			}
		}
	}
	if len(p.Scope.Watchlists) > 0 {
		v.watchlists = map[string]bool{}
		for _, w := range p.Scope.Watchlists {
			v.watchlists[w] = true
		}
	}
	return v
}

// all reports whether v admits every alert.
func (v scopeView) all() bool { return v.cameras == nil && v.watchlists == nil }

// allows reports whether an alert of camera and watchlist is in scope.
func (v scopeView) allows(camera, watchlist string) bool {
	return (v.cameras == nil || v.cameras[camera]) && (v.watchlists == nil || v.watchlists[watchlist])
}

// conds returns the SQL conditions (on the alerts table's camera and
// watchlist columns) that admit exactly the alerts in scope, and their
// bound arguments; none for the whole site.
func (v scopeView) conds() ([]string, []any) {
	var conds []string
	var args []any
	for _, set := range []struct {
		col string // a constant, never input
		m   map[string]bool
	}{{"camera", v.cameras}, {"watchlist", v.watchlists}} {
		if set.m == nil {
			continue
		}
		if len(set.m) == 0 {
			conds = append(conds, "0")
			continue
		}
		keys := make([]string, 0, len(set.m))
		for k := range set.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			args = append(args, k)
		}
		conds = append(conds, set.col+" IN (?"+strings.Repeat(", ?", len(keys)-1)+")")
	}
	return conds, args
}

// and returns " AND <conds>" for appending to a WHERE clause, or "".
func (v scopeView) and() (string, []any) {
	conds, args := v.conds()
	if len(conds) == 0 {
		return "", nil
	}
	return " AND " + strings.Join(conds, " AND "), args
}

// gatherer is the metrics a caller of scope v may see: series labelled
// with a camera or watchlist outside the scope are left out. A count by
// watchlist mixes cameras, so a camera-group scope sees none of them.
// Unlabelled service totals (hits received, requests) stay: they name no
// camera, watchlist or alert.
func (v scopeView) gatherer(g prometheus.Gatherer) prometheus.Gatherer {
	if v.all() {
		return g
	}
	visible := func(name, value string) bool {
		switch name {
		case "camera":
			return v.cameras == nil || v.cameras[value]
		case "watchlist":
			return v.cameras == nil && v.watchlists[value]
		}
		return true
	}
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := g.Gather()
		var out []*dto.MetricFamily
		for _, mf := range mfs {
			var keep []*dto.Metric
		metric:
			for _, m := range mf.Metric {
				for _, l := range m.Label {
					if !visible(l.GetName(), l.GetValue()) {
						continue metric
					}
				}
				keep = append(keep, m)
			}
			if len(keep) > 0 {
				mf.Metric = keep
				out = append(out, mf)
			}
		}
		return out, err
	})
}

// scopeRule is how a route treats a scoped token. Every route of the
// table has one (routeScopes); a route without one is refused to scoped
// tokens, and TestScopedTokenSeesNothingOutside fails for it.
type scopeRule string

const (
	// scopeNoAlertData: the route shows no alert, camera or watchlist.
	scopeNoAlertData scopeRule = "no alert data"
	// scopeItem: one alert (or what belongs to one); out of scope is 404.
	scopeItem scopeRule = "one alert: out of scope is 404"
	// scopeFiltered: a list, feed or aggregate; out of scope is left out.
	scopeFiltered scopeRule = "list, feed or aggregate: out of scope is left out"
	// scopeSiteWide: refused (403) to a scoped token.
	scopeSiteWide scopeRule = "site-wide tokens only"
)

// routeScopes is the scope decision of every route, by "METHOD PATTERN".
func routeScopes() map[string]scopeRule {
	m := map[string]scopeRule{
		"GET /healthz":                          scopeNoAlertData,
		"GET /readyz":                           scopeNoAlertData,
		"GET /metrics":                          scopeFiltered,
		"GET /openapi.json":                     scopeNoAlertData,
		"GET /api/v1/whoami":                    scopeNoAlertData,
		"GET /console":                          scopeNoAlertData, // its data comes from the API
		"POST /signout":                         scopeNoAlertData,
		"GET /api/v1/queue":                     scopeFiltered,
		"GET /api/v1/live":                      scopeFiltered,
		"GET /api/v1/alerts":                    scopeFiltered,
		"GET /api/v1/alerts/export":             scopeFiltered,
		"GET /api/v1/alerts/{id}":               scopeItem,
		"GET /api/v1/alerts/{id}/crop":          scopeItem,
		"GET /api/v1/alerts/{id}/scene":         scopeItem,
		"GET /api/v1/alerts/{id}/enrolled-face": scopeItem,
		"GET /api/v1/incidents":                 scopeFiltered, // each incident shows only its sightings in scope
		"GET /api/v1/incidents/{id}":            scopeItem,     // 404 when no sighting is in scope; others left out
		"POST /api/v1/incidents/{id}/review":    scopeItem,     // reviews only the sightings in scope
		"POST /api/v1/alerts/{id}/review":       scopeItem,
		"GET /api/v1/alerts/{id}/evidence":      scopeItem,
		"GET /api/v1/photos/{sha256}":           scopeItem, // only a photo an in-scope alert names
		"GET /api/v1/stats/precision":           scopeFiltered,
		"GET /api/v1/audit/verify":              scopeSiteWide,
	}
	for k, v := range rolePageScopes() {
		m[k] = v
	}
	return m
}
