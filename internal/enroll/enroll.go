// Package enroll turns photos into gallery enrolments: it decodes a photo,
// finds its faces with detect, computes descriptors with embed, refuses
// photos without exactly one usable face and warns about look-alikes
// before writing to match's gallery. It is the bridge between the face
// stages and the gallery; the matcher itself (package match) must not
// import it, and it does not run in the live pipeline.
package enroll

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/embed"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/face"
	"github.com/facewatch/facewatch/match"
)

// FaceDetector is what enrolment and identification need from
// detect.Still: every photo command searches photos with the one
// still-photo policy.
type FaceDetector interface {
	Detect(ctx context.Context, photo gocv.Mat) ([]detect.StillFace, error)
}

// FaceEmbedder is what enrolment and identification need from
// embed.Embedder.
type FaceEmbedder interface {
	Embed(ctx context.Context, chips []face.Chip) ([]embed.Descriptor, error)
	Model() embed.ModelID
}

// RefusalReason says why a photo was not enrolled.
type RefusalReason string

// The reasons a photo is refused.
const (
	RefuseUnreadable   RefusalReason = "unreadable photo"
	RefuseUnsupported  RefusalReason = "unsupported format"
	RefuseNoFace       RefusalReason = "no face"
	RefuseSeveralFaces RefusalReason = "several faces"
	RefuseTooSmall     RefusalReason = "face too small"
	RefuseTooBlurry    RefusalReason = "face too blurry"
	RefuseNotFrontal   RefusalReason = "face too far from frontal"
	RefuseDuplicate    RefusalReason = "photo already enrolled as someone else"
	RefuseWrongModel   RefusalReason = "descriptor model differs from the gallery's"
)

// Refusal is the error for a photo that cannot be enrolled: it names the
// photo and the reason. Match it with errors.As.
type Refusal struct {
	Photo  string
	Reason RefusalReason
	Detail string
}

func (r *Refusal) Error() string {
	if r.Detail == "" {
		return fmt.Sprintf("photo %s refused: %s", r.Photo, r.Reason)
	}
	return fmt.Sprintf("photo %s refused: %s (%s)", r.Photo, r.Reason, r.Detail)
}

// Unreadable is Faces' error for an image that does not decode: it names
// the image and says why, in words fit for a probe as for an enrolment
// photo (Check turns it into a Refusal). Match it with errors.As.
type Unreadable struct {
	Image string
	Err   error
}

func (u *Unreadable) Error() string { return fmt.Sprintf("%s unreadable: %v", u.Image, u.Err) }

func (u *Unreadable) Unwrap() error { return u.Err }

// PhotoFace is one face found in a photo with its descriptor.
type PhotoFace struct {
	Face       face.Face
	Descriptor embed.Descriptor
	// Found is the detector pass that found the face.
	Found detect.Pass
}

// Probe returns the face as a probe for Index.Search and DecideTrack.
func (f *PhotoFace) Probe() match.Probe {
	return match.Probe{Vector: f.Descriptor.Vector, Model: match.ModelID(f.Descriptor.Model), Quality: f.Face.Quality.Score}
}

// Enroller turns photos into enrolments, refusing photos that do not show
// exactly one usable face, and warns about look-alikes. It is not for
// concurrent use (the detector and embedder are not).
type Enroller struct {
	g         *match.Gallery
	det       FaceDetector
	emb       FaceEmbedder
	cfg       config.Match
	maxPixels int64
	log       *slog.Logger
	idx       *match.Index
}

// EnrollerOptions wire an Enroller.
type EnrollerOptions struct {
	// Match gives the enrolment quality limits and thresholds.
	Match config.Match
	// MaxPixels refuses larger photos before decoding (config.Detect).
	MaxPixels int64
	Logger    *slog.Logger
}

// NewEnroller returns an enroller writing to g.
func NewEnroller(g *match.Gallery, det FaceDetector, emb FaceEmbedder, opt EnrollerOptions) *Enroller {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Enroller{g: g, det: det, emb: emb, cfg: opt.Match, maxPixels: opt.MaxPixels, log: log.With("component", "enrol"),
		idx: match.NewIndex(opt.Match, match.IndexOptions{Gallery: g})}
}

// As returns an enroller sharing e's detector, embedder and look-alike
// index that writes through g (e's gallery's As): its changes are audited
// as g's actor. Like e, it is not for concurrent use, nor alongside e.
func (e *Enroller) As(g *match.Gallery) *Enroller {
	c := *e
	c.g = g
	return &c
}

// LookAlikes lists the look-alike pairs involving the identities ids
// (every identity when ids is empty), after catching up with the gallery.
func (e *Enroller) LookAlikes(ctx context.Context, ids []int64) ([]match.LookAlike, error) {
	if err := e.idx.CatchUp(ctx); err != nil {
		return nil, err
	}
	return e.idx.LookAlikes(ids), nil
}

// Faces decodes a photo and returns every face in it with its descriptor,
// for identification and evaluation. name labels errors.
func Faces(ctx context.Context, det FaceDetector, emb FaceEmbedder, name string, photo []byte, maxPixels int64) ([]PhotoFace, error) {
	m, err := detect.Decode(photo, maxPixels)
	if err != nil {
		return nil, &Unreadable{Image: name, Err: err}
	}
	defer m.Close()
	faces, err := det.Detect(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("finding faces in %s: %w", name, err)
	}
	if len(faces) == 0 {
		return nil, nil
	}
	chips := make([]face.Chip, len(faces))
	for i := range faces {
		chips[i] = faces[i].Chip
	}
	m.Close() // the photo's pixels are no longer needed
	descs, err := emb.Embed(ctx, chips)
	if err != nil {
		return nil, fmt.Errorf("computing descriptors for %s: %w", name, err)
	}
	if len(descs) != len(faces) {
		return nil, fmt.Errorf("computing descriptors for %s: got %d for %d faces", name, len(descs), len(faces))
	}
	out := make([]PhotoFace, len(faces))
	for i := range faces {
		out[i] = PhotoFace{Face: faces[i].Face, Descriptor: descs[i], Found: faces[i].Found}
	}
	return out, nil
}

// Check finds the one usable face in an enrolment photo or returns a
// *Refusal naming the photo and the reason.
func (e *Enroller) Check(ctx context.Context, name string, photo []byte) (PhotoFace, error) {
	faces, err := Faces(ctx, e.det, e.emb, name, photo, e.maxPixels)
	var bad *Unreadable
	if errors.As(err, &bad) && errors.Is(bad.Err, detect.ErrUnsupported) {
		return PhotoFace{}, &Refusal{Photo: name, Reason: RefuseUnsupported, Detail: bad.Err.Error()}
	}
	if errors.As(err, &bad) {
		return PhotoFace{}, &Refusal{Photo: name, Reason: RefuseUnreadable, Detail: bad.Err.Error()}
	}
	if err != nil {
		return PhotoFace{}, err
	}
	switch {
	case len(faces) == 0:
		return PhotoFace{}, &Refusal{Photo: name, Reason: RefuseNoFace}
	case len(faces) > 1:
		return PhotoFace{}, &Refusal{Photo: name, Reason: RefuseSeveralFaces, Detail: fmt.Sprintf("%d faces; enrol from a photo of the one person", len(faces))}
	}
	f := faces[0]
	q := f.Face.Quality
	if side := min(f.Face.Box.Dx(), f.Face.Box.Dy()); side < e.cfg.EnrolMinFaceSize {
		return PhotoFace{}, &Refusal{Photo: name, Reason: RefuseTooSmall, Detail: fmt.Sprintf("%d pixels, at least %d needed", side, e.cfg.EnrolMinFaceSize)}
	}
	if q.Sharpness < e.cfg.EnrolMinSharpness {
		return PhotoFace{}, &Refusal{Photo: name, Reason: RefuseTooBlurry, Detail: fmt.Sprintf("sharpness %.2f, at least %.2f needed", q.Sharpness, e.cfg.EnrolMinSharpness)}
	}
	if q.Frontalness < e.cfg.EnrolMinFrontalness {
		return PhotoFace{}, &Refusal{Photo: name, Reason: RefuseNotFrontal, Detail: fmt.Sprintf("frontalness %.2f, at least %.2f needed", q.Frontalness, e.cfg.EnrolMinFrontalness)}
	}
	return f, nil
}

// Enrolled is the outcome of enrolling one photo.
type Enrolled struct {
	Photo       string  `json:"photo"`
	IdentityID  int64   `json:"identity_id"`
	Identity    string  `json:"identity"`
	EnrolmentID int64   `json:"enrolment_id"`
	Created     bool    `json:"created"`
	Quality     float64 `json:"quality"`
	// Found is the detector pass that found the face.
	Found detect.Pass `json:"found"`
	// Warning is set when the photo is closer to another identity than
	// to its own enrolments (or, for a first photo, within another
	// identity's threshold).
	Warning string `json:"warning,omitempty"`
}

// EnrolPhoto enrols one photo (file name or label name, bytes photo) as the
// named identity of list, creating the identity if needed. A photo without
// exactly one usable face is a *Refusal; the same photo again is
// idempotent.
func (e *Enroller) EnrolPhoto(ctx context.Context, list string, who match.IdentitySpec, name string, photo []byte, by string) (Enrolled, error) {
	if _, err := e.g.Watchlist(ctx, list); err != nil {
		return Enrolled{}, fmt.Errorf("enrolling %s: %w", name, err)
	}
	f, err := e.Check(ctx, name, photo)
	if err != nil {
		return Enrolled{}, err
	}
	id, _, err := e.g.EnsureIdentity(ctx, list, who)
	if err != nil {
		return Enrolled{}, fmt.Errorf("enrolling %s: %w", name, err)
	}
	var chip bytes.Buffer
	if err := png.Encode(&chip, chipImage(f.Face.Chip)); err != nil {
		return Enrolled{}, fmt.Errorf("enrolling %s: encoding chip: %w", name, err)
	}
	warning, err := e.warning(ctx, id, f.Descriptor.Vector)
	if err != nil {
		return Enrolled{}, fmt.Errorf("enrolling %s: %w", name, err)
	}
	en, created, err := e.g.AddEnrolment(ctx, match.NewEnrolment{
		IdentityID: id.ID, Photo: photo, PhotoExt: filepath.Ext(name), ChipPNG: chip.Bytes(),
		Vector: f.Descriptor.Vector, Model: match.ModelID(f.Descriptor.Model), Quality: f.Face.Quality.Score, EnrolledBy: by,
	})
	if err != nil {
		switch {
		case errors.Is(err, match.ErrExists):
			return Enrolled{}, &Refusal{Photo: name, Reason: RefuseDuplicate, Detail: err.Error()}
		case errors.Is(err, match.ErrModelMismatch):
			return Enrolled{}, &Refusal{Photo: name, Reason: RefuseWrongModel, Detail: err.Error()}
		}
		return Enrolled{}, fmt.Errorf("enrolling %s: %w", name, err)
	}
	if !created {
		warning = ""
	}
	return Enrolled{Photo: name, IdentityID: id.ID, Identity: id.Name, EnrolmentID: en.ID, Created: created,
		Quality: f.Face.Quality.Score, Found: f.Found, Warning: warning}, nil
}

// warning compares a new descriptor with the gallery: closer to another
// identity than to the identity's own enrolments, or (first photo) within
// another identity's threshold.
func (e *Enroller) warning(ctx context.Context, id match.Identity, v match.Vector) (string, error) {
	if err := e.idx.CatchUp(ctx); err != nil {
		return "", err
	}
	own, other, ok := e.idx.NearestOwnAndOther(id.ID, &v)
	if !ok {
		return "", nil
	}
	switch {
	case own.IdentityID != 0 && other.Distance < own.Distance:
		return fmt.Sprintf("closer to %q on %q (%.3f) than to %q's own photos (%.3f)", other.Identity, other.Watchlist, other.Distance, id.Name, own.Distance), nil
	case own.IdentityID == 0 && other.Distance <= other.Threshold:
		return fmt.Sprintf("looks like %q on %q (%.3f, threshold %.3f)", other.Identity, other.Watchlist, other.Distance, other.Threshold), nil
	}
	return "", nil
}

// DirReport summarises enrolling a directory.
type DirReport struct {
	Enrolled   []Enrolled        `json:"enrolled"`
	Refused    []*Refusal        `json:"-"`
	Identities int               `json:"identities"`
	LookAlikes []match.LookAlike `json:"look_alikes,omitempty"`
}

// Progress reports enrolment progress: done of total photos.
type Progress func(done, total int, photo string)

// photoExts are the files EnrolDir and LabelledDir read.
var photoExts = map[string]bool{".jpg": true, ".jpeg": true, ".png": true}

// IdentityPhotos lists dir's subdirectories (one per identity, named
// after it) and their photo files, sorted.
func IdentityPhotos(dir string) (names []string, photos map[string][]string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	photos = map[string][]string{}
	for _, ent := range entries {
		if !ent.IsDir() || strings.HasPrefix(ent.Name(), ".") {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, ent.Name()))
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, ent.Name()), err)
		}
		for _, f := range files {
			if !f.IsDir() && photoExts[strings.ToLower(filepath.Ext(f.Name()))] {
				photos[ent.Name()] = append(photos[ent.Name()], filepath.Join(dir, ent.Name(), f.Name()))
			}
		}
		if len(photos[ent.Name()]) > 0 {
			names = append(names, ent.Name())
		}
	}
	if len(names) == 0 {
		return nil, nil, fmt.Errorf("%s: %w: no identity directories with .jpg or .png photos", dir, match.ErrEmpty)
	}
	return names, photos, nil
}

// EnrolDir enrols a directory holding one directory per identity (named
// after the identity) of photos. Refused photos are collected, not fatal;
// any other error stops the run. The report lists look-alike pairs
// involving the identities enrolled.
func (e *Enroller) EnrolDir(ctx context.Context, list, dir, by string, progress Progress) (DirReport, error) {
	if _, err := e.g.Watchlist(ctx, list); err != nil {
		return DirReport{}, fmt.Errorf("enrolling %s: %w", dir, err)
	}
	names, photos, err := IdentityPhotos(dir)
	if err != nil {
		return DirReport{}, fmt.Errorf("enrolling: %w", err)
	}
	var items []enrolItem
	for _, who := range names {
		for _, p := range photos[who] {
			items = append(items, enrolItem{who: match.IdentitySpec{Name: who}, path: p, label: filepath.Join(who, filepath.Base(p))})
		}
	}
	return e.enrolAll(ctx, list, items, by, progress)
}

// EnrolFiles enrols photo files of one identity (created from who when it
// is new), with EnrolDir's report.
func (e *Enroller) EnrolFiles(ctx context.Context, list string, who match.IdentitySpec, paths []string, by string, progress Progress) (DirReport, error) {
	if _, err := e.g.Watchlist(ctx, list); err != nil {
		return DirReport{}, fmt.Errorf("enrolling: %w", err)
	}
	items := make([]enrolItem, len(paths))
	for i, p := range paths {
		items[i] = enrolItem{who: who, path: p, label: p}
	}
	return e.enrolAll(ctx, list, items, by, progress)
}

type enrolItem struct {
	who         match.IdentitySpec
	path, label string
}

func (e *Enroller) enrolAll(ctx context.Context, list string, items []enrolItem, by string, progress Progress) (DirReport, error) {
	var rep DirReport
	touched := map[int64]bool{}
	for done, it := range items {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		data, err := os.ReadFile(it.path)
		if err != nil {
			return rep, fmt.Errorf("enrolling: %w", err)
		}
		res, err := e.EnrolPhoto(ctx, list, it.who, it.label, data, by)
		var ref *Refusal
		switch {
		case errors.As(err, &ref):
			rep.Refused = append(rep.Refused, ref)
			// The report lists each refusal once; the log has it only at
			// debug level, so that a terminal does not show it twice.
			e.log.Debug("photo refused", "photo", it.label, "reason", string(ref.Reason), "detail", ref.Detail)
		case err != nil:
			return rep, err
		default:
			rep.Enrolled = append(rep.Enrolled, res)
			touched[res.IdentityID] = true
		}
		if progress != nil {
			progress(done+1, len(items), it.label)
		}
	}
	rep.Identities = len(touched)
	if err := e.idx.CatchUp(ctx); err != nil {
		return rep, err
	}
	ids := make([]int64, 0, len(touched))
	for id := range touched {
		ids = append(ids, id)
	}
	if len(ids) > 0 {
		rep.LookAlikes = e.idx.LookAlikes(ids)
	}
	return rep, nil
}

// chipImage wraps a chip's RGB pixels as an image for PNG encoding.
func chipImage(c face.Chip) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, face.ChipSize, face.ChipSize))
	for i := 0; i < face.ChipSize*face.ChipSize && 3*i+2 < len(c.Pix); i++ {
		img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = c.Pix[3*i], c.Pix[3*i+1], c.Pix[3*i+2], 0xff
	}
	return img
}
