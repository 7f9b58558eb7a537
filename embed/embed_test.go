package embed_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/embed"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/face"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/models"
)

// johnsChips reads dlib's "johns" examples: already-aligned 150x150 chips,
// labelled by folder.
func johnsChips(t testing.TB) ([]face.Chip, []string) {
	t.Helper()
	root := testdata.Path(t, "dlib_johns")
	dirs, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var chips []face.Chip
	var who []string
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(root, d.Name(), "*.jpg"))
		for _, f := range files {
			m, err := detect.DecodeFile(f, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if m.Rows() != face.ChipSize || m.Cols() != face.ChipSize {
				t.Fatalf("%s is %dx%d, want a %d-pixel chip", f, m.Cols(), m.Rows(), face.ChipSize)
			}
			bgr, _ := m.DataPtrUint8()
			rgb := make([]byte, len(bgr))
			for i := 0; i < len(bgr); i += 3 {
				rgb[i], rgb[i+1], rgb[i+2] = bgr[i+2], bgr[i+1], bgr[i]
			}
			m.Close()
			chips = append(chips, face.Chip{Pix: rgb})
			who = append(who, d.Name())
		}
	}
	if len(chips) < 20 {
		t.Fatalf("found %d chips in %s, want the 55 of dlib's examples", len(chips), root)
	}
	return chips, who
}

// TestEmbedSeparatesPeople: on dlib's johns, each chip's nearest other chip
// is the same person (dlib's model is reported at 99.38% on LFW), and
// descriptors are unit-length-ish 128-d vectors stamped with the model.
func TestEmbedSeparatesPeople(t *testing.T) {
	_, emb := pipeline(t)
	chips, who := johnsChips(t)
	pipeMu.Lock()
	ds, err := emb.Embed(context.Background(), chips)
	pipeMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != len(chips) {
		t.Fatalf("Embed(%d chips) returned %d descriptors", len(chips), len(ds))
	}
	wrong := 0
	for i := range ds {
		if ds[i].Model != (embed.ModelID{Name: models.ResNetV1.Name, SHA256: models.ResNetV1.SHA256}) {
			t.Fatalf("descriptor %d model = %v, want %s", i, ds[i].Model, models.ResNetV1.Name)
		}
		var n float64
		for _, x := range ds[i].Vector {
			n += float64(x) * float64(x)
		}
		if n = math.Sqrt(n); n < 0.1 || n > 10 {
			t.Errorf("|descriptor %d| = %g, want a normal-sized vector", i, n)
		}
		best, bj := float32(9), -1
		for j := range ds {
			if j != i {
				if d := embed.Distance(&ds[i].Vector, &ds[j].Vector); d < best {
					best, bj = d, j
				}
			}
		}
		if who[bj] != who[i] {
			wrong++
		}
	}
	// dlib's own example clusters these chips into the 5 people without
	// error; allow one miss.
	if wrong > 1 {
		t.Errorf("nearest neighbour is another person for %d of %d chips, want at most 1", wrong, len(ds))
	}
}

// TestEmbedBatchesAgree: the same chips give the same descriptors whatever
// the batch size (batched inference must not mix chips up).
func TestEmbedBatchesAgree(t *testing.T) {
	chips, _ := johnsChips(t)
	chips = chips[:10]
	dir := testdata.ModelDir(t)
	var got [][]embed.Descriptor
	for _, bs := range []int{1, 4, 16} {
		cfg := config.Defaults().Embed
		cfg.BatchSize = bs
		e, err := embed.New(dir, cfg)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := e.Embed(context.Background(), chips)
		e.Close()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ds)
	}
	for b := 1; b < len(got); b++ {
		for i := range chips {
			if d := embed.Distance(&got[0][i].Vector, &got[b][i].Vector); d > 1e-4 {
				t.Errorf("chip %d: distance between batch sizes = %g, want ~0", i, d)
			}
		}
	}
	// And differing chips give differing descriptors.
	if d := embed.Distance(&got[0][0].Vector, &got[0][9].Vector); d < 0.05 {
		t.Errorf("Distance(chip 0, chip 9) = %g, want distinct descriptors", d)
	}
}

func TestEmbedErrors(t *testing.T) {
	_, emb := pipeline(t)
	good := make([]byte, face.ChipBytes)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name  string
		ctx   context.Context
		chips []face.Chip
		want  string
	}{
		{"short chip", context.Background(), []face.Chip{{Pix: good}, {Pix: good[:100]}}, "chip 1 has 100 bytes"},
		{"nil chip", context.Background(), []face.Chip{{}}, "chip 0 has 0 bytes"},
		{"cancelled", ctx, []face.Chip{{Pix: good}}, context.Canceled.Error()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pipeMu.Lock()
			ds, err := emb.Embed(tc.ctx, tc.chips)
			pipeMu.Unlock()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Embed(%s) = %d descriptors, %v; want error containing %q", tc.name, len(ds), err, tc.want)
			}
		})
	}
	pipeMu.Lock()
	ds, err := emb.Embed(context.Background(), nil)
	pipeMu.Unlock()
	if err != nil || len(ds) != 0 {
		t.Errorf("Embed(no chips) = %d, %v; want 0, nil", len(ds), err)
	}
	// A closed embedder says so.
	e, err := embed.New(testdata.ModelDir(t), config.Defaults().Embed)
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	if _, err := e.Embed(context.Background(), []face.Chip{{Pix: good}}); !errors.Is(err, embed.ErrClosed) {
		t.Errorf("Embed after Close = %v, want ErrClosed", err)
	}
	// A bad model directory is named.
	if _, err := embed.New(models.Dir(t.TempDir()), config.Defaults().Embed); err == nil || !strings.Contains(err.Error(), models.ResNetV1.Name) {
		t.Errorf("New(empty dir) = %v, want an error naming %s", err, models.ResNetV1.Name)
	}
}

func TestDistance(t *testing.T) {
	var a, b embed.Vector
	a[0], b[0] = 3, 0
	a[127], b[127] = 0, 4
	if got := embed.Distance(&a, &b); got != 5 {
		t.Errorf("Distance((3,..,0), (0,..,4)) = %g, want 5", got)
	}
	if got := embed.Distance(&a, &a); got != 0 {
		t.Errorf("Distance(a, a) = %g, want 0", got)
	}
}

// TestJitter: with jitter, each descriptor is the mean over jittered copies
// (dlib's example): close to the plain descriptor, not equal to it, and the
// same on every call.
func TestJitter(t *testing.T) {
	chips, _ := johnsChips(t)
	chips = chips[:2]
	_, plain := pipeline(t)
	pipeMu.Lock()
	want, err := plain.Embed(context.Background(), chips)
	pipeMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Defaults().Embed
	cfg.Jitter = 4
	e, err := embed.New(testdata.ModelDir(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	a, err := e.Embed(context.Background(), chips)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Embed(context.Background(), chips)
	if err != nil {
		t.Fatal(err)
	}
	for i := range chips {
		d := embed.Distance(&a[i].Vector, &want[i].Vector)
		if d == 0 || d > 0.2 {
			t.Errorf("chip %d: Distance(jittered, plain) = %g, want in (0, 0.2]", i, d)
		}
		if a[i].Vector != b[i].Vector {
			t.Errorf("chip %d: jittered descriptor differs between calls", i)
		}
	}
}
