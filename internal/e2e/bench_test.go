package e2e

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
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

// BenchmarkFrameToAlert measures `facewatch run` on 720p cameras sampled at
// 5 fps, each serving the standard scenario in a loop with all five people
// enrolled (so every appearance is an alert): frame-to-alert latency (from
// capture of the newest face in the report the alert came from to the alert
// committed in SQLite; and, "visible", from the sending of the first clip
// frame showing the person, the synthetic camera's ground truth), and the
// process's CPU and resident memory. FACEWATCH_BENCH_CAMERAS picks the
// camera counts (default 1,4); FACEWATCH_BENCH_EARLY_QUALITY sets
// detect.early_quality (0: the early report waits for 3 sightings, as
// before early decisions).
//
//	go test -run XXX -bench FrameToAlert -benchtime 1x ./internal/e2e
func BenchmarkFrameToAlert(b *testing.B) {
	sc, err := synthcam.Johns(testdata.SharedDir(), 1280, 720, 25)
	if err != nil {
		b.Fatal(err)
	}
	sc.Script.Background = testdata.OpenCV(b, "vtest.avi")
	file := filepath.Join(b.TempDir(), "clip720.h264")
	truth, err := synthcam.Render(context.Background(), sc.Script, file)
	if err != nil {
		b.Fatal(err)
	}
	clip720, err := rtsptest.LoadClip(file, 25)
	if err != nil {
		b.Fatal(err)
	}
	people := map[string]string{sc.Enrolled: sc.EnrolPhoto}
	for _, s := range sc.Strangers {
		ps, _ := filepath.Glob(filepath.Join(testdata.SharedDir(), "dlib_johns", s, "*.jpg"))
		sort.Strings(ps)
		people[s] = ps[0] // never shown in the clip
	}
	counts := []int{1, 4}
	if v := os.Getenv("FACEWATCH_BENCH_CAMERAS"); v != "" {
		counts = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("FACEWATCH_BENCH_CAMERAS=%q: want camera counts like 1,4", v)
			}
			counts = append(counts, n)
		}
	}
	for _, n := range counts {
		b.Run(fmt.Sprintf("cameras=%d", n), func(b *testing.B) {
			var lat, vis []float64
			var cpu, rss, alerts float64
			for i := 0; i < b.N; i++ {
				l, v, c, r := runBench(b, clip720, truth, people, n)
				lat, vis = append(lat, l...), append(vis, v...)
				cpu, rss, alerts = max(cpu, c), max(rss, r), alerts+float64(len(l))
			}
			slices.Sort(lat)
			slices.Sort(vis)
			if len(lat) == 0 || len(vis) == 0 {
				b.Fatal("no alerts")
			}
			b.Logf("frame-to-alert latencies (s): %.3f", lat)
			b.Logf("first-visible-to-alert latencies (s): %.3f", vis)
			b.ReportMetric(pct(lat, 0.50)*1000, "p50-ms")
			b.ReportMetric(pct(lat, 0.99)*1000, "p99-ms")
			b.ReportMetric(pct(vis, 0.50)*1000, "visible-p50-ms")
			b.ReportMetric(pct(vis, 0.99)*1000, "visible-p99-ms")
			b.ReportMetric(cpu, "cpu-cores")
			b.ReportMetric(rss, "max-rss-MB")
			b.ReportMetric(alerts/float64(b.N), "alerts/run")
		})
	}
}

func pct(sorted []float64, p float64) float64 {
	i := int(p*float64(len(sorted)-1) + 0.5)
	return sorted[min(i, len(sorted)-1)]
}

// runBench runs facewatch with n cameras for benchSeconds and returns the
// alerts' latencies (seconds) from the report's newest face and from the
// person's first visible frame, the process's mean CPU (cores) and its
// peak resident memory (MB).
func runBench(b *testing.B, clip *rtsptest.Clip, truth synthcam.Truth, people map[string]string, n int) ([]float64, []float64, float64, float64) {
	data := b.TempDir()
	enrol(b, data, people)
	// The sending of each appearance's first frame, per camera, every loop.
	firstOf := map[int]string{}
	for _, a := range truth.Appearances {
		firstOf[a.FirstFrame] = a.Identity
	}
	var mu sync.Mutex
	shown := map[string][]sighting{}
	onFrame := func(ev rtsptest.FrameEvent) {
		if who, ok := firstOf[ev.Index]; ok {
			mu.Lock()
			shown[ev.Path] = append(shown[ev.Path], sighting{who, ev.Sent})
			mu.Unlock()
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
	level := cmp.Or(os.Getenv("FACEWATCH_BENCH_LOG"), "warn") // debug shows every track report
	fmt.Fprintf(&cfg, "data_dir: %s\nlog_level: %s\nnats:\n  ack_wait: 5s\ncameras:\n", data, level)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&cfg, "  - id: cam%d\n    url: %s\n    max_fps: 5\n", i, srv.URL(fmt.Sprintf("cam%d", i)))
	}
	cfg.WriteString("detect:\n  max_width: 640\n")
	if v := os.Getenv("FACEWATCH_BENCH_EARLY_QUALITY"); v != "" {
		fmt.Fprintf(&cfg, "  early_quality: %s\n", v)
	}
	cfg.WriteString("alert:\n  listen: 127.0.0.1:0\n")
	path := filepath.Join(b.TempDir(), "bench.yaml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	p := start(b, "run", "run", "--config", path)
	p.waitLine(b, regexp.MustCompile(`^API and console:`), 60*time.Second)
	pid := p.cmd.Process.Pid
	t0, c0 := time.Now(), cpuSeconds(pid)
	var peak float64
	for end := time.Now().Add(time.Duration(benchSeconds) * time.Second); time.Now().Before(end); {
		time.Sleep(time.Second)
		peak = max(peak, rssMB(pid))
	}
	cpu := (cpuSeconds(pid) - c0) / time.Since(t0).Seconds()
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	b.StopTimer()
	if level == "debug" {
		p.mu.Lock()
		for _, l := range p.out {
			if strings.Contains(l, "track report published") {
				b.Log(l)
			}
		}
		p.mu.Unlock()
	}
	mu.Lock()
	defer mu.Unlock()
	for cam, ss := range shown {
		var kept []sighting
		for _, x := range ss {
			if !reading.IsZero() && x.sent.After(reading) {
				kept = append(kept, x)
			}
		}
		shown[cam] = kept
	}
	lat, vis := latencies(b, data, shown)
	return lat, vis, cpu, peak
}

// sighting is the sending of the first frame of an appearance.
type sighting struct {
	identity string
	sent     time.Time
}

// latencies reads every alert's commit time minus the capture time of its
// newest face (the frame that completed the report it came from), and
// minus the sending of the first frame of the appearance it names (the
// latest first frame of that person on that camera before the alert's
// face).
func latencies(b *testing.B, data string, shown map[string][]sighting) ([]float64, []float64) {
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
		for _, s := range shown[camera] {
			if s.identity == who && !s.sent.After(time.Unix(0, faceNS)) && s.sent.After(first) {
				first = s.sent
			}
		}
		if !first.IsZero() {
			vis = append(vis, time.Unix(0, stored).Sub(first).Seconds())
			if d := time.Unix(0, stored).Sub(first); d > time.Second {
				b.Logf("slow alert: %s on %s %v after first visible, its face %v after", who, camera, d.Round(time.Millisecond), time.Unix(0, faceNS).Sub(first).Round(time.Millisecond))
			}
			k := camera + "/" + who + "/" + first.String()
			if seen[k] {
				b.Errorf("two alerts for one appearance of %s on %s (first visible %s)", who, camera, first.Format("15:04:05.000"))
			}
			seen[k] = true
		}
	}
	return out, vis
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
