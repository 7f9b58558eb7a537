// Package synthcam makes synthetic camera footage with ground truth: it
// composites real face photos onto a background, moving across the frame
// during set intervals, and encodes the result as H.264 with ffmpeg, so
// that a test (or the demo) can serve it over RTSP and know exactly which
// alerts must follow. It renders files and reports the script it rendered;
// it must not detect, recognise or judge anything.
package synthcam

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"gocv.io/x/gocv"
)

// Appearance is one person crossing the frame.
type Appearance struct {
	// Identity is the ground-truth label (a folder name of the data set).
	Identity string `json:"identity"`
	// Photo is the face image composited (a 150x150 crop works well).
	Photo string `json:"photo"`
	// Start and End bound the appearance in stream time.
	Start time.Duration `json:"start"`
	End   time.Duration `json:"end"`
	// From and To are the top-left corners of the face at Start and End;
	// it moves in a straight line between them.
	From image.Point `json:"from"`
	To   image.Point `json:"to"`
	// Size is the side of the composited face in pixels.
	Size int `json:"size"`
	// FadeIn, when set, blends the face in over this long from Start
	// instead of showing it at once: a face that comes into view without
	// any one frame changing much (no motion to notice).
	FadeIn time.Duration `json:"fade_in,omitempty"`
	// Hidden lists spans of stream time inside Start..End during which the
	// face is not drawn though it keeps moving: a person behind a pillar,
	// whose track breaks in the middle of the view.
	Hidden []Span `json:"hidden,omitempty"`
	// FirstFrame and LastFrame are filled in by Render: the frames (from 0)
	// in which the face is visible.
	FirstFrame int `json:"first_frame"`
	LastFrame  int `json:"last_frame"`
}

// Span is an interval of stream time, From inclusive, To exclusive.
type Span struct {
	From time.Duration `json:"from"`
	To   time.Duration `json:"to"`
}

// Script describes a clip.
type Script struct {
	Width, Height int
	FPS           int
	Duration      time.Duration
	// Background is an image or video file whose first frame, resized, is
	// the backdrop; empty gives a plain grey one.
	Background  string
	Appearances []Appearance
}

// Truth is what a rendered clip shows: the appearances with their frame
// ranges, in order of start.
type Truth struct {
	FPS         int           `json:"fps"`
	Frames      int           `json:"frames"`
	Width       int           `json:"width"`
	Height      int           `json:"height"`
	Appearances []Appearance  `json:"appearances"`
	Interval    time.Duration `json:"interval"`
}

// FrameTime is the stream time of frame i.
func (t Truth) FrameTime(i int) time.Duration {
	return time.Duration(i) * time.Second / time.Duration(t.FPS)
}

// Of returns the appearances of identity.
func (t Truth) Of(identity string) []Appearance {
	var out []Appearance
	for _, a := range t.Appearances {
		if a.Identity == identity {
			out = append(out, a)
		}
	}
	return out
}

// Validate checks s before anything is rendered.
func (s *Script) Validate() error {
	if s.Width < 64 || s.Height < 64 || s.Width%2 != 0 || s.Height%2 != 0 {
		return fmt.Errorf("frame size %dx%d: want even sides of at least 64", s.Width, s.Height)
	}
	if s.FPS < 1 || s.FPS > 60 {
		return fmt.Errorf("fps %d is not between 1 and 60", s.FPS)
	}
	if s.Duration <= 0 || s.Duration > time.Hour {
		return fmt.Errorf("duration %v is not between 0 and 1h", s.Duration)
	}
	for i, a := range s.Appearances {
		if a.Photo == "" || a.Identity == "" {
			return fmt.Errorf("appearance %d: identity and photo are required", i)
		}
		if a.End <= a.Start || a.Start < 0 || a.End > s.Duration {
			return fmt.Errorf("appearance %d (%s): interval %v..%v is not inside 0..%v", i, a.Identity, a.Start, a.End, s.Duration)
		}
		if a.Size < 16 || a.Size > min(s.Width, s.Height) {
			return fmt.Errorf("appearance %d (%s): size %d does not fit the frame", i, a.Identity, a.Size)
		}
		for _, h := range a.Hidden {
			if h.To <= h.From || h.From < a.Start || h.To > a.End {
				return fmt.Errorf("appearance %d (%s): hidden span %v..%v is not inside %v..%v", i, a.Identity, h.From, h.To, a.Start, a.End)
			}
		}
		for _, p := range []image.Point{a.From, a.To} {
			if p.X < 0 || p.Y < 0 || p.X+a.Size > s.Width || p.Y+a.Size > s.Height {
				return fmt.Errorf("appearance %d (%s): position %v puts the face outside the frame", i, a.Identity, p)
			}
		}
	}
	return nil
}

// Render draws the clip and encodes it with ffmpeg into out (H.264; the
// container follows out's extension: .mp4, .mkv, or .h264 for an Annex B
// elementary stream). A keyframe every second lets a client join mid-way.
func Render(ctx context.Context, s Script, out string) (Truth, error) {
	if err := s.Validate(); err != nil {
		return Truth{}, fmt.Errorf("synthetic clip: %w", err)
	}
	bg, err := background(s)
	if err != nil {
		return Truth{}, err
	}
	defer bg.Close()
	faces := map[string]gocv.Mat{}
	defer func() {
		for _, m := range faces {
			m.Close()
		}
	}()
	apps := append([]Appearance(nil), s.Appearances...)
	sort.SliceStable(apps, func(i, j int) bool { return apps[i].Start < apps[j].Start })
	for i := range apps {
		key := fmt.Sprintf("%s@%d", apps[i].Photo, apps[i].Size)
		if _, ok := faces[key]; ok {
			continue
		}
		m := gocv.IMRead(apps[i].Photo, gocv.IMReadColor)
		if m.Empty() {
			m.Close()
			return Truth{}, fmt.Errorf("reading face photo %s: not a readable image", apps[i].Photo)
		}
		r := gocv.NewMat()
		gocv.Resize(m, &r, image.Pt(apps[i].Size, apps[i].Size), 0, 0, gocv.InterpolationCubic)
		m.Close()
		faces[key] = r
	}
	for i := range apps {
		apps[i].FirstFrame, apps[i].LastFrame = -1, -1
	}

	n := int(s.Duration * time.Duration(s.FPS) / time.Second)
	truth := Truth{FPS: s.FPS, Frames: n, Width: s.Width, Height: s.Height, Interval: time.Second / time.Duration(s.FPS)}

	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return Truth{}, fmt.Errorf("creating output directory: %w", err)
	}
	args := []string{"-hide_banner", "-loglevel", "error", "-y",
		"-f", "rawvideo", "-pix_fmt", "bgr24", "-s", fmt.Sprintf("%dx%d", s.Width, s.Height), "-r", fmt.Sprint(s.FPS), "-i", "-",
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-profile:v", "baseline", "-pix_fmt", "yuv420p",
		"-g", fmt.Sprint(s.FPS), "-keyint_min", fmt.Sprint(s.FPS), "-sc_threshold", "0", "-bf", "0", "-r", fmt.Sprint(s.FPS)}
	if filepath.Ext(out) == ".h264" {
		// What rtsptest serves: parameter sets before every keyframe and
		// one access unit delimiter per frame.
		args = append(args, "-x264-params", "repeat-headers=1:aud=1", "-f", "h264")
	}
	args = append(args, out)
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return Truth{}, fmt.Errorf("starting ffmpeg: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return Truth{}, fmt.Errorf("starting ffmpeg: %w", err)
	}
	werr := writeFrames(stdin, bg, faces, apps, n, s.FPS)
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		return Truth{}, fmt.Errorf("encoding %s with ffmpeg: %w: %s", out, err, bytes.TrimSpace(stderr.Bytes()))
	}
	if werr != nil {
		return Truth{}, fmt.Errorf("feeding frames to ffmpeg: %w", werr)
	}
	truth.Appearances = apps
	return truth, nil
}

func writeFrames(w io.Writer, bg gocv.Mat, faces map[string]gocv.Mat, apps []Appearance, n, fps int) error {
	frame := gocv.NewMat()
	defer frame.Close()
	for i := 0; i < n; i++ {
		t := time.Duration(i) * time.Second / time.Duration(fps)
		bg.CopyTo(&frame)
		for k := range apps {
			a := &apps[k]
			if _, ok := a.At(t); !ok {
				continue
			}
			if a.alpha(t) <= 0 {
				continue // fading in, not yet drawn
			}
			r, _ := a.At(t)
			roi := frame.Region(r)
			f := faces[fmt.Sprintf("%s@%d", a.Photo, a.Size)]
			if alpha := a.alpha(t); alpha < 1 {
				gocv.AddWeighted(roi, 1-alpha, f, alpha, 0, &roi)
			} else {
				f.CopyTo(&roi)
			}
			roi.Close()
			if a.FirstFrame < 0 {
				a.FirstFrame = i
			}
			a.LastFrame = i
		}
		if _, err := w.Write(frame.ToBytes()); err != nil {
			return err
		}
	}
	return nil
}

// background returns the backdrop at the script's size.
func background(s Script) (gocv.Mat, error) {
	size := image.Pt(s.Width, s.Height)
	if s.Background == "" {
		m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(96, 104, 112, 0), s.Height, s.Width, gocv.MatTypeCV8UC3)
		return m, nil
	}
	var src gocv.Mat
	switch filepath.Ext(s.Background) {
	case ".jpg", ".jpeg", ".png", ".bmp":
		src = gocv.IMRead(s.Background, gocv.IMReadColor)
	default:
		vc, err := gocv.VideoCaptureFile(s.Background)
		if err != nil {
			return gocv.Mat{}, fmt.Errorf("opening background %s: %w", s.Background, err)
		}
		src = gocv.NewMat()
		ok := vc.Read(&src)
		vc.Close()
		if !ok {
			src.Close()
			return gocv.Mat{}, fmt.Errorf("reading a frame of background %s: %w", s.Background, errors.New("no frame"))
		}
	}
	if src.Empty() {
		src.Close()
		return gocv.Mat{}, fmt.Errorf("reading background %s: not a readable image", s.Background)
	}
	out := gocv.NewMat()
	gocv.Resize(src, &out, size, 0, 0, gocv.InterpolationArea)
	src.Close()
	return out, nil
}

// Walk is an appearance crossing the frame from left to right (or right to
// left when leftward) at height y, from start for d.
func Walk(identity, photo string, start, d time.Duration, width, y, size int, leftward bool) Appearance {
	from, to := image.Pt(0, y), image.Pt(width-size, y)
	if leftward {
		from, to = to, from
	}
	return Appearance{Identity: identity, Photo: photo, Start: start, End: start + d, From: from, To: to, Size: size}
}

// At returns where the face of a is (its box) at stream time t, and
// whether it is visible then (not before Start, from End, nor while
// Hidden).
func (a Appearance) At(t time.Duration) (image.Rectangle, bool) {
	if t < a.Start || t >= a.End {
		return image.Rectangle{}, false
	}
	for _, h := range a.Hidden {
		if t >= h.From && t < h.To {
			return image.Rectangle{}, false
		}
	}
	f := float64(t-a.Start) / float64(a.End-a.Start)
	x := a.From.X + int(f*float64(a.To.X-a.From.X))
	y := a.From.Y + int(f*float64(a.To.Y-a.From.Y))
	return image.Rect(x, y, x+a.Size, y+a.Size), true
}

// alpha is how opaque a's face is at stream time t (while it fades in).
func (a Appearance) alpha(t time.Duration) float64 {
	if a.FadeIn <= 0 || t-a.Start >= a.FadeIn {
		return 1
	}
	return float64(t-a.Start) / float64(a.FadeIn)
}

// Resized returns the scenario with each appearance's face photo drawn at
// sizes[i % len(sizes)] pixels (the face's box is about three quarters of
// that): small-face footage, for cameras whose faces are under the
// detector's window. A smaller face is a person further away, who crosses
// fewer pixels in the same time: each appearance keeps its start, its
// duration, its edge of entry and relative height, and its speed in face
// sides per second, so it walks in from its edge and leaves the view (it
// is gone) part of the way across.
func (sc Scenario) Resized(sizes ...int) Scenario {
	if len(sizes) == 0 {
		return sc
	}
	apps := make([]Appearance, len(sc.Script.Appearances))
	for i, a := range sc.Script.Appearances {
		size := sizes[i%len(sizes)]
		rel := func(p image.Point) image.Point {
			scale := func(v, span int) int {
				if free := span - a.Size; free > 0 {
					return v * (span - size) / free
				}
				return 0
			}
			return image.Pt(scale(p.X, sc.Script.Width), scale(p.Y, sc.Script.Height))
		}
		b := a
		b.Size = size
		b.From = rel(a.From)
		move := a.To.Sub(a.From).Mul(size).Div(a.Size)
		b.To = b.From.Add(move)
		apps[i] = b
	}
	sc.Script.Appearances = apps
	return sc
}

// Scenario is the standard script of the end-to-end tests and the demo:
// person A (the first identity of dlib_johns) crosses the frame twice, as
// two separate tracks, and four strangers cross several times, sometimes
// two at once. A's first photo is left out of the clip: it is the one to
// enrol.
type Scenario struct {
	Script Script
	// Enrolled is A's identity and EnrolPhoto the photo to enrol A from.
	Enrolled   string
	EnrolPhoto string
	Strangers  []string
}

// Johns builds the Scenario from the dlib_johns folder of the shared data
// (shared is that data set's root) at the given frame size and rate; the
// clip lasts 24 s.
func Johns(shared string, width, height, fps int) (Scenario, error) {
	root := filepath.Join(shared, "dlib_johns")
	dirs, err := filepath.Glob(filepath.Join(root, "John_*"))
	if err != nil || len(dirs) < 5 {
		return Scenario{}, fmt.Errorf("synthetic scenario: want 5 identities under %s, found %d", root, len(dirs))
	}
	sort.Strings(dirs)
	photos := make([][]string, len(dirs))
	for i, d := range dirs {
		ps, _ := filepath.Glob(filepath.Join(d, "*.jpg"))
		sort.Strings(ps)
		if len(ps) < 4 {
			return Scenario{}, fmt.Errorf("synthetic scenario: want at least 4 photos in %s, found %d", d, len(ps))
		}
		photos[i] = ps
	}
	name := func(i int) string { return filepath.Base(dirs[i]) }
	size := height / 3
	row := func(f float64) int { return int(f * float64(height-size)) }
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	walk := func(id, photo int, start, d float64, y float64, leftward bool) Appearance {
		return Walk(name(id), photos[id][photo], sec(start), sec(d), width, row(y), size, leftward)
	}
	s := Script{Width: width, Height: height, FPS: fps, Duration: 24 * time.Second}
	s.Appearances = []Appearance{
		walk(1, 1, 1.0, 3, 0.1, false),
		walk(2, 1, 3.0, 3, 0.9, true),
		walk(0, 2, 7.0, 3, 0.4, false), // A, first track
		walk(3, 1, 11.0, 3, 0.1, false),
		walk(4, 1, 11.5, 3, 0.9, true),
		walk(1, 3, 15.5, 3, 0.6, true),
		walk(0, 3, 19.0, 3, 0.2, true), // A, second track
		walk(2, 2, 22.0, 1.8, 0.7, false),
	}
	return Scenario{
		Script:     s,
		Enrolled:   name(0),
		EnrolPhoto: photos[0][0],
		Strangers:  []string{name(1), name(2), name(3), name(4)},
	}, nil
}
