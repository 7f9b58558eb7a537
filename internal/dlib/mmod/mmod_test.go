package mmod_test

import (
	"image"
	"image/draw"
	"image/jpeg"
	"os"
	"testing"

	"github.com/facewatch/facewatch/internal/dlib/mmod"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/models"
)

// loadImage decodes one of dlib's example faces into Detect's layout with
// the given channels (1 gray, 3 BGR, 4 BGRA) and pad bytes after each row.
func loadImage(t *testing.T, name string, channels, pad int) mmod.Image {
	t.Helper()
	f, err := os.Open(testdata.DlibFace(t, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src, err := jpeg.Decode(f)
	if err != nil {
		t.Fatalf("decoding %s: %v", name, err)
	}
	b := src.Bounds()
	rgba := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(rgba, rgba.Bounds(), src, b.Min, draw.Src)
	im := mmod.Image{Rows: b.Dy(), Cols: b.Dx(), Channels: channels, Stride: b.Dx()*channels + pad}
	im.Pix = make([]byte, im.Rows*im.Stride)
	for y := range im.Rows {
		for x := range im.Cols {
			p := rgba.Pix[y*rgba.Stride+4*x:]
			q := im.Pix[y*im.Stride+channels*x:]
			switch channels {
			case 1:
				q[0] = byte((299*int(p[0]) + 587*int(p[1]) + 114*int(p[2]) + 500) / 1000)
			default:
				q[0], q[1], q[2] = p[2], p[1], p[0]
				if channels == 4 {
					q[3] = 255
				}
			}
		}
	}
	return im
}

func loadNet(t *testing.T) *mmod.Net {
	t.Helper()
	p, err := testdata.ModelDir(t).Path(models.MMOD)
	if err != nil {
		t.Fatal(err)
	}
	n, err := mmod.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

// TestDetectBatch: a batch gives each image exactly what Detect gives it
// alone, in one forward pass per image size. Boxes and scores are compared
// exactly: on the CPU dlib's convolutions, affine layers and relus work
// sample by sample, so a sample's arithmetic does not depend on its batch
// mates (a GPU's cuDNN may pick other algorithms per batch size; there the
// scores could differ in the last bits, which this test would report).
func TestDetectBatch(t *testing.T) {
	n := loadNet(t)
	// Four photos of 500x375 (one gray, one BGRA with padded rows), one of
	// 360x480 and one of 500x332.
	same := []mmod.Image{
		loadImage(t, "2007_007763.jpg", 3, 0),
		loadImage(t, "2008_001322.jpg", 1, 0),
		loadImage(t, "2008_002079.jpg", 4, 12),
		loadImage(t, "2008_002506.jpg", 3, 5),
	}
	mixed := []mmod.Image{
		same[0],
		loadImage(t, "2008_001009.jpg", 3, 0),
		same[1],
		loadImage(t, "2008_002470.jpg", 3, 0),
		same[2],
	}
	want := map[*byte][]mmod.Rect{}
	faces := 0
	for _, im := range append(same, mixed...) {
		if _, ok := want[&im.Pix[0]]; ok {
			continue
		}
		rs, err := n.Detect(im.Pix, im.Rows, im.Cols, im.Stride, im.Channels, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		want[&im.Pix[0]] = rs
		faces += len(rs)
	}
	if faces < 4 {
		t.Fatalf("Detect found %d faces in the six photos, want at least 4 for the comparison to mean something", faces)
	}
	for _, tc := range []struct {
		name     string
		images   []mmod.Image
		forwards uint64
	}{{"same size", same, 1}, {"mixed sizes", mixed, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			before := n.Forwards()
			got, err := n.DetectBatch(tc.images, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if f := n.Forwards() - before; f != tc.forwards {
				t.Errorf("DetectBatch ran %d forward passes, want %d (one per image size)", f, tc.forwards)
			}
			if len(got) != len(tc.images) {
				t.Fatalf("DetectBatch returned %d results for %d images", len(got), len(tc.images))
			}
			for i, im := range tc.images {
				w := want[&im.Pix[0]]
				if len(got[i]) != len(w) {
					t.Errorf("image %d (%dx%d): batch found %d faces, alone %d: %v vs %v", i, im.Cols, im.Rows, len(got[i]), len(w), got[i], w)
					continue
				}
				for j := range w {
					if got[i][j] != w[j] {
						t.Errorf("image %d face %d: batch %+v, alone %+v", i, j, got[i][j], w[j])
					}
				}
			}
		})
	}
}

// TestDetectBatchRefuses: a bad image anywhere in the batch is an error
// naming it, before any forward pass; an empty batch is no work.
func TestDetectBatchRefuses(t *testing.T) {
	n := loadNet(t)
	good := mmod.Image{Pix: make([]byte, 40*40*3), Rows: 40, Cols: 40, Stride: 120, Channels: 3}
	short := good
	short.Pix = short.Pix[:100]
	two := good
	two.Channels = 2
	for _, b := range [][]mmod.Image{{good, short}, {two}} {
		if _, err := n.DetectBatch(b, 0, 0); err == nil {
			t.Errorf("DetectBatch(%d images with a bad one) succeeded", len(b))
		}
	}
	if n.Forwards() != 0 {
		t.Errorf("refused batches ran %d forward passes", n.Forwards())
	}
	if out, err := n.DetectBatch(nil, 0, 0); err != nil || len(out) != 0 {
		t.Errorf("DetectBatch(nil) = %v, %v", out, err)
	}
	n.Close()
	if _, err := n.DetectBatch([]mmod.Image{good}, 0, 0); err == nil {
		t.Error("DetectBatch on a closed net succeeded")
	}
}
