package enroll

import (
	"context"
	"errors"
	"image"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/embed"
	"github.com/facewatch/facewatch/internal/config"
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

// transformed re-encodes a real photo after an OpenCV operation (scaling,
// blurring): still a real face, made smaller or blurrier.
func transformed(t *testing.T, path string, op func(src gocv.Mat, dst *gocv.Mat)) []byte {
	t.Helper()
	src := gocv.IMRead(path, gocv.IMReadColor)
	if src.Empty() {
		t.Fatalf("reading %s with OpenCV failed", path)
	}
	defer src.Close()
	dst := gocv.NewMat()
	defer dst.Close()
	op(src, &dst)
	buf, err := gocv.IMEncode(gocv.JPEGFileExt, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...)
}

// TestEnrolRefusals enrols real photos that must be refused, each for its
// reason, and checks that nothing but the good photo reached the gallery.
func TestEnrolRefusals(t *testing.T) {
	ctx := context.Background()
	det, emb := recognizer(t)
	g := openGallery(t)
	mustList(t, g, "l")
	e := NewEnroller(g, det, emb, EnrollerOptions{Match: testConfig(), MaxPixels: config.Defaults().Detect.MaxPixels})

	good := testdata.Path(t, "compreface/009_C.jpg") // one frontal, sharp face of 150 px
	goodBytes := readFile(t, good)
	tests := []struct {
		name  string
		photo []byte
		want  RefusalReason // "" = enrolled
	}{
		{"no face", readFile(t, testdata.Path(t, "compreface/017_0.jpg")), RefuseNoFace},
		{"several faces", readFile(t, testdata.Path(t, "compreface/011_3.jpg")), RefuseSeveralFaces},
		{"group of eight", readFile(t, testdata.Path(t, "go-face-testdata/images/pristin.jpg")), RefuseSeveralFaces},
		{"too small", transformed(t, good, func(s gocv.Mat, d *gocv.Mat) {
			gocv.Resize(s, d, image.Point{}, 0.4, 0.4, gocv.InterpolationArea)
		}), RefuseTooSmall},
		{"too blurry", transformed(t, good, func(s gocv.Mat, d *gocv.Mat) {
			gocv.GaussianBlur(s, d, image.Point{}, 3, 3, gocv.BorderDefault)
		}), RefuseTooBlurry},
		{"turned away", readFile(t, testdata.Path(t, "go-face-testdata/images/eunseo2.jpg")), RefuseNotFrontal},
		{"truncated JPEG", goodBytes[:len(goodBytes)/2], RefuseUnreadable},
		{"GIF signature", []byte("GIF89a? no, plain text"), RefuseUnsupported},
		{"not an image", []byte("plain text, no image at all"), RefuseUnreadable},
		{"empty", nil, RefuseUnreadable},
		{"good", goodBytes, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.EnrolPhoto(ctx, "l", match.IdentitySpec{Name: "person C"}, tc.name+".jpg", tc.photo, "curator")
			var ref *Refusal
			if tc.want == "" {
				if err != nil || !res.Created {
					t.Fatalf("EnrolPhoto(%s) = %+v, %v; want enrolled", tc.name, res, err)
				}
				return
			}
			if !errors.As(err, &ref) || ref.Reason != tc.want {
				t.Fatalf("EnrolPhoto(%s) = %v, want refusal %q", tc.name, err, tc.want)
			}
			if ref.Photo != tc.name+".jpg" {
				t.Errorf("refusal names photo %q, want %q", ref.Photo, tc.name+".jpg")
			}
		})
	}
	// The same photo again is idempotent; as another person it is refused.
	first, err := e.EnrolPhoto(ctx, "l", match.IdentitySpec{Name: "person C"}, "again.jpg", goodBytes, "curator")
	if err != nil || first.Created {
		t.Errorf("EnrolPhoto(same photo) = %+v, %v; want the existing enrolment, not created", first, err)
	}
	_, err = e.EnrolPhoto(ctx, "l", match.IdentitySpec{Name: "someone else"}, "other.jpg", goodBytes, "curator")
	var ref *Refusal
	if !errors.As(err, &ref) || ref.Reason != RefuseDuplicate {
		t.Errorf("EnrolPhoto(same photo, other identity) = %v, want refusal %q", err, RefuseDuplicate)
	}
	ids, err := g.Identities(ctx, "l")
	if err != nil {
		t.Fatalf("Identities(l) = %v", err)
	}
	n := 0
	for _, id := range ids {
		n += id.Enrolments
	}
	if n != 1 {
		t.Errorf("enrolments after the refusals = %d, want 1", n)
	}
	if _, err := e.EnrolPhoto(ctx, "no-such-list", match.IdentitySpec{Name: "x"}, "x.jpg", goodBytes, "curator"); !errors.Is(err, match.ErrNotFound) {
		t.Errorf("EnrolPhoto(unknown list) = %v, want ErrNotFound", err)
	}
}

// TestEnrolWarnings: a photo of someone else enrolled under a name is
// flagged as closer to that other identity, and the same person enrolled
// on two lists is listed as a look-alike pair.
func TestEnrolWarnings(t *testing.T) {
	ctx := context.Background()
	det, emb := recognizer(t)
	g := openGallery(t)
	mustList(t, g, "a")
	mustList(t, g, "b")
	e := NewEnroller(g, det, emb, EnrollerOptions{Match: testConfig(), MaxPixels: config.Defaults().Detect.MaxPixels})
	photos := func(who string) []string {
		ps, _ := filepath.Glob(filepath.Join(testdata.Path(t, "dlib_johns/"+who), "*.jpg"))
		sort.Strings(ps)
		return ps
	}
	simm, salley := photos("John_Simm"), photos("John_Salley")
	enrol := func(list, who, path string) Enrolled {
		t.Helper()
		r, err := e.EnrolPhoto(ctx, list, match.IdentitySpec{Name: who}, filepath.Base(path), readFile(t, path), "curator")
		if err != nil {
			t.Fatalf("EnrolPhoto(%s as %s) = %v", filepath.Base(path), who, err)
		}
		return r
	}
	for _, p := range simm[:3] {
		if r := enrol("a", "Simm", p); r.Warning != "" {
			t.Errorf("EnrolPhoto(Simm's own photo) warning = %q, want none", r.Warning)
		}
	}
	for _, p := range salley[:3] {
		if r := enrol("a", "Salley", p); r.Warning != "" {
			t.Errorf("EnrolPhoto(Salley's own photo) warning = %q, want none", r.Warning)
		}
	}
	// A photo of Salley filed under Simm.
	r := enrol("a", "Simm", salley[5])
	if !strings.Contains(r.Warning, `closer to "Salley"`) {
		t.Errorf("EnrolPhoto(Salley's photo as Simm) warning = %q, want closer to Salley", r.Warning)
	}
	// Simm enrolled again on list b under another name: a first photo
	// that looks like someone already enrolled.
	r = enrol("b", "J. Simm", simm[6])
	if !strings.Contains(r.Warning, `looks like "Simm"`) {
		t.Errorf("EnrolPhoto(Simm as J. Simm on b) warning = %q, want looks like Simm", r.Warning)
	}
	x := match.NewIndex(testConfig(), match.IndexOptions{Gallery: g})
	if err := x.Load(ctx); err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for _, la := range x.LookAlikes(nil) {
		pairs = append(pairs, la.A.Identity+"~"+la.B.Identity)
	}
	sort.Strings(pairs)
	// Simm~J. Simm (the same man on two lists) and Simm~Salley (the
	// misfiled photo) are look-alikes; Salley~J. Simm is not.
	want := []string{"Simm~J. Simm", "Simm~Salley"}
	if strings.Join(pairs, ",") != strings.Join(want, ",") {
		t.Errorf("LookAlikes() = %v, want %v", pairs, want)
	}
}
