package dlib_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/facewatch/facewatch/internal/dlib"
	"github.com/facewatch/facewatch/internal/dlib/mmod"
	"github.com/facewatch/facewatch/internal/dlib/resnet"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/models"
)

func rss(t testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatalf("reading memory use: %v", err)
	}
	pages, _ := strconv.ParseInt(strings.Fields(string(b))[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// TestExceptionsBecomeErrors: dlib throws C++ exceptions on a bad model
// file; each loader turns them into a Go error naming the file, and 10,000
// of them leave resident memory where it was.
func TestExceptionsBecomeErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.dat")
	if err := os.WriteFile(garbage, []byte("definitely not a dlib model file, just text"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A real model of the wrong kind: the shape predictor read as a network.
	sp, err := testdata.ModelDir(t).Path(models.ShapePredictor5)
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.dat")
	tests := []struct {
		name string
		load func(string) error
		path string
	}{
		{"shape predictor from garbage", func(p string) error { _, err := dlib.LoadShapePredictor(p); return err }, garbage},
		{"shape predictor from missing file", func(p string) error { _, err := dlib.LoadShapePredictor(p); return err }, missing},
		{"resnet from garbage", func(p string) error { _, err := resnet.Load(p); return err }, garbage},
		{"resnet from shape predictor", func(p string) error { _, err := resnet.Load(p); return err }, sp},
		{"mmod from garbage", func(p string) error { _, err := mmod.Load(p); return err }, garbage},
		{"mmod from shape predictor", func(p string) error { _, err := mmod.Load(p); return err }, sp},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.load(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.path) {
				t.Fatalf("load(%s) = %v, want an error naming the file", tc.name, err)
			}
		})
	}
	load := tests[0].load
	for range 100 {
		_ = load(garbage)
	}
	runtime.GC()
	before := rss(t)
	for range 10000 {
		if load(garbage) == nil {
			t.Fatal("loading garbage succeeded")
		}
	}
	runtime.GC()
	after := rss(t)
	t.Logf("resident memory around 10,000 caught exceptions: %.1f -> %.1f MiB", float64(before)/(1<<20), float64(after)/(1<<20))
	if after-before > 8<<20 {
		t.Errorf("resident memory grew by %.1f MiB over 10,000 caught exceptions, want < 8 MiB", float64(after-before)/(1<<20))
	}
}

func TestImageChecks(t *testing.T) {
	h, err := dlib.NewHOG()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	pix := make([]byte, 100*100*3)
	for _, tc := range []struct {
		name string
		im   dlib.Image
		want string
	}{
		{"empty", dlib.Image{}, "empty"},
		{"two channels", dlib.Image{Pix: pix, Rows: 100, Cols: 100, Stride: 200, Channels: 2}, "channels"},
		{"short buffer", dlib.Image{Pix: pix[:1000], Rows: 100, Cols: 100, Stride: 300, Channels: 3}, "too short"},
		{"small stride", dlib.Image{Pix: pix, Rows: 100, Cols: 100, Stride: 100, Channels: 3}, "too short"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := h.Detect(tc.im, 0, 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Detect(%s) = %v, %v; want error containing %q", tc.name, rs, err, tc.want)
			}
		})
	}
	// A blank image is valid and has no face.
	rs, err := h.Detect(dlib.Image{Pix: pix, Rows: 100, Cols: 100, Stride: 300, Channels: 3}, 1, 0)
	if err != nil || len(rs) != 0 {
		t.Errorf("Detect(blank) = %v, %v; want no faces", rs, err)
	}
	h.Close()
	if _, err := h.Detect(dlib.Image{Pix: pix, Rows: 100, Cols: 100, Stride: 300, Channels: 3}, 0, 0); err == nil {
		t.Error("Detect after Close succeeded")
	}
}

func TestBuildInfo(t *testing.T) {
	if v := dlib.Version(); !strings.HasPrefix(v, "19.") {
		t.Errorf("Version() = %q, want 19.x", v)
	}
	if runtime.GOARCH == "amd64" && !strings.Contains(strings.Join(dlib.SIMD(), " "), "sse2") {
		t.Errorf("SIMD() = %v, want at least sse2 on amd64", dlib.SIMD())
	}
}
