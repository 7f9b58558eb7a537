package jpegbgr_test

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"testing"

	"github.com/facewatch/facewatch/internal/jpegbgr"
)

// encode returns img as a JPEG of quality 95 (Go's encoder: YCbCr for
// colour images, one component for gray).
func encode(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestDecode: a colour JPEG comes out as BGR (blue first), close to what
// Go's decoder gives; a gray one, a size other than the header's and bytes
// that are not a JPEG are refused with the error that says so.
func TestDecode(t *testing.T) {
	const w, h = 64, 48
	rgba := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			// Red grows to the right, blue downwards, green fixed.
			rgba.Set(x, y, color.RGBA{uint8(x * 4), 90, uint8(y * 5), 255})
		}
	}
	data := encode(t, rgba)
	pix := make([]byte, w*h*3)
	if err := jpegbgr.Decode(data, w, h, pix); err != nil {
		t.Fatalf("Decode(colour JPEG) = %v", err)
	}
	ref, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var diff, n int
	for y := range h {
		for x := range w {
			r, g, b, _ := ref.At(x, y).RGBA()
			p := pix[(y*w+x)*3:]
			for i, want := range []uint32{b >> 8, g >> 8, r >> 8} {
				d := int(p[i]) - int(want)
				diff += max(d, -d)
				n++
			}
		}
	}
	if mean := float64(diff) / float64(n); mean > 2 {
		t.Errorf("Decode differs from Go's decoder by %.2f per channel on average, want <= 2 (BGR order)", mean)
	}

	gray := image.NewGray(image.Rect(0, 0, w, h))
	for _, tc := range []struct {
		name string
		data []byte
		w, h int
		want error
	}{
		{"gray", encode(t, gray), w, h, jpegbgr.ErrOther},
		{"wrong size", data, w + 1, h, jpegbgr.ErrOther},
		{"not a JPEG", []byte("this is not a JPEG at all, only text"), w, h, jpegbgr.ErrCorrupt},
		{"truncated", data[:len(data)/2], w, h, jpegbgr.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]byte, tc.w*tc.h*3)
			if err := jpegbgr.Decode(tc.data, tc.w, tc.h, out); !errors.Is(err, tc.want) {
				t.Errorf("Decode(%s) = %v, want %v", tc.name, err, tc.want)
			}
		})
	}
	if err := jpegbgr.Decode(data, w, h, pix[:10]); err == nil {
		t.Error("Decode into a too-short buffer succeeded")
	}
}
