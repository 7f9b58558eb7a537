package detect_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/internal/face"
	"github.com/facewatch/facewatch/internal/testdata"
)

func portraitBytes(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(testdata.Path(t, "go-face-testdata/images/tzuyu.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func goImage(t testing.TB, data []byte) image.Image {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// hugePNG returns a small valid PNG whose header claims w x h pixels (the
// IHDR is patched and its CRC recomputed): decoding it for real would need
// gigabytes; refusing it from the header needs none.
func hugePNG(t testing.TB, w, h uint32) []byte {
	t.Helper()
	b := encodePNG(t, image.NewGray(image.Rect(0, 0, 8, 8)))
	// 8-byte signature, 4-byte length, "IHDR", width, height, ...
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

// hugeJPEG patches the frame header (SOF0) of a real JPEG to claim w x h.
func hugeJPEG(t testing.TB, data []byte, w, h uint16) []byte {
	t.Helper()
	b := bytes.Clone(data)
	i := bytes.Index(b, []byte{0xFF, 0xC0})
	if i < 0 {
		t.Fatal("no SOF0 marker in portrait")
	}
	binary.BigEndian.PutUint16(b[i+5:], h)
	binary.BigEndian.PutUint16(b[i+7:], w)
	return b
}

// cmykJPEG is Go's own CMYK (Adobe) JPEG test image, from the Go
// distribution that runs the test (`go env GOROOT`).
func cmykJPEG(t testing.TB) []byte {
	t.Helper()
	root, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(root)), "src", "image", "testdata", "video-001.cmyk.jpeg"))
	if err != nil {
		t.Fatalf("Go's CMYK test JPEG: %v", err)
	}
	return b
}

// TestBadInput feeds each kind of bad or unusual input through Decode and
// Detect: each gives faces or one clear error, and the detector keeps
// working afterwards. Run it with -race too.
func TestBadInput(t *testing.T) {
	d := newDetector(t, func(c *detectCfg) { c.MaxWidth = 0 })
	portrait := portraitBytes(t)
	img := goImage(t, portrait)
	b := img.Bounds()

	gray := image.NewGray(b)
	rgba64 := image.NewRGBA64(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			gray.Set(x, y, img.At(x, y))
			rgba64.Set(x, y, img.At(x, y))
		}
	}
	var grayJPEG bytes.Buffer
	if err := jpeg.Encode(&grayJPEG, gray, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	pngBytes := encodePNG(t, img)
	dogs, err := os.ReadFile(testdata.DlibFace(t, "dogs.jpg"))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		data      []byte
		maxPixels int64
		wantErr   error
		wantFaces int // -1: no claim about faces (no face in the image)
	}{
		{"empty", nil, 0, detect.ErrCorrupt, 0},
		{"garbage", []byte("this is not an image at all"), 0, detect.ErrCorrupt, 0},
		{"jpeg header only", portrait[:200], 0, detect.ErrCorrupt, 0},
		{"truncated jpeg", portrait[:len(portrait)/2], 0, detect.ErrCorrupt, 0},
		{"truncated png", pngBytes[:len(pngBytes)/2], 0, detect.ErrCorrupt, 0},
		{"png with bad crc", func() []byte { c := bytes.Clone(pngBytes); c[len(c)/2] ^= 0xFF; return c }(), 0, detect.ErrCorrupt, 0},
		{"20000x20000 png", hugePNG(t, 20000, 20000), 64 << 20, detect.ErrTooLarge, 0},
		{"20000x20000 jpeg", hugeJPEG(t, portrait, 20000, 20000), 64 << 20, detect.ErrTooLarge, 0},
		{"over a small limit", portrait, 1000, detect.ErrTooLarge, 0},
		{"grayscale jpeg", grayJPEG.Bytes(), 0, nil, 1},
		{"16-bit png", encodePNG(t, rgba64), 0, nil, 1},
		{"png", pngBytes, 0, nil, 1},
		{"cmyk jpeg", cmykJPEG(t), 0, nil, -1},
		{"no face", dogs, 0, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := detect.Decode(tc.data, tc.maxPixels)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Decode(%s) = %v, want %v", tc.name, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("Decode(%s) error %q is not one line", tc.name, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode(%s) = %v, want an image", tc.name, err)
			}
			defer m.Close()
			if m.Type() != gocv.MatTypeCV8UC3 {
				t.Errorf("Decode(%s) type = %v, want 8UC3", tc.name, m.Type())
			}
			faces, err := d.Detect(context.Background(), m)
			if err != nil {
				t.Fatalf("Detect(%s) = %v", tc.name, err)
			}
			if tc.wantFaces >= 0 && len(faces) != tc.wantFaces {
				t.Errorf("Detect(%s) = %d faces, want %d", tc.name, len(faces), tc.wantFaces)
			}
		})
	}

	// The CMYK JPEG's colours must match Go's own decoder (inverted Adobe
	// CMYK decoded naively comes out as a negative).
	t.Run("cmyk colours", func(t *testing.T) {
		data := cmykJPEG(t)
		m, err := detect.Decode(data, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		ref := goImage(t, data)
		if m.Cols() != ref.Bounds().Dx() || m.Rows() != ref.Bounds().Dy() {
			t.Fatalf("Decode(cmyk) = %dx%d, want %v", m.Cols(), m.Rows(), ref.Bounds().Size())
		}
		pix, _ := m.DataPtrUint8()
		var diff float64
		for y := 0; y < m.Rows(); y++ {
			for x := 0; x < m.Cols(); x++ {
				r, g, bl, _ := ref.At(x, y).RGBA()
				i := (y*m.Cols() + x) * 3
				diff += math.Abs(float64(pix[i+2])-float64(r>>8)) + math.Abs(float64(pix[i+1])-float64(g>>8)) + math.Abs(float64(pix[i])-float64(bl>>8))
			}
		}
		if mean := diff / float64(m.Rows()*m.Cols()*3); mean > 8 {
			t.Errorf("Decode(cmyk) differs from Go's decoder by %.1f levels per channel, want < 8", mean)
		}
	})

	t.Run("mats", func(t *testing.T) {
		full, err := detect.Decode(portrait, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer full.Close()
		grayMat := gocv.NewMat()
		defer grayMat.Close()
		gocv.CvtColor(full, &grayMat, gocv.ColorBGRToGray)
		bgra := gocv.NewMat()
		defer bgra.Close()
		gocv.CvtColor(full, &bgra, gocv.ColorBGRToBGRA)
		float := gocv.NewMat()
		defer float.Close()
		full.ConvertTo(&float, gocv.MatTypeCV32FC3)
		roi := full.Region(image.Rect(100, 50, 440, 400))
		defer roi.Close()
		empty := gocv.NewMat()
		defer empty.Close()
		for _, mc := range []struct {
			name    string
			m       gocv.Mat
			want    int
			wantErr string
		}{
			{"empty mat", empty, 0, "frame is empty"},
			{"float mat", float, 0, "not supported"},
			{"gray mat", grayMat, 1, ""},
			{"bgra mat", bgra, 1, ""},
			{"region of interest", roi, 1, ""},
		} {
			t.Run(mc.name, func(t *testing.T) {
				faces, err := d.Detect(context.Background(), mc.m)
				if mc.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), mc.wantErr) {
						t.Fatalf("Detect(%s) = %d faces, %v; want error %q", mc.name, len(faces), err, mc.wantErr)
					}
					return
				}
				if err != nil || len(faces) != mc.want {
					t.Fatalf("Detect(%s) = %d faces, %v; want %d", mc.name, len(faces), err, mc.want)
				}
				if mc.name == "region of interest" && !faces[0].Box.In(image.Rect(0, 0, roi.Cols()+20, roi.Rows()+20)) {
					t.Errorf("Detect(roi) box %v, want it in the region's own pixels", faces[0].Box)
				}
			})
		}
	})

	t.Run("go images", func(t *testing.T) {
		sub := img.(interface {
			SubImage(image.Rectangle) image.Image
		}).SubImage(image.Rect(100, 50, 440, 400))
		for _, ic := range []struct {
			name string
			img  image.Image
			want int
		}{
			{"ycbcr", img, 1},
			{"gray", gray, 1},
			{"rgba64 (generic path)", rgba64, 1},
			{"sub-image", sub, 1},
			{"uniform", image.NewUniform(color.White), -1},
		} {
			t.Run(ic.name, func(t *testing.T) {
				faces, err := d.DetectImage(context.Background(), ic.img)
				if ic.want < 0 {
					if !errors.Is(err, detect.ErrTooLarge) {
						t.Fatalf("DetectImage(%s) = %v, want ErrTooLarge (unbounded)", ic.name, err)
					}
					return
				}
				if err != nil || len(faces) != ic.want {
					t.Fatalf("DetectImage(%s) = %d faces, %v; want %d", ic.name, len(faces), err, ic.want)
				}
			})
		}
		if _, err := d.DetectImage(context.Background(), nil); !errors.Is(err, detect.ErrCorrupt) {
			t.Errorf("DetectImage(nil) = %v, want ErrCorrupt", err)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		m, _ := detect.Decode(portrait, 0)
		defer m.Close()
		if _, err := d.Detect(ctx, m); !errors.Is(err, context.Canceled) {
			t.Errorf("Detect(cancelled) = %v, want context.Canceled", err)
		}
	})

	// After all of that the same detector still finds the face.
	m, err := detect.Decode(portrait, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if faces, err := d.Detect(context.Background(), m); err != nil || len(faces) != 1 {
		t.Errorf("Detect(portrait) after bad input = %d faces, %v; want 1", len(faces), err)
	}
}

// TestManyFaces: a frame with 30 faces (a 6x5 mosaic of one portrait's
// face, so the count is known) gives all 30, each with its own box and chip;
// dlib's bald_guys.jpg collage, where 24 faces can be counted by eye, gives
// at least 22.
func TestManyFaces(t *testing.T) {
	d := newDetector(t, func(c *detectCfg) { c.MaxWidth = 0 })
	portrait, err := detect.Decode(portraitBytes(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer portrait.Close()
	one, err := d.Detect(context.Background(), portrait)
	if err != nil || len(one) != 1 {
		t.Fatalf("Detect(portrait) = %d faces, %v; want 1", len(one), err)
	}
	// A 220-pixel tile centred on the face.
	c := one[0].Box.Min.Add(one[0].Box.Size().Div(2))
	tile := portrait.Region(image.Rect(c.X-110, c.Y-110, c.X+110, c.Y+110))
	defer tile.Close()
	mosaic := gocv.NewMatWithSize(5*220, 6*220, gocv.MatTypeCV8UC3)
	defer mosaic.Close()
	for y := range 5 {
		for x := range 6 {
			dst := mosaic.Region(image.Rect(x*220, y*220, x*220+220, y*220+220))
			tile.CopyTo(&dst)
			dst.Close()
		}
	}
	faces, err := d.Detect(context.Background(), mosaic)
	if err != nil {
		t.Fatal(err)
	}
	if len(faces) != 30 {
		t.Fatalf("Detect(mosaic of 30 faces) = %d faces, want 30", len(faces))
	}
	cells := map[image.Point]bool{}
	for _, f := range faces {
		ctr := f.Box.Min.Add(f.Box.Size().Div(2))
		cells[image.Pt(ctr.X/220, ctr.Y/220)] = true
		if len(f.Chip.Pix) != face.ChipBytes {
			t.Errorf("face at %v: chip of %d bytes", f.Box, len(f.Chip.Pix))
		}
	}
	if len(cells) != 30 {
		t.Errorf("faces fall in %d distinct tiles, want 30", len(cells))
	}
	// detect.max_faces keeps the most confident faces of a crowd.
	capped := newDetector(t, func(c *detectCfg) { c.MaxWidth, c.MaxFaces = 0, 5 })
	few, err := capped.Detect(context.Background(), mosaic)
	if err != nil {
		t.Fatal(err)
	}
	if len(few) != 5 {
		t.Fatalf("Detect(mosaic of 30 faces) with max_faces 5 = %d faces, want 5", len(few))
	}
	for i, f := range few {
		if f.Confidence != faces[i].Confidence || f.Box != faces[i].Box {
			t.Errorf("capped face %d = %v (%.3f), want the %d-th most confident %v (%.3f)", i, f.Box, f.Confidence, i+1, faces[i].Box, faces[i].Confidence)
		}
	}

	up := newDetector(t, func(c *detectCfg) { c.MaxWidth, c.Upsample = 0, 1 })
	m, err := detect.DecodeFile(testdata.DlibFace(t, "bald_guys.jpg"), 1<<26)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	faces, err = up.Detect(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bald_guys.jpg (%dx%d), HOG upsampled once: %d faces", m.Cols(), m.Rows(), len(faces))
	if len(faces) < 22 {
		t.Errorf("Detect(bald_guys.jpg) = %d faces, want at least 22 of the 24 visible", len(faces))
	}
}

// rss is the process's resident memory in bytes (Linux).
func rss(t testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatalf("reading memory use: %v", err)
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// TestFailedCallsDoNotLeak makes 10,000 failing calls of each kind (a PNG
// with a corrupt chunk, which libpng inside OpenCV rejects and reports on
// stderr; a Mat of the wrong type; an empty Mat) and checks that resident
// memory does not grow.
func TestFailedCallsDoNotLeak(t *testing.T) {
	d := newDetector(t, nil)
	pngBytes := encodePNG(t, image.NewRGBA(image.Rect(0, 0, 64, 64)))
	bad := bytes.Clone(pngBytes)
	bad[len(bad)-20] ^= 0xFF // inside IDAT: its CRC no longer matches
	float := gocv.NewMatWithSize(64, 64, gocv.MatTypeCV32FC3)
	defer float.Close()
	empty := gocv.NewMat()
	defer empty.Close()
	n := 10000
	if testing.Short() {
		n = 1000
	}
	call := func() {
		if _, err := detect.Decode(bad, 0); !errors.Is(err, detect.ErrCorrupt) {
			t.Fatalf("Decode(png with bad crc) = %v, want ErrCorrupt", err)
		}
		if _, err := d.Detect(context.Background(), float); err == nil {
			t.Fatal("Detect(float mat) succeeded")
		}
		if _, err := d.Detect(context.Background(), empty); err == nil {
			t.Fatal("Detect(empty mat) succeeded")
		}
	}
	for range 200 { // warm up allocators and caches
		call()
	}
	runtime.GC()
	before := rss(t)
	for range n {
		call()
	}
	runtime.GC()
	after := rss(t)
	t.Logf("resident memory before %d failed calls x3: %.1f MiB, after: %.1f MiB", n, float64(before)/(1<<20), float64(after)/(1<<20))
	if grow := after - before; grow > 16<<20 {
		t.Errorf("resident memory grew by %.1f MiB over %d failed calls, want < 16 MiB", float64(grow)/(1<<20), n)
	}
}

// TestDetectorsInParallel: each worker owns a detector; two working at
// once on the same frame give the same faces (run with -race).
func TestDetectorsInParallel(t *testing.T) {
	m, err := detect.Decode(portraitBytes(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var wg sync.WaitGroup
	res := make([][]face.Face, 2)
	errs := make([]error, 2)
	for i := range res {
		dd := newDetector(t, func(c *detectCfg) { c.MaxWidth = 0 })
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = dd.Detect(context.Background(), m)
		}()
	}
	wg.Wait()
	for i := range res {
		if errs[i] != nil || len(res[i]) != 1 {
			t.Fatalf("worker %d: %d faces, %v; want 1", i, len(res[i]), errs[i])
		}
	}
	if res[0][0].Box != res[1][0].Box || !bytes.Equal(res[0][0].Chip.Pix, res[1][0].Chip.Pix) {
		t.Errorf("parallel workers disagree: %v vs %v", res[0][0].Box, res[1][0].Box)
	}
}

// peakRSS is the process's peak resident memory in bytes (VmHWM, Linux).
func peakRSS(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Skip("no VmHWM in /proc/self/status")
	return 0
}
