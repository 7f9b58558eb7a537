// Package detect finds faces in frames and photos with dlib (the HOG frontal
// detector or the MMOD CNN), finds their 5 landmarks, cuts the aligned
// 150×150 chips the descriptor network takes, and scores each face's
// quality. It also decodes JPEG and PNG files for enrolment and tools,
// refusing oversized images before decoding them. It does not compute
// descriptors (package embed), track faces or know about cameras and NATS.
package detect

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"sort"
	"sync"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/dlib"
	"github.com/facewatch/facewatch/internal/face"
	"github.com/facewatch/facewatch/models"
)

// Detector finds faces. Each worker owns one: it is not for concurrent use
// (calls are serialised by a per-detector lock, never shared with others).
// Detectors of one NewPool may share a batching MMOD network, which is
// safe for their concurrent calls.
type Detector struct {
	cfg config.Detect

	mu      sync.Mutex // guards the models below against Close during a call
	backend Backend
	sp      *dlib.ShapePredictor
}

// ErrClosed is returned by calls on a closed Detector.
var ErrClosed = errors.New("detector is closed")

// New loads the models cfg asks for from dir: the shape predictor always, and
// those of the backend cfg.Detector names (see Backends).
func New(dir models.Dir, cfg config.Detect) (*Detector, error) {
	return backends.open(dir, cfg)
}

// open is New with the backends of r.
func (r registry) open(dir models.Dir, cfg config.Detect) (*Detector, error) {
	if err := r.validate(cfg); err != nil {
		return nil, fmt.Errorf("detect config: %w", err)
	}
	return openWith(dir, cfg, r[cfg.Detector])
}

// openWith loads the shape predictor and opens the backend with open; cfg
// has been validated.
func openWith(dir models.Dir, cfg config.Detect, open OpenFunc) (*Detector, error) {
	spPath, err := dir.Path(models.ShapePredictor5)
	if err != nil {
		return nil, err
	}
	d := &Detector{cfg: cfg}
	if d.sp, err = dlib.LoadShapePredictor(spPath); err != nil {
		return nil, err
	}
	if d.backend, err = open(dir, cfg); err != nil {
		d.Close()
		return nil, fmt.Errorf("opening the %s detector: %w", cfg.Detector, err)
	}
	return d, nil
}

// Config returns the configuration the detector runs with.
func (d *Detector) Config() config.Detect { return d.cfg }

// Close frees the models. It is safe to call more than once.
func (d *Detector) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var err error
	if d.backend != nil {
		err = d.backend.Close()
		d.backend = nil
	}
	if d.sp != nil {
		d.sp.Close()
		d.sp = nil
	}
	return err
}

// Detect finds the faces in frame, an 8-bit BGR (8UC3), gray (8UC1) or BGRA
// (8UC4) Mat, ordered by decreasing confidence: at most cfg.MaxFaces, the
// most confident. Frames wider than
// cfg.MaxWidth are searched on a downscaled copy; landmarks and chips always
// come from the full-resolution frame. The frame is read, never modified or
// kept. dlib's work cannot be interrupted: ctx is checked before and after.
func (d *Detector) Detect(ctx context.Context, frame gocv.Mat) ([]face.Face, error) {
	return d.detect(ctx, frame, search{maxWidth: d.cfg.MaxWidth, upsample: d.cfg.Upsample, minFace: d.cfg.MinFaceSize})
}

// search is the settings of one detection pass: the config's for Detect,
// the still-photo policy's for Still.
type search struct {
	maxWidth, upsample, minFace int
	// plan, when set, is the regions to search instead (DetectPlan).
	plan *Plan
}

// detect is Detect with the settings of s.
func (d *Detector) detect(ctx context.Context, frame gocv.Mat, s search) ([]face.Face, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	full, cleanup, err := matImage(frame)
	if err != nil {
		return nil, fmt.Errorf("detecting faces: %w", err)
	}
	defer cleanup()

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sp == nil {
		return nil, ErrClosed
	}
	rects, err := d.find(ctx, frame, s)
	if err != nil {
		return nil, fmt.Errorf("detecting faces: %w", err)
	}
	if len(rects) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	shapes, chips, err := d.sp.Align(full, rects, face.ChipSize, face.ChipPadding)
	if err != nil {
		return nil, fmt.Errorf("aligning faces: %w", err)
	}
	faces := make([]face.Face, len(rects))
	for i, r := range rects {
		f := &faces[i]
		f.Box = image.Rect(r.Left, r.Top, r.Right+1, r.Bottom+1)
		f.Confidence = r.Score
		for j, p := range shapes[i] {
			f.Landmarks[j] = image.Pt(p.X, p.Y)
		}
		f.Chip = face.Chip{Pix: chips[i*face.ChipBytes : (i+1)*face.ChipBytes : (i+1)*face.ChipBytes]}
		f.Quality = Assess(f.Box, f.Landmarks, f.Chip)
	}
	return faces, nil
}

// find runs the backend, on a downscaled copy when the frame is wider than
// s.maxWidth, and returns boxes in full-resolution pixels that pass
// s.minFace, by decreasing score.
func (d *Detector) find(ctx context.Context, frame gocv.Mat, s search) ([]dlib.Rect, error) {
	img := frame
	scale := 1.0
	if s.plan == nil && s.maxWidth > 0 && frame.Cols() > s.maxWidth {
		scale = float64(s.maxWidth) / float64(frame.Cols())
		h := max(1, int(math.Round(float64(frame.Rows())*scale)))
		small := gocv.NewMat()
		defer small.Close()
		gocv.Resize(frame, &small, image.Pt(s.maxWidth, h), 0, 0, gocv.InterpolationArea)
		img = small
		scale = float64(small.Cols()) / float64(frame.Cols())
	}
	var found []Candidate
	var err error
	if s.plan != nil {
		found, err = d.findPlan(ctx, frame, s.plan)
	} else {
		found, err = d.backend.Detect(ctx, img, Options{Upsample: s.upsample})
	}
	if err != nil {
		return nil, err
	}
	out := make([]dlib.Rect, 0, len(found))
	for _, c := range found {
		b := c.Box
		if scale != 1 {
			b.Min.X = int(math.Round(float64(b.Min.X) / scale))
			b.Min.Y = int(math.Round(float64(b.Min.Y) / scale))
			b.Max.X = int(math.Round(float64(b.Max.X) / scale))
			b.Max.Y = int(math.Round(float64(b.Max.Y) / scale))
		}
		if b.Dx() < s.minFace || s.plan != nil && s.plan.Faces.Max > 0 && b.Dx() > s.plan.Faces.Max {
			continue
		}
		out = append(out, dlib.Rect{Left: b.Min.X, Top: b.Min.Y, Right: b.Max.X - 1, Bottom: b.Max.Y - 1, Score: c.Confidence})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Score > out[j].Score })
	// A crowd or a poster wall costs at most MaxFaces alignments.
	if d.cfg.MaxFaces > 0 && len(out) > d.cfg.MaxFaces {
		out = out[:d.cfg.MaxFaces]
	}
	return out, nil
}

// DetectImage is Detect for a Go image; its pixels are converted to BGR once.
// Images of more than cfg.MaxPixels pixels are refused with ErrTooLarge.
func (d *Detector) DetectImage(ctx context.Context, img image.Image) ([]face.Face, error) {
	m, err := MatFromImage(img, d.cfg.MaxPixels)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	return d.Detect(ctx, m)
}

// matImage views a Mat's pixels for dlib without copying (a non-continuous
// Mat, such as a region of interest, is cloned first).
func matImage(m gocv.Mat) (dlib.Image, func(), error) {
	if m.Empty() {
		return dlib.Image{}, nil, errors.New("frame is empty")
	}
	var ch int
	switch m.Type() {
	case gocv.MatTypeCV8UC1:
		ch = 1
	case gocv.MatTypeCV8UC3:
		ch = 3
	case gocv.MatTypeCV8UC4:
		ch = 4
	default:
		return dlib.Image{}, nil, fmt.Errorf("frame type %v not supported (want 8-bit with 1, 3 or 4 channels)", m.Type())
	}
	cleanup := func() {}
	if !m.IsContinuous() {
		c := m.Clone()
		m = c
		cleanup = func() { c.Close() }
	}
	pix, err := m.DataPtrUint8()
	if err != nil {
		cleanup()
		return dlib.Image{}, nil, err
	}
	return dlib.Image{Pix: pix, Rows: m.Rows(), Cols: m.Cols(), Stride: m.Cols() * ch, Channels: ch}, cleanup, nil
}
