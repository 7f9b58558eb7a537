package eval

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/embed"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/enroll"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/match"
)

// The real detector and embedder, loaded once per test binary (loading
// the ResNet takes a second); tests using them do not run in parallel.
var (
	recogOnce sync.Once
	recogDet  *detect.Still
	recogEmb  *embed.Embedder
	recogErr  error
)

func recognizer(t *testing.T) (*detect.Still, *embed.Embedder) {
	t.Helper()
	return recognizerTB(t)
}

func recognizerTB(t testing.TB) (*detect.Still, *embed.Embedder) {
	t.Helper()
	recogOnce.Do(func() {
		dir := testdata.ModelDir(t)
		recogDet, recogErr = detect.NewStill(dir, config.Defaults().Detect, detect.DefaultStillPolicy())
		if recogErr != nil {
			return
		}
		recogEmb, recogErr = embed.New(dir, config.Defaults().Embed)
	})
	if recogErr != nil {
		t.Fatalf("loading the recognition models: %v", recogErr)
	}
	return recogDet, recogEmb
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// splitSet copies a labelled directory's photos into enrol/ (the first
// keep photos of each identity) and returns the held-back ones.
func splitSet(t *testing.T, src, enrolDir string, keep int) map[string][]string {
	t.Helper()
	names, photos, err := enroll.IdentityPhotos(src)
	if err != nil {
		t.Fatal(err)
	}
	held := map[string][]string{}
	for _, who := range names {
		ps := photos[who]
		sort.Strings(ps)
		if err := os.MkdirAll(filepath.Join(enrolDir, who), 0o755); err != nil {
			t.Fatal(err)
		}
		for i, p := range ps {
			if i < keep {
				if err := os.WriteFile(filepath.Join(enrolDir, who, filepath.Base(p)), readFile(t, p), 0o644); err != nil {
					t.Fatal(err)
				}
			} else {
				held[who] = append(held[who], p)
			}
		}
	}
	return held
}

func testConfig() config.Match { return config.Defaults().Match }

// openGallery opens a gallery in a fresh temporary directory and checks
// its integrity when the test ends.
func openGallery(t testing.TB) *match.Gallery {
	t.Helper()
	dir := t.TempDir()
	g, err := match.OpenGallery(context.Background(), dir, match.GalleryOptions{})
	if err != nil {
		t.Fatalf("OpenGallery(%s) = %v", dir, err)
	}
	t.Cleanup(func() {
		if err := g.IntegrityCheck(context.Background()); err != nil {
			t.Errorf("IntegrityCheck() = %v, want nil", err)
		}
		g.Close()
	})
	return g
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed+1)) }

// randVec returns a synthetic descriptor: Gaussian, scaled so that two
// independent ones are about as far apart (~0.9) as two dlib descriptors
// of different people.
func randVec(rng *rand.Rand) match.Vector {
	var v match.Vector
	for i := range v {
		v[i] = float32(rng.NormFloat64() * 0.9 / math.Sqrt(2*match.Dim))
	}
	return v
}
