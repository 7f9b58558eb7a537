package rtsptest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/pion/rtp"
	"go.uber.org/goleak"

	"github.com/facewatch/facewatch/internal/testdata"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if clipDir != "" {
		os.RemoveAll(clipDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var (
	clipOnce sync.Once
	clipErr  error
	testClip *Clip
	clipDir  string
)

const (
	testFPS = 20.0
	testW   = 160
	testH   = 120
	testDur = 2 * time.Second
	testGOP = 10
)

// clip encodes the package's test clip once (2 s of vtest.avi at 20 fps).
func clip(t *testing.T) *Clip {
	t.Helper()
	src := testdata.OpenCV(t, "vtest.avi")
	clipOnce.Do(func() {
		clipDir, clipErr = os.MkdirTemp("", "rtsptest-")
		if clipErr != nil {
			return
		}
		dst := filepath.Join(clipDir, "clip.h264")
		clipErr = Encode(context.Background(), EncodeOptions{Src: src, Dst: dst, Width: testW, Height: testH, FPS: testFPS, Duration: testDur, GOP: testGOP})
		if clipErr == nil {
			testClip, clipErr = LoadClip(dst, testFPS)
		}
	})
	if clipErr != nil {
		t.Fatal(clipErr)
	}
	return testClip
}

func TestEncodeAndParse(t *testing.T) {
	c := clip(t)
	wantFrames := int(testFPS * testDur.Seconds())
	if len(c.AUs) != wantFrames {
		t.Errorf("LoadClip: %d access units, want %d (%g fps × %v)", len(c.AUs), wantFrames, testFPS, testDur)
	}
	if c.Width != testW || c.Height != testH {
		t.Errorf("LoadClip: size %dx%d, want %dx%d", c.Width, c.Height, testW, testH)
	}
	for i, au := range c.AUs {
		if got, want := isIDR(au), i%testGOP == 0; got != want {
			t.Errorf("access unit %d: keyframe = %v, want %v (GOP %d)", i, got, want, testGOP)
		}
	}
	if got, want := c.Duration(), testDur; got != want {
		t.Errorf("Duration() = %v, want %v", got, want)
	}
	bad := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"no start code", []byte("not h264 at all")},
		{"parameter sets only", []byte{0, 0, 0, 1, 0x67, 0x42, 0, 0x1e, 0, 0, 0, 1, 0x68, 0xce}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseClip(tc.data, 25); err == nil {
				t.Errorf("ParseClip(%s) = nil error, want one", tc.name)
			}
		})
	}
	if err := Encode(context.Background(), EncodeOptions{Src: filepath.Join(t.TempDir(), "absent.avi"), Dst: filepath.Join(t.TempDir(), "x.h264"), Width: 10, Height: 10, FPS: 5}); err == nil || !strings.Contains(err.Error(), "absent.avi") {
		t.Errorf("Encode(missing source) error = %v, want one naming the source", err)
	}
}

// reader plays a URL with gortsplib's client (an RTSP implementation
// independent of OpenCV's) and records the access units it receives.
type reader struct {
	c    *gortsplib.Client
	mu   sync.Mutex
	aus  int
	pts  []int64
	recv []time.Time
}

func play(t *testing.T, rawURL string) (*reader, error) {
	t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.TransportTCP
	r := &reader{c: &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp}}
	if err := r.c.Start2(); err != nil {
		return nil, err
	}
	desc, _, err := r.c.Describe(u)
	if err != nil {
		r.c.Close()
		return nil, err
	}
	var forma *format.H264
	medi := desc.FindFormat(&forma)
	if medi == nil {
		r.c.Close()
		return nil, fmt.Errorf("no H264 media")
	}
	dec, err := forma.CreateDecoder()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.Setup(desc.BaseURL, medi, 0, 0); err != nil {
		r.c.Close()
		return nil, err
	}
	r.c.OnPacketRTP(medi, forma, func(pkt *rtp.Packet) {
		pts, ok := r.c.PacketPTS2(medi, pkt)
		au, err := dec.Decode(pkt)
		if err != nil || !ok || len(au) == 0 {
			if err != nil && err != rtph264.ErrMorePacketsNeeded && err != rtph264.ErrNonStartingPacketAndNoPrevious {
				t.Logf("decoding rtp: %v", err)
			}
			return
		}
		r.mu.Lock()
		r.aus++
		r.pts = append(r.pts, pts)
		r.recv = append(r.recv, time.Now())
		r.mu.Unlock()
	})
	if _, err := r.c.Play(nil); err != nil {
		r.c.Close()
		return nil, err
	}
	t.Cleanup(r.c.Close)
	return r, nil
}

func (r *reader) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.aus
}

// TestServeOnce serves the clip once from the first PLAY and checks every
// frame arrives, the reported presentation times, the pace, and that the
// path is gone afterwards.
func TestServeOnce(t *testing.T) {
	c := clip(t)
	var mu sync.Mutex
	var events []FrameEvent
	s, err := Start(context.Background(), Options{Sources: []Source{{
		Name: "once", Clip: c, StartOnPlay: true,
		OnFrame: func(e FrameEvent) { mu.Lock(); events = append(events, e); mu.Unlock() },
	}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := s.Path("once")
	time.Sleep(300 * time.Millisecond)
	if n := p.Served(); n != 0 {
		t.Fatalf("Served() before any PLAY = %d, want 0 (StartOnPlay)", n)
	}
	r, err := play(t, s.URL("once"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(testDur + 3*time.Second):
		t.Fatalf("Done() not closed %v after PLAY of a %v clip", testDur+3*time.Second, testDur)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != len(c.AUs) {
		t.Fatalf("OnFrame events = %d, want %d (each frame once)", len(events), len(c.AUs))
	}
	for i, e := range events {
		want := time.Duration(float64(i) / testFPS * float64(time.Second))
		if e.Seq != uint64(i) || e.Index != i || e.Loop != 0 || e.PTS != want || e.Path != "once" {
			t.Fatalf("event %d = %+v, want seq %d, index %d, loop 0, PTS %v", i, e, i, i, want)
		}
	}
	span := events[len(events)-1].Sent.Sub(events[0].Sent)
	wantSpan := time.Duration(float64(len(events)-1) / testFPS * float64(time.Second))
	if span < wantSpan*8/10 || span > wantSpan*13/10 {
		t.Errorf("frames sent over %v, want about %v (paced at %g fps)", span, wantSpan, testFPS)
	}
	// The client saw every frame, with the server's presentation times.
	time.Sleep(100 * time.Millisecond)
	if got := r.count(); got != len(c.AUs) {
		t.Errorf("client received %d access units, want %d", got, len(c.AUs))
	}
	r.mu.Lock()
	for i := 1; i < len(r.pts); i++ {
		if d := r.pts[i] - r.pts[0]; d != int64(i)*90000/int64(testFPS) {
			t.Errorf("client PTS of frame %d = %d ticks after the first, want %d", i, d, int64(i)*90000/int64(testFPS))
			break
		}
	}
	r.mu.Unlock()
	if _, err := play(t, s.URL("once")); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("PLAY after a once clip ended: error %v, want 404", err)
	}
}

// TestFaultControls checks each fault control as an independent RTSP client
// sees it.
func TestFaultControls(t *testing.T) {
	c := clip(t)
	s, err := Start(context.Background(), Options{Sources: []Source{
		{Name: "open", Clip: c, Loop: true},
		{Name: "auth", Clip: c, Loop: true, User: "u", Pass: "pw"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := s.Path("open")
	t.Run("auth", func(t *testing.T) {
		if _, err := play(t, s.URLWithUser("auth", "u", "wrong")); err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("play(wrong password) error = %v, want 401", err)
		}
		if _, err := play(t, s.URLWithUser("auth", "u", "pw")); err != nil {
			t.Errorf("play(right password) error = %v, want nil", err)
		}
	})
	t.Run("refuse", func(t *testing.T) {
		p.Refuse(true)
		_, err := play(t, s.URL("open"))
		p.Refuse(false)
		if err == nil || !strings.Contains(err.Error(), "503") {
			t.Errorf("play(refusing path) error = %v, want 503", err)
		}
	})
	r, err := play(t, s.URL("open"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("stall", func(t *testing.T) {
		waitCount(t, r, 5)
		p.Stall(true)
		time.Sleep(200 * time.Millisecond)
		before := r.count()
		time.Sleep(500 * time.Millisecond)
		if got := r.count(); got != before {
			t.Errorf("frames received while stalled = %d, want 0", got-before)
		}
		if p.Readers() != 1 {
			t.Errorf("Readers() while stalled = %d, want 1 (connection kept open)", p.Readers())
		}
		p.Stall(false)
		waitCount(t, r, before+5)
	})
	t.Run("low rate", func(t *testing.T) {
		p.SetRate(5)
		time.Sleep(300 * time.Millisecond)
		before := r.count()
		time.Sleep(2 * time.Second)
		got := float64(r.count()-before) / 2
		p.SetRate(0)
		if got < 3.5 || got > 6.5 {
			t.Errorf("frames per second at SetRate(5) = %.1f, want about 5", got)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		var mu sync.Mutex
		garbage := 0
		s.Add(Source{Name: "garbage", Clip: c, Loop: true, OnFrame: func(e FrameEvent) {
			if e.Garbage {
				mu.Lock()
				garbage++
				mu.Unlock()
			}
		}})
		s.Path("garbage").Garbage(7)
		time.Sleep(time.Second)
		mu.Lock()
		defer mu.Unlock()
		if garbage != 7 {
			t.Errorf("garbage frames served after Garbage(7) = %d, want 7", garbage)
		}
	})
	t.Run("drop", func(t *testing.T) {
		p.Drop(500 * time.Millisecond)
		time.Sleep(100 * time.Millisecond)
		if n := p.Readers(); n != 0 {
			t.Errorf("Readers() after Drop = %d, want 0", n)
		}
		if _, err := play(t, s.URL("open")); err == nil || !strings.Contains(err.Error(), "503") {
			t.Errorf("play during drop error = %v, want 503", err)
		}
		time.Sleep(500 * time.Millisecond)
		if _, err := play(t, s.URL("open")); err != nil {
			t.Errorf("play after drop = %v, want nil", err)
		}
	})
}

func waitCount(t *testing.T, r *reader, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("client received %d access units, want ≥ %d within 5s", r.count(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// FuzzParseClip feeds arbitrary bytes to the Annex-B parser: it must return
// a clip or an error, never panic, and a clip it returns must be servable
// (every access unit non-empty, parameter sets present).
func FuzzParseClip(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x65, 0x88})
	f.Add([]byte{0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xd9, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80, 0, 0, 1, 0x65, 0x88, 0x84})
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseClip(data, 25)
		if err != nil {
			return
		}
		if len(c.AUs) == 0 || c.SPS == nil || c.PPS == nil {
			t.Fatalf("ParseClip returned a clip without frames or parameter sets: %d AUs", len(c.AUs))
		}
		for i, au := range c.AUs {
			if len(au) == 0 {
				t.Fatalf("access unit %d is empty", i)
			}
		}
	})
}
