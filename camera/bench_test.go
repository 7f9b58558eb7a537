package camera

import (
	"context"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/rtsptest"
	"github.com/facewatch/facewatch/internal/testdata"
)

// Benchmark clips, encoded on first use from walking_royal_opera_house.mp4
// (1920x1080, 25 fps, 4.2 s) and a still frame of vtest.avi.
var benchClips struct {
	sync.Map // name → path
}

func benchClip(b *testing.B, name string, o rtsptest.EncodeOptions) string {
	b.Helper()
	if p, ok := benchClips.Load(name); ok {
		return p.(string)
	}
	needClips(b)
	o.Dst = filepath.Join(clips.dir, name+".h264")
	if err := rtsptest.Encode(context.Background(), o); err != nil {
		b.Fatal(err)
	}
	benchClips.Store(name, o.Dst)
	return o.Dst
}

// cpuTime is the process's user+system CPU time: FFmpeg decodes on threads
// of its own, so wall time per op understates the cost.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// frameReader reads a clip in a loop through the package's capture.
type frameReader struct {
	b    *testing.B
	path string
	c    *capture
}

func (r *frameReader) read(m *gocv.Mat) {
	for {
		if r.c == nil {
			r.b.StopTimer()
			c, err := openCapture(r.path, "tcp", 10*time.Second, 5*time.Second)
			if err != nil {
				r.b.Fatal(err)
			}
			r.c = c
			r.b.StartTimer()
		}
		if ok, _ := r.c.read(m); ok && !m.Empty() {
			return
		}
		r.b.StopTimer()
		r.c.close()
		r.c = nil
		r.b.StartTimer()
	}
}

func (r *frameReader) close() {
	if r.c != nil {
		r.c.close()
	}
}

// BenchmarkDecode measures the cost of decoding one frame (H.264 to BGR) at
// 720p and 1080p: ns/op is wall time, cpu-ns/frame counts every thread.
func BenchmarkDecode(b *testing.B) {
	walking := testdata.Path(b, "videos/walking_royal_opera_house.mp4")
	for _, sz := range []struct {
		name string
		w, h int
	}{{"720p", 1280, 720}, {"1080p", 1920, 1080}} {
		path := benchClip(b, "walking-"+sz.name, rtsptest.EncodeOptions{Src: walking, Width: sz.w, Height: sz.h, FPS: 25, GOP: 25})
		b.Run(sz.name, func(b *testing.B) {
			r := &frameReader{b: b, path: path}
			defer r.close()
			m := gocv.NewMat()
			defer m.Close()
			r.read(&m) // open outside the measurement
			cpu0 := cpuTime(b)
			b.ResetTimer()
			for range b.N {
				r.read(&m)
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/frame")
		})
	}
}

// BenchmarkIngest measures the camera stage's CPU per camera: one op is one
// second of a 720p stream sampled at 5 fps, with and without motion gating,
// on people walking and on a still scene at 25 fps (25 frames decoded per
// op), and on people walking sent at 5 fps by the camera itself.
// cpu-ns/op is CPU per camera-second; cameras/core is how many such
// cameras one core sustains (network receive excluded).
func BenchmarkIngest(b *testing.B) {
	walking := testdata.Path(b, "videos/walking_royal_opera_house.mp4")
	vtest := testdata.OpenCV(b, "vtest.avi")
	scenes := []struct {
		name string
		path string
		fps  int
	}{
		{"walking", benchClip(b, "walking-720p", rtsptest.EncodeOptions{Src: walking, Width: 1280, Height: 720, FPS: 25, GOP: 25}), 25},
		{"still", benchClip(b, "still-720p", rtsptest.EncodeOptions{Src: vtest, Width: 1280, Height: 720, FPS: 25, GOP: 25, Still: true, Duration: 4 * time.Second}), 25},
		// A camera set to send 5 fps itself: nothing decoded is wasted.
		{"walking-5fps-source", benchClip(b, "walking-720p-5fps", rtsptest.EncodeOptions{Src: walking, Width: 1280, Height: 720, FPS: 5, GOP: 5}), 5},
	}
	for _, sc := range scenes {
		for _, gate := range []struct {
			name      string
			threshold float64
		}{{"ungated", 0}, {"gated", 2}} {
			b.Run(sc.name+"/"+gate.name, func(b *testing.B) {
				r := &frameReader{b: b, path: sc.path}
				defer r.close()
				s := newSampler(5, gate.threshold, 2*time.Second)
				defer s.close()
				t := time.Unix(1000, 0)
				out := 0
				m := gocv.NewMat()
				defer m.Close()
				r.read(&m)
				cpu0 := cpuTime(b)
				b.ResetTimer()
				for range b.N {
					for range sc.fps {
						r.read(&m)
						t = t.Add(time.Second / time.Duration(sc.fps))
						if s.decide(t, m) == "" {
							out++
						}
					}
				}
				b.StopTimer()
				cpu := float64(cpuTime(b)-cpu0) / float64(b.N)
				b.ReportMetric(cpu, "cpu-ns/op")
				b.ReportMetric(1e9/cpu, "cameras/core")
				b.ReportMetric(float64(out)/float64(b.N), "frames-out/s")
			})
		}
	}
}
