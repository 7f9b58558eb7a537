package alert

// Incidents: the sightings (alerts) of one identity on one watchlist close
// in time — one camera or several — are one incident, shown as one card
// and reviewed once. The grouping is stored (alerts.incident_id, migration
// 6), so it survives restarts; everything an incident shows (times,
// cameras, best sighting, status) is computed from the sightings the
// caller may see, so a scoped caller never learns of another district's
// sighting through an incident they share.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/facewatch/facewatch/internal/wire"
)

// maxIncidentSightings bounds one incident: a sighting past it opens a new
// incident (someone loitering all day is several cards, each reviewable).
const maxIncidentSightings = 100

// StatusMixed is an incident whose sightings were decided differently
// (some confirmed, some dismissed). Alerts never have it.
const StatusMixed Status = "mixed"

// Incident is a group of sightings of one identity as one caller may see
// it: every field is computed from the sightings in the caller's scope.
type Incident struct {
	ID             int64  `json:"id"`
	Watchlist      string `json:"watchlist"`
	WatchlistKind  string `json:"watchlist_kind"`
	Priority       int    `json:"priority"`
	SecondReviewer bool   `json:"second_reviewer"`
	Identity       string `json:"identity"`
	IdentityName   string `json:"identity_name"`
	// EnrolledPhoto is the enrolled photo of the best sighting.
	EnrolledPhoto string    `json:"enrolled_photo"`
	First         time.Time `json:"first"`
	Last          time.Time `json:"last"`
	Cameras       []string  `json:"cameras"`
	// Status is pending while a sighting awaits its first review,
	// awaiting_second while one awaits only its second, else the status
	// all sightings share, or mixed.
	Status Status `json:"status"`
	// Open counts the sightings awaiting a review.
	Open int `json:"open"`
	// Best is the id of the closest sighting (lowest distance): its crop
	// and scene are the card's.
	Best int64 `json:"best"`
	// Sightings are oldest first, each with its reviews.
	Sightings []Alert `json:"sightings"`
}

// incidentForLocked returns the incident hit h joins inside tx, the
// store's write transaction: the latest incident of its identity and
// watchlist with a sighting within alert.incident_window of h's time (any
// camera) and room left, or a new one.
func (s *Service) incidentForLocked(ctx context.Context, tx *sql.Tx, h wire.Hit) (int64, error) {
	t := h.Time.UnixNano()
	if w := int64(s.cfg.IncidentWindow); w > 0 {
		var id, n int64
		err := tx.QueryRowContext(ctx, `SELECT id, (SELECT COUNT(*) FROM alerts WHERE incident_id = incidents.id) FROM incidents
			WHERE watchlist = ? AND identity = ? AND last_ns >= ? AND first_ns <= ? ORDER BY last_ns DESC, id DESC LIMIT 1`,
			h.Watchlist, h.Identity, t-w, t+w).Scan(&id, &n)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return 0, fmt.Errorf("finding the incident of hit %s: %w", h.ID, err)
		case n < maxIncidentSightings:
			if _, err := tx.ExecContext(ctx, `UPDATE incidents SET first_ns = MIN(first_ns, ?1), last_ns = MAX(last_ns, ?1) WHERE id = ?2`, t, id); err != nil {
				return 0, fmt.Errorf("adding hit %s to incident %d: %w", h.ID, id, err)
			}
			return id, nil
		}
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO incidents (watchlist, identity, first_ns, last_ns) VALUES (?, ?, ?, ?)`, h.Watchlist, h.Identity, t, t)
	if err != nil {
		return 0, fmt.Errorf("opening an incident for hit %s: %w", h.ID, err)
	}
	return res.LastInsertId()
}

// incidentView is what one request may see of incidents: its scope and,
// for an operator, the operator window (decided sightings stored before
// since are history).
type incidentView struct {
	scope scopeView
	since int64 // stored_ns bound for decided sightings; 0 = none
}

func (s *Service) incidentViewOf(p principal) incidentView {
	v := incidentView{scope: s.scopeOf(p)}
	if p.Role == RoleOperator {
		v.since = s.now().Add(-OperatorWindow).UnixNano()
	}
	return v
}

// and returns the SQL conditions on alerts that admit the sightings v
// sees, as " AND …", with their arguments.
func (v incidentView) and() (string, []any) {
	cond, args := v.scope.and()
	if v.since != 0 {
		cond += ` AND (status IN ('pending', 'awaiting_second') OR stored_ns >= ?)`
		args = append(args, v.since)
	}
	return cond, args
}

// loadIncident loads incident id as v sees it; errNotFound when v sees
// none of its sightings (or there is no such incident).
func loadIncident(ctx context.Context, q queryer, id int64, v incidentView) (Incident, error) {
	cond, args := v.and()
	rows, err := q.QueryContext(ctx, `SELECT `+alertColumns+` FROM alerts WHERE incident_id = ?`+cond+` ORDER BY time_ns, id`, append([]any{id}, args...)...)
	if err != nil {
		return Incident{}, fmt.Errorf("loading incident %d: %w", id, err)
	}
	var sightings []Alert
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			rows.Close()
			return Incident{}, fmt.Errorf("loading incident %d: %w", id, err)
		}
		sightings = append(sightings, a)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return Incident{}, fmt.Errorf("loading incident %d: %w", id, err)
	}
	if len(sightings) == 0 {
		return Incident{}, errNotFound
	}
	// Reviews of the visible sightings only.
	byID := make(map[int64]int, len(sightings))
	for i, a := range sightings {
		byID[a.ID] = i
	}
	rrows, err := q.QueryContext(ctx, `SELECT alert_id, reviewer, reviewer_name, decision, comment, time_ns FROM reviews
		WHERE alert_id IN (SELECT id FROM alerts WHERE incident_id = ?) ORDER BY id`, id)
	if err != nil {
		return Incident{}, fmt.Errorf("loading reviews of incident %d: %w", id, err)
	}
	defer rrows.Close()
	for rrows.Next() {
		var r Review
		var aid, ns int64
		if err := rrows.Scan(&aid, &r.Reviewer, &r.ReviewerName, &r.Decision, &r.Comment, &ns); err != nil {
			return Incident{}, fmt.Errorf("loading reviews of incident %d: %w", id, err)
		}
		if i, ok := byID[aid]; ok {
			r.Time = time.Unix(0, ns).UTC()
			sightings[i].Reviews = append(sightings[i].Reviews, r)
		}
	}
	if err := rrows.Err(); err != nil {
		return Incident{}, fmt.Errorf("loading reviews of incident %d: %w", id, err)
	}
	return makeIncident(id, sightings), nil
}

// makeIncident computes an incident from its (visible) sightings, oldest
// first.
func makeIncident(id int64, sightings []Alert) Incident {
	last := sightings[len(sightings)-1]
	inc := Incident{ID: id, Watchlist: last.Watchlist, WatchlistKind: last.WatchlistKind, Priority: last.Priority,
		SecondReviewer: last.SecondReviewer, Identity: last.Identity, IdentityName: last.IdentityName,
		First: sightings[0].Time, Last: last.Time, Cameras: []string{}, Sightings: sightings}
	best := sightings[0]
	var pending, awaiting int
	decided := map[Status]int{}
	for _, a := range sightings {
		if a.Distance < best.Distance {
			best = a
		}
		if a.Time.Before(inc.First) {
			inc.First = a.Time
		}
		if a.Time.After(inc.Last) {
			inc.Last = a.Time
		}
		if !slices.Contains(inc.Cameras, a.Camera) {
			inc.Cameras = append(inc.Cameras, a.Camera)
		}
		switch a.Status {
		case StatusPending:
			pending++
		case StatusAwaitingSecond:
			awaiting++
		default:
			decided[a.Status]++
		}
	}
	inc.Best, inc.EnrolledPhoto, inc.Open = best.ID, best.EnrolledPhoto, pending+awaiting
	switch {
	case pending > 0:
		inc.Status = StatusPending
	case awaiting > 0:
		inc.Status = StatusAwaitingSecond
	case len(decided) == 1:
		for st := range decided {
			inc.Status = st
		}
	default:
		inc.Status = StatusMixed
	}
	return inc
}

// listIncidents returns the incidents v sees, latest sighting first: only
// those with a sighting awaiting review when open is set.
func (s *Service) listIncidents(ctx context.Context, v incidentView, open bool, limit int) ([]Incident, error) {
	cond, args := v.and()
	having := ""
	if open {
		// Only incidents with an open sighting in view: found through the
		// status index rather than by grouping the whole history.
		scond, sargs := v.scope.and()
		cond = ` AND incident_id IN (SELECT incident_id FROM alerts WHERE status IN ('pending', 'awaiting_second')` + scond + `)` + cond
		args = append(sargs, args...)
		having = ` HAVING SUM(status IN ('pending', 'awaiting_second')) > 0`
	}
	rows, err := s.db.r.QueryContext(ctx, `SELECT incident_id FROM alerts WHERE 1`+cond+` GROUP BY incident_id`+having+
		` ORDER BY MAX(time_ns) DESC, incident_id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("listing incidents: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("listing incidents: %w", err)
		}
		ids = append(ids, id)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("listing incidents: %w", err)
	}
	out := make([]Incident, 0, len(ids))
	for _, id := range ids {
		inc, err := loadIncident(ctx, s.db.r, id, v)
		if errors.Is(err, errNotFound) {
			continue // swept between the two reads
		}
		if err != nil {
			return nil, err
		}
		out = append(out, inc)
	}
	return out, nil
}

// incidentReview is the body of an incident's review: a review request
// and, optionally, the sightings the reviewer saw (a sighting that arrived
// since is left for the next review).
type incidentReview struct {
	Decision  string  `json:"decision"`
	Comment   string  `json:"comment"`
	Sightings []int64 `json:"sightings"`
}

// ErrNothingToReview: no sighting of the incident awaits the caller's
// review (all decided, or every open one named none the caller saw).
var ErrNothingToReview = errors.New("no sighting of this incident awaits review")

// recordIncidentReview applies p's decision to every sighting of incident
// id that p sees and that awaits a review (of those in only, when only is
// not nil), each one reviewed and audited as a sighting, in one
// transaction. A sighting awaiting its second review that p reviewed
// first is left for another person; when that is every open sighting the
// error is ErrSameReviewer.
func (s *Service) recordIncidentReview(ctx context.Context, p principal, id int64, decision, comment, caseRef string, only []int64) (Incident, error) {
	final, comment, err := checkReview(decision, comment)
	if err != nil {
		return Incident{}, err
	}
	tx, err := s.db.w.BeginTx(ctx, nil)
	if err != nil {
		return Incident{}, fmt.Errorf("reviewing incident %d: %w", id, err)
	}
	defer tx.Rollback()
	v := s.incidentViewOf(p)
	inc, err := loadIncident(ctx, tx, id, v)
	if err != nil {
		return Incident{}, err
	}
	var reviewed int
	var same error
	for _, a := range inc.Sightings {
		if (a.Status != StatusPending && a.Status != StatusAwaitingSecond) || (only != nil && !slices.Contains(only, a.ID)) {
			continue
		}
		err := s.reviewLocked(ctx, tx, p, a.ID, decision, final, comment, caseRef, id)
		if errors.Is(err, ErrSameReviewer) {
			same = err
			continue
		}
		if err != nil {
			return Incident{}, err
		}
		reviewed++
	}
	if reviewed == 0 {
		if same != nil {
			return Incident{}, same
		}
		return Incident{}, ErrNothingToReview
	}
	inc, err = loadIncident(ctx, tx, id, v)
	if err != nil {
		return Incident{}, err
	}
	if err := tx.Commit(); err != nil {
		return Incident{}, fmt.Errorf("reviewing incident %d: %w", id, err)
	}
	s.m.reviews.WithLabelValues(decision).Add(float64(reviewed))
	return inc, nil
}

// incidentIDs lists the ids of incs and of their sightings, for the audit.
func incidentIDs(incs ...Incident) map[string][]int64 {
	out := map[string][]int64{"incidents": {}, "alerts": {}}
	for _, inc := range incs {
		out["incidents"] = append(out["incidents"], inc.ID)
		for _, a := range inc.Sightings {
			out["alerts"] = append(out["alerts"], a.ID)
		}
	}
	return out
}

// decodeIncidentReview reads an incident review's body: one JSON object
// with only the decision, comment and sightings fields and nothing after
// it, at most maxIncidentSightings ids. The decision and comment are
// checked by checkReview.
func decodeIncidentReview(body io.Reader) (incidentReview, error) {
	var req incidentReview
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		return incidentReview{}, errors.New(`body must be {"decision": "confirm"|"dismiss", "comment": "...", "sightings": [alert ids seen]}`)
	}
	if _, err := dec.Token(); err != io.EOF {
		return incidentReview{}, errors.New("body must be one JSON object and nothing after it")
	}
	if len(req.Sightings) > maxIncidentSightings {
		return incidentReview{}, fmt.Errorf("sightings: %d ids exceeds %d", len(req.Sightings), maxIncidentSightings)
	}
	return req, nil
}

func pathIncident(w http.ResponseWriter, r *http.Request) (int64, bool) {
	return positivePathID(w, r, "incident")
}

// incidents lists incidents: status=open (default; those awaiting review)
// or all, limit (1..MaxLimit, default 100).
func (s *Service) incidents(w http.ResponseWriter, r *http.Request, p principal) {
	q := r.URL.Query()
	for k, vs := range q {
		if (k != "status" && k != "limit" && k != "case") || len(vs) > 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("parameter %s: not accepted here (want status, limit, case, each once)", k))
			return
		}
	}
	open := true
	switch q.Get("status") {
	case "", "open":
	case "all":
		open = false
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("parameter status: %q is not open or all", q.Get("status")))
		return
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("parameter limit: %q is not an integer in [1, %d]", v, MaxLimit))
			return
		}
		limit = n
	}
	c, ok := viewCase(w, r, p)
	if !ok {
		return
	}
	incs, err := s.listIncidents(r.Context(), s.incidentViewOf(p), open, limit)
	if err != nil {
		s.log.Error("listing incidents", "err", err)
		writeError(w, http.StatusInternalServerError, "listing incidents failed")
		return
	}
	if !s.auditOr500(w, r, p, "view_incidents", "incidents", c, incidentIDs(incs...)) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"incidents": incs})
}

func (s *Service) incident(w http.ResponseWriter, r *http.Request, p principal) {
	id, ok := pathIncident(w, r)
	if !ok {
		return
	}
	c, ok := viewCase(w, r, p)
	if !ok {
		return
	}
	inc, err := loadIncident(r.Context(), s.db.r, id, s.incidentViewOf(p))
	if errors.Is(err, errNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("incident %d not found", id))
		return
	}
	if err != nil {
		s.log.Error("loading incident", "id", id, "err", err)
		writeError(w, http.StatusInternalServerError, "loading the incident failed")
		return
	}
	if !s.auditOr500(w, r, p, "view", "incident/"+strconv.FormatInt(id, 10), c, incidentIDs(inc)) {
		return
	}
	writeJSON(w, http.StatusOK, inc)
}

func (s *Service) reviewIncidentH(w http.ResponseWriter, r *http.Request, p principal) {
	id, ok := pathIncident(w, r)
	if !ok {
		return
	}
	req, c, ok := readReview(w, r, decodeIncidentReview)
	if !ok {
		return
	}
	inc, err := s.recordIncidentReview(r.Context(), p, id, req.Decision, req.Comment, c, req.Sightings)
	switch {
	case errors.Is(err, errNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("incident %d not found", id))
	case errors.Is(err, ErrSameReviewer):
		writeError(w, http.StatusConflict, fmt.Sprintf("incident %d: %v; it now awaits a second reviewer", id, err))
	case errors.Is(err, ErrNothingToReview):
		writeError(w, http.StatusConflict, fmt.Sprintf("incident %d: %v (another operator may have decided it: reload)", id, err))
	case errors.Is(err, errBadReview):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		s.log.Error("recording incident review", "id", id, "err", err)
		writeError(w, http.StatusInternalServerError, "recording the review failed")
	default:
		writeJSON(w, http.StatusOK, inc)
	}
}

// scene serves an alert's scene image: the frame downscaled with the face
// box drawn (hits only; nothing of a non-match is ever kept).
func (s *Service) scene(w http.ResponseWriter, r *http.Request, p principal) {
	s.alertImage(w, r, p, "scene_sha256", "scene", "view_scene")
}

// enrolledFace serves the enrolled face of an alert: the aligned chip of
// the enrolment that matched, what the console's enrolled tile shows.
func (s *Service) enrolledFace(w http.ResponseWriter, r *http.Request, p principal) {
	s.alertImage(w, r, p, "enrolled_chip_sha256", "enrolled face", "view_enrolled_face")
}

// alertImage serves the image file an alert names in column col (a
// constant of the callers, never input), audited as action.
func (s *Service) alertImage(w http.ResponseWriter, r *http.Request, p principal, col, noun, action string) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	c, ok := viewCase(w, r, p)
	if !ok {
		return
	}
	var sum, status, camera, watchlist string
	var storedNS int64
	err := s.db.r.QueryRowContext(r.Context(), `SELECT `+col+`, stored_ns, status, camera, watchlist FROM alerts WHERE id = ?`, id).
		Scan(&sum, &storedNS, &status, &camera, &watchlist)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && (sum == "" || !s.scopeOf(p).allows(camera, watchlist))) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("alert %d has no %s", id, noun))
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "loading the "+noun+" failed")
		return
	}
	if !s.operatorMay(w, p, time.Unix(0, storedNS), Status(status)) {
		return
	}
	f, err := s.readCrop(sum)
	if err != nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s of alert %d is gone", noun, id))
		return
	}
	defer f.Close()
	if !s.auditOr500(w, r, p, action, "alert/"+strconv.FormatInt(id, 10), c, nil) {
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	io.Copy(w, f)
}
