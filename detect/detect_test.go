package detect_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/face"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/models"
)

func newDetector(t testing.TB, mod func(*detectCfg)) *detect.Detector {
	t.Helper()
	cfg := config.Defaults().Detect
	cfg.MinFaceSize = 0
	if mod != nil {
		mod(&cfg)
	}
	d, err := detect.New(testdata.ModelDir(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestDetectGroupPhoto: go-face's own test says pristin.jpg has 10 faces.
// Each must come with a chip, landmarks inside (or near) its box and a
// quality in [0, 1]; downscaling for detection must find the same people.
func TestDetectGroupPhoto(t *testing.T) {
	path := testdata.Path(t, filepath.Join("go-face-testdata", "images", "pristin.jpg"))
	m, err := detect.DecodeFile(path, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var full []face.Face
	for _, tc := range []struct {
		name               string
		maxWidth, upsample int
	}{{"full", 0, 0}, {"downscaled and upsampled", 1050, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDetector(t, func(c *config.Detect) { c.MaxWidth, c.Upsample = tc.maxWidth, tc.upsample })
			faces, err := d.Detect(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			if len(faces) != 10 {
				t.Fatalf("Detect(pristin.jpg, max_width %d) = %d faces, want 10", tc.maxWidth, len(faces))
			}
			for i, f := range faces {
				if len(f.Chip.Pix) != face.ChipBytes {
					t.Errorf("face %d chip = %d bytes, want %d", i, len(f.Chip.Pix), face.ChipBytes)
				}
				grown := f.Box.Inset(-f.Box.Dx() / 4)
				for j, p := range f.Landmarks {
					if !p.In(grown) {
						t.Errorf("face %d landmark %d = %v, outside box %v", i, j, p, f.Box)
					}
				}
				q := f.Quality
				for _, v := range []float64{q.Score, q.Size, q.Sharpness, q.Frontalness} {
					if v < 0 || v > 1 {
						t.Errorf("face %d quality %+v has a field outside [0,1]", i, q)
					}
				}
				if i > 0 && faces[i-1].Confidence < f.Confidence {
					t.Errorf("faces not ordered by confidence: %g before %g", faces[i-1].Confidence, f.Confidence)
				}
			}
			if tc.maxWidth == 0 {
				full = faces
				return
			}
			// Boxes found on the downscaled copy are scaled back onto the
			// full frame: each overlaps one found on the full frame.
			for _, f := range faces {
				best := 0.0
				for _, g := range full {
					best = max(best, iou(f.Box, g.Box))
				}
				if best < 0.6 {
					t.Errorf("downscaled box %v overlaps full-frame boxes by IoU %.2f at most, want >= 0.6", f.Box, best)
				}
			}
		})
	}
}

// TestDetectConfig: min_face_size drops small faces; a bad config or a
// model directory without the models is refused with the field or file
// named.
func TestDetectConfig(t *testing.T) {
	m, err := detect.Decode(portraitBytes(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// The portrait's face is about 150 pixels wide.
	for _, tc := range []struct {
		minFace, want int
	}{{100, 1}, {200, 0}} {
		d := newDetector(t, func(c *detectCfg) { c.MaxWidth, c.MinFaceSize = 0, tc.minFace })
		faces, err := d.Detect(context.Background(), m)
		if err != nil || len(faces) != tc.want {
			t.Errorf("Detect(portrait, min_face_size %d) = %d faces, %v; want %d", tc.minFace, len(faces), err, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		dir  models.Dir
		mod  func(*detectCfg)
		want string
	}{
		{"bad detector", testdata.ModelDir(t), func(c *detectCfg) { c.Detector = "sift" }, "detector"},
		{"bad upsample", testdata.ModelDir(t), func(c *detectCfg) { c.Upsample = -1 }, "upsample"},
		{"no models", models.Dir(t.TempDir()), nil, models.ShapePredictor5.Name},
		{"no cnn model", onlyShapePredictor(t), func(c *detectCfg) { c.Detector = "cnn" }, models.MMOD.Name},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Defaults().Detect
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			d, err := detect.New(tc.dir, cfg)
			if err == nil {
				d.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New(%s) = %v, want an error naming %q", tc.name, err, tc.want)
			}
		})
	}
	d := newDetector(t, nil)
	d.Close()
	if _, err := d.Detect(context.Background(), m); !errors.Is(err, detect.ErrClosed) {
		t.Errorf("Detect after Close = %v, want ErrClosed", err)
	}
}

// onlyShapePredictor is a model directory holding just the shape predictor
// (a symbolic link to the real one).
func onlyShapePredictor(t *testing.T) models.Dir {
	src, err := testdata.ModelDir(t).Path(models.ShapePredictor5)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(src, filepath.Join(dir, models.ShapePredictor5.Name)); err != nil {
		t.Fatal(err)
	}
	return models.Dir(dir)
}

type detectCfg = config.Detect

// TestValidateConfig: the registered names are the built-in backends, and
// ValidateConfig refuses any other name (config cannot know them) as well as
// what config's own Validate refuses.
func TestValidateConfig(t *testing.T) {
	if got, want := detect.Backends(), []string{"cnn", "hog"}; !slices.Equal(got, want) {
		t.Errorf("Backends() = %v, want %v", got, want)
	}
	for _, tc := range []struct {
		name string
		mod  func(*detectCfg)
		want string // "" for valid
	}{
		{"defaults", nil, ""},
		{"cnn", func(c *detectCfg) { c.Detector = "cnn" }, ""},
		{"typo", func(c *detectCfg) { c.Detector = "hgo" }, `detector: "hgo" is not one of cnn, hog`},
		{"empty", func(c *detectCfg) { c.Detector = "" }, `detector: "" is not one of cnn, hog`},
		{"bad upsample", func(c *detectCfg) { c.Upsample = 9 }, "upsample: 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Defaults().Detect
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			err := detect.ValidateConfig(cfg)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("ValidateConfig(%s) = %v, want %q", tc.name, err, tc.want)
			}
		})
	}
}
