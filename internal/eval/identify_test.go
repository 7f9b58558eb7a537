package eval

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/enroll"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/match"
)

// TestIdentifyRealPhotos enrols dlib's johns and face-api's Big Bang
// Theory cast from some of their photos, evaluates the whole labelled set
// to get the recommended threshold for the gallery's size, and checks that
// the held-back photos are identified and that people who are not enrolled
// get no name at that threshold.
func TestIdentifyRealPhotos(t *testing.T) {
	ctx := context.Background()
	det, emb := recognizer(t)
	maxPx := config.Defaults().Detect.MaxPixels

	// The labelled set: both collections side by side.
	all := t.TempDir()
	enrolDir := t.TempDir()
	held := map[string][]string{}
	for _, src := range []struct {
		dir  string
		keep int
	}{{"dlib_johns", 6}, {"faceapi_bbt", 3}} {
		for who, ps := range splitSet(t, testdata.Path(t, src.dir), enrolDir, src.keep) {
			held[who] = ps
		}
		splitSet(t, testdata.Path(t, src.dir), all, 1000)
	}

	// Evaluate, and take the threshold recommended for this gallery size.
	set, refused, err := LabelledDir(ctx, det, emb, all, maxPx, nil)
	if err != nil {
		t.Fatalf("LabelledDir() = %v", err)
	}
	if len(set.Identities) != 13 || len(refused) > 2 {
		t.Fatalf("LabelledDir() = %d identities, %d refused (%v); want 13 and at most 2", len(set.Identities), len(refused), refused)
	}
	rep, err := Evaluate(set, EvalOptions{TargetFPIR: 0.01, GallerySizes: []int{len(set.Identities)}})
	if err != nil {
		t.Fatal(err)
	}
	rec, ok := rep.Recommend(len(set.Identities))
	if !ok || rec.Threshold <= 0 || rec.Threshold >= 1 {
		t.Fatalf("Recommend(%d) = %+v, %v", len(set.Identities), rec, ok)
	}
	t.Logf("eval: EER %.3f at %.3f; recommended threshold for %d identities at FPIR %.2g: %.3f (extrapolated %v, FNIR %.3f)",
		rep.EER, rep.EERThreshold, rec.GallerySize, rep.TargetFPIR, rec.Threshold, rec.Extrapolated, rec.FNIR)

	g := openGallery(t)
	if _, err := g.CreateWatchlist(ctx, match.WatchlistSpec{Name: "cast", Kind: match.KindOther, Owner: "curator", LegalBasis: "test", Threshold: rec.Threshold}); err != nil {
		t.Fatal(err)
	}
	e := enroll.NewEnroller(g, det, emb, enroll.EnrollerOptions{Match: testConfig(), MaxPixels: maxPx})
	dr, err := e.EnrolDir(ctx, "cast", enrolDir, "curator", nil)
	if err != nil {
		t.Fatalf("EnrolDir() = %v", err)
	}
	if dr.Identities != 13 || len(dr.Enrolled) < 50 {
		t.Fatalf("EnrolDir() = %d identities, %d photos, refused %v; want 13 identities, most of 54 photos", dr.Identities, len(dr.Enrolled), dr.Refused)
	}
	for _, la := range dr.LookAlikes {
		t.Logf("look-alike: %s ~ %s at %.3f", la.A.Identity, la.B.Identity, la.Distance)
	}

	x := match.NewIndex(testConfig(), match.IndexOptions{Gallery: g})
	if err := x.Load(ctx); err != nil {
		t.Fatal(err)
	}
	// Identification detects as `facewatch identify` does: with the
	// still-photo policy, as enrolment does.
	idDet := det
	identify := func(path string) (match.Decision, bool) {
		faces, err := enroll.Faces(ctx, idDet, emb, filepath.Base(path), readFile(t, path), maxPx)
		if err != nil || len(faces) != 1 {
			t.Logf("%s: %d faces, %v", path, len(faces), err)
			return match.Decision{}, false
		}
		d, err := x.DecideTrack([]match.Probe{faces[0].Probe()}, match.SearchOptions{Watchlists: []string{"cast"}})
		if err != nil {
			t.Fatalf("DecideTrack(%s) = %v", path, err)
		}
		return d, true
	}
	right, total := 0, 0
	for who, ps := range held {
		for _, p := range ps {
			d, ok := identify(p)
			if !ok {
				continue
			}
			total++
			switch {
			case d.Identity == who:
				right++
			case d.Matched:
				t.Errorf("held-back %s identified as %q at %.3f, want %q", filepath.Base(p), d.Identity, d.Distance, who)
			default:
				t.Logf("held-back %s of %s: no name (%s)", filepath.Base(p), who, d.Reason)
			}
		}
	}
	if total < 38 || float64(right) < 0.9*float64(total) {
		t.Errorf("held-back photos identified: %d of %d, want at least 90%% of at least 38", right, total)
	}
	t.Logf("held-back photos identified: %d of %d", right, total)

	// Strangers: people on no list.
	var strangers []string
	for _, p := range []string{"compreface/007_B.jpg", "compreface/008_B.jpg", "compreface/009_C.jpg"} {
		strangers = append(strangers, testdata.Path(t, p))
	}
	idolPhotos, _ := filepath.Glob(filepath.Join(testdata.Path(t, "go-face-testdata/images"), "*.jpg"))
	for _, p := range idolPhotos {
		if fi, err := os.Stat(p); err == nil && fi.Size() < 300<<10 { // the smaller photos keep the test fast
			strangers = append(strangers, p)
		}
	}
	checked := 0
	for _, p := range strangers {
		d, ok := identify(p)
		if !ok {
			continue
		}
		checked++
		if d.Matched {
			t.Errorf("stranger %s named %q at %.3f (threshold %.3f)", filepath.Base(p), d.Identity, d.Distance, d.Threshold)
		}
	}
	if checked < 10 {
		t.Errorf("only %d strangers had one face, want at least 10", checked)
	}
	t.Logf("strangers checked: %d", checked)
}
