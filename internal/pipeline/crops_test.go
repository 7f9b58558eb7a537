package pipeline

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/wire"
)

// TestCropCacheForgets: a held crop is gone after its time or when newer
// crops need the room, and its bytes are cleared when it goes.
func TestCropCacheForgets(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	crop := func(b byte, n int) []byte {
		c := make([]byte, n)
		for i := range c {
			c[i] = b
		}
		return c
	}
	c := newCropCache(time.Minute, 100, clock)
	a := crop('a', 40)
	c.put(cropKey{"cam", 1, false, 0}, a)
	c.put(cropKey{"cam", 1, true, 0}, a) // the same face in the final report
	c.put(cropKey{"cam", 2, false, 0}, crop('b', 10))
	tests := []struct {
		name    string
		advance time.Duration
		put     *cropKey
		size    int
		want    map[cropKey]bool
	}{
		{"all held", 0, nil, 0, map[cropKey]bool{{"cam", 1, false, 0}: true, {"cam", 1, true, 0}: true, {"cam", 2, false, 0}: true}},
		// 90 bytes held; 30 more push out the oldest.
		{"room for a newer crop", 10 * time.Second, &cropKey{"cam", 3, false, 0}, 30, map[cropKey]bool{{"cam", 1, false, 0}: false, {"cam", 1, true, 0}: true, {"cam", 3, false, 0}: true}},
		{"past its time", 55 * time.Second, nil, 0, map[cropKey]bool{{"cam", 1, true, 0}: false, {"cam", 2, false, 0}: false, {"cam", 3, false, 0}: true}},
		{"everything past its time", time.Minute, nil, 0, map[cropKey]bool{{"cam", 3, false, 0}: false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now = now.Add(tc.advance)
			if tc.put != nil {
				c.put(*tc.put, crop('c', tc.size))
			}
			for k, want := range tc.want {
				if got := c.get(k) != nil; got != want {
					t.Errorf("get(%v) held = %v, want %v", k, got, want)
				}
			}
		})
	}
	if n := c.expire(); n != 0 {
		t.Errorf("crops left = %d, want 0", n)
	}
	// The caller's slice is not the cache's: clearing an entry leaves it.
	if a[0] != 'a' {
		t.Errorf("caller's crop changed to %q, want it untouched", a[:1])
	}
}

// TestSceneDownscaledWithBox: a frame wider than wire.SceneMaxWidth is
// scaled down to it (aspect kept); the face box, scaled the same way, is
// drawn only when the scene is handed out, and every other face in the
// frame is blurred then, while the matched face keeps its detail.
func TestSceneDownscaledWithBox(t *testing.T) {
	tests := []struct {
		name string
		w, h int
		want image.Point
	}{
		{"1280x720 is halved", 1280, 720, image.Pt(640, 360)},
		{"1920x1080 to 640 wide", 1920, 1080, image.Pt(640, 360)},
		{"480x360 kept", 480, 360, image.Pt(480, 360)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(90, 90, 90, 0), tc.h, tc.w, gocv.MatTypeCV8UC3)
			defer m.Close()
			// Two "faces": high-contrast stripes, the matched one on the
			// left, a bystander on the right.
			face := image.Rect(tc.w/8, tc.h/4, tc.w/8+tc.w/5, tc.h/4+tc.h/3)
			other := face.Add(image.Pt(tc.w/2, 0))
			for _, r := range []image.Rectangle{face, other} {
				for x := r.Min.X; x < r.Max.X; x += tc.w / 80 {
					gocv.Rectangle(&m, image.Rect(x, r.Min.Y, x+tc.w/160, r.Max.Y), color.RGBA{255, 255, 255, 255}, -1)
				}
			}
			sc := makeScene(m)
			if sc == nil {
				t.Fatal("makeScene = nil")
			}
			sc.faces = []image.Rectangle{face, other}
			box := wire.Box{X: face.Min.X, Y: face.Min.Y, W: face.Dx(), H: face.Dy()}
			// Before a hit asks, the scene has no box drawn.
			img, err := jpeg.Decode(bytes.NewReader(sc.jpeg))
			if err != nil {
				t.Fatal(err)
			}
			if r, g, _, _ := img.At(int(float64(box.X)*sc.scale), int(float64(box.Y+box.H/2)*sc.scale)).RGBA(); g>>8 > 160 && r>>8 < 110 {
				t.Errorf("undrawn scene is green at the box edge: the box is drawn before any hit asked")
			}
			others := sc.others(face)
			if len(others) != 1 || others[0] != sc.box(other) {
				t.Fatalf("others(face) = %v, want the bystander's box %v", others, sc.box(other))
			}
			drawn := drawSceneBox(sc.jpeg, sc.box(face), others)
			checkScene(t, drawn, tc.want, box, sc.scale)
			out, err := jpeg.Decode(bytes.NewReader(drawn))
			if err != nil {
				t.Fatal(err)
			}
			inner := func(r image.Rectangle) image.Rectangle { return sc.box(r).Inset(sc.box(r).Dx() / 6) }
			if got, keep := edge(out, inner(other)), edge(out, inner(face)); got > 25 || keep < 80 {
				t.Errorf("sharpest edge: bystander %d (want blurred, <= 25), matched face %d (want its stripes, >= 80)", got, keep)
			}
		})
	}
	if drawSceneBox(nil, image.Rect(0, 0, 1, 1), nil) != nil || drawSceneBox([]byte("not a jpeg"), image.Rect(0, 0, 1, 1), nil) != nil {
		t.Error("drawSceneBox(no scene / not a JPEG) != nil")
	}
}

// edge is the largest step in green between horizontal neighbours inside
// r: stripes have steps of a hundred and more, a blurred region a few.
func edge(img image.Image, r image.Rectangle) int {
	most := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x+1 < r.Max.X; x++ {
			_, g0, _, _ := img.At(x, y).RGBA()
			_, g1, _, _ := img.At(x+1, y).RGBA()
			most = max(most, int(g0>>8)-int(g1>>8), int(g1>>8)-int(g0>>8))
		}
	}
	return most
}

// TestCropCacheCountsScenes: a scene counts against the cache's bytes
// with its crop, goes with it, and is cleared.
func TestCropCacheCountsScenes(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := newCropCache(time.Minute, 100, func() time.Time { return now })
	scene := bytes.Repeat([]byte{'s'}, 50)
	k1, k2 := cropKey{"cam", 1, true, 0}, cropKey{"cam", 2, true, 0}
	c.putScene(k1, []byte("crop-one"), scene, image.Rect(1, 2, 3, 4), []image.Rectangle{image.Rect(5, 5, 9, 9)})
	if got, box, others := c.getScene(k1); !bytes.Equal(got, scene) || box != image.Rect(1, 2, 3, 4) || len(others) != 1 {
		t.Errorf("getScene = %q, %v, %v; want the scene, its box and the other face", got, box, others)
	}
	// 58 bytes held; another 58 exceed 100: the first goes, scene and all.
	c.putScene(k2, []byte("crop-two"), scene, image.Rect(0, 0, 1, 1), nil)
	if got, _, _ := c.getScene(k1); got != nil || c.get(k1) != nil {
		t.Errorf("after a newer entry needed the room, k1 still holds crop %q / scene %q", c.get(k1), got)
	}
	if scene[0] != 's' {
		t.Error("caller's scene was cleared, want the cache's copy only")
	}
	if _, box, _ := c.getScene(cropKey{"cam", 9, true, 0}); box != (image.Rectangle{}) {
		t.Errorf("getScene(unknown) box = %v, want none", box)
	}
}

// BenchmarkMakeScene is the cost the detect stage pays per frame with a
// face: downscaling a 1280x720 frame to 640 wide and encoding it.
func BenchmarkMakeScene(b *testing.B) {
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(90, 120, 150, 0), 720, 1280, gocv.MatTypeCV8UC3)
	defer m.Close()
	gocv.Rectangle(&m, image.Rect(300, 200, 500, 450), color.RGBA{255, 255, 255, 255}, -1)
	for b.Loop() {
		if makeScene(m) == nil {
			b.Fatal("makeScene = nil")
		}
	}
}
