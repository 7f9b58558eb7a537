package dlib_test

import (
	"image"
	"image/draw"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/cpu"

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

// TestHOGAVX2MatchesPortable: on a CPU with AVX2, NewHOG runs a copy of
// dlib's HOG code compiled for AVX2 (whose feature filtering, on a CPU with
// AVX-512, runs 16 floats at a time). It must find exactly the boxes, with
// exactly the scores, of the portable code, on every path: BGR read in
// place, BGRA and gray copied, and upsampled.
func TestHOGAVX2MatchesPortable(t *testing.T) {
	fast := avx2HOG(t)
	// On a CPU with AVX-512 the copy's filtering runs 16 floats at a time:
	// the comparisons below then check that path too.
	if got, want := fast.AVX512(), cpu.X86.HasAVX512F; got != want {
		t.Errorf("NewHOG().AVX512() = %v on a CPU whose AVX-512F is %v", got, want)
	}
	t.Logf("AVX-512 filtering: %v", fast.AVX512())
	portable, err := dlib.NewPortableHOG()
	if err != nil {
		t.Fatal(err)
	}
	defer portable.Close()
	if portable.AVX2() {
		t.Fatal("NewPortableHOG().AVX2() = true, want false")
	}
	group := loadRGBA(t, filepath.Join("go-face-testdata", "images", "pristin.jpg"))
	small := loadRGBA(t, filepath.Join("go-face-testdata", "images", "tzuyu.jpg"))
	for _, tc := range []struct {
		name     string
		im       dlib.Image
		upsample int
		minFaces int
	}{
		{"BGR in place", toImage(group, 3), 0, 10},
		{"BGRA", toImage(group, 4), 0, 10},
		{"gray", toImage(group, 1), 0, 8},
		{"BGR upsampled", toImage(small, 3), 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fast.Detect(tc.im, tc.upsample, 0)
			if err != nil {
				t.Fatal(err)
			}
			want, err := portable.Detect(tc.im, tc.upsample, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) < tc.minFaces {
				t.Fatalf("portable Detect(%s) found %d faces, want at least %d", tc.name, len(want), tc.minFaces)
			}
			if !slices.Equal(got, want) {
				t.Errorf("AVX2 Detect(%s) = %v, want the portable code's %v", tc.name, got, want)
			}
		})
	}
}

// toImage converts rgba to 1 (gray), 3 (BGR) or 4 (BGRA) channels.
func toImage(rgba *image.RGBA, channels int) dlib.Image {
	w, h := rgba.Bounds().Dx(), rgba.Bounds().Dy()
	pix := make([]byte, w*h*channels)
	for i := 0; i < w*h; i++ {
		r, g, b := rgba.Pix[i*4], rgba.Pix[i*4+1], rgba.Pix[i*4+2]
		switch channels {
		case 1:
			pix[i] = byte((299*int(r) + 587*int(g) + 114*int(b)) / 1000)
		default:
			pix[i*channels], pix[i*channels+1], pix[i*channels+2] = b, g, r
		}
	}
	return dlib.Image{Pix: pix, Rows: h, Cols: w, Stride: w * channels, Channels: channels}
}

// TestHOGFilterMatchesPortable: the AVX2 copy's separable filter (16
// floats at a time, and the last columns of a row under a mask, on a CPU
// with AVX-512) gives, float for float, the portable build's results on
// planes of every width from 1 to 80 columns, so that every split of a row
// between the wide loops, dlib's 8-wide loop and the last columns occurs,
// with filters of 1 to 12 taps, overwriting and adding.
func TestHOGFilterMatchesPortable(t *testing.T) {
	avx2HOG(t)
	rng := rand.New(rand.NewPCG(1, 2))
	floats := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = rng.Float32()*2 - 1
		}
		return v
	}
	checked := 0
	for nc := 1; nc <= 80; nc++ {
		for _, taps := range [][2]int{{10, 10}, {1, 1}, {2, 3}, {4, 5}, {7, 12}} {
			for _, addTo := range []bool{false, true} {
				nr := 3 + nc%7 + taps[1]
				in, rowF, colF := floats(nr*nc), floats(taps[0]), floats(taps[1])
				start := floats(nr * nc)
				want, got := slices.Clone(start), slices.Clone(start)
				if err := dlib.FilterPlane(false, in, nr, nc, rowF, colF, want, addTo); err != nil {
					t.Fatal(err)
				}
				if err := dlib.FilterPlane(true, in, nr, nc, rowF, colF, got, addTo); err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%dx%d plane, %v taps, add %v: float %d (row %d, column %d) = %v, want the portable %v",
							nc, nr, taps, addTo, i, i/nc, i%nc, got[i], want[i])
					}
				}
				if !slices.Equal(start, want) {
					checked++
				}
			}
		}
	}
	// Planes narrower than the filter are left alone (or zeroed at the
	// border); most must have been filtered.
	if checked < 700 {
		t.Errorf("%d of 800 filterings changed the output plane, want at least 700", checked)
	}
}

// TestHOGFeaturesMatchPortable: the AVX2 copy's HOG feature extractor
// (whose per-pixel part, on a CPU with AVX-512, runs 16 pixels at a time:
// fhog_avx512.hpp) gives, float for float, the portable build's 31 feature
// planes: on a group photo read in place (BGR) and copied (BGRA, gray), at
// the first levels of the detector's pyramid (where the images are dlib's
// own arrays), and on noise images of every width from 1 to 70 pixels, so
// that every split of a row between the 16-pixel loop and dlib's
// one-pixel loop occurs, with pixel values of 0 to 2 (so that gradients
// tie between channels and between orientations) and of 0 to 255, with
// several cell sizes and paddings.
func TestHOGFeaturesMatchPortable(t *testing.T) {
	h := avx2HOG(t)
	t.Logf("AVX-512: %v", h.AVX512())
	compare := func(t *testing.T, name string, im dlib.Image, levels, cell, pr, pc int) bool {
		t.Helper()
		want, wnr, wnc, err := dlib.HOGFeatures(false, im, levels, cell, pr, pc)
		if err != nil {
			t.Fatal(err)
		}
		got, gnr, gnc, err := dlib.HOGFeatures(true, im, levels, cell, pr, pc)
		if err != nil {
			t.Fatal(err)
		}
		if gnr != wnr || gnc != wnc {
			t.Fatalf("%s: AVX2 features are %dx%d, want the portable %dx%d", name, gnc, gnr, wnc, wnr)
		}
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				plane := wnr * wnc
				t.Fatalf("%s: plane %d row %d column %d = %v, want the portable %v", name, i/plane, i%plane/wnc, i%wnc, got[i], want[i])
			}
		}
		return slices.ContainsFunc(want, func(f float32) bool { return f != 0 })
	}

	group := loadRGBA(t, filepath.Join("go-face-testdata", "images", "pristin.jpg"))
	for _, tc := range []struct {
		name     string
		channels int
		levels   []int
	}{
		{"BGR in place", 3, []int{0, 1, 2, 5}},
		{"BGRA", 4, []int{0, 1}},
		{"gray", 1, []int{0}},
	} {
		for _, levels := range tc.levels {
			if !compare(t, tc.name, toImage(group, tc.channels), levels, 8, 10, 10) {
				t.Errorf("%s, %d levels down: every feature is 0", tc.name, levels)
			}
		}
	}

	rng := rand.New(rand.NewPCG(3, 4))
	nonzero, checked := 0, 0
	for w := 1; w <= 70; w++ {
		for _, tc := range []struct {
			most, channels, cell, pr, pc int
		}{{2, 3, 8, 1, 1}, {255, 3, 8, 10, 10}, {2, 4, 4, 3, 7}, {255, 3, 3, 2, 1}} {
			rows := 5 + (w*7)%40
			im := dlib.Image{Pix: make([]byte, rows*w*tc.channels), Rows: rows, Cols: w, Stride: w * tc.channels, Channels: tc.channels}
			for i := range im.Pix {
				im.Pix[i] = byte(rng.IntN(tc.most + 1))
			}
			checked++
			if compare(t, "noise", im, 0, tc.cell, tc.pr, tc.pc) {
				nonzero++
			}
		}
	}
	// Images of fewer than 3 cells a side have no features; most have.
	if nonzero < checked/2 {
		t.Errorf("%d of %d noise images had a nonzero feature, want at least %d", nonzero, checked, checked/2)
	}
}

// TestHOGPyramidMatchesPortable: the AVX2 copy's steps down the detection
// pyramid (dlib's bilinear resize, 16 output pixels at a time on a CPU
// with AVX-512) give, byte for byte, the portable build's pixels: a group
// photo read in place (BGR) and copied (BGRA), several levels down, and
// noise images of every width from 1 to 90 pixels, so that every split of
// a row between the 16-pixel loop and dlib's one-pixel loop occurs.
func TestHOGPyramidMatchesPortable(t *testing.T) {
	avx2HOG(t)
	compare := func(t *testing.T, name string, im dlib.Image, levels int) {
		t.Helper()
		want, wnr, wnc, err := dlib.HOGPyramid(false, im, levels)
		if err != nil {
			t.Fatal(err)
		}
		got, gnr, gnc, err := dlib.HOGPyramid(true, im, levels)
		if err != nil {
			t.Fatal(err)
		}
		if gnr != wnr || gnc != wnc {
			t.Fatalf("%s, %d levels: AVX2 pyramid is %dx%d, want the portable %dx%d", name, levels, gnc, gnr, wnc, wnr)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s, %d levels: row %d column %d channel %d = %d, want the portable %d", name, levels, i/3/wnc, i/3%wnc, i%3, got[i], want[i])
			}
		}
	}
	group := loadRGBA(t, filepath.Join("go-face-testdata", "images", "pristin.jpg"))
	for _, levels := range []int{1, 2, 3, 6} {
		compare(t, "BGR in place", toImage(group, 3), levels)
	}
	compare(t, "BGRA", toImage(group, 4), 1)
	compare(t, "BGRA", toImage(group, 4), 2)

	rng := rand.New(rand.NewPCG(5, 6))
	for w := 1; w <= 90; w++ {
		for _, channels := range []int{3, 4} {
			rows := 1 + (w*5)%23
			im := dlib.Image{Pix: make([]byte, rows*w*channels), Rows: rows, Cols: w, Stride: w * channels, Channels: channels}
			for i := range im.Pix {
				im.Pix[i] = byte(rng.IntN(256))
			}
			compare(t, "noise", im, 1+w%3)
		}
	}
}

// avx2HOG returns a HOG detector running the AVX2 copy of dlib's code,
// closed when t ends; it skips t on a CPU (or build) without that copy.
func avx2HOG(t *testing.T) *dlib.HOG {
	t.Helper()
	h, err := dlib.NewHOG()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	if !h.AVX2() {
		t.Skip("this CPU (or build) has no AVX2 copy of the HOG code")
	}
	return h
}
