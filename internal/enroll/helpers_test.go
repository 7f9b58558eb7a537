package enroll

import (
	"context"
	"testing"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/match"
)

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

func mustList(t *testing.T, g *match.Gallery, name string) match.Watchlist {
	t.Helper()
	w, err := g.CreateWatchlist(context.Background(), match.WatchlistSpec{Name: name, Kind: match.KindMissing, Owner: "curator", LegalBasis: "test order 1"})
	if err != nil {
		t.Fatalf("CreateWatchlist(%q) = %v", name, err)
	}
	return w
}
