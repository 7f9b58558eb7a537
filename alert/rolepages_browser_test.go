package alert

// The role pages in a real headless Chromium (see browser_test.go): each
// role signs in through the sign-in form and sees only its pages; an
// investigator's search without a case reference is refused on the page;
// a curator enrols uploaded real photos (a group photo refused, one face
// enrolled) through the real detector and embedder; users scoped to one
// district never see another district's camera; no page raises a
// JavaScript error. One browser serves every subtest.

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/embed"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/curate"
	"github.com/facewatch/facewatch/internal/enroll"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/internal/wire"
)

// realRecognition loads the real still-photo detector and embedder.
func realRecognition(t *testing.T) curate.Recognition {
	return func() (enroll.FaceDetector, enroll.FaceEmbedder, func(), error) {
		dir := testdata.ModelDir(t)
		det, err := detect.NewStill(dir, config.Defaults().Detect, detect.DefaultStillPolicy())
		if err != nil {
			return nil, nil, nil, err
		}
		emb, err := embed.New(dir, config.Defaults().Embed)
		if err != nil {
			det.Close()
			return nil, nil, nil, err
		}
		return det, emb, func() { det.Close(); emb.Close() }, nil
	}
}

func TestRolePagesInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: not in -short mode")
	}
	group := testdata.DlibFace(t, "2007_007763.jpg") // seven people
	single := testdata.DlibFace(t, "Tom_Cruise_avp_2014_4.jpg")
	bona := []string{testdata.Path(t, "go-face-testdata/images/bona.jpg"), testdata.Path(t, "go-face-testdata/images/bona2.jpg")}

	dir := t.TempDir()
	ns := startNATS(t, filepath.Join(dir, "js"))
	nc, js := connectJS(t, ns.ClientURL())
	if err := natsbus.EnsureStreams(context.Background(), js, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	_, gapi := openGalleryAPI(t, filepath.Join(dir, "gallery"), realRecognition(t))
	cfg := testConfig()
	// Two districts: north has cam-1, south cam-0 and cam-2 (makeHit's
	// cameras are cam-<i%3>).
	cfg.CameraGroups = map[string][]string{"north": {"cam-1"}, "south": {"cam-0", "cam-2"}}
	photos := filepath.Join(dir, "photos") // the enrolled photo the operator's cards show
	if err := os.MkdirAll(photos, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(photos, rolePhoto+".jpg"), realJPEG(t, 5), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), filepath.Join(dir, "data"), cfg, Options{Gallery: gapi, PhotoDir: photos})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	runService(t, s, js)
	base := time.Now().Add(-2 * time.Hour)
	for i := 1; i <= 9; i++ {
		h, crop := makeHit(i, base)
		if _, err := s.Store(context.Background(), h, realJPEG(t, i%6)); err != nil || crop == nil {
			t.Fatal(err)
		}
	}
	// Every camera reports its health until the test ends.
	stopStatus := make(chan struct{})
	t.Cleanup(func() { close(stopStatus) })
	go func() { // ends when the test does
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			for i, cam := range []string{"cam-0", "cam-1", "cam-2"} {
				st := wire.CameraStatus{Version: wire.Version, Camera: cam, State: []string{"streaming", "streaming", "stalled"}[i], Since: base,
					FPSIn: 15, FPSOut: 5, FramesIn: 1000, Stalls: uint64(i), Drops: map[string]uint64{"busy": uint64(10 * i)}, LastFrame: time.Now()}
				if b, err := wire.EncodeCameraStatus(st); err == nil {
					nc.Publish(wire.StatusSubject(cam), b)
				}
			}
			select {
			case <-stopStatus:
				return
			case <-tick.C:
			}
		}
	}()
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	b := newBrowser(t)

	tok := func(role Role, person string, sc Scope) string {
		tk, err := scopedToken(s, role, person, sc)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	north := Scope{Groups: []string{"north"}}
	inv := tok(RoleInvestigator, "Ines Investigator", Scope{})
	invNorth := tok(RoleInvestigator, "Nils North", north)
	cur := tok(RoleCurator, "Cora Curator", Scope{})
	adm := tok(RoleAdmin, "Ada Admin", Scope{})
	integ := tok(RoleIntegrator, "Ivo Integrator", Scope{})
	integNorth := tok(RoleIntegrator, "Nora North", north)
	op := tok(RoleOperator, "Olga Operator", Scope{})
	// Refusals the test provokes: the sign-in page (401) and pages of
	// other roles (403).
	// A refused page is a JSON document, for which the browser asks for a
	// favicon too (the pages themselves name an empty one).
	for _, p := range []string{"/", "/console", "/investigator", "/curator", "/admin", "/integrator", "/favicon.ico"} {
		b.expect(p)
	}

	signIn := func(t *testing.T, token, wantPath string) {
		t.Helper()
		b.navigate(t, "open the sign-in page", chromedp.Navigate(srv.URL+"/"))
		b.do(t, "type the token", chromedp.WaitVisible(chromedp.CSS("#t")), chromedp.SendKeys(chromedp.CSS("#t"), token))
		if code := b.navigate(t, "sign in", chromedp.Click(chromedp.CSS("#go"))); code != 200 {
			t.Fatalf("signing in answered %d, want 200", code)
		}
		if got := eval[string](t, b, `location.pathname`); got != wantPath {
			t.Fatalf("signed in at %s, want %s", got, wantPath)
		}
	}
	nav := func(t *testing.T) string {
		t.Helper()
		b.do(t, "wait for the page", chromedp.WaitVisible(chromedp.CSS("#nav a")), poll(`document.body.dataset.ready === "1"`))
		return eval[string](t, b, `[...document.querySelectorAll('#nav a')].map(a => a.getAttribute('href')).join(' ')`)
	}
	// refused checks that every page but the role's own is refused.
	refused := func(t *testing.T, own ...string) {
		t.Helper()
		for _, p := range []string{"/console", "/investigator", "/curator", "/admin", "/integrator"} {
			if strings.Contains(" "+strings.Join(own, " ")+" ", " "+p+" ") {
				continue
			}
			if code := b.navigate(t, "open "+p, chromedp.Navigate(srv.URL+p)); code != 403 {
				t.Errorf("GET %s = %d, want 403 for this role", p, code)
			}
		}
	}
	signOut := func(t *testing.T, page string) {
		t.Helper()
		b.navigate(t, "back to "+page, chromedp.Navigate(srv.URL+page))
		// The navigation is built, and the sign-out button wired, once the
		// page knows who is signed in.
		b.do(t, "wait for the page", chromedp.WaitVisible(chromedp.CSS("#nav a")))
		if code := b.navigate(t, "sign out", chromedp.Click(chromedp.CSS("#signout"))); code != 401 {
			t.Errorf("after signing out the browser got %d, want 401 with the sign-in page", code)
		}
		b.do(t, "see the sign-in form", chromedp.WaitVisible(chromedp.CSS("#t")))
	}
	// noOtherDistrict fails when the page names a camera outside north.
	noOtherDistrict := func(t *testing.T, where string) {
		t.Helper()
		html := eval[string](t, b, `document.documentElement.outerHTML`)
		for _, cam := range []string{"cam-0", "cam-2"} {
			if strings.Contains(html, cam) {
				t.Errorf("%s shows %s, a camera outside the user's district", where, cam)
			}
		}
	}

	t.Run("investigator", func(t *testing.T) {
		signIn(t, inv, "/investigator")
		if got := nav(t); got != "/investigator" {
			t.Errorf("investigator's navigation = %q, want /investigator only", got)
		}
		b.do(t, "search without a case reference", chromedp.Click(chromedp.CSS("#search-go")),
			poll(`document.getElementById('search-msg').textContent !== ""`))
		if msg := eval[string](t, b, `document.getElementById('search-msg').textContent`); !strings.Contains(msg, "case reference is required") {
			t.Errorf("search without a case reference says %q, want a refusal naming the case reference", msg)
		}
		if n := eval[int](t, b, `document.querySelectorAll('#results tbody tr').length`); n != 0 {
			t.Errorf("a search without a case reference shows %d results, want none", n)
		}
		b.shot(t, "investigator-no-case")
		b.do(t, "search with a case reference", chromedp.SendKeys(chromedp.CSS("#case"), "INC-2026-0147"), chromedp.Click(chromedp.CSS("#search-go")),
			poll(`document.querySelectorAll('#results tbody tr').length === 9`))
		if tm := eval[string](t, b, `document.querySelector('#results tbody time').textContent`); !strings.Contains(tm, browserZoneName) {
			t.Errorf("result time %q does not name its zone %s", tm, browserZoneName)
		}
		b.do(t, "open a person's timeline", chromedp.Click(chromedp.CSS("#results tbody a.person")),
			poll(`!document.getElementById('timeline-card').hidden && document.querySelectorAll('#timeline li').length > 0`))
		// The evidence bundle and the CSV export download with the session.
		for _, sel := range []string{`#results a[download]`, `#export-csv`} {
			got := eval[string](t, b, `fetch(document.querySelector('`+sel+`').href).then(r => r.status + " " + r.headers.get('content-type'))`, chromedp.EvalAwaitPromise)
			if !strings.HasPrefix(got, "200 ") {
				t.Errorf("download %s = %s, want 200", sel, got)
			}
		}
		b.shot(t, "investigator")
		refused(t, "/investigator")
		signOut(t, "/investigator")
	})

	t.Run("scoped investigator sees one district", func(t *testing.T) {
		signIn(t, invNorth, "/investigator")
		nav(t)
		b.do(t, "search the history", chromedp.SendKeys(chromedp.CSS("#case"), "INC-2026-0147"), chromedp.Click(chromedp.CSS("#search-go")),
			poll(`document.querySelectorAll('#results tbody tr').length > 0 && document.getElementById('search-msg').textContent === ""`))
		if cams := eval[string](t, b, `[...new Set([...document.querySelectorAll('#results tbody tr')].map(r => r.dataset.camera))].join(' ')`); cams != "cam-1" {
			t.Errorf("scoped investigator's results are from cameras %q, want cam-1 only", cams)
		}
		b.do(t, "open a timeline", chromedp.Click(chromedp.CSS("#results tbody a.person")), poll(`document.querySelectorAll('#timeline li').length > 0`))
		noOtherDistrict(t, "the scoped investigator's page")
		b.shot(t, "investigator-scoped")
		signOut(t, "/investigator")
	})

	t.Run("curator", func(t *testing.T) {
		signIn(t, cur, "/curator")
		if got := nav(t); got != "/curator" {
			t.Errorf("curator's navigation = %q, want /curator only", got)
		}
		b.do(t, "create a watchlist",
			chromedp.SendKeys(chromedp.CSS("#nl-name"), "wanted-north"), chromedp.SendKeys(chromedp.CSS("#nl-owner"), "Unit 4"),
			chromedp.SendKeys(chromedp.CSS("#nl-basis"), "warrant 2026/88"), chromedp.Click(chromedp.CSS("#nl-go")),
			poll(`document.querySelector('#lists tr[data-list="wanted-north"]') !== null`))
		enrol := func(what, who, path, want string) string {
			eval[bool](t, b, `(document.getElementById('enrol-identity').value = '', document.getElementById('enrol-result').className = 'result', true)`)
			b.do(t, "enrol "+what, chromedp.SendKeys(chromedp.CSS("#enrol-identity"), who),
				chromedp.SetUploadFiles(chromedp.CSS("#enrol-photo"), []string{path}), chromedp.Click(chromedp.CSS("#enrol-go")),
				poll(`document.getElementById('enrol-result').className.includes('`+want+`')`, chromedp.WithPollingTimeout(60*time.Second)))
			return eval[string](t, b, `document.getElementById('enrol-result').textContent`)
		}
		b.expect("/photos") // the group photo's refusal is a 422 by design
		if msg := enrol("a group photo", "Tom", group, "error"); !strings.Contains(msg, "several faces") {
			t.Errorf("group photo upload says %q, want it refused for several faces", msg)
		}
		b.shot(t, "curator-refused")
		if msg := enrol("one face", "Tom", single, "ok"); !strings.Contains(msg, `enrolled as "Tom"`) {
			t.Errorf("single-face upload says %q, want it enrolled as Tom", msg)
		}
		for _, p := range bona {
			if msg := enrol(filepath.Base(p), "Bona", p, "ok"); !strings.Contains(msg, "enrolled") {
				t.Errorf("upload %s says %q, want enrolled", p, msg)
			}
		}
		b.do(t, "count the enrolments", poll(`document.querySelector('#lists tr[data-list="wanted-north"] td:nth-child(8)').textContent === "3"`))
		b.do(t, "evaluate", chromedp.Click(chromedp.CSS("#eval-go")),
			poll(`!document.getElementById('eval-report').hidden && document.getElementById('eval-plot').complete && document.getElementById('eval-plot').naturalWidth > 0`, chromedp.WithPollingTimeout(60*time.Second)))
		b.shot(t, "curator")
		refused(t, "/curator")
		signOut(t, "/curator")
	})

	t.Run("admin", func(t *testing.T) {
		signIn(t, adm, "/admin")
		if got := nav(t); got != "/admin" {
			t.Errorf("admin's navigation = %q, want /admin only", got)
		}
		b.do(t, "verify the audit log", chromedp.Click(chromedp.CSS("#verify-go")), poll(`document.getElementById('verify-result').textContent !== ""`))
		if msg := eval[string](t, b, `document.getElementById('verify-result').textContent`); !strings.HasPrefix(msg, "Intact") {
			t.Errorf("audit verification says %q, want Intact", msg)
		}
		b.do(t, "issue a token", chromedp.SendKeys(chromedp.CSS("#nt-person"), "Pia Patrol"), chromedp.SendKeys(chromedp.CSS("#nt-scope"), "group:north"),
			chromedp.Click(chromedp.CSS("#nt-go")), poll(`document.getElementById('nt-token').value.startsWith('fwt_')`))
		b.do(t, "see the new token listed", poll(`document.getElementById('nt-msg').textContent.startsWith('Issued')`))
		if n := eval[int](t, b, `[...document.querySelectorAll('#tokens td')].filter(td => td.textContent === 'Pia Patrol').length`); n != 1 {
			t.Errorf("the token list shows Pia Patrol %d times after issuing her token, want once", n)
		}
		if got := eval[string](t, b, `document.querySelector('#retention dd[data-key="alerts"]').textContent`); got != cfg.Retention.String() {
			t.Errorf("retention shown = %q, want %s", got, cfg.Retention)
		}
		b.shot(t, "admin")
		refused(t, "/admin")
		signOut(t, "/admin")
	})

	t.Run("integrator", func(t *testing.T) {
		signIn(t, integ, "/integrator")
		if got := nav(t); got != "/integrator" {
			t.Errorf("integrator's navigation = %q, want /integrator only", got)
		}
		b.do(t, "see every camera", poll(`document.querySelectorAll('#cameras tbody tr').length === 3 && document.querySelector('#cameras tr[data-camera="cam-2"] .state').textContent.startsWith('stalled')`))
		b.shot(t, "integrator")
		refused(t, "/integrator")
		signOut(t, "/integrator")
	})

	t.Run("scoped integrator sees one district", func(t *testing.T) {
		signIn(t, integNorth, "/integrator")
		nav(t)
		b.do(t, "see the district's camera", poll(`document.querySelectorAll('#cameras tbody tr').length === 1 && document.querySelector('#cameras tr[data-camera="cam-1"]') !== null`))
		noOtherDistrict(t, "the scoped integrator's page")
		b.shot(t, "integrator-scoped")
		signOut(t, "/integrator")
	})

	t.Run("operator", func(t *testing.T) {
		signIn(t, op, "/console")
		pages := eval[string](t, b, `fetch('/api/v1/whoami').then(r => r.json()).then(w => w.pages.map(p => p.path).join(' '))`,
			chromedp.EvalAwaitPromise)
		if pages != "/console" {
			t.Errorf("operator's pages = %q, want /console only", pages)
		}
		refused(t, "/console")
	})

	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the pages reported JavaScript or loading errors: %q", errs)
	}
}
