package embed_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/embed"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/face"
	"github.com/facewatch/facewatch/internal/testdata"
)

// refDetect is the detection configuration that matches go-face and dlib's
// example: HOG on the full frame, no upsampling, no size floor.
func refDetect() config.Detect {
	c := config.Defaults().Detect
	c.MaxWidth = 0
	c.MinFaceSize = 0
	c.Upsample = 0
	return c
}

// shared models, loaded once per test binary (they take a second to read).
var (
	sharedOnce sync.Once
	sharedDet  *detect.Detector
	sharedEmb  *embed.Embedder
	sharedErr  error
)

func pipeline(t testing.TB) (*detect.Detector, *embed.Embedder) {
	t.Helper()
	sharedOnce.Do(func() {
		dir := testdata.ModelDir(t)
		sharedDet, sharedErr = detect.New(dir, refDetect())
		if sharedErr != nil {
			return
		}
		sharedEmb, sharedErr = embed.New(dir, config.Defaults().Embed)
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedDet, sharedEmb
}

// pipeMu serialises users of the shared pipeline (a Detector and an
// Embedder are each for one goroutine at a time).
var pipeMu sync.Mutex

// facesIn runs our path on a file: decode, detect, embed.
func facesIn(t testing.TB, path string) ([]face.Face, []embed.Descriptor) {
	t.Helper()
	det, emb := pipeline(t)
	m, err := detect.DecodeFile(path, config.Defaults().Detect.MaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	pipeMu.Lock()
	defer pipeMu.Unlock()
	faces, err := det.Detect(context.Background(), m)
	if err != nil {
		t.Fatalf("Detect(%s): %v", filepath.Base(path), err)
	}
	chips := make([]face.Chip, len(faces))
	for i := range faces {
		chips[i] = faces[i].Chip
	}
	ds, err := emb.Embed(context.Background(), chips)
	if err != nil {
		t.Fatalf("Embed(%s): %v", filepath.Base(path), err)
	}
	return faces, ds
}

func idolPath(t testing.TB, name string) string {
	return testdata.Path(t, filepath.Join("go-face-testdata", "images", name))
}
