package detect

import (
	"context"
	"fmt"
	"image"
	"slices"
	"strings"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/models"
)

// Backend is one way of finding face boxes in an image (dlib's HOG detector,
// the MMOD CNN, ...). The Detector around it does everything else the same
// for every backend: downscaling to max_width, dropping faces under
// min_face_size, ordering by confidence, landmarks, chips and quality.
// A Backend is used by one goroutine at a time.
type Backend interface {
	// Detect returns the faces in img, an 8-bit gray, BGR or BGRA Mat,
	// in img's pixels and in any order. It must not modify or keep img.
	Detect(ctx context.Context, img gocv.Mat, opt Options) ([]Candidate, error)
	// Close frees the backend's models.
	Close() error
}

// Options are the per-call settings a Backend gets from the detect config.
type Options struct {
	// Upsample is how many times the image is doubled before searching, to
	// find smaller faces; a backend that cannot upsample ignores it.
	Upsample int
	// MaxFace is the largest face side wanted, in pixels of the searched
	// image after upsampling (0: any): a backend may skip the work only
	// larger faces need (HOG: its pyramid's coarser levels), and may still
	// return larger faces.
	MaxFace int
}

// Candidate is one face a Backend found.
type Candidate struct {
	// Box is the face's box in the searched image's pixels (Max exclusive);
	// it may extend past the image's edges.
	Box image.Rectangle
	// Confidence is the backend's score; 0 is its default threshold and
	// higher is more certain.
	Confidence float64
}

// OpenFunc opens a backend with its models from dir. cfg has been validated.
type OpenFunc func(dir models.Dir, cfg config.Detect) (Backend, error)

// registry maps the names config's detect.detector takes to the backends.
type registry map[string]OpenFunc

// backends is the registration table, the one place a detector name is
// turned into a backend. Adding a backend is a new file with its OpenFunc
// and one line here (see docs/recognition.md).
var backends = registry{
	"hog": openHOG,  // hog.go: dlib's HOG frontal detector, CPU.
	"cnn": openMMOD, // mmod.go: dlib's MMOD CNN.
}

// Backends returns the registered detector names, sorted.
func Backends() []string { return backends.names() }

// ValidateConfig checks the detect section, the detector's name against the
// registered backends included (package config cannot know them). Errors
// start with the field name, as config's do.
func ValidateConfig(cfg config.Detect) error { return backends.validate(cfg) }

func (r registry) names() []string {
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (r registry) validate(cfg config.Detect) error {
	if _, ok := r[cfg.Detector]; !ok {
		return fmt.Errorf("detector: %q is not one of %s", cfg.Detector, strings.Join(r.names(), ", "))
	}
	return cfg.Validate()
}
