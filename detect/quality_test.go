package detect_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"testing"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/internal/face"
)

// TestQuality: a blurred copy of a face scores lower on sharpness, a copy
// with the face under 100 pixels lower on size, and landmarks of a turned head lower on
// frontalness; the overall score follows.
func TestQuality(t *testing.T) {
	d := newDetector(t, func(c *detectCfg) { c.MaxWidth = 0 })
	orig, err := detect.Decode(portraitBytes(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	blurred := gocv.NewMat()
	defer blurred.Close()
	gocv.GaussianBlur(orig, &blurred, image.Pt(0, 0), 3, 3, gocv.BorderReflect101)
	small := gocv.NewMat()
	defer small.Close()
	gocv.Resize(orig, &small, image.Pt(orig.Cols()*2/5, orig.Rows()*2/5), 0, 0, gocv.InterpolationArea)

	// The small copy's face (about 60 pixels) needs one upsampling.
	up := newDetector(t, func(c *detectCfg) { c.MaxWidth, c.Upsample = 0, 1 })
	one := func(name string, m gocv.Mat) face.Face {
		t.Helper()
		dd := d
		if name == "small" {
			dd = up
		}
		fs, err := dd.Detect(context.Background(), m)
		if err != nil || len(fs) != 1 {
			t.Fatalf("Detect(%s) = %d faces, %v; want 1", name, len(fs), err)
		}
		return fs[0]
	}
	o, b, s := one("original", orig), one("blurred", blurred), one("small", small)
	t.Logf("quality original %+v, blurred %+v, small %+v", o.Quality, b.Quality, s.Quality)
	if b.Quality.Sharpness >= o.Quality.Sharpness || b.Quality.Score >= o.Quality.Score {
		t.Errorf("blurred quality %+v, want sharpness and score below the original's %+v", b.Quality, o.Quality)
	}
	if s.Quality.Size >= o.Quality.Size {
		t.Errorf("small quality %+v, want size below the original's %+v", s.Quality, o.Quality)
	}

	// Landmarks: eyes at x 40-60 and 90-110; the nose midway, then under
	// one eye (a head turned towards profile).
	frontal := [5]image.Point{{110, 50}, {90, 50}, {40, 50}, {60, 50}, {75, 80}}
	turned := frontal
	turned[4] = image.Pt(98, 80)
	box := image.Rect(20, 20, 130, 130)
	qf := detect.Assess(box, frontal, o.Chip)
	qt := detect.Assess(box, turned, o.Chip)
	if qf.Frontalness < 0.95 || qt.Frontalness >= qf.Frontalness/2 {
		t.Errorf("frontalness frontal %g, turned %g; want ~1 and well below", qf.Frontalness, qt.Frontalness)
	}
	if q := detect.Assess(box, frontal, face.Chip{}); q.Sharpness != 0 || q.Score != 0 {
		t.Errorf("Assess(no chip) = %+v, want sharpness and score 0", q)
	}
}

// FuzzDecode: whatever the bytes, Decode returns an image or an error, and
// never crashes the process (OpenCV's decoders run under it). The seeds are
// the bad-input table's kinds.
func FuzzDecode(f *testing.F) {
	portrait := portraitBytes(f)
	var pngBuf bytes.Buffer
	if err := png.Encode(&pngBuf, image.NewGray(image.Rect(0, 0, 16, 16))); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{})
	f.Add([]byte("GIF89a"))
	f.Add(portrait[:300])
	f.Add(portrait[:len(portrait)/3])
	f.Add(pngBuf.Bytes())
	f.Add(pngBuf.Bytes()[:40])
	f.Add(hugePNG(f, 20000, 20000))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := detect.Decode(data, 4<<20)
		if err != nil {
			if !errors.Is(err, detect.ErrCorrupt) && !errors.Is(err, detect.ErrTooLarge) {
				t.Fatalf("Decode = %v, want ErrCorrupt or ErrTooLarge", err)
			}
			return
		}
		defer m.Close()
		if m.Empty() || m.Type() != gocv.MatTypeCV8UC3 || int64(m.Rows())*int64(m.Cols()) > 4<<20 {
			t.Fatalf("Decode = %dx%d type %v, want a non-empty 8UC3 image within the limit", m.Cols(), m.Rows(), m.Type())
		}
	})
}
