package e2e

import (
	"bufio"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/facewatch/facewatch/alert"
	"github.com/facewatch/facewatch/internal/rtsptest"
	"github.com/facewatch/facewatch/internal/synthcam"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/internal/wire"
)

// benchSeconds is how long each benchmark iteration runs facewatch.
var benchSeconds = envInt("FACEWATCH_BENCH_SECONDS", 60)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkFrameToAlert measures `facewatch run` on cameras sampled at 5
// fps, each serving the standard scenario in a loop with all five people
// enrolled (so every appearance is an alert): frame-to-alert latency (from
// capture of the newest face in the report the alert came from to the alert
// committed in SQLite; and, "visible", from the sending of the first clip
// frame showing the person, the synthetic camera's ground truth), the
// appearances that gave no alert, the share of sampled frames shed under
// load, and the process's CPU and resident memory.
//
// FACEWATCH_BENCH_CAMERAS picks the cases (default 1,4,8,8@640x360: a
// count of 1280x720 cameras, or COUNT@WxH); FACEWATCH_BENCH_EARLY_QUALITY
// sets detect.early_quality (0: the early report waits for 3 sightings, as
// before early decisions); FACEWATCH_BENCH_SAME_APPEARANCE sets
// alert.same_appearance (the time rule, now only a fallback for hits
// without the tracker's appearance: the scenario's loop brings one person
// back through the edge he left by 3.2 s later, which that rule alone
// merged into one appearance; 0 turns it off); FACEWATCH_BENCH_BIN runs another facewatch
// binary (a build of an older commit, to compare) instead of this tree's.
//
//	go test -run XXX -bench FrameToAlert -benchtime 1x ./internal/e2e
func BenchmarkFrameToAlert(b *testing.B) {
	type benchCase struct{ n, w, h int }
	cases := []benchCase{{1, 1280, 720}, {4, 1280, 720}, {8, 1280, 720}, {8, 640, 360}}
	if v := os.Getenv("FACEWATCH_BENCH_CAMERAS"); v != "" {
		cases = nil
		for _, f := range strings.Split(v, ",") {
			c := benchCase{w: 1280, h: 720}
			count, size, sized := strings.Cut(strings.TrimSpace(f), "@")
			n, err := strconv.Atoi(count)
			if sized {
				if _, err := fmt.Sscanf(size, "%dx%d", &c.w, &c.h); err != nil || c.w < 64 || c.h < 64 {
					b.Fatalf("FACEWATCH_BENCH_CAMERAS=%q: size %q, want WxH like 640x360", v, size)
				}
			}
			if err != nil || n < 1 {
				b.Fatalf("FACEWATCH_BENCH_CAMERAS=%q: want camera counts like 1,4,8@640x360", v)
			}
			c.n = n
			cases = append(cases, c)
		}
	}
	exe := cmp.Or(os.Getenv("FACEWATCH_BENCH_BIN"), bin)
	type rendered struct {
		clip   *rtsptest.Clip
		truth  synthcam.Truth
		people map[string]string
	}
	clips := map[[2]int]rendered{}
	clipOf := func(b *testing.B, w, h int) rendered {
		if r, ok := clips[[2]int{w, h}]; ok {
			return r
		}
		sc, err := synthcam.Johns(testdata.SharedDir(), w, h, 25)
		if err != nil {
			b.Fatal(err)
		}
		sc.Script.Background = testdata.OpenCV(b, "vtest.avi")
		file := filepath.Join(workDir, fmt.Sprintf("clip%dx%d.h264", w, h))
		truth, err := synthcam.Render(context.Background(), sc.Script, file)
		if err != nil {
			b.Fatal(err)
		}
		clip, err := rtsptest.LoadClip(file, 25)
		if err != nil {
			b.Fatal(err)
		}
		people := map[string]string{sc.Enrolled: sc.EnrolPhoto}
		for _, s := range sc.Strangers {
			ps, _ := filepath.Glob(filepath.Join(testdata.SharedDir(), "dlib_johns", s, "*.jpg"))
			sort.Strings(ps)
			people[s] = ps[0] // never shown in the clip
		}
		r := rendered{clip, truth, people}
		clips[[2]int{w, h}] = r
		return r
	}
	for _, c := range cases {
		name := fmt.Sprintf("cameras=%d", c.n)
		if c.w != 1280 || c.h != 720 {
			name += fmt.Sprintf("/%dx%d", c.w, c.h)
		}
		b.Run(name, func(b *testing.B) {
			r := clipOf(b, c.w, c.h)
			var sum benchRun
			for i := 0; i < b.N; i++ {
				x := runBench(b, exe, r.clip, r.truth, r.people, c.n)
				sum.lat, sum.vis = append(sum.lat, x.lat...), append(sum.vis, x.vis...)
				sum.cpu, sum.rss = max(sum.cpu, x.cpu), max(sum.rss, x.rss)
				sum.expected, sum.missed = sum.expected+x.expected, sum.missed+x.missed
				sum.sampled, sum.shed = sum.sampled+x.sampled, sum.shed+x.shed
			}
			lat, vis := sum.lat, sum.vis
			slices.Sort(lat)
			slices.Sort(vis)
			if len(lat) == 0 || len(vis) == 0 {
				b.Fatal("no alerts")
			}
			b.Logf("frame-to-alert latencies (s): %.3f", lat)
			b.Logf("first-visible-to-alert latencies (s): %.3f", vis)
			b.Logf("appearances %d, without alert %d; frames sampled %.0f, shed %.0f", sum.expected, sum.missed, sum.sampled, sum.shed)
			b.ReportMetric(pct(lat, 0.50)*1000, "p50-ms")
			b.ReportMetric(pct(lat, 0.99)*1000, "p99-ms")
			b.ReportMetric(pct(vis, 0.50)*1000, "visible-p50-ms")
			b.ReportMetric(pct(vis, 0.99)*1000, "visible-p99-ms")
			b.ReportMetric(sum.cpu, "cpu-cores")
			b.ReportMetric(sum.rss, "max-rss-MB")
			b.ReportMetric(float64(len(lat))/float64(b.N), "alerts/run")
			b.ReportMetric(float64(sum.missed)/float64(b.N), "unalerted/run")
			if sum.sampled > 0 {
				b.ReportMetric(100*sum.shed/sum.sampled, "shed-%")
			}
		})
	}
}

// benchRun is what one run of facewatch measured.
type benchRun struct {
	lat, vis []float64 // alert latencies (s) from the report's newest face and from first visibility
	cpu, rss float64   // mean cores, peak resident MB
	// expected appearances (wholly within the run, after every camera was
	// read) and those of them that gave no alert.
	expected, missed int
	// sampled frames (handed on by the cameras) and those shed on the way
	// to detection (camera hand-off or detect queue).
	sampled, shed float64
}

func pct(sorted []float64, p float64) float64 {
	i := int(p*float64(len(sorted)-1) + 0.5)
	return sorted[min(i, len(sorted)-1)]
}

// runBench runs exe (facewatch) with n cameras for benchSeconds.
func runBench(b *testing.B, exe string, clip *rtsptest.Clip, truth synthcam.Truth, people map[string]string, n int) benchRun {
	data := b.TempDir()
	enrol(b, data, people)
	// The sending of each appearance's first and last frames, per camera,
	// every loop.
	firstOf, lastOf := map[int]string{}, map[int]string{}
	for _, a := range truth.Appearances {
		firstOf[a.FirstFrame] = a.Identity
		lastOf[a.LastFrame] = a.Identity
	}
	var mu sync.Mutex
	shown := map[string][]sighting{}
	onFrame := func(ev rtsptest.FrameEvent) {
		mu.Lock()
		defer mu.Unlock()
		if who, ok := firstOf[ev.Index]; ok {
			shown[ev.Path] = append(shown[ev.Path], sighting{identity: who, sent: ev.Sent})
		}
		if who, ok := lastOf[ev.Index]; ok {
			ss := shown[ev.Path]
			for i := len(ss) - 1; i >= 0; i-- {
				if ss[i].identity == who && ss[i].last.IsZero() {
					ss[i].last = ev.Sent
					break
				}
			}
		}
	}
	var srcs []rtsptest.Source
	for i := 0; i < n; i++ {
		srcs = append(srcs, rtsptest.Source{Name: fmt.Sprintf("cam%d", i), Clip: clip, Loop: true, OnFrame: onFrame})
	}
	srv, err := rtsptest.Start(context.Background(), rtsptest.Options{Sources: srcs})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	// Appearances that began before every camera was read (and had its
	// next keyframe, at most a second later) are left out of the
	// first-visible figures: facewatch could not see their start.
	var reading time.Time
	go func() {
		for {
			all := true
			for i := 0; i < n; i++ {
				all = all && srv.Path(fmt.Sprintf("cam%d", i)).Readers() > 0
			}
			if all {
				mu.Lock()
				reading = time.Now().Add(time.Second)
				mu.Unlock()
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	var cfg strings.Builder
	level := cmp.Or(os.Getenv("FACEWATCH_BENCH_LOG"), "warn") // debug shows every track report, hit and unmatched track
	fmt.Fprintf(&cfg, "data_dir: %s\nlog_level: %s\nnats:\n  ack_wait: 5s\ncameras:\n", data, level)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&cfg, "  - id: cam%d\n    url: %s\n    max_fps: 5\n", i, srv.URL(fmt.Sprintf("cam%d", i)))
	}
	cfg.WriteString("detect:\n  max_width: 640\n")
	if v := os.Getenv("FACEWATCH_BENCH_EARLY_QUALITY"); v != "" {
		fmt.Fprintf(&cfg, "  early_quality: %s\n", v)
	}
	cfg.WriteString("alert:\n  listen: 127.0.0.1:0\n")
	if v := os.Getenv("FACEWATCH_BENCH_SAME_APPEARANCE"); v != "" {
		fmt.Fprintf(&cfg, "  same_appearance: %s\n", v)
	}
	path := filepath.Join(b.TempDir(), "bench.yaml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	metricsAddr := freeAddr(b)
	b.ResetTimer()
	p := startBin(b, exe, "run", "run", "--config", path, "--metrics", metricsAddr)
	p.waitLine(b, regexp.MustCompile(`^API and console:`), 60*time.Second)
	pid := p.cmd.Process.Pid
	t0, c0 := time.Now(), cpuSeconds(pid)
	var peak float64
	for end := time.Now().Add(time.Duration(benchSeconds) * time.Second); time.Now().Before(end); {
		time.Sleep(time.Second)
		peak = max(peak, rssMB(pid))
	}
	cpu := (cpuSeconds(pid) - c0) / time.Since(t0).Seconds()
	sampled, shed := shedFigures(b, "http://"+metricsAddr+"/metrics")
	stopped := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	b.StopTimer()
	if level == "debug" {
		// slog writes to stderr, which startBin keeps in p.log.
		logText, err := os.ReadFile(p.log)
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range strings.Split(string(logText), "\n") {
			if strings.Contains(l, "track report published") || strings.Contains(l, "track not matched") || strings.Contains(l, "msg=hit ") {
				b.Log(l)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// An appearance counts if it began after every camera was read and
	// ended 2 s before the stop (time for its alert).
	expected := map[string]bool{}
	for cam, ss := range shown {
		var kept []sighting
		for _, x := range ss {
			if !reading.IsZero() && x.sent.After(reading) {
				kept = append(kept, x)
				if !x.last.IsZero() && x.last.Before(stopped.Add(-2*time.Second)) {
					expected[x.key(cam)] = true
				}
			}
		}
		shown[cam] = kept
	}
	lat, vis, alerted := latencies(b, data, shown)
	missed := 0
	for k := range expected {
		if !alerted[k] {
			missed++
			b.Logf("appearance without alert: %s", k)
		}
	}
	return benchRun{lat: lat, vis: vis, cpu: cpu, rss: peak, expected: len(expected), missed: missed, sampled: sampled, shed: shed}
}

// freeAddr is a loopback address with a port free now.
func freeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// shedFigures reads the frames the cameras handed on and those shed before
// detection (the camera's hand-off queue, and the detect stage's queues:
// facewatch_frames_shed_total, or before it the detect stage's
// queue_full drops) from a facewatch /metrics page.
func shedFigures(b *testing.B, url string) (sampled, shed float64) {
	resp, err := http.Get(url)
	if err != nil {
		b.Logf("reading metrics: %v", err)
		return 0, 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		series := line[:i]
		switch {
		case strings.HasPrefix(series, "facewatch_camera_frames_out_total"):
			sampled += v
		case strings.HasPrefix(series, "facewatch_camera_frames_dropped_total") && strings.Contains(series, `reason="queue_full"`),
			strings.HasPrefix(series, "facewatch_frames_shed_total"),
			strings.HasPrefix(series, "facewatch_stage_dropped_total") && strings.Contains(series, `reason="queue_full"`) && strings.Contains(series, `stage="detect"`):
			shed += v
		}
	}
	return sampled, shed
}

// sighting is an appearance: the sending of its first and last frames.
type sighting struct {
	identity   string
	sent, last time.Time
}

func (s sighting) key(camera string) string {
	return camera + "/" + s.identity + "/" + s.sent.Format("15:04:05.000")
}

// latencies reads every alert's commit time minus the capture time of its
// newest face (the frame that completed the report it came from), and
// minus the sending of the first frame of the appearance it names (the
// latest first frame of that person on that camera before the alert's
// face).
func latencies(b *testing.B, data string, shown map[string][]sighting) ([]float64, []float64, map[string]bool) {
	db, err := sql.Open("sqlite3", "file:"+alert.DBPath(data)+"?_query_only=1")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT stored_ns, extra, camera, identity_name, time_ns FROM alerts")
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var out, vis []float64
	seen := map[string]bool{} // appearances alerted
	for rows.Next() {
		var stored, faceNS int64
		var extra, camera, who string
		if err := rows.Scan(&stored, &extra, &camera, &who, &faceNS); err != nil {
			b.Fatal(err)
		}
		var x struct {
			Faces []wire.FaceScore `json:"faces"`
		}
		if err := json.Unmarshal([]byte(extra), &x); err != nil || len(x.Faces) == 0 {
			b.Fatalf("alert extra %q: %v", extra, err)
		}
		var newest time.Time
		for _, f := range x.Faces {
			if f.Time.After(newest) {
				newest = f.Time
			}
		}
		out = append(out, time.Unix(0, stored).Sub(newest).Seconds())
		var first time.Time
		var app sighting
		for _, s := range shown[camera] {
			if s.identity == who && !s.sent.After(time.Unix(0, faceNS)) && s.sent.After(first) {
				first, app = s.sent, s
			}
		}
		if !first.IsZero() {
			vis = append(vis, time.Unix(0, stored).Sub(first).Seconds())
			if d := time.Unix(0, stored).Sub(first); d > time.Second {
				b.Logf("slow alert: %s on %s %v after first visible, its face %v after, its report's newest face %v after (%d faces)", who, camera, d.Round(time.Millisecond), time.Unix(0, faceNS).Sub(first).Round(time.Millisecond), newest.Sub(first).Round(time.Millisecond), len(x.Faces))
			}
			k := app.key(camera)
			if seen[k] {
				b.Errorf("two alerts for one appearance of %s on %s (first visible %s)", who, camera, first.Format("15:04:05.000"))
			}
			seen[k] = true
		}
	}
	return out, vis, seen
}

// cpuSeconds is the process's user+system CPU time (Linux /proc).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start at ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// rssMB is the process's resident memory.
func rssMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb / 1024
		}
	}
	return 0
}
