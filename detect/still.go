package detect

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/dlib"
	"github.com/facewatch/facewatch/internal/face"
	"github.com/facewatch/facewatch/models"
)

// StillPolicy is how still photos are searched for faces, the one policy of
// `facewatch faces`, `enroll`, `identify` and `eval` (the camera path uses
// the config's detect section instead). A photo is not a camera frame: it is
// searched at full resolution, small photos are upsampled, and a photo in
// which the first detector finds nothing gets a second, costlier look. Every
// pass's cost is bounded by the pixels it may search; see
// docs/recognition.md.
type StillPolicy struct {
	// MaxWidth searches a copy downscaled to this width; 0 keeps the
	// photo's full resolution (the default).
	MaxWidth int
	// Upsample is how many times the first pass doubles the photo.
	Upsample int
	// MinFaceSize drops faces narrower than this many pixels.
	MinFaceSize int
	// SmallPixels: photos of at most this many pixels are searched with one
	// more upsampling from the first pass (their faces are small; the pass
	// searches at most 4×SmallPixels).
	SmallPixels int64
	// RetryPixels: when the first pass finds nothing in a photo of at most
	// this many pixels that it did not upsample, the same detector searches
	// again with one more upsampling (at most 4×RetryPixels searched).
	RetryPixels int64
	// Fallback names the backend that searches a photo in which the passes
	// before found nothing ("" for none). It is not used when it is the
	// first detector.
	Fallback string
	// FallbackPixels bounds the fallback's search: a larger photo is
	// searched on a copy downscaled to this many pixels, and a photo of at
	// most a quarter of it is upsampled once. (dlib's MMOD on the CPU needs
	// about 1 GiB and 10 s a megapixel on a 2-core machine.)
	FallbackPixels int64
}

// DefaultStillPolicy returns the still-photo policy's defaults.
func DefaultStillPolicy() StillPolicy {
	return StillPolicy{
		MaxWidth:       0,
		Upsample:       0,
		MinFaceSize:    20,
		SmallPixels:    500_000,
		RetryPixels:    4 << 20,
		Fallback:       "cnn",
		FallbackPixels: 1 << 20,
	}
}

// Validate checks the policy's values.
func (p StillPolicy) Validate() error {
	switch {
	case p.MaxWidth < 0:
		return fmt.Errorf("max_width: %d is negative", p.MaxWidth)
	case p.Upsample < 0 || p.Upsample > 3:
		return fmt.Errorf("upsample: %d is not between 0 and 3", p.Upsample)
	case p.MinFaceSize < 0:
		return fmt.Errorf("min_face_size: %d is negative", p.MinFaceSize)
	case p.SmallPixels < 0 || p.RetryPixels < 0 || p.FallbackPixels < 0:
		return errors.New("pixel bounds must not be negative")
	}
	if _, ok := backends[p.Fallback]; p.Fallback != "" && !ok {
		return fmt.Errorf("fallback: %q is not a detector", p.Fallback)
	}
	return nil
}

// Pass says which detector, at which settings, found a face in a still
// photo. Commands print it with each face.
type Pass struct {
	// Detector is the backend's registered name ("hog", "cnn").
	Detector string `json:"detector"`
	// Upsample is how many times the searched image was doubled.
	Upsample int `json:"upsample"`
	// Width and Height are the searched image's size before upsampling:
	// the photo's, or its downscaled copy's.
	Width  int `json:"width"`
	Height int `json:"height"`
	// Try is the pass's place in the policy: 1 the first pass, 2 the
	// upsampled retry, 3 the fallback detector.
	Try int `json:"try"`
}

// String names the pass by detector and upsampling ("hog upsample 0"),
// the key of the commands' per-pass counts.
func (p Pass) String() string { return fmt.Sprintf("%s upsample %d", p.Detector, p.Upsample) }

// StillFace is a face of a still photo and the pass that found it.
type StillFace struct {
	face.Face
	Found Pass
}

// Still finds faces in still photos with a StillPolicy. It is not for
// concurrent use. The fallback detector's models are loaded the first time
// a photo needs them.
type Still struct {
	dir    models.Dir
	cfg    config.Detect
	policy StillPolicy

	mu       sync.Mutex // guards the detectors against Close during a call
	first    *Detector
	fallback *Detector
}

// NewStill opens the still-photo detector: cfg.Detector (with
// cfg.MaxPixels and the model directory dir) is the first detector, and p
// says how photos are searched.
func NewStill(dir models.Dir, cfg config.Detect, p StillPolicy) (*Still, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("still-photo policy: %w", err)
	}
	if p.Fallback == cfg.Detector {
		p.Fallback = ""
	}
	first, err := New(dir, cfg)
	if err != nil {
		return nil, err
	}
	return &Still{dir: dir, cfg: cfg, policy: p, first: first}, nil
}

// Policy returns the policy the detector runs with.
func (s *Still) Policy() StillPolicy { return s.policy }

// Close frees the models. It is safe to call more than once.
func (s *Still) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if s.first != nil {
		errs = append(errs, s.first.Close())
		s.first = nil
	}
	if s.fallback != nil {
		errs = append(errs, s.fallback.Close())
		s.fallback = nil
	}
	return errors.Join(errs...)
}

// Detect finds the faces in a photo (a Mat as Detector.Detect takes),
// ordered by decreasing confidence, each with the pass that found it. The
// passes, each only when the ones before found nothing:
//
//  1. the first detector at the policy's upsampling, one more for a photo
//     of at most SmallPixels;
//  2. the same detector upsampled once more, for a photo of at most
//     RetryPixels that pass 1 did not upsample;
//  3. the Fallback detector, on at most FallbackPixels.
func (s *Still) Detect(ctx context.Context, photo gocv.Mat) ([]StillFace, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first == nil {
		return nil, ErrClosed
	}
	// A photo's search leaves free C memory (pyramids, feature planes)
	// that the next photo, of another size, cannot reuse well: return it.
	defer dlib.Trim()
	p := s.policy
	w, h := photo.Cols(), photo.Rows()
	sw, sh := w, h
	if p.MaxWidth > 0 && w > p.MaxWidth {
		sw, sh = p.MaxWidth, max(1, int(math.Round(float64(h)*float64(p.MaxWidth)/float64(w))))
	}
	px := int64(sw) * int64(sh)
	up := p.Upsample
	if px <= p.SmallPixels && up < 3 {
		up++
	}
	faces, err := s.first.detect(ctx, photo, search{maxWidth: p.MaxWidth, upsample: up, minFace: p.MinFaceSize})
	if err != nil || len(faces) > 0 {
		return found(faces, Pass{Detector: s.cfg.Detector, Upsample: up, Width: sw, Height: sh, Try: 1}), err
	}
	if up == p.Upsample && up < 3 && px <= p.RetryPixels {
		faces, err := s.first.detect(ctx, photo, search{maxWidth: p.MaxWidth, upsample: up + 1, minFace: p.MinFaceSize})
		if err != nil || len(faces) > 0 {
			return found(faces, Pass{Detector: s.cfg.Detector, Upsample: up + 1, Width: sw, Height: sh, Try: 2}), err
		}
	}
	if p.Fallback == "" {
		return nil, nil
	}
	if s.fallback == nil {
		cfg := s.cfg
		cfg.Detector = p.Fallback
		d, err := New(s.dir, cfg)
		if err != nil {
			return nil, fmt.Errorf("opening the fallback detector: %w", err)
		}
		s.fallback = d
	}
	fw, fh, fup := fallbackSize(sw, sh, p.FallbackPixels)
	maxWidth := 0
	if fw < w {
		maxWidth = fw
	}
	faces, err = s.fallback.detect(ctx, photo, search{maxWidth: maxWidth, upsample: fup, minFace: p.MinFaceSize})
	return found(faces, Pass{Detector: p.Fallback, Upsample: fup, Width: fw, Height: fh, Try: 3}), err
}

// fallbackSize is the size the fallback searches a w×h image at, and its
// upsampling, so that it searches at most budget pixels.
func fallbackSize(w, h int, budget int64) (int, int, int) {
	px := int64(w) * int64(h)
	if budget <= 0 {
		return w, h, 0
	}
	if px > budget {
		f := math.Sqrt(float64(budget) / float64(px))
		fw := max(1, int(float64(w)*f))
		return fw, max(1, int(math.Round(float64(h)*float64(fw)/float64(w)))), 0
	}
	if 4*px <= budget {
		return w, h, 1
	}
	return w, h, 0
}

func found(faces []face.Face, p Pass) []StillFace {
	if len(faces) == 0 {
		return nil
	}
	out := make([]StillFace, len(faces))
	for i := range faces {
		out[i] = StillFace{Face: faces[i], Found: p}
	}
	return out
}
