package enroll

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/match"
)

// BenchmarkEnrolPhotos enrols dlib's johns photos (150x150) one per
// iteration, with real detection, descriptors and SQLite writes.
func BenchmarkEnrolPhotos(b *testing.B) {
	ctx := context.Background()
	det, emb := recognizerTB(b)
	root := testdata.Path(b, "dlib_johns")
	photos, _ := filepath.Glob(filepath.Join(root, "*", "*.jpg"))
	sort.Strings(photos)
	data := make([][]byte, len(photos))
	for i, p := range photos {
		var err error
		if data[i], err = os.ReadFile(p); err != nil {
			b.Fatal(err)
		}
	}
	g, err := match.OpenGallery(ctx, b.TempDir(), match.GalleryOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	e := NewEnroller(g, det, emb, EnrollerOptions{Match: config.Defaults().Match, MaxPixels: config.Defaults().Detect.MaxPixels})
	round := 0
	i := 0
	for b.Loop() {
		if i%len(photos) == 0 {
			b.StopTimer()
			round++
			if _, err := g.CreateWatchlist(ctx, match.WatchlistSpec{Name: fmt.Sprint("round", round), Kind: match.KindOther, Owner: "bench", LegalBasis: "bench"}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		k := i % len(photos)
		who := filepath.Base(filepath.Dir(photos[k]))
		if _, err := e.EnrolPhoto(ctx, fmt.Sprint("round", round), match.IdentitySpec{Name: who}, photos[k], data[k], "bench"); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "photos/s")
}
