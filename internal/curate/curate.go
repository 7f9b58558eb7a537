// Package curate answers the alert service's curator routes (the
// alert.Gallery interface): watchlists, enrolment by upload with each
// refusal's reason and look-alike warnings, and the threshold evaluation.
// It goes through the command line's own code paths (match.Gallery,
// internal/enroll, internal/eval), each change audited in the gallery's
// log as the person signed in. Routing, roles and scopes are the alert
// service's; this package must not decide who may call it.
package curate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/facewatch/facewatch/internal/audit"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/enroll"
	"github.com/facewatch/facewatch/internal/eval"
	"github.com/facewatch/facewatch/match"
)

// Recognition loads the still-photo detector and embedder (the photo
// commands' policy) and returns a function that releases them.
type Recognition func() (enroll.FaceDetector, enroll.FaceEmbedder, func(), error)

// Options wire an API.
type Options struct {
	// Gallery is the gallery the service holds (opened with the audit
	// keys); each change goes through Gallery.As(the signed-in person).
	Gallery *match.Gallery
	// Match gives the enrolment limits and thresholds; MaxPixels refuses
	// larger photos before decoding (config detect.max_pixels).
	Match     config.Match
	MaxPixels int64
	// Recognition is called on the first enrolment; nil refuses uploads.
	Recognition Recognition
	Logger      *slog.Logger
	// Now is the clock (expiry times given as durations); nil: time.Now.
	Now func() time.Time
}

// API implements alert.Gallery. Its methods are safe for concurrent use:
// enrolments take turns (the detector and embedder are not concurrent).
type API struct {
	opt Options
	log *slog.Logger
	now func() time.Time

	mu sync.Mutex // guards the fields below: one enrolment at a time
	en *enroll.Enroller
	// release frees the recognition models (Close).
	release func()
}

// MaxUpload bounds an uploaded enrolment photo (the multipart body).
const MaxUpload = 20 << 20

// New returns the curator API over opt.Gallery.
func New(opt Options) *API {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	return &API{opt: opt, log: log.With("component", "curate"), now: now}
}

// Close releases the recognition models when they were loaded.
func (a *API) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.release != nil {
		a.release()
		a.release, a.en = nil, nil
	}
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

// fail answers a gallery error with the status its kind calls for; the
// gallery's own message says what was wrong.
func (a *API) fail(w http.ResponseWriter, what string, err error) {
	switch {
	case errors.Is(err, match.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, match.ErrExists):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, match.ErrInvalid), errors.Is(err, match.ErrExpired):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, context.Canceled):
		writeError(w, http.StatusServiceUnavailable, what+": cancelled")
	default:
		a.log.Error(what, "err", err)
		writeError(w, http.StatusInternalServerError, what+" failed")
	}
}

// decode reads a JSON body of at most 16 KiB into v, refusing unknown
// fields (a misspelt field must not be silently ignored).
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "the body must be JSON: "+err.Error())
		return false
	}
	return true
}

// ParseWhen reads an absolute time (RFC 3339, YYYY-MM-DDTHH:MM or a date,
// in the local zone) or a duration from now ("720h"); "" and "now" are
// now. The command line's --expires and --at read times with it too.
func ParseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" || s == "now" {
		return now, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (RFC 3339, YYYY-MM-DD) or a duration from now (720h)", s)
}

// VerifyAudit verifies the gallery's audit log (GET /api/v1/audit/verify
// shows it beside the alert log's).
func (a *API) VerifyAudit(ctx context.Context) (audit.Report, error) {
	return a.opt.Gallery.VerifyAuditLog(ctx)
}

// ListWatchlists is GET /api/v1/watchlists.
func (a *API) ListWatchlists(w http.ResponseWriter, r *http.Request, _ audit.Actor) {
	lists, err := a.opt.Gallery.Watchlists(r.Context())
	if err != nil {
		a.fail(w, "listing watchlists", err)
		return
	}
	if lists == nil {
		lists = []match.WatchlistSummary{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"watchlists": lists, "default_threshold": a.opt.Match.DefaultThreshold})
}

// WatchlistRequest is POST /api/v1/watchlists' body: `facewatch
// watchlist create`'s flags.
type WatchlistRequest struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	Owner      string `json:"owner"`
	LegalBasis string `json:"legal_basis"`
	// Expires is as ParseWhen reads it; empty: never.
	Expires        string  `json:"expires"`
	Priority       int     `json:"priority"`
	Threshold      float64 `json:"threshold"`
	SecondReviewer bool    `json:"second_reviewer"`
}

// CreateWatchlist is POST /api/v1/watchlists.
func (a *API) CreateWatchlist(w http.ResponseWriter, r *http.Request, by audit.Actor) {
	var in WatchlistRequest
	if !decode(w, r, &in) {
		return
	}
	k, err := match.ParseKind(in.Kind)
	if err != nil {
		writeError(w, http.StatusBadRequest, "kind: "+err.Error())
		return
	}
	spec := match.WatchlistSpec{Name: in.Name, Kind: k, Owner: in.Owner, LegalBasis: in.LegalBasis, Priority: in.Priority,
		Threshold: in.Threshold, SecondReviewer: in.SecondReviewer}
	if in.Expires != "" {
		if spec.Expires, err = ParseWhen(in.Expires, a.now()); err != nil {
			writeError(w, http.StatusBadRequest, "expires: "+err.Error())
			return
		}
	}
	l, err := a.opt.Gallery.As(by, "").CreateWatchlist(r.Context(), spec)
	if err != nil {
		a.fail(w, "creating the watchlist", err)
		return
	}
	writeJSON(w, http.StatusCreated, l)
}

// ShowWatchlist is GET /api/v1/watchlists/{name}: `facewatch watchlist
// show`.
func (a *API) ShowWatchlist(w http.ResponseWriter, r *http.Request, _ audit.Actor) {
	ctx := r.Context()
	g := a.opt.Gallery
	name := r.PathValue("name")
	l, err := g.Watchlist(ctx, name)
	if err != nil {
		a.fail(w, "reading the watchlist", err)
		return
	}
	ids, err := g.Identities(ctx, name)
	if err != nil {
		a.fail(w, "reading the watchlist", err)
		return
	}
	x := match.NewIndex(a.opt.Match, match.IndexOptions{Gallery: g})
	if err := x.Load(ctx); err != nil {
		a.fail(w, "loading descriptors", err)
		return
	}
	idList := make([]int64, len(ids))
	for i, id := range ids {
		idList[i] = id.ID
	}
	looks := []match.LookAlike{}
	if len(idList) > 0 {
		looks = append(looks, x.LookAlikes(idList)...)
	}
	if ids == nil {
		ids = []match.IdentitySummary{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"watchlist": l, "identities": ids, "look_alikes": looks,
		"default_threshold": a.opt.Match.DefaultThreshold})
}

// UpdateRequest is PATCH /api/v1/watchlists/{name}'s body: each field
// present is applied (`facewatch watchlist threshold` and `expire`).
type UpdateRequest struct {
	Threshold *float64 `json:"threshold"`
	// Expires is as ParseWhen reads it ("now" ends matching now).
	Expires *string `json:"expires"`
}

// UpdateWatchlist is PATCH /api/v1/watchlists/{name}.
func (a *API) UpdateWatchlist(w http.ResponseWriter, r *http.Request, by audit.Actor) {
	var in UpdateRequest
	if !decode(w, r, &in) {
		return
	}
	if in.Threshold == nil && in.Expires == nil {
		writeError(w, http.StatusBadRequest, "nothing to change: give threshold and/or expires")
		return
	}
	var when time.Time
	if in.Expires != nil {
		var err error
		if when, err = ParseWhen(*in.Expires, a.now()); err != nil {
			writeError(w, http.StatusBadRequest, "expires: "+err.Error())
			return
		}
	}
	g := a.opt.Gallery.As(by, "")
	name := r.PathValue("name")
	var l match.Watchlist
	var err error
	if in.Threshold != nil {
		if l, err = g.SetThreshold(r.Context(), name, *in.Threshold); err != nil {
			a.fail(w, "setting the threshold", err)
			return
		}
	}
	if in.Expires != nil {
		if l, err = g.ExpireWatchlist(r.Context(), name, when); err != nil {
			a.fail(w, "setting the expiry", err)
			return
		}
	}
	writeJSON(w, http.StatusOK, l)
}

// DeleteWatchlist is DELETE /api/v1/watchlists/{name}.
func (a *API) DeleteWatchlist(w http.ResponseWriter, r *http.Request, by audit.Actor) {
	name := r.PathValue("name")
	if err := a.opt.Gallery.As(by, "").DeleteWatchlist(r.Context(), name); err != nil {
		a.fail(w, "deleting the watchlist", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "deleted", "watchlist": name})
}

// EnrolResult is the answer to an upload: the enrolment, or the refusal
// with its reason in one line, and the look-alike pairs it makes.
type EnrolResult struct {
	Enrolled *enroll.Enrolled `json:"enrolled,omitempty"`
	// Refused is the reason ("several faces"), Detail the specifics, and
	// Message the one line a person reads.
	Refused    string            `json:"refused,omitempty"`
	Detail     string            `json:"detail,omitempty"`
	Message    string            `json:"message"`
	LookAlikes []match.LookAlike `json:"look_alikes"`
}

// enroller returns the enroller acting as by, loading the models first.
// a.mu is held.
func (a *API) enrollerLocked(by audit.Actor) (*enroll.Enroller, error) {
	if a.en == nil {
		if a.opt.Recognition == nil {
			return nil, errors.New("no recognition models configured")
		}
		det, emb, release, err := a.opt.Recognition()
		if err != nil {
			return nil, fmt.Errorf("loading the recognition models: %w", err)
		}
		a.en = enroll.NewEnroller(a.opt.Gallery, det, emb, enroll.EnrollerOptions{Match: a.opt.Match, MaxPixels: a.opt.MaxPixels, Logger: a.log})
		a.release = release
	}
	return a.en.As(a.opt.Gallery.As(by, "")), nil
}

// Enrol is POST /api/v1/watchlists/{name}/photos: a multipart form with
// the file photo and the fields identity (required), notes, ref and
// expires (for a new identity). A photo that cannot be enrolled is 422
// with the reason.
func (a *API) Enrol(w http.ResponseWriter, r *http.Request, by audit.Actor) {
	ctx := r.Context()
	list := r.PathValue("name")
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "multipart/form-data" {
		writeError(w, http.StatusUnsupportedMediaType, "send the photo as multipart/form-data (field photo) with the field identity")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxUpload+64<<10)
	if err := r.ParseMultipartForm(MaxUpload); err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the upload could not be read (at most %d MiB): %v", MaxUpload>>20, err))
		return
	}
	defer r.MultipartForm.RemoveAll()
	who := match.IdentitySpec{Name: strings.TrimSpace(r.FormValue("identity")), Notes: r.FormValue("notes"), ExternalRef: r.FormValue("ref")}
	if who.Name == "" {
		writeError(w, http.StatusBadRequest, "identity is required: the person the photo shows")
		return
	}
	if v := r.FormValue("expires"); v != "" {
		var err error
		if who.Expires, err = ParseWhen(v, a.now()); err != nil {
			writeError(w, http.StatusBadRequest, "expires: "+err.Error())
			return
		}
	}
	f, hdr, err := r.FormFile("photo")
	if err != nil {
		writeError(w, http.StatusBadRequest, "the form has no photo file (field photo)")
		return
	}
	defer f.Close()
	photo, err := io.ReadAll(io.LimitReader(f, MaxUpload+1))
	if err != nil || len(photo) > MaxUpload {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the photo could not be read (at most %d MiB)", MaxUpload>>20))
		return
	}
	name := hdr.Filename
	if name == "" || strings.ContainsAny(name, "/\\") || len(name) > 200 {
		name = "upload"
	}
	if _, err := a.opt.Gallery.Watchlist(ctx, list); err != nil {
		a.fail(w, "enrolling", err)
		return
	}
	// The enrolment keeps the photo under the extension its content calls
	// for, whatever the upload's file name says (a format enrolment does
	// not read is refused by it, with its reason).
	ext := ".jpg"
	if http.DetectContentType(photo) == "image/png" {
		ext = ".png"
	}
	label := strings.TrimSuffix(name, pathExt(name)) + ext
	a.mu.Lock()
	defer a.mu.Unlock()
	en, err := a.enrollerLocked(by)
	if err != nil {
		a.log.Error("enrolling", "err", err)
		writeError(w, http.StatusServiceUnavailable, "enrolment is unavailable: "+err.Error())
		return
	}
	res, err := en.EnrolPhoto(ctx, list, who, label, photo, by.Name)
	if err != nil {
		a.refused(w, err)
		return
	}
	looks, err := en.LookAlikes(ctx, []int64{res.IdentityID})
	if err != nil {
		a.fail(w, "finding look-alikes", err)
		return
	}
	if looks == nil {
		looks = []match.LookAlike{}
	}
	msg := fmt.Sprintf("%s enrolled as %q", name, res.Identity)
	if !res.Created {
		msg = fmt.Sprintf("%s was already enrolled as %q", name, res.Identity)
	}
	code := http.StatusCreated
	if !res.Created {
		code = http.StatusOK
	}
	writeJSON(w, code, EnrolResult{Enrolled: &res, Message: msg, LookAlikes: looks})
}

func pathExt(name string) string {
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		return name[i:]
	}
	return ""
}

// refused answers an enrolment error: a refusal is 422 with its reason.
func (a *API) refused(w http.ResponseWriter, err error) {
	var ref *enroll.Refusal
	if errors.As(err, &ref) {
		msg := "refused: " + string(ref.Reason)
		if ref.Detail != "" {
			msg += " (" + ref.Detail + ")"
		}
		writeJSON(w, http.StatusUnprocessableEntity, EnrolResult{Refused: string(ref.Reason), Detail: ref.Detail, Message: msg, LookAlikes: []match.LookAlike{}})
		return
	}
	a.fail(w, "enrolling", err)
}

// evalReport evaluates the gallery's own enrolments: each identity's
// descriptors are one person's (the eval command's labelled set, taken
// from the gallery instead of a directory of photos).
func (a *API) evalReport(ctx context.Context, r *http.Request) (*eval.Report, int, error) {
	opt := eval.EvalOptions{}
	if v := r.URL.Query().Get("target_fpir"); v != "" {
		if _, err := fmt.Sscanf(v, "%g", &opt.TargetFPIR); err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("target_fpir %q is not a number", v)
		}
	}
	g := a.opt.Gallery
	lists, err := g.Watchlists(ctx)
	if err != nil {
		return nil, http.StatusInternalServerError, err
	}
	var set eval.LabelledSet
	for _, l := range lists {
		if q := r.URL.Query().Get("watchlist"); q != "" && q != l.Name {
			continue
		}
		ids, err := g.Identities(ctx, l.Name)
		if err != nil {
			return nil, http.StatusInternalServerError, err
		}
		for _, id := range ids {
			es, err := g.Enrolments(ctx, id.ID)
			if err != nil {
				return nil, http.StatusInternalServerError, err
			}
			li := eval.LabelledIdentity{Name: l.Name + "/" + id.Name}
			for _, e := range es {
				li.Vectors = append(li.Vectors, e.Vector)
				set.Model = e.Model
			}
			if len(li.Vectors) > 0 {
				set.Identities = append(set.Identities, li)
			}
		}
	}
	rep, err := eval.Evaluate(set, opt)
	if errors.Is(err, match.ErrInvalid) {
		return nil, http.StatusUnprocessableEntity, err
	}
	if err != nil {
		return nil, http.StatusInternalServerError, err
	}
	return rep, http.StatusOK, nil
}

// Eval is GET /api/v1/eval: the eval report over the gallery's
// enrolments (query target_fpir, watchlist).
func (a *API) Eval(w http.ResponseWriter, r *http.Request, _ audit.Actor) {
	rep, code, err := a.evalReport(r.Context(), r)
	if err != nil {
		if code == http.StatusInternalServerError {
			a.fail(w, "evaluating", err)
			return
		}
		writeError(w, code, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// EvalPlot is GET /api/v1/eval/plot: the eval command's plot (PNG).
func (a *API) EvalPlot(w http.ResponseWriter, r *http.Request, _ audit.Actor) {
	rep, code, err := a.evalReport(r.Context(), r)
	if err != nil {
		if code == http.StatusInternalServerError {
			a.fail(w, "evaluating", err)
			return
		}
		writeError(w, code, err.Error())
		return
	}
	var b bytes.Buffer
	if err := rep.WritePNG(&b); err != nil {
		a.fail(w, "drawing the plot", err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Write(b.Bytes())
}
