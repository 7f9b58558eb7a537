package dlib_test

import (
	"image"
	"image/draw"
	"image/jpeg"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/facewatch/facewatch/internal/dlib"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/models"
)

// TestViewMatchesCopy: a 3-channel (BGR) image is read by dlib in place;
// other images are first copied into an RGB matrix. Both must give exactly
// the same boxes, scores, landmarks and chip bytes, so that the descriptors
// are those go-face and dlib's examples compute. The same pixels go in as
// BGR (read in place) and as BGRA (copied), whole and as a region of a
// larger frame (a stride wider than the row).
func TestViewMatchesCopy(t *testing.T) {
	spPath, err := testdata.ModelDir(t).Path(models.ShapePredictor5)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := dlib.LoadShapePredictor(spPath)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	h, err := dlib.NewHOG()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	for _, tc := range []struct {
		name, photo string
		region      image.Rectangle // of the photo; empty means whole
		minFaces    int
	}{
		{"group photo", "pristin.jpg", image.Rectangle{}, 10},
		{"portrait", "tzuyu.jpg", image.Rectangle{}, 1},
		{"region of the group photo", "pristin.jpg", image.Rect(301, 17, 1503, 1001), 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rgba := loadRGBA(t, filepath.Join("go-face-testdata", "images", tc.photo))
			r := tc.region
			if r.Empty() {
				r = rgba.Bounds()
			}
			// BGR of the whole photo, viewed through r (stride of the whole
			// row when r is a region), and BGRA of r alone.
			w := rgba.Bounds().Dx()
			bgr := make([]byte, w*rgba.Bounds().Dy()*3)
			for i := 0; i < len(bgr)/3; i++ {
				bgr[i*3], bgr[i*3+1], bgr[i*3+2] = rgba.Pix[i*4+2], rgba.Pix[i*4+1], rgba.Pix[i*4]
			}
			view := dlib.Image{Pix: bgr[(r.Min.Y*w+r.Min.X)*3:], Rows: r.Dy(), Cols: r.Dx(), Stride: w * 3, Channels: 3}
			bgra := make([]byte, r.Dx()*r.Dy()*4)
			for y := 0; y < r.Dy(); y++ {
				for x := 0; x < r.Dx(); x++ {
					s := rgba.Pix[rgba.PixOffset(r.Min.X+x, r.Min.Y+y):]
					d := bgra[(y*r.Dx()+x)*4:]
					d[0], d[1], d[2], d[3] = s[2], s[1], s[0], 0
				}
			}
			copied := dlib.Image{Pix: bgra, Rows: r.Dy(), Cols: r.Dx(), Stride: r.Dx() * 4, Channels: 4}

			rv, err := h.Detect(view, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			rc, err := h.Detect(copied, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(rv) < tc.minFaces {
				t.Fatalf("Detect(%s BGR) found %d faces, want at least %d", tc.name, len(rv), tc.minFaces)
			}
			if !slices.Equal(rv, rc) {
				t.Fatalf("Detect(%s): BGR in place = %v, want the RGB copy's %v", tc.name, rv, rc)
			}
			pv, cv, err := sp.Align(view, rv, 150, 0.25)
			if err != nil {
				t.Fatal(err)
			}
			pc, cc, err := sp.Align(copied, rc, 150, 0.25)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(pv, pc) {
				t.Errorf("Align(%s) landmarks: BGR in place = %v, want the RGB copy's %v", tc.name, pv, pc)
			}
			if !slices.Equal(cv, cc) {
				n := 0
				for i := range cv {
					if cv[i] != cc[i] {
						n++
					}
				}
				t.Errorf("Align(%s) chips: %d of %d bytes differ between BGR in place and the RGB copy, want none", tc.name, n, len(cv))
			}
		})
	}
}

func loadRGBA(t *testing.T, rel string) *image.RGBA {
	t.Helper()
	f, err := os.Open(testdata.Path(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := jpeg.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	rgba := image.NewRGBA(image.Rect(0, 0, img.Bounds().Dx(), img.Bounds().Dy()))
	draw.Draw(rgba, rgba.Bounds(), img, img.Bounds().Min, draw.Src)
	return rgba
}
