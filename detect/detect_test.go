package detect_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/testdata"
)

func newDetector(t testing.TB, mod func(*config.Detect)) *detect.Detector {
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
				if len(f.Chip.Pix) != detect.ChipBytes {
					t.Errorf("face %d chip = %d bytes, want %d", i, len(f.Chip.Pix), detect.ChipBytes)
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
		})
	}
}
