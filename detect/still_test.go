package detect_test

import (
	"context"
	"image"
	"path/filepath"
	"strings"
	"testing"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/testdata"
)

// TestStillRecall measures the still-photo policy against dlib's 43
// hand-labelled boxes (training.xml and testing.xml): its photos are small
// (at most 0.5 megapixels but one), so the policy upsamples them, and it
// must find what HOG finds at one upsampling (43/43, see
// TestDetectionRecall) with no false face; each face says the pass that
// found it.
func TestStillRecall(t *testing.T) {
	set := loadLabelled(t, "training.xml", "testing.xml")
	s, err := detect.NewStill(testdata.ModelDir(t), config.Defaults().Detect, detect.DefaultStillPolicy())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tp, found, labels := 0, 0, 0
	for _, l := range set {
		m, err := detect.DecodeFile(l.path, 1<<24)
		if err != nil {
			t.Fatal(err)
		}
		faces, err := s.Detect(context.Background(), m)
		m.Close()
		if err != nil {
			t.Fatalf("Detect(%s): %v", filepath.Base(l.path), err)
		}
		boxes := make([]image.Rectangle, len(faces))
		for j, f := range faces {
			boxes[j] = f.Box
			if f.Found.Detector == "" || f.Found.Width == 0 || f.Found.Try < 1 {
				t.Errorf("Detect(%s) face %d found = %+v, want the pass named", filepath.Base(l.path), j, f.Found)
			}
		}
		tp += score(l.boxes, boxes)
		found += len(faces)
		labels += len(l.boxes)
	}
	t.Logf("still-photo policy: recall %d/%d, precision %d/%d", tp, labels, tp, found)
	if tp != labels || found != tp {
		t.Errorf("still-photo policy on dlib's labelled faces: %d of %d found, %d detections; want all, no false face", tp, labels, found)
	}
}

// TestStillPasses: the policy's passes on real photos — a photo HOG finds
// a face in at full resolution (pass 1, no upsampling), a small crop
// (upsampled from the start), a photo only the MMOD fallback finds a face
// in (pass 3, downscaled to its pixel budget), and dogs.jpg, in which
// nothing finds a face.
func TestStillPasses(t *testing.T) {
	s, err := detect.NewStill(testdata.ModelDir(t), config.Defaults().Detect, detect.DefaultStillPolicy())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tests := []struct {
		name  string
		path  string
		faces int
		want  detect.Pass // Width 0: the photo's
	}{
		{"full resolution", testdata.Path(t, "go-face-testdata/images/jimin.jpg"), 1, detect.Pass{Detector: "hog", Upsample: 0, Try: 1}},
		{"small crop", testdata.Path(t, "dlib_johns/John_Simm/000288_00470387.jpg"), 1, detect.Pass{Detector: "hog", Upsample: 1, Try: 1}},
		{"fallback", testdata.Path(t, "go-face-testdata/images/jimin3.jpg"), 1, detect.Pass{Detector: "cnn", Upsample: 0, Width: 1254, Height: 836, Try: 3}},
		{"no face", testdata.DlibFace(t, "dogs.jpg"), 0, detect.Pass{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := detect.DecodeFile(tc.path, 1<<26)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			faces, err := s.Detect(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			if len(faces) != tc.faces {
				t.Fatalf("Detect(%s) = %d faces, want %d", tc.name, len(faces), tc.faces)
			}
			want := tc.want
			if want.Width == 0 {
				want.Width, want.Height = m.Cols(), m.Rows()
			}
			for _, f := range faces {
				if f.Found != want {
					t.Errorf("Detect(%s) found = %+v, want %+v", tc.name, f.Found, want)
				}
			}
		})
	}
}

// TestStillPolicyValidate: bad policies are refused when the detector is
// opened, naming the field.
func TestStillPolicyValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*detect.StillPolicy)
		want string
	}{
		{"upsample", func(p *detect.StillPolicy) { p.Upsample = 4 }, "upsample"},
		{"max width", func(p *detect.StillPolicy) { p.MaxWidth = -1 }, "max_width"},
		{"fallback", func(p *detect.StillPolicy) { p.Fallback = "sift" }, "fallback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := detect.DefaultStillPolicy()
			tc.mod(&p)
			err := p.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate(%+v) = %v, want an error naming %s", p, err, tc.want)
			}
		})
	}
	if err := detect.DefaultStillPolicy().Validate(); err != nil {
		t.Errorf("DefaultStillPolicy().Validate() = %v, want nil", err)
	}
}
