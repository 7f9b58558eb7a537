package detect_test

import (
	"context"
	"fmt"
	"image"
	"math"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/face"
	"github.com/facewatch/facewatch/internal/synthcam"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/internal/track"
)

// benchClip is a rendered clip decoded into memory at the camera stage's
// 5 fps, with the ground truth of where each face is.
type benchClip struct {
	frames []gocv.Mat
	truth  synthcam.Truth
}

func renderBenchClip(b *testing.B, s synthcam.Script) benchClip {
	b.Helper()
	file := filepath.Join(b.TempDir(), "clip.mp4")
	tr, err := synthcam.Render(context.Background(), s, file)
	if err != nil {
		b.Fatal(err)
	}
	vc, err := gocv.VideoCaptureFile(file)
	if err != nil {
		b.Fatal(err)
	}
	defer vc.Close()
	c := benchClip{truth: tr}
	for {
		m := gocv.NewMat()
		if !vc.Read(&m) {
			m.Close()
			break
		}
		c.frames = append(c.frames, m)
	}
	b.Cleanup(func() {
		for _, m := range c.frames {
			m.Close()
		}
	})
	return c
}

// visible is where the faces are drawn in frame i.
func (c benchClip) visible(i int) []image.Rectangle {
	var out []image.Rectangle
	for _, a := range c.truth.Appearances {
		if r, ok := a.At(c.truth.FrameTime(i)); ok && a.FirstFrame <= i && i <= a.LastFrame {
			out = append(out, r)
		}
	}
	return out
}

// hits counts the faces of truth one of boxes finds: its centre inside
// the drawn photo, its side at least 0.4 of the photo's.
func hits(truth, boxes []image.Rectangle) int {
	n := 0
	for _, t := range truth {
		for _, b := range boxes {
			c := image.Pt((b.Min.X+b.Max.X)/2, (b.Min.Y+b.Max.Y)/2)
			if c.In(t) && float64(b.Dx()) >= 0.4*float64(t.Dx()) {
				n++
				break
			}
		}
	}
	return n
}

// cameraPass runs the clip through one camera's detection as the detect
// stage does (a tracker fed with the faces found; with region search, a
// planner given the tracker's expected boxes) and returns the CPU time
// spent and the recall over face-frames.
func cameraPass(b *testing.B, d *detect.Detector, c benchClip, roi *detect.ROIOptions) (time.Duration, int, int) {
	var planner *detect.Planner
	if roi != nil {
		planner = detect.NewPlanner(*roi)
		defer planner.Close()
	}
	tr := track.New[struct{}](track.DefaultConfig(), 1)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var got, want int
	cpu0 := cpuTime(b)
	for i, m := range c.frames {
		at := t0.Add(c.truth.FrameTime(i))
		var err error
		var faces []faceBox
		if planner == nil {
			fs, e := d.Detect(context.Background(), m)
			faces, err = boxesOf(fs), e
		} else {
			plan, e := planner.Plan(m, at, trackBoxes(tr, at))
			if e != nil {
				b.Fatal(e)
			}
			fs, e := d.DetectPlan(context.Background(), m, plan)
			faces, err = boxesOf(fs), e
		}
		if err != nil {
			b.Fatal(err)
		}
		dets := make([]track.Detection[struct{}], len(faces))
		boxes := make([]image.Rectangle, len(faces))
		for j, f := range faces {
			dets[j] = track.Detection[struct{}]{Box: f.box, Quality: f.q}
			boxes[j] = f.box
		}
		tr.Update(uint64(i), at, dets)
		truth := c.visible(i)
		want += len(truth)
		got += hits(truth, boxes)
	}
	return cpuTime(b) - cpu0, got, want
}

// trackBoxes is where tr expects its tracks at `at`, as the detect stage
// hands them to its planner.
func trackBoxes[P any](tr *track.Tracker[P], at time.Time) []detect.TrackBox {
	last, next := tr.Expected(at)
	out := make([]detect.TrackBox, len(last))
	for i := range last {
		out[i] = detect.TrackBox{Last: last[i], Next: next[i]}
	}
	return out
}

type faceBox struct {
	box image.Rectangle
	q   float64
}

func boxesOf(fs []face.Face) []faceBox {
	out := make([]faceBox, len(fs))
	for i, f := range fs {
		out[i] = faceBox{f.Box, f.Quality.Score}
	}
	return out
}

// BenchmarkCameraPath: CPU per camera-second of the camera path, searching
// every frame whole (the path before region search) against region search,
// alternated round by round in one run, with the recall of each over the
// clip's face-frames (a face visible in a frame and found there). Scenes:
// the walking clip (synthcam.Johns: people crossing a 720p camera, faces
// of about 180 px), the same with faces of 40-60 px at 640x360, and a still
// scene (a person standing, face about 100 px, nothing moving). The old
// path runs at the settings its recall needs (upsample 1 for the small
// faces); region search at the product defaults (min_face 40: regions and
// the full-frame pass every 3 s doubled) and, where the faces are large,
// at a min_face fitted to the camera (80: nothing enlarged), and with a
// max_face too ("min-max": HOG's pyramid cut at the levels max_face needs).
//
//	go test -run '^$' -bench CameraPath -benchtime 3x ./detect/
func BenchmarkCameraPath(b *testing.B) {
	shared := testdata.SharedDir()
	bg := testdata.OpenCV(b, "vtest.avi")
	defaults := config.Defaults().Detect
	type mode struct {
		name     string
		upsample int
		roi      *detect.ROIOptions
	}
	roi := func(minFace, maxFace, maxWidth int) *detect.ROIOptions {
		return &detect.ROIOptions{Faces: detect.FaceRange{Min: minFace, Max: maxFace}, FullFrameEvery: defaults.FullFrameEvery, MaxWidth: maxWidth}
	}
	scenes := []struct {
		name   string
		script func() synthcam.Script
		maxW   int
		modes  []mode
	}{
		{"walk720", func() synthcam.Script {
			sc, err := synthcam.Johns(shared, 1280, 720, 5)
			if err != nil {
				b.Fatal(err)
			}
			sc.Script.Background = bg
			return sc.Script
		}, 1280, []mode{{"full_up0", 0, nil}, {"roi_min40", 0, roi(40, 0, 1280)}, {"roi_min80", 0, roi(80, 0, 1280)},
			{"roi_80-260", 0, roi(80, 260, 1280)}, {"roi_120-260", 0, roi(120, 260, 1280)}}},
		{"small360", func() synthcam.Script {
			sc, err := synthcam.Johns(shared, 640, 360, 5)
			if err != nil {
				b.Fatal(err)
			}
			sc = sc.Resized(64, 72, 58, 80, 68, 76, 56, 70)
			sc.Script.Background = bg
			return sc.Script
		}, 640, []mode{{"full_up1", 1, nil}, {"roi_min40", 0, roi(40, 0, 640)}, {"roi_40-100", 0, roi(40, 100, 640)}}},
		{"still720", func() synthcam.Script {
			sc, err := synthcam.Johns(shared, 1280, 720, 5)
			if err != nil {
				b.Fatal(err)
			}
			a := sc.Script.Appearances[2]
			a.Start, a.End, a.Size = 0, 24*time.Second, 130
			a.From = image.Pt(500, 200)
			a.To = a.From
			sc.Script.Appearances = []synthcam.Appearance{a}
			sc.Script.Background = bg
			return sc.Script
		}, 1280, []mode{{"full_up0", 0, nil}, {"roi_min40", 0, roi(40, 0, 1280)}, {"roi_min80", 0, roi(80, 0, 1280)},
			{"roi_80-160", 0, roi(80, 160, 1280)}}},
	}
	for _, sc := range scenes {
		b.Run(sc.name, func(b *testing.B) {
			clip := renderBenchClip(b, sc.script())
			seconds := float64(len(clip.frames)) / float64(clip.truth.FPS)
			dets := make([]*detect.Detector, len(sc.modes))
			for i, m := range sc.modes {
				dets[i] = newDetector(b, func(c *detectCfg) {
					*c = defaults
					c.MaxWidth, c.Upsample = sc.maxW, m.upsample
				})
			}
			cpu := make([][]float64, len(sc.modes)) // ms per camera-second, per round
			recall := make([]float64, len(sc.modes))
			for b.Loop() {
				// One round: every mode over the whole clip, in turn.
				for i, m := range sc.modes {
					t, got, want := cameraPass(b, dets[i], clip, m.roi)
					cpu[i] = append(cpu[i], float64(t.Milliseconds())/seconds)
					recall[i] = float64(got) / float64(max(want, 1))
				}
			}
			for i, m := range sc.modes {
				b.ReportMetric(median(cpu[i]), m.name+"-cpu-ms/cam-s")
				b.ReportMetric(recall[i], m.name+"-recall")
				if i == 0 {
					continue
				}
				var ratios []float64
				for r := range cpu[0] {
					ratios = append(ratios, cpu[0][r]/math.Max(cpu[i][r], 1e-9))
				}
				slices.Sort(ratios)
				b.ReportMetric(median(ratios), m.name+"-less-x")
				b.Logf("%s/%s: %.1fx less CPU than %s (rounds %s), recall %.3f against %.3f",
					sc.name, m.name, median(ratios), sc.modes[0].name, fmtRatios(ratios), recall[i], recall[0])
			}
		})
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func fmtRatios(v []float64) string {
	out := ""
	for i, r := range v {
		if i > 0 {
			out += " "
		}
		out += fmt.Sprintf("%.1f", r)
	}
	return out
}

// BenchmarkFullPassSpread: four cameras on one detector, each showing the
// walking clip at the defaults (min_face 40, a full pass doubled every
// 3 s), all started at the same moment, frame slot by frame slot as one
// worker would take them: the CPU of each slot (all four cameras' frames)
// with every camera's full passes at phase 0, as before, against phased
// as the detect stage phases them (detect.Phase). Reports the slots'
// median and largest CPU and how many slots hold more than one full pass;
// the whole clip's CPU is about the same either way.
//
//	go test -run '^$' -bench FullPassSpread -benchtime 1x ./detect/
func BenchmarkFullPassSpread(b *testing.B) {
	const cameras = 4
	shared := testdata.SharedDir()
	defaults := config.Defaults().Detect
	sc, err := synthcam.Johns(shared, 1280, 720, 5)
	if err != nil {
		b.Fatal(err)
	}
	sc.Script.Background = testdata.OpenCV(b, "vtest.avi")
	clip := renderBenchClip(b, sc.Script)
	d := newDetector(b, func(c *detectCfg) { *c = defaults })
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	run := func(phased bool) (slots []float64, crowded int) {
		planners := make([]*detect.Planner, cameras)
		trackers := make([]*track.Tracker[struct{}], cameras)
		for k := range planners {
			opt := detect.ROIOptions{Faces: detect.FaceRange{Min: defaults.MinFaceSize}, FullFrameEvery: defaults.FullFrameEvery, MaxWidth: defaults.MaxWidth}
			if phased {
				opt.Phase = detect.Phase(k, opt.FullFrameEvery)
			}
			planners[k] = detect.NewPlanner(opt)
			defer planners[k].Close()
			trackers[k] = track.New[struct{}](track.DefaultConfig(), 1)
		}
		for i, m := range clip.frames {
			at := t0.Add(clip.truth.FrameTime(i))
			c0 := cpuTime(b)
			fulls := 0
			for k := range cameras {
				plan, err := planners[k].Plan(m, at, trackBoxes(trackers[k], at))
				if err != nil {
					b.Fatal(err)
				}
				if plan.Full {
					fulls++
				}
				fs, err := d.DetectPlan(context.Background(), m, plan)
				if err != nil {
					b.Fatal(err)
				}
				dets := make([]track.Detection[struct{}], len(fs))
				for j, f := range fs {
					dets[j] = track.Detection[struct{}]{Box: f.Box, Quality: f.Quality.Score}
				}
				trackers[k].Update(uint64(i), at, dets)
			}
			if i > 0 && fulls > 1 {
				crowded++
			}
			slots = append(slots, float64((cpuTime(b)-c0).Microseconds())/1000)
		}
		return slots, crowded
	}
	for b.Loop() {
		for _, phased := range []bool{false, true} {
			slots, crowded := run(phased)
			name := "aligned"
			if phased {
				name = "phased"
			}
			var total float64
			for _, s := range slots[1:] {
				total += s
			}
			b.ReportMetric(median(slots[1:]), name+"-slot-p50-ms")
			b.ReportMetric(slices.Max(slots[1:]), name+"-slot-max-ms")
			b.ReportMetric(float64(crowded), name+"-slots-2+full")
			b.Logf("%s: %d cameras, slot CPU p50 %.0f ms, max %.0f ms (first frame, a full pass for all, left out); %d slots with two or more full passes; clip total %.1f CPU-s",
				name, cameras, median(slots[1:]), slices.Max(slots[1:]), crowded, total/1000)
		}
	}
}
