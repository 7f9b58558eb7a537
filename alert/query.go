package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/facewatch/facewatch/internal/wire"
)

// Status is an alert's review state.
type Status string

// The review states. An alert of a list that needs a second reviewer goes
// pending → awaiting_second → confirmed|dismissed|disputed (disputed when
// the two reviewers disagree); any other goes pending → confirmed|dismissed.
const (
	StatusPending        Status = "pending"
	StatusAwaitingSecond Status = "awaiting_second"
	StatusConfirmed      Status = "confirmed"
	StatusDismissed      Status = "dismissed"
	StatusDisputed       Status = "disputed"
)

var statuses = []Status{StatusPending, StatusAwaitingSecond, StatusConfirmed, StatusDismissed, StatusDisputed}

// Review is one reviewer's decision on an alert.
type Review struct {
	Reviewer     string    `json:"reviewer"` // token ID
	ReviewerName string    `json:"reviewer_name"`
	Decision     string    `json:"decision"` // confirm or dismiss
	Comment      string    `json:"comment"`
	Time         time.Time `json:"time"`
}

// Alert is a stored hit as the API shows it.
type Alert struct {
	ID             int64      `json:"id"`
	HitID          string     `json:"hit_id"`
	Camera         string     `json:"camera"`
	Track          uint64     `json:"track"`
	Time           time.Time  `json:"time"`
	StoredAt       time.Time  `json:"stored_at"`
	Watchlist      string     `json:"watchlist"`
	WatchlistKind  string     `json:"watchlist_kind"`
	Priority       int        `json:"priority"`
	SecondReviewer bool       `json:"second_reviewer"`
	Identity       string     `json:"identity"`
	IdentityName   string     `json:"identity_name"`
	Distance       float64    `json:"distance"`
	Threshold      float64    `json:"threshold"`
	SecondDistance float64    `json:"second_distance"`
	Model          wire.Model `json:"model"`
	CropSHA256     string     `json:"crop_sha256"`
	// SceneSHA256 names the scene image (the downscaled frame with the
	// face box drawn), "" when the hit carried none.
	SceneSHA256 string `json:"scene_sha256"`
	// EnrolledChipSHA256 names the enrolled face (the aligned chip of the
	// enrolment that matched), "" when the hit carried none.
	EnrolledChipSHA256 string `json:"enrolled_chip_sha256"`
	// Incident is the incident this sighting belongs to (incident.go).
	Incident      int64            `json:"incident"`
	EnrolledPhoto string           `json:"enrolled_photo"`
	Box           wire.Box         `json:"box"`
	Faces         []wire.FaceScore `json:"faces"`
	Status        Status           `json:"status"`
	Reviews       []Review         `json:"reviews,omitempty"`
}

const alertColumns = `id, hit_id, camera, track, time_ns, stored_ns, watchlist, watchlist_kind, priority, second_reviewer, identity,
	identity_name, distance, threshold, second_distance, model_name, model_sha256, crop_sha256, enrolled_photo, extra, status, scene_sha256, enrolled_chip_sha256, incident_id`

type scanner interface{ Scan(dest ...any) error }

func scanAlert(r scanner) (Alert, error) {
	var a Alert
	var track, tns, sns int64
	var extra, status string
	err := r.Scan(&a.ID, &a.HitID, &a.Camera, &track, &tns, &sns, &a.Watchlist, &a.WatchlistKind, &a.Priority, &a.SecondReviewer,
		&a.Identity, &a.IdentityName, &a.Distance, &a.Threshold, &a.SecondDistance, &a.Model.Name, &a.Model.SHA256,
		&a.CropSHA256, &a.EnrolledPhoto, &extra, &status, &a.SceneSHA256, &a.EnrolledChipSHA256, &a.Incident)
	if err != nil {
		return Alert{}, err
	}
	a.Track, a.Time, a.StoredAt, a.Status = uint64(track), time.Unix(0, tns).UTC(), time.Unix(0, sns).UTC(), Status(status)
	var x alertExtra
	if json.Unmarshal([]byte(extra), &x) == nil {
		a.Box, a.Faces = x.Box, x.Faces
	}
	return a, nil
}

func alertFromHit(id int64, h wire.Hit, crop, scene, chip string, incident, storedNS int64) Alert {
	return Alert{
		ID: id, HitID: h.ID, Camera: h.Camera, Track: h.Track, Time: h.Time.UTC(), StoredAt: time.Unix(0, storedNS).UTC(),
		Watchlist: h.Watchlist, WatchlistKind: h.WatchlistKind, Priority: h.Priority, SecondReviewer: h.SecondReviewer,
		Identity: h.Identity, IdentityName: h.IdentityName, Distance: h.Distance, Threshold: h.Threshold,
		SecondDistance: h.SecondDistance, Model: h.Model, CropSHA256: crop, SceneSHA256: scene, EnrolledChipSHA256: chip, Incident: incident,
		EnrolledPhoto: h.EnrolledPhoto, Box: h.Box, Faces: h.Faces, Status: StatusPending,
	}
}

// Bounds on query parameters: every value is checked before it reaches
// SQL (which only ever sees it as a bound parameter).
const (
	MaxQueryLen     = 4096 // raw query string
	MaxValueLen     = 128  // any one parameter value
	DefaultLimit    = 50
	MaxLimit        = 500
	maxCursorLen    = 40
	maxDistanceBase = 4 // wire.Hit bounds distances to [0, 4]
)

// Filter is a parsed history query.
type Filter struct {
	Identity    string
	Watchlist   string
	Camera      string
	Status      Status
	From, To    time.Time // inclusive, zero = open
	MinDistance float64   // NaN = open
	MaxDistance float64   // NaN = open
	Limit       int
	// After is the keyset cursor: rows strictly after (time, id) in
	// newest-first order.
	After *Cursor
	// scope limits the rows to the caller's scope (the zero value does
	// not); handlers set it from the token, never from the query.
	scope scopeView
}

// Cursor is a position in newest-first order.
type Cursor struct {
	TimeNS int64
	ID     int64
}

func (c Cursor) String() string { return fmt.Sprintf("%d.%d", c.TimeNS, c.ID) }

var cursorFormat = regexp.MustCompile(`^(-?[0-9]{1,19})\.([0-9]{1,19})$`)

// filterKeys are the parameters a history query accepts; anything else is
// refused, so that a misspelt filter cannot silently widen a query.
var filterKeys = map[string]bool{
	"identity": true, "watchlist": true, "camera": true, "status": true, "from": true, "to": true,
	"min_distance": true, "max_distance": true, "limit": true, "cursor": true, "case": true, "format": true,
}

// ParseFilter parses and bounds a history query's parameters. The error is
// one line naming the parameter.
func ParseFilter(q url.Values) (Filter, error) {
	f := Filter{MinDistance: math.NaN(), MaxDistance: math.NaN(), Limit: DefaultLimit}
	for k, vs := range q {
		if !filterKeys[k] {
			if len(k) > 32 {
				k = k[:32] + "…"
			}
			return Filter{}, fmt.Errorf("unknown parameter %q", k)
		}
		if len(vs) != 1 {
			return Filter{}, fmt.Errorf("parameter %s: given %d times, want once", k, len(vs))
		}
		if len(vs[0]) > MaxValueLen {
			return Filter{}, fmt.Errorf("parameter %s: %d bytes exceeds %d", k, len(vs[0]), MaxValueLen)
		}
		if !utf8.ValidString(vs[0]) || strings.ContainsFunc(vs[0], unicode.IsControl) {
			return Filter{}, fmt.Errorf("parameter %s: not printable UTF-8", k)
		}
	}
	get := q.Get
	var err error
	if v := get("identity"); v != "" {
		f.Identity = v
	}
	for _, p := range []struct {
		key string
		dst *string
	}{{"watchlist", &f.Watchlist}, {"camera", &f.Camera}} {
		if v := get(p.key); v != "" {
			if !wire.ValidToken(v) {
				return Filter{}, fmt.Errorf("parameter %s: %q is not a valid ID (letters, digits, '-', '_')", p.key, v)
			}
			*p.dst = v
		}
	}
	if v := get("status"); v != "" {
		ok := false
		for _, s := range statuses {
			ok = ok || string(s) == v
		}
		if !ok {
			return Filter{}, fmt.Errorf("parameter status: %q is not one of pending, awaiting_second, confirmed, dismissed, disputed", v)
		}
		f.Status = Status(v)
	}
	for _, p := range []struct {
		key string
		dst *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := get(p.key); v != "" {
			if *p.dst, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return Filter{}, fmt.Errorf("parameter %s: %q is not an RFC 3339 time", p.key, v)
			}
			if y := p.dst.Year(); y < 1970 || y > 2200 {
				return Filter{}, fmt.Errorf("parameter %s: year %d is out of range", p.key, y)
			}
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.To.Before(f.From) {
		return Filter{}, fmt.Errorf("parameter to: %s is before from %s", get("to"), get("from"))
	}
	for _, p := range []struct {
		key string
		dst *float64
	}{{"min_distance", &f.MinDistance}, {"max_distance", &f.MaxDistance}} {
		if v := get(p.key); v != "" {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(x) || x < 0 || x > maxDistanceBase {
				return Filter{}, fmt.Errorf("parameter %s: %q is not a number in [0, 4]", p.key, v)
			}
			*p.dst = x
		}
	}
	if v := get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			return Filter{}, fmt.Errorf("parameter limit: %q is not an integer in [1, %d]", v, MaxLimit)
		}
		f.Limit = n
	}
	if v := get("cursor"); v != "" {
		m := cursorFormat.FindStringSubmatch(v)
		if len(v) > maxCursorLen || m == nil {
			return Filter{}, fmt.Errorf("parameter cursor: %q is not a cursor from a previous page", v)
		}
		t, err1 := strconv.ParseInt(m[1], 10, 64)
		id, err2 := strconv.ParseInt(m[2], 10, 64)
		if err1 != nil || err2 != nil {
			return Filter{}, fmt.Errorf("parameter cursor: %q is not a cursor from a previous page", v)
		}
		f.After = &Cursor{TimeNS: t, ID: id}
	}
	return f, nil
}

// where builds the WHERE clause and its arguments: the SQL text is made
// only of constant fragments; every value is a bound parameter.
func (f Filter) where() (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, a ...any) { conds = append(conds, cond); args = append(args, a...) }
	if f.Identity != "" {
		add("identity = ?", f.Identity)
	}
	if f.Watchlist != "" {
		add("watchlist = ?", f.Watchlist)
	}
	if f.Camera != "" {
		add("camera = ?", f.Camera)
	}
	if f.Status != "" {
		add("status = ?", string(f.Status))
	}
	if !f.From.IsZero() {
		add("time_ns >= ?", f.From.UnixNano())
	}
	if !f.To.IsZero() {
		add("time_ns <= ?", f.To.UnixNano())
	}
	if !math.IsNaN(f.MinDistance) {
		add("distance >= ?", f.MinDistance)
	}
	if !math.IsNaN(f.MaxDistance) {
		add("distance <= ?", f.MaxDistance)
	}
	if f.After != nil {
		add("(time_ns < ? OR (time_ns = ? AND id < ?))", f.After.TimeNS, f.After.TimeNS, f.After.ID)
	}
	sc, sargs := f.scope.conds()
	conds, args = append(conds, sc...), append(args, sargs...)
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// find runs f and returns up to f.Limit alerts, newest first, and the
// cursor of the next page (nil at the end).
func (s *Service) find(ctx context.Context, f Filter) ([]Alert, *Cursor, error) {
	where, args := f.where()
	// One extra row tells whether there is a next page.
	rows, err := s.db.r.QueryContext(ctx, `SELECT `+alertColumns+` FROM alerts`+where+` ORDER BY time_ns DESC, id DESC LIMIT ?`,
		append(args, f.Limit+1)...)
	if err != nil {
		return nil, nil, fmt.Errorf("querying alerts: %w", err)
	}
	defer rows.Close()
	out := make([]Alert, 0, f.Limit)
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, nil, fmt.Errorf("reading alerts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading alerts: %w", err)
	}
	if len(out) <= f.Limit {
		return out, nil, nil
	}
	out = out[:f.Limit]
	last := out[len(out)-1]
	return out, &Cursor{TimeNS: last.Time.UnixNano(), ID: last.ID}, nil
}
