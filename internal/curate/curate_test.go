package curate_test

// The curator API through the alert service's real router: a real gallery
// with audit keys in a temporary directory, the real detector and
// embedder, real photos (the shared data set and Debian's dlib example
// faces), and a curator's token.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"image"
	"image/color"
	"image/gif"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/alert"
	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/embed"
	"github.com/facewatch/facewatch/internal/audit"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/curate"
	"github.com/facewatch/facewatch/internal/enroll"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/match"
)

// The real models, loaded once per test binary.
var (
	recogOnce sync.Once
	recogDet  *detect.Still
	recogEmb  *embed.Embedder
	recogErr  error
	// loads counts the calls of Recognition (from the server's goroutines).
	loads atomic.Int32
)

func recognition(t *testing.T) curate.Recognition {
	return func() (enroll.FaceDetector, enroll.FaceEmbedder, func(), error) {
		recogOnce.Do(func() {
			dir := testdata.ModelDir(t)
			if recogDet, recogErr = detect.NewStill(dir, config.Defaults().Detect, detect.DefaultStillPolicy()); recogErr != nil {
				return
			}
			recogEmb, recogErr = embed.New(dir, config.Defaults().Embed)
		})
		loads.Add(1)
		return recogDet, recogEmb, func() {}, recogErr
	}
}

// fixture is an alert service whose curator routes are served by a
// curate.API over a real gallery.
type fixture struct {
	srv     *httptest.Server
	g       *match.Gallery
	curator string // a curator's token
	dir     string
	api     *curate.API
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	gdir := filepath.Join(dir, "data")
	keys, err := audit.LoadKeys(filepath.Join(dir, "audit"), gdir)
	if err != nil {
		t.Fatal(err)
	}
	g, err := match.OpenGallery(context.Background(), gdir, match.GalleryOptions{Audit: keys, Actor: audit.Actor{ID: "system:test", Name: "test", Role: "system"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	api := curate.New(curate.Options{Gallery: g, Match: config.Defaults().Match, MaxPixels: config.Defaults().Detect.MaxPixels, Recognition: recognition(t)})
	t.Cleanup(api.Close)
	s, err := alert.Open(context.Background(), gdir, config.Defaults().Alert, alert.Options{Gallery: api, AuditDir: filepath.Join(dir, "audit")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	tok, _, err := s.CreateToken(context.Background(), audit.Actor{ID: "os:test", Name: "test", Role: "local"},
		alert.TokenSpec{Role: alert.RoleCurator, Person: "Cora Curator", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, g: g, curator: tok, dir: gdir, api: api}
}

func (f *fixture) call(t *testing.T, method, path, ctype string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.curator)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// upload enrols photo (file name name) as identity of list.
func (f *fixture) upload(t *testing.T, list, identity, name string, photo []byte) (int, curate.EnrolResult) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("identity", identity)
	fw, _ := mw.CreateFormFile("photo", name)
	fw.Write(photo)
	mw.Close()
	code, out := f.call(t, "POST", "/api/v1/watchlists/"+list+"/photos", mw.FormDataContentType(), b.Bytes())
	var res curate.EnrolResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("enrolment answer %s: %v", out, err)
	}
	return code, res
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// shrunk is a real photo scaled down with OpenCV: the same face, smaller.
func shrunk(t *testing.T, path string, f float64) []byte {
	t.Helper()
	src := gocv.IMRead(path, gocv.IMReadColor)
	if src.Empty() {
		t.Fatalf("reading %s failed", path)
	}
	defer src.Close()
	dst := gocv.NewMat()
	defer dst.Close()
	gocv.Resize(src, &dst, image.Point{}, f, f, gocv.InterpolationArea)
	buf, err := gocv.IMEncode(gocv.JPEGFileExt, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...)
}

func gifPhoto(t *testing.T) []byte {
	t.Helper()
	img := image.NewPaletted(image.Rect(0, 0, 64, 64), []color.Color{color.White, color.Black})
	var b bytes.Buffer
	if err := gif.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestWatchlistAPI creates, lists, changes and deletes watchlists as a
// curator: each rule of `facewatch watchlist` holds over HTTP, and each
// change is in the gallery's audit log under the curator's name.
func TestWatchlistAPI(t *testing.T) {
	f := newFixture(t)
	create := []struct {
		name string
		body string
		code int
	}{
		{"created", `{"name":"north-missing","kind":"missing","owner":"Unit 4","legal_basis":"court order 2026/17","threshold":0.5,"expires":"720h"}`, 201},
		{"name in use", `{"name":"north-missing","kind":"missing","owner":"Unit 4","legal_basis":"court order 2026/17"}`, 409},
		{"unknown kind", `{"name":"x1","kind":"suspects","owner":"Unit 4","legal_basis":"order"}`, 400},
		{"no legal basis", `{"name":"x2","kind":"wanted","owner":"Unit 4","legal_basis":" "}`, 400},
		{"no owner", `{"name":"x3","kind":"wanted","owner":"","legal_basis":"order"}`, 400},
		{"bad expiry", `{"name":"x4","kind":"wanted","owner":"Unit 4","legal_basis":"order","expires":"soon"}`, 400},
		{"name with a dot", `{"name":"a.b","kind":"wanted","owner":"Unit 4","legal_basis":"order"}`, 400},
		{"threshold out of range", `{"name":"x5","kind":"wanted","owner":"Unit 4","legal_basis":"order","threshold":3}`, 400},
		{"misspelt field", `{"name":"x6","kind":"wanted","owner":"Unit 4","legal_basis":"order","treshold":0.4}`, 400},
	}
	for _, tc := range create {
		t.Run("create/"+tc.name, func(t *testing.T) {
			code, out := f.call(t, "POST", "/api/v1/watchlists", "application/json", []byte(tc.body))
			if code != tc.code {
				t.Errorf("POST /api/v1/watchlists %s = %d %s, want %d", tc.body, code, out, tc.code)
			}
		})
	}
	l, err := f.g.Watchlist(context.Background(), "north-missing")
	if err != nil || l.Owner != "Unit 4" || l.LegalBasis != "court order 2026/17" || l.Threshold != 0.5 || l.Expires.IsZero() {
		t.Fatalf("gallery watchlist = %+v, %v; want the one created", l, err)
	}
	if lists, _ := f.g.Watchlists(context.Background()); len(lists) != 1 {
		t.Errorf("gallery has %d watchlists after one good create, want 1", len(lists))
	}
	update := []struct {
		name string
		body string
		code int
		want float64
	}{
		{"threshold", `{"threshold":0.45}`, 200, 0.45},
		{"threshold out of range", `{"threshold":2.5}`, 400, 0.45},
		{"nothing", `{}`, 400, 0.45},
		{"expiry", `{"expires":"2099-01-02"}`, 200, 0.45},
	}
	for _, tc := range update {
		t.Run("update/"+tc.name, func(t *testing.T) {
			code, out := f.call(t, "PATCH", "/api/v1/watchlists/north-missing", "application/json", []byte(tc.body))
			if code != tc.code {
				t.Errorf("PATCH %s = %d %s, want %d", tc.body, code, out, tc.code)
			}
			if l, _ := f.g.Watchlist(context.Background(), "north-missing"); l.Threshold != tc.want {
				t.Errorf("threshold after PATCH %s = %v, want %v", tc.body, l.Threshold, tc.want)
			}
		})
	}
	if l, _ := f.g.Watchlist(context.Background(), "north-missing"); l.Expires.Year() != 2099 {
		t.Errorf("expiry after PATCH = %v, want 2099-01-02", l.Expires)
	}
	if code, out := f.call(t, "GET", "/api/v1/watchlists", "", nil); code != 200 || !bytes.Contains(out, []byte(`"legal_basis": "court order 2026/17"`)) {
		t.Errorf("GET /api/v1/watchlists = %d %s, want the list with its legal basis", code, out)
	}
	if code, out := f.call(t, "DELETE", "/api/v1/watchlists/north-missing", "", nil); code != 200 {
		t.Errorf("DELETE = %d %s, want 200", code, out)
	}
	if code, _ := f.call(t, "GET", "/api/v1/watchlists/north-missing", "", nil); code != 404 {
		t.Errorf("GET a deleted watchlist = %d, want 404", code)
	}
	// One create, two updates and one delete, each by the curator.
	got := auditByActor(t, f.dir, "Cora Curator")
	want := []string{"watchlist_create", "watchlist_threshold", "watchlist_expire", "watchlist_delete"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("gallery audit entries by Cora Curator = %v, want %v", got, want)
	}
}

// auditByActor lists the gallery audit log's actions by actor name, in
// order, read straight from the database file.
func auditByActor(t *testing.T, dataDir, name string) []string {
	t.Helper()
	db, err := sql.Open("sqlite3", filepath.Join(dataDir, match.GalleryFile)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT action FROM audit WHERE actor_name = ? ORDER BY seq`, name)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// TestEnrolUpload enrols uploaded real photos: each photo that cannot be
// enrolled is refused (422) with its reason in one line and nothing
// reaches the gallery; a single clear face is enrolled, the same photo
// again is not enrolled twice, a second person who looks like the first
// brings a look-alike warning, and the evaluation reads the enrolments.
func TestEnrolUpload(t *testing.T) {
	f := newFixture(t)
	if code, out := f.call(t, "POST", "/api/v1/watchlists", "application/json",
		[]byte(`{"name":"wanted","kind":"wanted","owner":"Unit 4","legal_basis":"warrant 88"}`)); code != 201 {
		t.Fatalf("creating the watchlist = %d %s", code, out)
	}
	tom := testdata.DlibFace(t, "Tom_Cruise_avp_2014_4.jpg")
	tomBytes := readFile(t, tom)
	refusals := []struct {
		name, file string
		photo      []byte
		reason     enroll.RefusalReason
	}{
		{"group photo", "group.jpg", readFile(t, testdata.DlibFace(t, "2007_007763.jpg")), enroll.RefuseSeveralFaces},
		{"no face", "empty-room.jpg", readFile(t, testdata.Path(t, "compreface/017_0.jpg")), enroll.RefuseNoFace},
		{"too small", "small.jpg", shrunk(t, tom, 0.15), enroll.RefuseTooSmall},
		{"corrupt", "cut.jpg", tomBytes[:len(tomBytes)/3], enroll.RefuseUnreadable},
		{"unsupported format", "face.gif", gifPhoto(t), enroll.RefuseUnsupported},
		{"empty file", "nothing.jpg", nil, enroll.RefuseUnreadable},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			code, res := f.upload(t, "wanted", "Tom", tc.file, tc.photo)
			if code != http.StatusUnprocessableEntity || res.Refused != string(tc.reason) {
				t.Fatalf("upload %s = %d %+v, want 422 refused %q", tc.name, code, res, tc.reason)
			}
			if !strings.HasPrefix(res.Message, "refused: "+string(tc.reason)) || strings.Contains(res.Message, "\n") {
				t.Errorf("upload %s message = %q, want one line starting %q", tc.name, res.Message, "refused: "+string(tc.reason))
			}
		})
	}
	if ids, _ := f.g.Identities(context.Background(), "wanted"); len(ids) != 0 {
		t.Fatalf("after refusals only, the list holds %d identities, want 0 (a refused photo creates nobody)", len(ids))
	}
	code, res := f.upload(t, "wanted", "Tom", "tom.jpg", tomBytes)
	if code != http.StatusCreated || res.Enrolled == nil || !res.Enrolled.Created || res.Enrolled.Identity != "Tom" {
		t.Fatalf("upload of one clear face = %d %+v, want 201 enrolled as Tom", code, res)
	}
	if code, res := f.upload(t, "wanted", "Tom", "tom-again.jpg", tomBytes); code != http.StatusOK || res.Enrolled == nil || res.Enrolled.Created {
		t.Errorf("the same photo again = %d %+v, want 200 already enrolled", code, res)
	}
	if code, res := f.upload(t, "wanted", "Bea", "bea.jpg", readFile(t, testdata.Path(t, "compreface/007_B.jpg"))); code != http.StatusCreated {
		t.Fatalf("upload of Bea = %d %+v, want 201", code, res)
	}
	for _, p := range []string{"bona.jpg", "bona2.jpg"} {
		if code, res := f.upload(t, "wanted", "Bona", p, readFile(t, testdata.Path(t, "go-face-testdata/images/"+p))); code != http.StatusCreated || res.Enrolled.Warning != "" {
			t.Fatalf("upload %s as Bona = %d %+v, want 201 without a warning", p, code, res)
		}
	}
	// A third photo of the same person as someone new: a look-alike.
	code, res = f.upload(t, "wanted", "Bona Twin", "bona3.jpg", readFile(t, testdata.Path(t, "go-face-testdata/images/bona3.jpg")))
	if code != http.StatusCreated || res.Enrolled.Warning == "" || len(res.LookAlikes) == 0 {
		t.Fatalf("upload of the same person as Bona Twin = %d %+v, want 201 with a look-alike warning", code, res)
	}
	if la := res.LookAlikes[0]; !(la.A.Identity == "Bona" && la.B.Identity == "Bona Twin" || la.A.Identity == "Bona Twin" && la.B.Identity == "Bona") {
		t.Errorf("look-alike pair = %s and %s, want Bona and Bona Twin", la.A.Identity, la.B.Identity)
	}
	if got := auditByActor(t, f.dir, "Cora Curator"); strings.Count(strings.Join(got, ","), "enrol") != 5 {
		t.Errorf("gallery audit entries by Cora Curator = %v, want the five enrolments among them", got)
	}
	if n := loads.Load(); n != 1 {
		t.Errorf("recognition models loaded %d times, want once (on the first upload)", n)
	}
	code, out := f.call(t, "GET", "/api/v1/eval", "", nil)
	var raw map[string]any
	if err := json.Unmarshal(out, &raw); code != 200 || err != nil {
		t.Fatalf("GET /api/v1/eval = %d %.300s", code, out)
	}
	if raw["identities"] != 4.0 || raw["descriptors"] != 5.0 || raw["genuine_pairs"] != 1.0 {
		t.Errorf("eval report counts = %v identities, %v descriptors, %v genuine pairs; want 4, 5, 1", raw["identities"], raw["descriptors"], raw["genuine_pairs"])
	}
	// The gallery's audit log, with every change above, verifies.
	if rep, err := f.api.VerifyAudit(context.Background()); err != nil || rep.Entries < 10 {
		t.Errorf("VerifyAudit() = %d entries, %v; want the gallery's log intact with the changes above", rep.Entries, err)
	}
	if code, png := f.call(t, "GET", "/api/v1/eval/plot", "", nil); code != 200 || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("GET /api/v1/eval/plot = %d, %d bytes; want a PNG", code, len(png))
	}
}
