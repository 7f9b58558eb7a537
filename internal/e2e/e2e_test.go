package e2e

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/alert"
	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/embed"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/face"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/rtsptest"
	"github.com/facewatch/facewatch/internal/synthcam"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/internal/wire"
	"github.com/facewatch/facewatch/match"
)

// Clip parameters: lean enough for a 2-core machine. The clip plays at
// 25 fps like a real camera and the camera stage samples it at 5 fps.
// (At 5 fps FFmpeg's stream probing, which wants about 20 frames, would
// hold the open for 4 s.)
const (
	width, height, fps = 640, 360, 25
	sampleFPS          = 5
	cameraID           = "gate-1"
	watchlist          = "missing"
	// frameInterval is the interval between frames the pipeline looks at:
	// the tolerance on an alert's time.
	frameInterval = time.Second / sampleFPS
)

var (
	bin      string // the built facewatch binary
	clipOnce sync.Once
	clip     *rtsptest.Clip
	scenario synthcam.Scenario
	truth    synthcam.Truth
	clipErr  error
	workDir  string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "facewatch-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workDir = dir
	bin = filepath.Join(dir, "facewatch")
	// go test puts its own toolchain's bin directory first on PATH.
	gobin := "go"
	build := exec.Command(gobin, "build", "-buildvcs=false", "-o", bin, "github.com/facewatch/facewatch/cmd/facewatch")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building facewatch:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// loadClip renders the standard scenario once for every test.
func loadClip(t *testing.T) {
	t.Helper()
	clipOnce.Do(func() {
		scenario, clipErr = synthcam.Johns(testdata.SharedDir(), width, height, fps)
		if clipErr != nil {
			return
		}
		scenario.Script.Background = testdata.OpenCV(t, "vtest.avi")
		file := filepath.Join(workDir, "clip.h264")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if truth, clipErr = synthcam.Render(ctx, scenario.Script, file); clipErr != nil {
			return
		}
		clip, clipErr = rtsptest.LoadClip(file, fps)
	})
	if clipErr != nil {
		t.Fatal(clipErr)
	}
}

// camServer serves the clip once, from the first reader's play, and
// records when each frame was sent: the ground truth in wall-clock time.
type camServer struct {
	srv  *rtsptest.Server
	path *rtsptest.Path
	url  string
	mu   sync.Mutex
	sent map[int]time.Time // frame index in the clip → when it was sent
}

func serveClip(t *testing.T) *camServer {
	t.Helper()
	loadClip(t)
	return serveClipOf(t, clip)
}

// serveClipOf serves clp once, as serveClip serves the standard clip.
func serveClipOf(t *testing.T, clp *rtsptest.Clip) *camServer {
	t.Helper()
	c := &camServer{sent: map[int]time.Time{}}
	srv, err := rtsptest.Start(context.Background(), rtsptest.Options{Sources: []rtsptest.Source{{
		Name: "cam", Clip: clp, StartOnPlay: true,
		OnFrame: func(ev rtsptest.FrameEvent) {
			c.mu.Lock()
			c.sent[ev.Index] = ev.Sent
			c.mu.Unlock()
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c.srv, c.path, c.url = srv, srv.Path("cam"), srv.URL("cam")
	return c
}

// window is the wall-clock span in which an appearance was on screen:
// from the send of its first frame to one (sampled) frame interval after
// its last.
func (c *camServer) window(a synthcam.Appearance) (time.Time, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent[a.FirstFrame], c.sent[a.LastFrame].Add(frameInterval)
}

// lag is how long after the latest frame sent at or before t it is: the
// delay between the server sending a frame and facewatch stamping it.
func (c *camServer) lag(t time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	best := time.Duration(-1)
	for _, s := range c.sent {
		if d := t.Sub(s); d >= 0 && (best < 0 || d < best) {
			best = d
		}
	}
	return best
}

// enrolA enrols the scenario's person A from the enrolment photo into a
// watchlist of the gallery under dataDir, and returns A's descriptor.
func enrolA(t testing.TB, dataDir string) embed.Vector {
	t.Helper()
	return enrol(t, dataDir, map[string]string{scenario.Enrolled: scenario.EnrolPhoto})[scenario.Enrolled]
}

// enrol enrols each person (name → photo) into the watchlist.
func enrol(t testing.TB, dataDir string, people map[string]string) map[string]embed.Vector {
	t.Helper()
	ctx := context.Background()
	dir := testdata.ModelDir(t)
	cfg := config.Defaults()
	det, err := detect.New(dir, cfg.Detect)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	emb, err := embed.New(dir, cfg.Embed)
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	g, err := match.OpenGallery(ctx, dataDir, match.GalleryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.CreateWatchlist(ctx, match.WatchlistSpec{Name: watchlist, Kind: match.KindMissing, Priority: 1, Owner: "e2e", LegalBasis: "test"}); err != nil {
		t.Fatal(err)
	}
	out := map[string]embed.Vector{}
	for name, path := range people {
		photo, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		m, err := detect.Decode(photo, cfg.Detect.MaxPixels)
		if err != nil {
			t.Fatal(err)
		}
		faces, err := det.Detect(ctx, m)
		m.Close()
		if err != nil || len(faces) != 1 {
			t.Fatalf("enrolment photo %s: %d faces, %v; want one", path, len(faces), err)
		}
		descs, err := emb.Embed(ctx, []face.Chip{faces[0].Chip})
		if err != nil {
			t.Fatal(err)
		}
		id, _, err := g.EnsureIdentity(ctx, watchlist, match.IdentitySpec{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		var chip strings.Builder
		img, err := chipImage(faces[0].Chip)
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(&chip, img); err != nil {
			t.Fatal(err)
		}
		d := descs[0]
		if _, _, err := g.AddEnrolment(ctx, match.NewEnrolment{
			IdentityID: id.ID, Photo: photo, PhotoExt: ".jpg", ChipPNG: []byte(chip.String()), Vector: match.Vector(d.Vector),
			Model: match.ModelID{Name: d.Model.Name, SHA256: d.Model.SHA256}, Quality: faces[0].Quality.Score, EnrolledBy: "e2e",
		}); err != nil {
			t.Fatal(err)
		}
		out[name] = d.Vector
	}
	return out
}

// proc is one facewatch process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
	mu   sync.Mutex
	out  []string // stdout lines
}

// start runs bin with args, logging to a file that is shown if the test
// fails.
func start(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	return startCmd(t, name, exec.Command(bin, args...))
}

// startBin is start with another binary (the benchmark's comparison).
func startBin(t testing.TB, exe, name string, args ...string) *proc {
	t.Helper()
	return startCmd(t, name, exec.Command(exe, args...))
}

// startCmd is start for a command the caller prepared (its environment,
// its process group).
func startCmd(t testing.TB, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, log: filepath.Join(t.TempDir(), name+".log"), done: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = cmd
	p.cmd.Stderr = logf
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // ends when the process closes its stdout
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.out = append(p.out, sc.Text())
			p.mu.Unlock()
			fmt.Fprintln(logf, "stdout:", sc.Text())
		}
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("--- %s log ---\n%s", name, tail(string(b), 6000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func (p *proc) kill() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill()
		<-p.done
	}
}

// stop asks the process to end (SIGTERM) and fails the test if it does not
// exit cleanly within 15 s.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("%s exited with %v after SIGTERM, want status 0", p.name, p.err)
		}
	case <-time.After(15 * time.Second):
		// SIGQUIT makes the Go runtime print every goroutine to stderr,
		// which the process log shows: where it hangs.
		p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
		t.Errorf("%s still running 15s after SIGTERM (goroutines in its log)", p.name)
	}
}

// waitLine waits for a stdout line matching re and returns its submatches.
func (p *proc) waitLine(t testing.TB, re *regexp.Regexp, within time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for _, l := range p.out {
			if m := re.FindStringSubmatch(l); m != nil {
				p.mu.Unlock()
				return m
			}
		}
		p.mu.Unlock()
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before printing %v", p.name, p.err, re)
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not print %v within %v", p.name, re, within)
	return nil
}

// natsSite is an external NATS server for the multi-process tests: its
// URL and the directory of its role credentials. The zero value means the
// embedded server of `facewatch run`.
type natsSite struct {
	url, creds string
}

// writeConfig writes a config for one process.
func writeConfig(t *testing.T, name, dataDir string, site natsSite, camURL string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir: %s\nlog_level: info\n", dataDir)
	fmt.Fprintf(&b, "nats:\n  url: %q\n  listen: \"127.0.0.1:0\"\n  ack_wait: 2s\n", site.url)
	if site.creds != "" {
		fmt.Fprintf(&b, "  creds_dir: %q\n", site.creds)
	}
	if camURL != "" {
		fmt.Fprintf(&b, "cameras:\n  - id: %s\n    url: %s\n    max_fps: %d\n    open_timeout: 5s\n    backoff_max: 2s\n", cameraID, camURL, sampleFPS)
	}
	fmt.Fprintf(&b, "detect:\n  upsample: 0\n  max_width: %d\nalert:\n  listen: 127.0.0.1:0\n", width)
	path := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startNATS starts a NATS server with JetStream for the multi-process
// tests, as an operator would run one: every client authenticates with
// its role's credentials, the streams are created as admin, and the test
// watches as admin.
func startNATS(t *testing.T) (natsSite, *nats.Conn) {
	t.Helper()
	dir := t.TempDir()
	srv, err := natsbus.StartServer(context.Background(), dir, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	site := natsSite{url: srv.ClientURL(), creds: natsbus.DefaultCredsDir(dir)}
	nc := adminConn(t, site.url, site.creds)
	createTopology(t, nc)
	return site, nc
}

// createTopology creates the streams and the camera lease bucket as the
// operator does (`facewatch nats setup`, admin): stage identities may not
// create them.
func createTopology(t *testing.T, nc *nats.Conn) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := natsbus.EnsureStreams(ctx, js, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	if _, err := natsbus.EnsureCameraLeases(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
}

// adminConn connects to url as the admin identity whose credentials are in
// creds.
func adminConn(t *testing.T, url, creds string) *nats.Conn {
	t.Helper()
	opts, err := natsbus.ClientOptions(config.NATS{CredsDir: creds}, natsbus.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// settle waits until the clip has been served and every track and hit has
// been consumed and acknowledged, stable for a while.
func settle(t *testing.T, cam *camServer, nc *nats.Conn) {
	t.Helper()
	select {
	case <-cam.path.Done():
	case <-time.After(90 * time.Second):
		t.Fatal("the clip was not served to its end within 90s")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	idle := func(stream, consumer string) bool {
		c, err := js.Consumer(ctx, stream, consumer)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0
	}
	// The last tracks end one gap after the last frame.
	time.Sleep(3 * time.Second)
	deadline := time.Now().Add(45 * time.Second)
	stable := 0
	for stable < 4 {
		if time.Now().After(deadline) {
			for _, c := range []struct{ stream, name string }{{wire.TracksStream, natsbus.MatchDurable}, {wire.HitsStream, config.Defaults().Alert.Consumer}} {
				if cons, err := js.Consumer(ctx, c.stream, c.name); err == nil {
					if info, err := cons.Info(ctx); err == nil {
						t.Logf("consumer %s on %s: pending %d, ack pending %d, redelivered %d", c.name, c.stream, info.NumPending, info.NumAckPending, info.NumRedelivered)
					}
				}
			}
			t.Fatal("tracks and hits were not all consumed within 45s of the clip's end")
		}
		if idle(wire.TracksStream, natsbus.MatchDurable) && idle(wire.HitsStream, config.Defaults().Alert.Consumer) {
			stable++
		} else {
			stable = 0
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// storedAlert is one row of the alert history.
type storedAlert struct {
	hitID, camera, identity string
	crop                    string // SHA-256 of the probe crop, "" when none
	scene, chip             string // SHA-256 of the scene and of the enrolled face, "" when none
	incident                int64
	track                   int64
	time                    time.Time
}

func readAlerts(t *testing.T, dataDir string) []storedAlert {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+alert.DBPath(dataDir)+"?_query_only=1&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT hit_id, camera, identity_name, track, time_ns, crop_sha256, scene_sha256, enrolled_chip_sha256, incident_id FROM alerts ORDER BY time_ns")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []storedAlert
	for rows.Next() {
		var a storedAlert
		var ns int64
		if err := rows.Scan(&a.hitID, &a.camera, &a.identity, &a.track, &ns, &a.crop, &a.scene, &a.chip, &a.incident); err != nil {
			t.Fatal(err)
		}
		a.time = time.Unix(0, ns)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkAlerts asserts the scenario's expectation: exactly one alert per
// appearance of A (two, on different tracks), none for the strangers, each
// on the right camera and timed inside its appearance, give or take one
// frame interval. It returns which appearance each alert matched.
func checkAlerts(t *testing.T, cam *camServer, alerts []storedAlert, dataDir string) []int {
	t.Helper()
	var apps []synthcam.Appearance
	var idx []int
	for i, a := range truth.Appearances {
		if a.Identity == scenario.Enrolled {
			apps = append(apps, a)
			idx = append(idx, i)
		}
	}
	if len(apps) != 2 {
		t.Fatalf("scenario shows %s %d times, want 2", scenario.Enrolled, len(apps))
	}
	if len(alerts) != 2 {
		for _, a := range alerts {
			t.Logf("alert %s %s %s at %s", a.hitID, a.camera, a.identity, a.time.Format("15:04:05.000"))
		}
		t.Fatalf("alerts = %d, want 2 (one per appearance of %s)", len(alerts), scenario.Enrolled)
	}
	var got []int
	tracks := map[int64]bool{}
	for _, a := range alerts {
		if a.identity != scenario.Enrolled {
			t.Errorf("alert %s names %q, want %q (strangers must get no alert)", a.hitID, a.identity, scenario.Enrolled)
		}
		if a.camera != cameraID {
			t.Errorf("alert %s camera = %q, want %q", a.hitID, a.camera, cameraID)
		}
		// The crop travels only for hits: the matcher asked the detect
		// stage for it.
		if a.crop == "" {
			t.Errorf("alert %s has no probe crop, want the one the detect stage held", a.hitID)
		}
		// So do the scene (the frame, at most 640 px wide) and the
		// enrolled face (the enrolment's chip).
		for _, img := range []struct{ what, sum string }{{"scene", a.scene}, {"enrolled face", a.chip}} {
			b, err := os.ReadFile(filepath.Join(dataDir, "alert", "crops", img.sum+".jpg"))
			var cfg image.Config
			if err == nil {
				cfg, err = jpeg.DecodeConfig(bytes.NewReader(b))
			}
			if img.sum == "" || err != nil || cfg.Width == 0 || cfg.Width > wire.SceneMaxWidth {
				t.Errorf("alert %s %s = %q: %v (%dx%d); want a stored JPEG at most %d wide", a.hitID, img.what, img.sum, err, cfg.Width, cfg.Height, wire.SceneMaxWidth)
			}
		}
		tracks[a.track] = true
		which := -1
		for i, ap := range apps {
			from, to := cam.window(ap)
			if !a.time.Before(from.Add(-frameInterval)) && !a.time.After(to) {
				which = idx[i]
			}
		}
		if which < 0 {
			var ws []string
			for _, ap := range apps {
				from, to := cam.window(ap)
				ws = append(ws, from.Format("15:04:05.000")+".."+to.Format("15:04:05.000"))
			}
			t.Errorf("alert %s at %s is outside every appearance of %s (%s), give or take %v", a.hitID, a.time.Format("15:04:05.000"), scenario.Enrolled, strings.Join(ws, ", "), frameInterval)
		}
		got = append(got, which)
		t.Logf("alert %s at %s: %v after the nearest earlier frame was sent", a.hitID, a.time.Format("15:04:05.000"), cam.lag(a.time))
	}
	if len(tracks) != 2 {
		t.Errorf("alerts are on %d tracks, want 2 separate tracks", len(tracks))
	}
	// Two appearances seconds apart are one incident (alert.incident_window).
	if alerts[0].incident == 0 || alerts[0].incident != alerts[1].incident {
		t.Errorf("alerts are in incidents %d and %d, want one incident", alerts[0].incident, alerts[1].incident)
	}
	sort.Ints(got)
	if got[0] == got[1] {
		t.Errorf("both alerts fall in appearance %d; want one per appearance", got[0])
	}
	return got
}

// TestRunAllInOne is the product as the README runs it: `facewatch run`
// with its embedded NATS server and every stage in one process.
func TestRunAllInOne(t *testing.T) {
	cam := serveClip(t)
	data := t.TempDir()
	enrolA(t, data)
	cfg := writeConfig(t, "run", data, natsSite{}, cam.url)
	run := start(t, "run", "run", "--config", cfg)
	m := run.waitLine(t, regexp.MustCompile(`nats (nats://\S+)`), 60*time.Second)
	run.waitLine(t, regexp.MustCompile(`^API and console: http://`), 10*time.Second)
	// The embedded server listens (nats.listen) and so wrote its roles'
	// credentials into the data directory.
	nc := adminConn(t, m[1], natsbus.DefaultCredsDir(data))
	settle(t, cam, nc)
	got := checkAlerts(t, cam, readAlerts(t, data), data)
	// run prints each alert as it arrives.
	run.mu.Lock()
	printed := 0
	for _, l := range run.out {
		if strings.HasPrefix(l, "ALERT ") && strings.Contains(l, scenario.Enrolled) {
			printed++
		}
	}
	run.mu.Unlock()
	if printed != 2 {
		t.Errorf("run printed %d alert lines for %s, want 2", printed, scenario.Enrolled)
	}
	if fmt.Sprint(got) != fmt.Sprint(appearancesOfA()) {
		t.Errorf("alerts match appearances %v, want %v", got, appearancesOfA())
	}
	nc.Close()
	run.stop(t)
}

// appearancesOfA lists the indices of A's appearances in the truth.
func appearancesOfA() []int {
	var want []int
	for i, a := range truth.Appearances {
		if a.Identity == scenario.Enrolled {
			want = append(want, i)
		}
	}
	return want
}

// distributed starts the stages as separate processes over one NATS
// server; split names how: "three" (camera, detect+embed, match+alert) or
// "four" (camera, detect, match, alert: the kill tests).
func distributed(t *testing.T, cam *camServer, data string, site natsSite, split string) map[string]*proc {
	t.Helper()
	camCfg := writeConfig(t, "camera", data, site, cam.url)
	stageCfg := writeConfig(t, "stage", data, site, "")
	ps := map[string]*proc{}
	switch split {
	case "three":
		ps["matchalert"] = start(t, "match+alert", "run", "--config", stageCfg)
		ps["matchalert"].waitLine(t, regexp.MustCompile(`^API and console:`), 60*time.Second)
	case "four":
		ps["match"] = start(t, "match", "match", "--config", stageCfg)
		ps["alert"] = start(t, "alert", "alert", "--config", stageCfg)
	}
	ps["detect"] = start(t, "detect", "detect", "--config", stageCfg)
	// The camera starts last so that the clip starts when the others are
	// up; give the detector time to load its models.
	time.Sleep(2 * time.Second)
	ps["camera"] = start(t, "camera", "camera", "--config", camCfg)
	return ps
}

func stopAll(t *testing.T, ps map[string]*proc) {
	for _, name := range []string{"camera", "detect", "match", "matchalert", "alert"} {
		if p := ps[name]; p != nil {
			p.stop(t)
		}
	}
}

// TestThreeProcesses runs camera, detect+embed and match+alert as three
// processes over one NATS server and expects the same alerts as the
// all-in-one run: one per appearance of A.
func TestThreeProcesses(t *testing.T) {
	cam := serveClip(t)
	data := t.TempDir()
	enrolA(t, data)
	site, nc := startNATS(t)
	ps := distributed(t, cam, data, site, "three")
	settle(t, cam, nc)
	got := checkAlerts(t, cam, readAlerts(t, data), data)
	// TestRunAllInOne holds `facewatch run` to the same expectation.
	if want := appearancesOfA(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("alerts match appearances %v, want %v (what facewatch run gives)", got, want)
	}
	stopAll(t, ps)
}

// isA reports whether a track report carries A's face, by its distance to
// A's enrolled descriptor.
func isA(data []byte, a embed.Vector) bool {
	tr, err := wire.DecodeTrack(data)
	if err != nil {
		return false
	}
	for _, v := range tr.Vectors {
		av := embed.Vector(v)
		if embed.Distance(&av, &a) < 0.5 {
			return true
		}
	}
	return false
}

// TestKillAndRestart kills a stage with SIGKILL at the most delicate moment
// (the alert service as A's first hit is published; the matcher as A's
// first track report is published), restarts it, and expects no alert lost
// and none duplicated.
func TestKillAndRestart(t *testing.T) {
	for _, victim := range []string{"alert", "match"} {
		t.Run(victim, func(t *testing.T) {
			cam := serveClip(t)
			data := t.TempDir()
			vec := enrolA(t, data)
			site, nc := startNATS(t)
			killed := make(chan struct{})
			var once sync.Once
			subject := wire.HitsWildcard
			if victim == "match" {
				subject = wire.TracksWildcard
			}
			var ps map[string]*proc
			var psMu sync.Mutex
			sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
				if victim == "match" && !isA(m.Data, vec) {
					return
				}
				once.Do(func() {
					psMu.Lock()
					ps[victim].cmd.Process.Signal(syscall.SIGKILL)
					psMu.Unlock()
					close(killed)
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			psMu.Lock()
			ps = distributed(t, cam, data, site, "four")
			psMu.Unlock()
			select {
			case <-killed:
			case <-time.After(60 * time.Second):
				t.Fatalf("no %s message to kill %s on within 60s", subject, victim)
			}
			<-ps[victim].done
			time.Sleep(time.Second)
			select {
			case <-cam.path.Done():
				t.Errorf("the clip ended before %s was restarted; the kill was not mid-stream", victim)
			default:
			}
			stageCfg := writeConfig(t, "stage-restart", data, site, "")
			ps[victim] = start(t, victim+"-restarted", victim, "--config", stageCfg)
			settle(t, cam, nc)
			checkAlerts(t, cam, readAlerts(t, data), data)
			stopAll(t, ps)
		})
	}
}

// chipImage turns a chip's RGB bytes into an image for its PNG.
func chipImage(c face.Chip) (*image.RGBA, error) {
	if len(c.Pix) != face.ChipBytes {
		return nil, fmt.Errorf("chip has %d bytes, want %d", len(c.Pix), face.ChipBytes)
	}
	img := image.NewRGBA(image.Rect(0, 0, face.ChipSize, face.ChipSize))
	for i := 0; i < face.ChipSize*face.ChipSize; i++ {
		img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = c.Pix[3*i], c.Pix[3*i+1], c.Pix[3*i+2], 255
	}
	return img, nil
}
