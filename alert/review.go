package alert

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

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
	ErrSameReviewer    = errors.New("the second review must come from a different person")
)

func (s *Service) reviewH(w http.ResponseWriter, r *http.Request, p principal) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	req, c, ok := readReview(w, r, decodeReview)
	if !ok {
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

// readReview reads a review request of either kind (an alert's, an
// incident's): a JSON body decoded by decode, and the case reference. On
// failure it has answered (415 or 400) and ok is false.
func readReview[T any](w http.ResponseWriter, r *http.Request, decode func(io.Reader) (T, error)) (req T, caseRefText string, ok bool) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "body must be application/json")
		return req, "", false
	}
	req, err := decode(http.MaxBytesReader(w, r.Body, maxReviewBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return req, "", false
	}
	c, err := caseRef(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return req, "", false
	}
	return req, c, true
}

// maxReviewBody bounds a review request's body.
const maxReviewBody = 8 << 10

// decodeReview reads a review body: one JSON object with only the
// decision and comment fields and nothing after it. The values are checked
// by checkReview.
func decodeReview(body io.Reader) (reviewRequest, error) {
	var req reviewRequest
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		return reviewRequest{}, errors.New("body must be {\"decision\": \"confirm\"|\"dismiss\", \"comment\": \"...\"}")
	}
	if _, err := dec.Token(); err != io.EOF {
		return reviewRequest{}, errors.New("body must be one JSON object and nothing after it")
	}
	return req, nil
}

// checkReview checks a review's decision and comment and returns the
// status the decision leads to and the comment as stored (trimmed).
func checkReview(decision, comment string) (Status, string, error) {
	var final Status
	switch decision {
	case "confirm":
		final = StatusConfirmed
	case "dismiss":
		final = StatusDismissed
	default:
		return "", "", fmt.Errorf("%w: decision %q is not confirm or dismiss", errBadReview, decision)
	}
	comment = strings.TrimSpace(comment)
	if comment == "" || len(comment) > MaxComment || !utf8.ValidString(comment) || strings.ContainsFunc(comment, func(r rune) bool { return unicode.IsControl(r) && r != '\n' }) {
		return "", "", fmt.Errorf("%w: comment must be 1-%d bytes of text", errBadReview, MaxComment)
	}
	return final, comment, nil
}

// recordReview records p's decision on alert id and its audit entry in one
// transaction and returns the updated alert. See Status for the workflow.
func (s *Service) recordReview(ctx context.Context, p principal, id int64, decision, comment, caseRef string) (Alert, error) {
	final, comment, err := checkReview(decision, comment)
	if err != nil {
		return Alert{}, err
	}
	tx, err := s.db.w.BeginTx(ctx, nil)
	if err != nil {
		return Alert{}, fmt.Errorf("reviewing alert %d: %w", id, err)
	}
	defer tx.Rollback()
	if err := s.reviewLocked(ctx, tx, p, id, decision, final, comment, caseRef, 0); err != nil {
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

// reviewLocked records p's decision (checked by checkReview: final is
// its status, comment trimmed) on alert id and its audit entry inside
// tx, the caller's write transaction. incident, when not 0, is the
// incident reviewed, named in the audit entry.
func (s *Service) reviewLocked(ctx context.Context, tx *sql.Tx, p principal, id int64, decision string, final Status, comment, caseRef string, incident int64) error {
	var status, camera, watchlist string
	var second bool
	err := tx.QueryRowContext(ctx, `SELECT status, second_reviewer, camera, watchlist FROM alerts WHERE id = ?`, id).Scan(&status, &second, &camera, &watchlist)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !s.scopeOf(p).allows(camera, watchlist)) {
		return errNotFound // out of scope: as if it did not exist
	}
	if err != nil {
		return fmt.Errorf("reviewing alert %d: %w", id, err)
	}
	next := final
	switch Status(status) {
	case StatusPending:
		if second {
			next = StatusAwaitingSecond
		}
	case StatusAwaitingSecond:
		// People, not tokens: one person's second token is still them.
		var firstBy, firstPerson, firstDecision string
		if err := tx.QueryRowContext(ctx, `SELECT reviewer, reviewer_person, decision FROM reviews WHERE alert_id = ? ORDER BY id LIMIT 1`, id).Scan(&firstBy, &firstPerson, &firstDecision); err != nil {
			return fmt.Errorf("reviewing alert %d: reading first review: %w", id, err)
		}
		if firstBy == p.ID || samePerson(firstPerson, p.Person) {
			return fmt.Errorf("%w (%s reviewed it first)", ErrSameReviewer, firstPerson)
		}
		if firstDecision != decision {
			next = StatusDisputed
		}
	default:
		return fmt.Errorf("%w (status %s)", ErrAlreadyReviewed, status)
	}
	now := s.now()
	if _, err := tx.ExecContext(ctx, `INSERT INTO reviews (alert_id, reviewer, reviewer_name, reviewer_person, decision, comment, time_ns) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		id, p.ID, p.Person, p.Person, decision, comment, now.UnixNano()); err != nil {
		return fmt.Errorf("reviewing alert %d: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE alerts SET status = ? WHERE id = ?`, string(next), id); err != nil {
		return fmt.Errorf("reviewing alert %d: %w", id, err)
	}
	// The audit log keeps that the review happened, not the comment: its
	// free text follows alert.comment_retention (docs/privacy.md), and the
	// audit log is never swept. The hash still ties the entry to it.
	sum := sha256.Sum256([]byte(comment))
	detail := map[string]any{"decision": decision, "comment_sha256": hex.EncodeToString(sum[:]), "status": string(next)}
	if incident != 0 {
		detail["incident"] = incident
	}
	d, _ := json.Marshal(detail)
	return s.appendAudit(ctx, tx, &AuditEntry{Time: now, Actor: p.ID, ActorName: p.Person, Role: string(p.Role), Action: "review",
		Target: "alert/" + strconv.FormatInt(id, 10), Case: caseRef, Detail: string(d)})
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
func (s *Service) precisionStats(ctx context.Context, from, to time.Time, scope scopeView) (Precision, error) {
	f := Filter{From: from, To: to, MinDistance: math.NaN(), MaxDistance: math.NaN(), scope: scope}
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

func (s *Service) precision(w http.ResponseWriter, r *http.Request, pr principal) {
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
	p, err := s.precisionStats(r.Context(), f.From, f.To, s.scopeOf(pr))
	if err != nil {
		s.log.Error("precision", "err", err)
		writeError(w, http.StatusInternalServerError, "computing precision failed")
		return
	}
	writeJSON(w, http.StatusOK, p)
}
