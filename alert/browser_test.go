package alert

// Browser tests: the console driven in a real headless Chromium (Debian's
// chromium package, installed by scripts/setup.sh) through the DevTools
// protocol with chromedp, against a real alert service (SQLite files in a
// temporary directory, an embedded NATS server with JetStream).
//
// FACEWATCH_CHROMIUM names the browser (default: chromium on PATH);
// FACEWATCH_ARTIFACTS is where screenshots go (default: the test's
// temporary directory, removed afterwards).

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"maps"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/wire"
)

// browserPath finds Chromium or skips the test saying why.
func browserPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FACEWATCH_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium on PATH (scripts/setup.sh installs Debian's chromium; or set FACEWATCH_CHROMIUM): browser tests not run")
	return ""
}

// artifacts is the directory screenshots are written to.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FACEWATCH_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	dir = filepath.Join(dir, "browser", t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("creating artefact directory: %v", err)
	}
	return dir
}

// realJPEG is a decodable JPEG of one colour, distinct per i.
func realJPEG(t *testing.T, i int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	c := color.RGBA{uint8(40 * i), uint8(200 - 30*i), 120, 255}
	for y := range 64 {
		for x := range 64 {
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// browser is one headless Chromium tab with what its pages reported.
type browser struct {
	ctx context.Context
	dir string

	mu       sync.Mutex
	problems []string        // JavaScript exceptions, console errors, failed loads
	expected map[string]bool // URL paths whose refusal the test provokes or the design returns
}

// browserZone is the time zone the browser runs in; browserZoneName is how
// its times name it (en-US short form).
const (
	browserZone     = "Asia/Tokyo"
	browserZoneName = "GMT+9"
)

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browserPath(t)), chromedp.WindowSize(1280, 900))
	if os.Geteuid() == 0 {
		// Chromium refuses to start its sandbox as root (it needs an
		// unprivileged user for its namespaces), as tests in containers
		// run; the pages it opens here are this test's own.
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &browser{dir: artifacts(t), expected: map[string]bool{}}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(b.listen))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b.ctx = ctx
	// Start the browser (with no timeout: it would stop the browser) and
	// have it report its log entries (failed loads, CSP violations).
	// The browser's zone is fixed so that the page's times can be checked.
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, cdplog.Enable, cdp.Empty{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: browserZone})
		return err
	})); err != nil {
		t.Fatalf("starting %s: %v", browserPath(t), err)
	}
	return b
}

func (b *browser) listen(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		b.problems = append(b.problems, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, msg))
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			b.problems = append(b.problems, "console."+string(ev.Type)+": "+strings.Join(args, " "))
		}
	case *cdplog.EventEntryAdded:
		e := ev.Entry
		if e.Level != cdplog.EntryLevelError {
			return
		}
		if e.Source == cdplog.EntrySourceNetwork {
			for p := range b.expected {
				if strings.HasSuffix(e.URL, p) {
					return
				}
			}
		}
		b.problems = append(b.problems, fmt.Sprintf("log %s: %s (%s)", e.Source, e.Text, e.URL))
	}
}

// expect declares a refused load of a URL ending in path as intended.
func (b *browser) expect(path string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expected[path] = true
}

func (b *browser) errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.problems)
}

// do runs steps with a deadline, failing the test with what as context.
func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.shot(t, "failed-"+strings.ReplaceAll(what, " ", "-"))
		t.Fatalf("%s: %v (page problems: %v)", what, err, b.errors())
	}
}

// navigate runs steps that load a page (a link, a form) and waits for it,
// returning the HTTP status of the document.
func (b *browser) navigate(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, steps...)
	if err != nil {
		b.shot(t, "failed-"+strings.ReplaceAll(what, " ", "-"))
		t.Fatalf("%s: %v (page problems: %v)", what, err, b.errors())
	}
	return resp.Status
}

func eval[T any](t *testing.T, b *browser, expr string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// shot saves a full-page screenshot as name.png in the artefact directory.
func (b *browser) shot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(b.dir, name+".png"), png, 0o644); err != nil {
		t.Errorf("writing screenshot %s: %v", name, err)
	}
}

// cookies returns the browser's cookies for url by name.
func (b *browser) cookies(t *testing.T, url string) map[string]*network.Cookie {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	res, err := chromedp.Run(ctx, chromedp.Action[network.GetCookiesResult](func(ctx context.Context, tg *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
	}))
	if err != nil {
		t.Fatalf("reading the browser's cookies: %v", err)
	}
	out := map[string]*network.Cookie{}
	for _, c := range res.Cookies {
		out[c.Name] = c
	}
	return out
}

// press types one letter key as a keyboard does: one keyDown carrying its
// text (so that a handler's preventDefault keeps it out of a text box, as
// in a real browser; chromedp.KeyEvent sends the text as a separate char
// event no handler can cancel), then keyUp.
func press(letter rune) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		k := string(letter)
		code := "Key" + strings.ToUpper(k)
		vk := int64(unicode.ToUpper(letter))
		if _, err := cdp.Call(ctx, tg, input.DispatchKeyEvent, input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Key: k, Code: code, Text: k, UnmodifiedText: k, WindowsVirtualKeyCode: vk}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, input.DispatchKeyEvent, input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyUp, Key: k, Code: code, WindowsVirtualKeyCode: vk})
		return err
	})
}

// poll waits until the JavaScript expression is truthy.
func poll(expr string, opts ...chromedp.PollOption) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, append([]chromedp.PollOption{chromedp.WithPollingTimeout(25 * time.Second)}, opts...)...)
}

// TestConsoleInBrowser signs in through the page (a wrong token first),
// then works the console: a hit published over NATS appears without a
// reload, is confirmed from the page, a state change without the CSRF
// token is refused, sign-out ends the session; the session token is never
// readable by the page's scripts and the pages raise no JavaScript error.
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: not in -short mode")
	}
	dir := t.TempDir()
	ns := startNATS(t, filepath.Join(dir, "js"))
	_, js := connectJS(t, ns.ClientURL())
	if err := natsbus.EnsureStreams(context.Background(), js, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	photos := filepath.Join(dir, "photos")
	enrolledSum := strings.Repeat("cd", 32) // what makeHit names
	if err := os.MkdirAll(photos, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(photos, enrolledSum+".jpg"), realJPEG(t, 5), 0o644); err != nil {
		t.Fatal(err)
	}
	s := openService(t, filepath.Join(dir, "data"), Options{PhotoDir: photos})
	runService(t, s, js)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	b := newBrowser(t) // after the server: closed before it, ending its live feed
	op := mustPersonToken(t, s, RoleOperator, "Olga Operator", "desk", time.Hour)
	waitFor(t, 10*time.Second, "readyz", func() bool {
		resp, _ := do(t, srv, "GET", "/readyz", op, nil)
		return resp.StatusCode == 200
	})
	// The sign-in page is a 401 by design, and so is the refused sign-in.
	b.expect("/console")
	b.expect("/signin")

	t.Run("wrong token shows a message", func(t *testing.T) {
		if code := b.navigate(t, "open the console", chromedp.Navigate(srv.URL+"/console")); code != 401 {
			t.Errorf("GET /console signed out = %d, want 401 with the sign-in page", code)
		}
		b.do(t, "find the sign-in form", chromedp.WaitVisible(chromedp.CSS("#t")))
		b.shot(t, "signin")
		b.do(t, "type a wrong token", chromedp.SendKeys(chromedp.CSS("#t"), "fwt_"+strings.Repeat("Z", 43)))
		if code := b.navigate(t, "sign in with a wrong token", chromedp.Click(chromedp.CSS("#go"))); code != 401 {
			t.Errorf("sign-in with a wrong token answered %d, want 401", code)
		}
		msg := eval[string](t, b, `document.getElementById('msg').textContent`)
		if !strings.Contains(msg, "unknown or has been revoked") {
			t.Errorf("sign-in message = %q, want it to say the token is unknown or revoked", msg)
		}
		b.shot(t, "signin-refused")
	})

	t.Run("operator signs in", func(t *testing.T) {
		b.do(t, "type the operator's token", chromedp.WaitVisible(chromedp.CSS("#t")), chromedp.SendKeys(chromedp.CSS("#t"), op))
		if code := b.navigate(t, "sign in as operator", chromedp.Click(chromedp.CSS("#go"))); code != 200 {
			t.Errorf("console after signing in answered %d, want 200", code)
		}
		b.do(t, "console goes live",
			poll(`document.getElementById('st') && document.getElementById('st').textContent === 'live'`),
			poll(`document.getElementById('who').textContent.indexOf('operator') >= 0`))
		if c := eval[string](t, b, `document.cookie`); strings.Contains(c, op) || strings.Contains(c, tokenCookie) {
			t.Errorf("document.cookie = %q, want the session token out of the page's reach", c)
		}
		if h := eval[string](t, b, `document.documentElement.outerHTML`); strings.Contains(h, op) {
			t.Error("the console page contains the session token")
		}
		c := b.cookies(t, srv.URL+"/console")[tokenCookie]
		if c == nil {
			t.Fatalf("browser holds no %s cookie after signing in", tokenCookie)
		}
		if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict {
			t.Errorf("session cookie HttpOnly=%v SameSite=%q, want HttpOnly and Strict", c.HTTPOnly, c.SameSite)
		}
		b.shot(t, "console-empty")
	})

	base := time.Now().UTC()
	publish := func(i int) wire.Hit {
		h, _ := makeHit(i, base)
		crop := realJPEG(t, i)
		h.CropLen = len(crop)
		publishHit(t, js, h, crop)
		return h
	}

	t.Run("live alert without reload", func(t *testing.T) {
		eval[bool](t, b, `window.__noReload = true`)
		h := publish(1)
		b.do(t, "wait for the new-alerts bar", poll(`!document.getElementById('newbar').hidden && document.getElementById('shownew').textContent.indexOf('1 new') === 0`))
		b.shot(t, "console-new-bar")
		if eval[bool](t, b, `document.querySelector('section.card[data-id="1"]') !== null`) {
			t.Error("a new alert was inserted before the operator took it from the bar")
		}
		b.do(t, "take the new alert", chromedp.Click(chromedp.CSS("#shownew")),
			poll(`document.querySelector('section.card[data-id="1"]') !== null && document.getElementById('newbar').hidden`))
		text := eval[string](t, b, `document.querySelector('section.card[data-id="1"]').textContent`)
		for _, want := range []string{h.IdentityName, h.Camera, h.Watchlist, browserZoneName} {
			if !strings.Contains(text, want) {
				t.Errorf("card of alert 1 lacks %q: %s", want, text)
			}
		}
		if !eval[bool](t, b, `window.__noReload === true`) {
			t.Error("the page reloaded to show the alert, want it live")
		}
		b.do(t, "wait for the card's images", poll(`Array.from(document.querySelectorAll('section.card[data-id="1"] img')).every(function (i) { return i.complete && i.naturalWidth > 0; })`))
		b.shot(t, "console-live-alert")
	})

	t.Run("confirm from the page", func(t *testing.T) {
		b.do(t, "confirm alert 1",
			chromedp.SendKeys(chromedp.CSS(`section.card[data-id="1"] textarea`), "matches the photo"),
			chromedp.Click(chromedp.CSS(`section.card[data-id="1"] button.confirm`)),
			poll(`document.querySelector('section.card[data-id="1"]').classList.contains('confirmed')`))
		a, err := s.getAlert(context.Background(), s.db.r, 1)
		if err != nil {
			t.Fatal(err)
		}
		if a.Status != StatusConfirmed {
			t.Errorf("alert 1 status after Confirm on the page = %s, want confirmed", a.Status)
		}
		var who, decision, comment string
		if err := s.db.r.QueryRow(`SELECT reviewer_name, decision, comment FROM reviews WHERE alert_id = 1`).Scan(&who, &decision, &comment); err != nil {
			t.Fatalf("reading the review of alert 1: %v", err)
		}
		if who != "Olga Operator" || decision != "confirm" || comment != "matches the photo" {
			t.Errorf("review of alert 1 = %q %q %q, want Olga Operator confirm %q", who, decision, comment, "matches the photo")
		}
		if n := auditCount(t, s, "review"); n != 1 {
			t.Errorf("review audit entries = %d, want 1", n)
		}
		// The precision panel counts the review at once on alert 1's camera
		// (makeHit(1) is on cam-1; the panel used to wait
		// up to a minute).
		b.do(t, "precision panel counts the confirmation", poll(`Array.prototype.some.call(document.querySelectorAll('#prect tr'), function (tr) {
			return tr.cells[0].textContent === 'cam-1' && tr.cells[1].textContent === '1'; })`, chromedp.WithPollingTimeout(5*time.Second)))
		b.shot(t, "console-confirmed")
	})

	t.Run("state change without CSRF token refused", func(t *testing.T) {
		publish(2)
		b.do(t, "wait for alert 2", poll(`!document.getElementById('newbar').hidden`), chromedp.Click(chromedp.CSS("#shownew")),
			poll(`document.querySelector('section.card[data-id="2"]') !== null`))
		b.expect("/api/v1/alerts/2/review")
		code := eval[int](t, b, `fetch('/api/v1/alerts/2/review', {method: 'POST', credentials: 'same-origin',
			headers: {'Content-Type': 'application/json'}, body: JSON.stringify({decision: 'confirm', comment: 'forged'})}).then(function (r) { return r.status; })`,
			chromedp.EvalAwaitPromise)
		if code != 403 {
			t.Errorf("cookie-only POST review from page script = %d, want 403", code)
		}
		a, err := s.getAlert(context.Background(), s.db.r, 2)
		if err != nil {
			t.Fatal(err)
		}
		if a.Status != StatusPending {
			t.Errorf("alert 2 after a refused forged review = %s, want pending", a.Status)
		}
	})

	t.Run("new alert waits while typing", func(t *testing.T) {
		ta := `section.card[data-id="2"] textarea`
		b.do(t, "type a comment on alert 2", chromedp.Click(chromedp.CSS(ta)), chromedp.SendKeys(chromedp.CSS(ta), "looking at the"))
		top := eval[float64](t, b, `document.querySelector('section.card[data-id="2"]').getBoundingClientRect().top`)
		publish(3)
		b.do(t, "wait for the bar", poll(`!document.getElementById('newbar').hidden && document.getElementById('shownew').textContent.indexOf('1 new') === 0`))
		if got := eval[float64](t, b, `document.querySelector('section.card[data-id="2"]').getBoundingClientRect().top`); got != top {
			t.Errorf("card 2 moved from y=%v to y=%v when alert 3 arrived, want it still", top, got)
		}
		if eval[bool](t, b, `document.querySelector('section.card[data-id="3"]') !== null`) {
			t.Error("alert 3 was inserted while the operator typed, want it in the bar")
		}
		if got := eval[string](t, b, `document.activeElement === document.querySelector('`+ta+`') ? document.activeElement.value : 'focus lost'`); got != "looking at the" {
			t.Errorf("comment box of alert 2 = %q, want the typing undisturbed", got)
		}
		b.shot(t, "console-new-bar-while-typing")
		b.do(t, "take alert 3", chromedp.Click(chromedp.CSS("#shownew")), poll(`document.querySelector('section.card[data-id="3"]') !== null`))
		if !eval[bool](t, b, `!!(document.querySelector('section.card[data-id="3"]').compareDocumentPosition(document.querySelector('section.card[data-id="2"]')) & Node.DOCUMENT_POSITION_FOLLOWING)`) {
			t.Error("alert 3 taken from the bar is not above the older alert 2")
		}
	})

	t.Run("keyboard", func(t *testing.T) {
		// Cards newest first: 3 and 2 await review (2 has a comment typed).
		b.do(t, "j selects alert 3, d asks for a comment",
			press('j'),
			poll(`document.querySelector('section.card.sel') === document.querySelector('section.card[data-id="3"]')`),
			press('d'),
			poll(`document.activeElement === document.querySelector('section.card[data-id="3"] textarea')`))
		if msg := eval[string](t, b, `document.querySelector('section.card[data-id="3"] .err').textContent`); !strings.Contains(msg, "Ctrl+Enter to dismiss") {
			t.Errorf("message on d without a comment = %q, want it to ask for a comment and Ctrl+Enter", msg)
		}
		b.shot(t, "console-keyboard-comment")
		b.do(t, "type a comment and send with Ctrl+Enter",
			chromedp.KeyEvent("not the person"),
			chromedp.KeyEvent("\r", chromedp.KeyModifiers(chromedp.ModifierCtrl)),
			poll(`document.querySelector('section.card[data-id="3"]').classList.contains('dismissed')`))
		b.do(t, "j moves to alert 2, c confirms it with its typed comment",
			press('j'),
			poll(`document.querySelector('section.card[data-id="2"]').classList.contains('sel')`),
			press('c'),
			poll(`document.querySelector('section.card[data-id="2"]').classList.contains('confirmed')`))
		for _, c := range []struct {
			id      int64
			want    Status
			comment string
		}{{3, StatusDismissed, "not the person"}, {2, StatusConfirmed, "looking at the"}} {
			a, err := s.getAlert(context.Background(), s.db.r, c.id)
			if err != nil {
				t.Fatal(err)
			}
			if a.Status != c.want || len(a.Reviews) != 1 || a.Reviews[0].Comment != c.comment {
				t.Errorf("alert %d after the keyboard = %s %+v, want %s with comment %q", c.id, a.Status, a.Reviews, c.want, c.comment)
			}
		}
	})

	t.Run("first reviewer awaits the second", func(t *testing.T) {
		h, _ := makeHit(4, base)
		h.SecondReviewer = true
		crop := realJPEG(t, 4)
		h.CropLen = len(crop)
		publishHit(t, js, h, crop)
		b.do(t, "take alert 4", poll(`!document.getElementById('newbar').hidden`), chromedp.Click(chromedp.CSS("#shownew")),
			poll(`document.querySelector('section.card[data-id="4"] button.confirm') !== null`))
		b.do(t, "first review of alert 4",
			chromedp.SendKeys(chromedp.CSS(`section.card[data-id="4"] textarea`), "first look: same person"),
			chromedp.Click(chromedp.CSS(`section.card[data-id="4"] button.confirm`)),
			poll(`document.querySelector('section.card[data-id="4"]').classList.contains('awaiting_second')`))
		check := func(when string) {
			text := eval[string](t, b, `document.querySelector('section.card[data-id="4"]').textContent`)
			if !strings.Contains(text, "awaiting second reviewer") {
				t.Errorf("%s: card 4 of its first reviewer lacks \"awaiting second reviewer\": %s", when, text)
			}
			if eval[bool](t, b, `document.querySelector('section.card[data-id="4"] button') !== null`) {
				t.Errorf("%s: the first reviewer is still offered Confirm/Dismiss on alert 4", when)
			}
		}
		check("after reviewing")
		if code := b.navigate(t, "reload the console", chromedp.Reload()); code != 200 {
			t.Errorf("console reload = %d, want 200", code)
		}
		b.do(t, "alert 4 after reload", poll(`document.querySelector('section.card[data-id="4"]') !== null`))
		check("after a reload")
		b.shot(t, "console-awaiting-second")
		a, err := s.getAlert(context.Background(), s.db.r, 4)
		if err != nil {
			t.Fatal(err)
		}
		if a.Status != StatusAwaitingSecond {
			t.Errorf("alert 4 after one review = %s, want awaiting_second", a.Status)
		}
	})

	// publishImages publishes hit i (makeHit) with a scene and an enrolled
	// face, at priority prio; it returns the hit.
	publishImages := func(i, prio int) wire.Hit {
		h, _ := makeHit(i, base)
		h.Priority = prio
		data, err := wire.EncodeHitImages(h, wire.HitImages{Crop: realJPEG(t, i), Scene: sceneJPEG(t, h.Box), EnrolledChip: realJPEG(t, 6)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := js.Publish(ctx, wire.HitsSubject(h.Watchlist), data, jetstream.WithMsgID(h.ID)); err != nil {
			t.Fatalf("publishing hit %s: %v", h.ID, err)
		}
		return h
	}
	// Every card's box on the page, by incident id.
	rects := func() map[string][2]float64 {
		return eval[map[string][2]float64](t, b, `(function () { var o = {}; document.querySelectorAll('section.card').forEach(function (c) {
			var r = c.getBoundingClientRect(); o[c.dataset.id] = [r.top, r.height]; }); return o; })()`)
	}
	stored := func(hitID string) Alert {
		var id int64
		if err := s.db.r.QueryRow(`SELECT id FROM alerts WHERE hit_id = ?`, hitID).Scan(&id); err != nil {
			t.Fatalf("alert of hit %s: %v", hitID, err)
		}
		a, err := s.getAlert(context.Background(), s.db.r, id)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}

	t.Run("incident gains sightings in place", func(t *testing.T) {
		// Hit 5 is person-1 on the wanted list again, 4 s after hit 1, on
		// another camera (cam-2): incident 1's second sighting. Incident 1
		// was decided, so the page (reloaded since) no longer shows it: it
		// comes back through the bar, whole.
		h5 := publishImages(5, 1)
		b.do(t, "incident 1 waits in the bar", poll(`!document.getElementById('newbar').hidden && document.getElementById('shownew').textContent.indexOf('1 new incident') === 0`))
		if a := stored(h5.ID); a.Incident != 1 {
			t.Fatalf("hit 5 stored in incident %d, want 1", a.Incident)
		}
		b.do(t, "take incident 1", chromedp.Click(chromedp.CSS("#shownew")),
			poll(`document.querySelectorAll('section.card[data-id="1"] .timeline li').length === 2`))
		text := eval[string](t, b, `document.querySelector('section.card[data-id="1"]').textContent`)
		for _, want := range []string{"2 sightings on cam-1, cam-2", "pending", "confirmed"} {
			if !strings.Contains(text, want) {
				t.Errorf("card 1 with its second sighting lacks %q: %s", want, text)
			}
		}
		// The operator types on incident 1 while a third sighting arrives.
		ta := `section.card[data-id="1"] textarea`
		b.do(t, "type on incident 1", chromedp.Click(chromedp.CSS(ta)), chromedp.SendKeys(chromedp.CSS(ta), "same man, second"))
		before := rects()
		h9 := publishImages(9, 1) // person-1, wanted, cam-0
		b.do(t, "incident 1 shows its third sighting", poll(`document.querySelectorAll('section.card[data-id="1"] .timeline li').length === 3`))
		if after := rects(); !maps.Equal(before, after) {
			t.Errorf("cards moved or changed size while typing when incident 1 gained a sighting: before %v, after %v", before, after)
		}
		if eval[bool](t, b, `!document.getElementById('newbar').hidden`) {
			t.Error("a sighting of an incident on the page went to the new bar, want it on its card")
		}
		if got := eval[string](t, b, `document.activeElement === document.querySelector('`+ta+`') ? document.activeElement.value : 'focus lost'`); got != "same man, second" {
			t.Errorf("comment box of incident 1 = %q, want the typing undisturbed", got)
		}
		b.do(t, "the scene and faces load", poll(`(function () { var i = document.querySelector('section.card[data-id="1"] .scene img');
			return i && i.complete && i.naturalWidth === 640 && Array.from(document.querySelectorAll('section.card[data-id="1"] img')).every(function (i) { return i.complete && i.naturalWidth > 0; }); })()`))
		if src := eval[string](t, b, `document.querySelector('section.card[data-id="1"] figure.face:nth-of-type(3) img').getAttribute('src')`); !strings.HasSuffix(src, "/enrolled-face") {
			t.Errorf("enrolled tile shows %q, want the enrolled face (…/enrolled-face)", src)
		}
		b.do(t, "scroll incident 1 into view", chromedp.ScrollIntoView(chromedp.CSS(`section.card[data-id="1"]`)))
		b.elementShot(t, "console-incident-scene", `section.card[data-id="1"]`)
		b.do(t, "confirm incident 1", chromedp.SendKeys(chromedp.CSS(ta), " camera"),
			chromedp.Click(chromedp.CSS(`section.card[data-id="1"] button.confirm`)),
			poll(`document.querySelector('section.card[data-id="1"]').classList.contains('confirmed')`))
		for _, h := range []wire.Hit{h5, h9} {
			a := stored(h.ID)
			if a.Status != StatusConfirmed || len(a.Reviews) != 1 || a.Reviews[0].Comment != "same man, second camera" {
				t.Errorf("sighting %s after confirming incident 1 = %s %+v, want confirmed with the comment", h.ID, a.Status, a.Reviews)
			}
			var n int
			s.db.r.QueryRow(`SELECT COUNT(*) FROM audit WHERE action = 'review' AND target = ? AND detail LIKE '%"incident":1%'`, fmt.Sprintf("alert/%d", a.ID)).Scan(&n)
			if n != 1 {
				t.Errorf("review audit entries of sighting %d naming incident 1 = %d, want 1", a.ID, n)
			}
		}
	})

	t.Run("priority colours and sound", func(t *testing.T) {
		if eval[string](t, b, `document.getElementById('sound').textContent`) != "sound: off" {
			t.Error("sound is not off by default")
		}
		b.do(t, "turn the sound on", chromedp.Click(chromedp.CSS("#sound")), poll(`document.getElementById('sound').textContent === 'sound: on'`))
		publishImages(6, 90) // person-2, missing: incident 2, a high-priority list now
		b.do(t, "incident 2 comes back with a high-priority sighting", poll(`!document.getElementById('newbar').hidden`), chromedp.Click(chromedp.CSS("#shownew")),
			poll(`document.querySelectorAll('section.card[data-id="2"] .timeline li').length === 2`))
		if got := eval[string](t, b, `document.body.dataset.beeps`); got != "1" {
			t.Errorf("tones after a high-priority sighting = %s, want 1", got)
		}
		if !eval[bool](t, b, `document.querySelector('section.card[data-id="2"]').classList.contains('prio-high')`) {
			t.Error("card 2 of a priority-90 list lacks its high-priority colour (prio-high)")
		}
		colour := eval[string](t, b, `getComputedStyle(document.querySelector('section.card[data-id="2"] .prio')).backgroundColor`)
		if colour != "rgb(204, 0, 0)" {
			t.Errorf("priority badge of a high-priority card = %s, want red rgb(204, 0, 0)", colour)
		}
		publishImages(10, 20) // person-2 again, a low priority
		b.do(t, "incident 2 gains a low-priority sighting", poll(`document.querySelectorAll('section.card[data-id="2"] .timeline li').length === 3`))
		if got := eval[string](t, b, `document.body.dataset.beeps`); got != "1" {
			t.Errorf("tones after a low-priority sighting = %s, want still 1", got)
		}
		b.do(t, "turn the sound off", chromedp.Click(chromedp.CSS("#sound")), poll(`document.getElementById('sound').textContent === 'sound: off'`))
		b.shot(t, "console-priority")
	})

	t.Run("refused review says why", func(t *testing.T) {
		// Another operator decides incident 2 behind this page's back.
		vera := mustPersonToken(t, s, RoleOperator, "Vera Other", "desk 3", time.Hour)
		if resp, body := do(t, srv, "POST", "/api/v1/incidents/2/review", vera, []byte(`{"decision":"dismiss","comment":"not him"}`)); resp.StatusCode != 200 {
			t.Fatalf("Vera's review of incident 2 = %d %s", resp.StatusCode, body)
		}
		b.expect("/api/v1/incidents/2/review")
		b.do(t, "confirm incident 2 on the page",
			chromedp.SendKeys(chromedp.CSS(`section.card[data-id="2"] textarea`), "looks like him"),
			chromedp.Click(chromedp.CSS(`section.card[data-id="2"] button.confirm`)),
			poll(`!document.getElementById('msg').hidden`))
		msg := eval[string](t, b, `document.getElementById('msg').textContent`)
		if !strings.Contains(msg, "Refused: already decided") || !strings.Contains(msg, "no sighting of this incident awaits review") {
			t.Errorf("message of a refused review = %q, want it to say it was refused and why", msg)
		}
		// The card then shows the incident as it is: Vera dismissed the two
		// open sightings, the first stays confirmed.
		b.do(t, "card 2 shows Vera's decision", poll(`document.querySelector('section.card[data-id="2"]').classList.contains('mixed')`))
		b.shot(t, "console-refused")
	})

	t.Run("sign out", func(t *testing.T) {
		if code := b.navigate(t, "sign out", chromedp.Click(chromedp.CSS("#out"))); code != 401 {
			t.Errorf("console after signing out answered %d, want 401 with the sign-in page", code)
		}
		b.do(t, "sign-in form after sign-out", chromedp.WaitVisible(chromedp.CSS("#t")))
		if n := auditCount(t, s, "sign_out"); n != 1 {
			t.Errorf("sign_out audit entries = %d, want 1", n)
		}
		if c := b.cookies(t, srv.URL+"/console"); c[tokenCookie] != nil {
			t.Errorf("browser still holds %s after signing out", tokenCookie)
		}
		b.shot(t, "signed-out")
	})

	t.Run("second reviewer confirms", func(t *testing.T) {
		bruno := mustPersonToken(t, s, RoleOperator, "Bruno Second", "desk 2", time.Hour)
		b.do(t, "type the second operator's token", chromedp.SendKeys(chromedp.CSS("#t"), bruno))
		if code := b.navigate(t, "sign in as the second operator", chromedp.Click(chromedp.CSS("#go"))); code != 200 {
			t.Errorf("console after signing in = %d, want 200", code)
		}
		b.do(t, "alert 4 offered to the second reviewer", poll(`document.querySelector('section.card[data-id="4"] button.confirm') !== null`))
		if text := eval[string](t, b, `document.querySelector('section.card[data-id="4"]').textContent`); !strings.Contains(text, "first review: Olga Operator") {
			t.Errorf("card 4 for the second reviewer does not name the first: %s", text)
		}
		b.shot(t, "console-second-reviewer")
		b.do(t, "second review of alert 4",
			chromedp.SendKeys(chromedp.CSS(`section.card[data-id="4"] textarea`), "agreed"),
			chromedp.Click(chromedp.CSS(`section.card[data-id="4"] button.confirm`)),
			poll(`document.querySelector('section.card[data-id="4"]').classList.contains('confirmed')`))
		a, err := s.getAlert(context.Background(), s.db.r, 4)
		if err != nil {
			t.Fatal(err)
		}
		if a.Status != StatusConfirmed || len(a.Reviews) != 2 || a.Reviews[1].ReviewerName != "Bruno Second" {
			t.Errorf("alert 4 = %s with %d reviews, want confirmed by Olga Operator then Bruno Second", a.Status, len(a.Reviews))
		}
	})

	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the pages reported %d problems, want none:\n%s", len(errs), strings.Join(errs, "\n"))
	}
}

// elementShot saves a screenshot of the element sel as name.png.
func (b *browser) elementShot(t *testing.T, name, sel string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(sel)))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(b.dir, name+".png"), png, 0o644); err != nil {
		t.Errorf("writing screenshot %s: %v", name, err)
	}
}

// sceneJPEG is a 640x360 street-like scene with a face-sized figure at
// box and the green box the detect stage draws around it.
func sceneJPEG(t *testing.T, box wire.Box) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 640, 360))
	for y := range 360 {
		for x := range 640 {
			img.Set(x, y, color.RGBA{uint8(90 + y/6), uint8(100 + y/8), uint8(120 + x/16), 255})
		}
	}
	r := image.Rect(box.X+200, box.Y+100, box.X+200+box.W, box.Y+100+box.H)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.Set(x, y, color.RGBA{205, 170, 140, 255})
		}
	}
	green := color.RGBA{0, 255, 0, 255}
	for d := range 3 {
		for x := r.Min.X - d; x <= r.Max.X+d; x++ {
			img.Set(x, r.Min.Y-d, green)
			img.Set(x, r.Max.Y+d, green)
		}
		for y := r.Min.Y - d; y <= r.Max.Y+d; y++ {
			img.Set(r.Min.X-d, y, green)
			img.Set(r.Max.X+d, y, green)
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
