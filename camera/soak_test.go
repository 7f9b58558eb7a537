package camera

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/rtsptest"
	"github.com/facewatch/facewatch/internal/testdata"
)

// TestSoak runs cameras from the test server for a while, injecting a
// random fault every few seconds, and checks the frames delivered against
// what the faults can cost, that memory stays bounded and that everything
// stops within 2 s. By default it runs 4 cameras at 640x360, 25 fps, for
// 15 s; FACEWATCH_SOAK=1 runs 8 cameras at 1280x720, 10 fps, for 90 s
// (FACEWATCH_SOAK_SECONDS overrides the length).
//
// The floor: a camera delivers fps × its streaming time. Each fault may
// cost its own length plus one reconnect. A reconnect costs the backoff
// (≤ backoff_max) and an open: waiting for a keyframe (1 s GOP) and FFmpeg
// probing about 22 frames (2.2 s at 10 fps); because OpenCV serialises
// opens, it may also wait for one other camera's open, so two opens are
// allowed. Of the rest at least 90% must arrive; the 10% covers scheduling
// on a loaded 2-core machine. A hang, a lost reconnect or a leak falls far
// below that.
func TestSoak(t *testing.T) {
	needClips(t)
	cameras, fps, width, height, length := 4, 25.0, 640, 360, 15*time.Second
	if os.Getenv("FACEWATCH_SOAK") == "1" {
		cameras, fps, width, height, length = 8, 10.0, 1280, 720, 90*time.Second
	}
	open := time.Second + time.Duration(22/fps*float64(time.Second))
	if v := os.Getenv("FACEWATCH_SOAK_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 5 {
			t.Fatalf("FACEWATCH_SOAK_SECONDS=%q: want a number of seconds ≥ 5", v)
		}
		length = time.Duration(n) * time.Second
	}
	src := testdata.OpenCV(t, "vtest.avi")
	dst := filepath.Join(t.TempDir(), "soak.h264")
	if err := rtsptest.Encode(context.Background(), rtsptest.EncodeOptions{Src: src, Dst: dst, Width: width, Height: height, FPS: fps, Duration: 20 * time.Second, GOP: int(fps)}); err != nil {
		t.Fatal(err)
	}
	clip, err := rtsptest.LoadClip(dst, fps)
	if err != nil {
		t.Fatal(err)
	}
	srcs := make([]rtsptest.Source, cameras)
	for i := range srcs {
		srcs[i] = rtsptest.Source{Name: "cam" + strconv.Itoa(i), Clip: clip, Loop: true}
	}
	srv := startRig(t, srcs...)
	rs := make([]*running, cameras)
	for i := range rs {
		cfg := testCamera(srcs[i].Name, srv.URL(srcs[i].Name))
		cfg.OpenTimeout = 2 * open
		cfg.StallTimeout = 2 * time.Second
		cfg.ReadTimeout = 3 * time.Second
		rs[i] = run(t, cfg, Options{})
	}
	for _, r := range rs {
		waitState(t, r, time.Duration(cameras)*2*open, StateStreaming)
	}
	reconnect := 2*open + rs[0].w.cfg.BackoffMax
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 42))
	t.Logf("soak: %d cameras at %dx%d, %g fps, for %v; fault seed %d", cameras, width, height, fps, length, seed)

	start := time.Now()
	in0 := make([]uint64, cameras)
	for i, r := range rs {
		in0[i] = r.w.Status().FramesIn
	}
	// cost[i] is the streaming time camera i may lose to faults.
	cost := make([]time.Duration, cameras)
	var faults []string
	var rssThird int64
	for time.Since(start) < length-3*time.Second {
		if rssThird == 0 && time.Since(start) > length/3 {
			rssThird = rssBytes(t)
		}
		i := rng.IntN(cameras)
		p := srv.Path(srcs[i].Name)
		switch rng.IntN(4) {
		case 0:
			d := time.Duration(500+rng.IntN(2000)) * time.Millisecond
			p.Stall(true)
			time.Sleep(d)
			p.Stall(false)
			cost[i] += d + reconnect
			faults = append(faults, "stall "+srcs[i].Name+" "+d.String())
		case 1:
			d := time.Duration(rng.IntN(1500)) * time.Millisecond
			p.Drop(d)
			cost[i] += d + reconnect
			faults = append(faults, "drop "+srcs[i].Name+" "+d.String())
		case 2:
			p.Garbage(5)
			cost[i] += reconnect
			faults = append(faults, "garbage "+srcs[i].Name)
		case 3:
			p.SetRate(fps / 2)
			time.Sleep(time.Second)
			p.SetRate(0)
			cost[i] += time.Second / 2
			faults = append(faults, "half rate "+srcs[i].Name)
		}
		time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
	}
	for time.Since(start) < length {
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(start)
	rssEnd := rssBytes(t)
	var delivered, expected, floor float64
	for i, r := range rs {
		st := r.w.Status()
		got := float64(st.FramesIn - in0[i])
		delivered += got
		expected += fps * elapsed.Seconds()
		camFloor := 0.9 * fps * max(0, (elapsed-cost[i]).Seconds())
		floor += camFloor
		if got < camFloor {
			t.Errorf("camera %s delivered %.0f frames in %v, want ≥ %.0f (faults cost up to %v); state %s, last error %q",
				st.CameraID, got, elapsed.Round(time.Millisecond), camFloor, cost[i], st.State, st.LastError)
		}
	}
	t.Logf("soak: faults: %s", strings.Join(faults, ", "))
	t.Logf("soak: delivered %.0f of %.0f frames expected (%.1f%%), floor %.0f", delivered, expected, 100*delivered/expected, floor)
	if rssThird > 0 {
		growth := rssEnd - rssThird
		t.Logf("soak: RSS %d MiB at a third, %d MiB at the end", rssThird>>20, rssEnd>>20)
		if growth > 96<<20 {
			t.Errorf("RSS grew by %d MiB from a third of the soak to its end, want < 96 MiB (bounded queues)", growth>>20)
		}
	}
	for _, r := range rs {
		if took := r.stop(t); took > 2*time.Second {
			t.Errorf("camera %s stopped in %v, want ≤ 2s", r.w.cfg.ID, took)
		}
	}
}

// rssBytes is the process's resident set size, from /proc/self/statm.
func rssBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatalf("reading memory use: %v", err)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		t.Fatalf("reading memory use: unexpected statm %q", b)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatalf("reading memory use: %v", err)
	}
	return pages * int64(os.Getpagesize())
}
