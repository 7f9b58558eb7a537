package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/internal/track"
	"github.com/facewatch/facewatch/internal/wire"
)

// offsetClock is time.Now moved forward by a settable offset, so that a
// test can make cameras idle without waiting.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// procStatus reads a kB field of /proc/self/status in bytes (Linux):
// VmRSS is resident memory, VmHWM its peak.
func procStatus(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Skipf("no %s in /proc/self/status", field)
	return 0
}

// smallJPEG encodes a w x h grey frame.
func smallJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(90, 100, 110, 0), h, w, gocv.MatTypeCV8UC3)
	defer m.Close()
	buf, err := gocv.IMEncode(gocv.JPEGFileExt, m)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	return bytes.Clone(buf.GetBytes())
}

// patchSOF makes a real JPEG claim w x h in its frame header (SOF0); a
// decoder that believes it allocates w*h*3 bytes and fills them.
func patchSOF(t *testing.T, jpeg []byte, w, h uint16) []byte {
	t.Helper()
	b := bytes.Clone(jpeg)
	i := bytes.Index(b, []byte{0xFF, 0xC0})
	if i < 0 {
		t.Fatal("no SOF0 marker")
	}
	binary.BigEndian.PutUint16(b[i+5:], h)
	binary.BigEndian.PutUint16(b[i+7:], w)
	return b
}

// rawFrame encodes a frame message without EncodeFrame's checks, as a
// forger would.
func rawFrame(t *testing.T, meta wire.FrameMeta, jpeg []byte) []byte {
	t.Helper()
	meta.Version = wire.Version
	b, err := wire.Encode(meta, jpeg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func startDetect(t *testing.T, bus *natsbus.Bus, cfg config.Detect, m *Metrics, now func() time.Time) func() error {
	t.Helper()
	ds, err := NewDetectStage(DetectOptions{Bus: bus, Models: testdata.ModelDir(t), Detect: cfg, Embed: config.Defaults().Embed, Metrics: m, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ds.Close)
	if err := natsbus.EnsureStreams(context.Background(), bus.JS, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	_, stop := runStage(t, ds.Run)
	time.Sleep(300 * time.Millisecond) // the subscription in place
	return stop
}

// TestDetectRefusesHugeFrameFromHeader publishes a 16384x16384 JPEG over
// real NATS, once with metadata that says so and once with metadata that
// lies: both are dead-lettered without being decoded, and the process's
// peak resident memory stays flat (decoding one takes 805 MB).
func TestDetectRefusesHugeFrameFromHeader(t *testing.T) {
	bus := openBus(t)
	m, _ := NewMetrics(nil)
	stop := startDetect(t, bus, config.Defaults().Detect, m, nil)
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("detect stage: %v", err)
		}
	}()
	dead, err := bus.Conn.SubscribeSync(wire.DeadLetterSubject(StageDetect))
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Unsubscribe()
	huge := patchSOF(t, smallJPEG(t, 64, 48), 16384, 16384)
	now := time.Now().UTC()
	cases := []struct {
		name          string
		width, height int
		reason        string
	}{
		{"metadata says 16384x16384", 16384, 16384, "out of range"},
		{"metadata says 640x360", 640, 360, "image too large"},
		{"metadata says 8192x8192", 8192, 8192, "image too large"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runtime.GC()
			before, rssBefore := procStatus(t, "VmHWM:"), procStatus(t, "VmRSS:")
			data := rawFrame(t, wire.FrameMeta{Camera: "cam1", Seq: uint64(i + 1), Time: now, Width: tc.width, Height: tc.height}, huge)
			if err := bus.Conn.Publish(wire.FramesSubject("cam1"), data); err != nil {
				t.Fatal(err)
			}
			msg, err := dead.NextMsg(20 * time.Second)
			if err != nil {
				t.Fatalf("no dead letter for a 16384x16384 frame: %v", err)
			}
			if why := msg.Header.Get(wire.HeaderReason); !strings.Contains(why, tc.reason) {
				t.Errorf("dead letter reason = %q, want it to say %q", why, tc.reason)
			}
			peak, rss := procStatus(t, "VmHWM:"), procStatus(t, "VmRSS:")
			t.Logf("resident memory %d MB -> %d MB, peak %d MB -> %d MB", rssBefore>>20, rss>>20, before>>20, peak>>20)
			if peak-before > 100<<20 || rss-rssBefore > 100<<20 {
				t.Errorf("refusing a 16384x16384 frame raised peak resident memory by %d MB and resident memory by %d MB, want both under 100 MB", (peak-before)>>20, (rss-rssBefore)>>20)
			}
		})
	}
}

// TestDetectBoundsCameras publishes frames of 10,000 made-up camera IDs
// over real NATS: the stage holds at most detect.max_cameras cameras (one
// goroutine each), refuses and counts the rest before decoding them, and
// frees idle cameras' state after detect.camera_idle.
func TestDetectBoundsCameras(t *testing.T) {
	bus := openBus(t)
	m, _ := NewMetrics(nil)
	cfg := config.Defaults().Detect
	cfg.MaxCameras = 8
	clock := &offsetClock{}
	stop := startDetect(t, bus, cfg, m, clock.now)
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("detect stage: %v", err)
		}
	}()
	refusedC := m.Dropped.WithLabelValues(StageDetect, "camera_limit")
	base := runtime.NumGoroutine()
	jpeg := smallJPEG(t, 64, 48)
	const ids = 10000
	now := time.Now().UTC()
	publish := func(cam string, seq uint64) {
		data, err := wire.EncodeFrame(wire.FrameMeta{Camera: cam, Seq: seq, Time: now, Width: 64, Height: 48}, jpeg)
		if err != nil {
			t.Fatal(err)
		}
		if err := bus.Conn.Publish(wire.FramesSubject(cam), data); err != nil {
			t.Fatal(err)
		}
	}
	maxG := base
	for i := 0; i < ids; i++ {
		publish(fmt.Sprintf("forged-%05d", i), 1)
		// Paced so that the subscription's pending limit drops none.
		if (i+1)%32 == 0 || i == ids-1 {
			if err := bus.Conn.Flush(); err != nil {
				t.Fatal(err)
			}
			want := float64(max(0, i+1-cfg.MaxCameras))
			waitForCond(t, 20*time.Second, fmt.Sprintf("%v refusals", want), func() bool { return testutil.ToFloat64(refusedC) >= want })
			maxG = max(maxG, runtime.NumGoroutine())
		}
	}
	if got, want := testutil.ToFloat64(refusedC), float64(ids-cfg.MaxCameras); got != want {
		t.Errorf("frames refused at max_cameras = %v, want %v", got, want)
	}
	if got := testutil.ToFloat64(m.Cameras); got != float64(cfg.MaxCameras) {
		t.Errorf("cameras held = %v, want %d", got, cfg.MaxCameras)
	}
	t.Logf("goroutines: %d before, at most %d during %d made-up cameras", base, maxG, ids)
	if maxG > base+cfg.MaxCameras+16 {
		t.Errorf("goroutines rose from %d to %d with %d made-up cameras, want at most %d more than before", base, maxG, ids, cfg.MaxCameras+16)
	}
	if dl := bus.DeadLetters(StageDetect); dl != 0 {
		t.Errorf("dead letters = %d, want 0 (refused cameras are counted, not dead-lettered)", dl)
	}

	// Idle cameras give their place back, and a new camera is taken.
	clock.advance(cfg.CameraIdle + time.Minute)
	waitForCond(t, 20*time.Second, "idle cameras let go", func() bool { return testutil.ToFloat64(m.Cameras) == 0 })
	waitForCond(t, 10*time.Second, "their goroutines ended", func() bool { return runtime.NumGoroutine() <= base+4 })
	refused := testutil.ToFloat64(refusedC)
	publish("fresh-camera", 1)
	waitForCond(t, 10*time.Second, "the new camera taken", func() bool { return testutil.ToFloat64(m.Cameras) == 1 })
	if got := testutil.ToFloat64(refusedC); got != refused {
		t.Errorf("frames refused after the idle cameras were let go = %v, want %v (no new refusal)", got, refused)
	}
}

// waitForCond polls cond until it holds or d passes.
func waitForCond(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDetectStageTakesMaxTracks: detect.max_tracks reaches the trackers,
// with the track settings `facewatch detect` and `run` pass (built from
// track.DefaultConfig, MaxOpen unset) or none at all; a MaxOpen given by
// the caller stands.
func TestDetectStageTakesMaxTracks(t *testing.T) {
	bus := openBus(t)
	cases := []struct {
		name  string
		track track.Config
		want  int
	}{
		{"track settings from the command", track.DefaultConfig(), 5},
		{"no track settings", track.Config{}, 5},
		{"MaxOpen given", func() track.Config { c := track.DefaultConfig(); c.MaxOpen = 3; return c }(), 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Defaults().Detect
			cfg.Workers, cfg.MaxTracks = 1, 5
			ds, err := NewDetectStage(DetectOptions{Bus: bus, Models: testdata.ModelDir(t), Detect: cfg, Embed: config.Defaults().Embed, Track: tc.track})
			if err != nil {
				t.Fatal(err)
			}
			defer ds.Close()
			if got := ds.opt.Track.MaxOpen; got != tc.want {
				t.Errorf("NewDetectStage(max_tracks 5, %s).Track.MaxOpen = %d, want %d", tc.name, got, tc.want)
			}
		})
	}
}
