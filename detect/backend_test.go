package detect

import (
	"context"
	"errors"
	"image"
	"slices"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/face"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/models"
)

// fakeBackend returns fixed candidates and records how it was called.
type fakeBackend struct {
	found  []Candidate
	err    error
	sizes  []image.Point // the size of each image it was given
	opts   []Options
	closed int
}

func (f *fakeBackend) Detect(_ context.Context, img gocv.Mat, opt Options) ([]Candidate, error) {
	f.sizes = append(f.sizes, image.Pt(img.Cols(), img.Rows()))
	f.opts = append(f.opts, opt)
	return slices.Clone(f.found), f.err
}

func (f *fakeBackend) Close() error { f.closed++; return nil }

// TestRegistryPicksBackendByName: New opens the backend the config names
// from the registration table, and the Detector does the rest the same for
// any backend: scaling boxes back from a downscaled search, dropping faces
// under min_face_size, ordering by confidence, then landmarks and chips.
func TestRegistryPicksBackendByName(t *testing.T) {
	fake := &fakeBackend{found: []Candidate{
		{Box: image.Rect(10, 10, 60, 60), Confidence: 0.5},
		{Box: image.Rect(100, 20, 104, 24), Confidence: 3}, // 8 px wide at full size
		{Box: image.Rect(200, 50, 300, 150), Confidence: 2},
	}}
	var openedWith models.Dir
	reg := registry{
		"fake": func(dir models.Dir, _ config.Detect) (Backend, error) {
			openedWith = dir
			return fake, nil
		},
		"other": func(models.Dir, config.Detect) (Backend, error) {
			t.Error("opened the backend the config does not name")
			return nil, errors.New("not this one")
		},
	}
	dir := testdata.ModelDir(t)
	cfg := config.Defaults().Detect
	cfg.Detector, cfg.MaxWidth, cfg.Upsample, cfg.MinFaceSize = "fake", 400, 2, 20
	d, err := reg.open(dir, cfg)
	if err != nil {
		t.Fatalf("open(fake) = %v", err)
	}
	if openedWith != dir {
		t.Errorf("backend opened with %q, want %q", openedWith, dir)
	}

	frame := gocv.NewMatWithSize(600, 800, gocv.MatTypeCV8UC3) // twice max_width
	defer frame.Close()
	faces, err := d.Detect(context.Background(), frame)
	if err != nil {
		t.Fatalf("Detect = %v", err)
	}
	if want := []image.Point{{400, 300}}; !slices.Equal(fake.sizes, want) {
		t.Errorf("backend searched images of %v, want %v (downscaled to max_width)", fake.sizes, want)
	}
	if want := []Options{{Upsample: 2}}; !slices.Equal(fake.opts, want) {
		t.Errorf("backend got options %v, want %v", fake.opts, want)
	}
	want := []struct {
		box  image.Rectangle
		conf float64
	}{
		{image.Rect(400, 100, 600, 300), 2},
		{image.Rect(20, 20, 120, 120), 0.5},
	}
	if len(faces) != len(want) {
		t.Fatalf("Detect = %d faces, want %d", len(faces), len(want))
	}
	for i, w := range want {
		f := faces[i]
		if f.Box != w.box || f.Confidence != w.conf {
			t.Errorf("face %d = %v %g, want %v %g", i, f.Box, f.Confidence, w.box, w.conf)
		}
		if len(f.Chip.Pix) != face.ChipBytes {
			t.Errorf("face %d chip = %d bytes, want %d", i, len(f.Chip.Pix), face.ChipBytes)
		}
	}

	fake.err = errors.New("backend broke")
	if _, err := d.Detect(context.Background(), frame); !errors.Is(err, fake.err) {
		t.Errorf("Detect with a failing backend = %v, want its error wrapped", err)
	}
	d.Close()
	d.Close()
	if fake.closed != 1 {
		t.Errorf("backend closed %d times, want once", fake.closed)
	}
	if _, err := d.Detect(context.Background(), frame); !errors.Is(err, ErrClosed) {
		t.Errorf("Detect after Close = %v, want ErrClosed", err)
	}
}

// TestRegistryUnknownName: a name no backend registered is refused, in one
// line listing the names that are, before any model is loaded.
func TestRegistryUnknownName(t *testing.T) {
	reg := registry{
		"fake":  func(models.Dir, config.Detect) (Backend, error) { return &fakeBackend{}, nil },
		"other": func(models.Dir, config.Detect) (Backend, error) { return &fakeBackend{}, nil },
	}
	cfg := config.Defaults().Detect
	cfg.Detector = "sift"
	d, err := reg.open(models.Dir(t.TempDir()), cfg)
	if err == nil {
		d.Close()
	}
	const want = `detector: "sift" is not one of fake, other`
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Errorf("open(sift) = %v, want one line containing %q", err, want)
	}
}

// TestRegistryOpenError: a backend that fails to open fails New with its
// name, and the shape predictor loaded before it is freed.
func TestRegistryOpenError(t *testing.T) {
	broken := errors.New("no such accelerator")
	reg := registry{"fake": func(models.Dir, config.Detect) (Backend, error) { return nil, broken }}
	cfg := config.Defaults().Detect
	cfg.Detector = "fake"
	d, err := reg.open(testdata.ModelDir(t), cfg)
	if err == nil {
		d.Close()
	}
	if !errors.Is(err, broken) || !strings.Contains(err.Error(), "fake detector") {
		t.Errorf("open(broken fake) = %v, want %v naming the detector", err, broken)
	}
}
