package synthcam

import (
	"context"
	"image"
	"math"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/rtsptest"
	"github.com/facewatch/facewatch/internal/testdata"
)

// TestRenderShowsFacesWhereTheTruthSays decodes the rendered clip with
// OpenCV and checks, frame by frame, that the face is where the truth says
// and the background is untouched elsewhere.
func TestRenderShowsFacesWhereTheTruthSays(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	photo := testdata.Path(t, "dlib_johns/John_Salley/000179_02159509.jpg")
	s := Script{
		Width: 320, Height: 240, FPS: 5, Duration: 4 * time.Second,
		Background: testdata.OpenCV(t, "vtest.avi"),
		Appearances: []Appearance{
			Walk("John_Salley", photo, 1*time.Second, 2*time.Second, 320, 40, 120, false),
		},
	}
	out := filepath.Join(t.TempDir(), "clip.mp4")
	truth, err := Render(ctx, s, out)
	if err != nil {
		t.Fatal(err)
	}
	if truth.Frames != 20 {
		t.Fatalf("Render frames = %d, want 20", truth.Frames)
	}
	a := truth.Appearances[0]
	if a.FirstFrame != 5 || a.LastFrame != 14 {
		t.Errorf("appearance frames = %d..%d, want 5..14", a.FirstFrame, a.LastFrame)
	}

	face := gocv.IMRead(photo, gocv.IMReadColor)
	defer face.Close()
	want := gocv.NewMat()
	defer want.Close()
	gocv.Resize(face, &want, image.Pt(120, 120), 0, 0, gocv.InterpolationCubic)

	vc, err := gocv.VideoCaptureFile(out)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	frame := gocv.NewMat()
	defer frame.Close()
	var first gocv.Mat
	n := 0
	for vc.Read(&frame) {
		if frame.Cols() != 320 || frame.Rows() != 240 {
			t.Fatalf("frame %d is %dx%d, want 320x240", n, frame.Cols(), frame.Rows())
		}
		if n == 0 {
			first = frame.Clone()
			defer first.Close()
		}
		box, visible := a.At(truth.FrameTime(n))
		if visible {
			roi := frame.Region(box)
			if d := meanAbsDiff(roi, want); d > 12 {
				t.Errorf("frame %d: face region differs from the photo by %.1f, want under 12", n, d)
			}
			roi.Close()
		} else if n > 0 {
			probe := image.Rect(100, 40, 220, 160)
			r1, r0 := frame.Region(probe), first.Region(probe)
			if d := meanAbsDiff(r1, r0); d > 6 {
				t.Errorf("frame %d (no face): background differs from frame 0 by %.1f, want under 6", n, d)
			}
			r1.Close()
			r0.Close()
		}
		n++
	}
	if n != truth.Frames {
		t.Errorf("decoded %d frames, want %d", n, truth.Frames)
	}
}

func meanAbsDiff(a, b gocv.Mat) float64 {
	d := gocv.NewMat()
	defer d.Close()
	gocv.AbsDiff(a, b, &d)
	m := d.Mean()
	return (m.Val1 + m.Val2 + m.Val3) / 3
}

func TestScriptValidate(t *testing.T) {
	ok := Script{Width: 320, Height: 240, FPS: 5, Duration: time.Second}
	face := Appearance{Identity: "a", Photo: "p.jpg", Start: 0, End: time.Second, Size: 100}
	tests := []struct {
		name string
		mod  func(s *Script)
	}{
		{"odd width", func(s *Script) { s.Width = 321 }},
		{"zero fps", func(s *Script) { s.FPS = 0 }},
		{"no duration", func(s *Script) { s.Duration = 0 }},
		{"ends after clip", func(s *Script) { f := face; f.End = 2 * time.Second; s.Appearances = []Appearance{f} }},
		{"outside frame", func(s *Script) { f := face; f.To = image.Pt(300, 0); s.Appearances = []Appearance{f} }},
		{"no photo", func(s *Script) { f := face; f.Photo = ""; s.Appearances = []Appearance{f} }},
		{"hidden after the end", func(s *Script) {
			f := face
			f.Hidden = []Span{{From: 500 * time.Millisecond, To: 2 * time.Second}}
			s.Appearances = []Appearance{f}
		}},
		{"empty hidden span", func(s *Script) {
			f := face
			f.Hidden = []Span{{From: 500 * time.Millisecond, To: 500 * time.Millisecond}}
			s.Appearances = []Appearance{f}
		}},
	}
	for _, tc := range tests {
		s := ok
		tc.mod(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("Validate(%s) = nil, want an error", tc.name)
		}
	}
	s := ok
	s.Appearances = []Appearance{face}
	if err := s.Validate(); err != nil {
		t.Errorf("Validate(good script) = %v", err)
	}
}

// TestRenderHidden: a face hidden for a span of its appearance is not
// drawn then (the background shows) and is drawn before and after.
func TestRenderHidden(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	photo := testdata.Path(t, "dlib_johns/John_Salley/000179_02159509.jpg")
	a := Appearance{Identity: "John_Salley", Photo: photo, Start: time.Second, End: 4 * time.Second,
		From: image.Pt(100, 60), To: image.Pt(100, 60), Size: 90, Hidden: []Span{{From: 2 * time.Second, To: 3 * time.Second}}}
	s := Script{Width: 320, Height: 240, FPS: 5, Duration: 4 * time.Second, Background: testdata.OpenCV(t, "vtest.avi"), Appearances: []Appearance{a}}
	out := filepath.Join(t.TempDir(), "hidden.mp4")
	truth, err := Render(ctx, s, out)
	if err != nil {
		t.Fatal(err)
	}
	if got := truth.Appearances[0]; got.FirstFrame != 5 || got.LastFrame != 19 {
		t.Errorf("hidden appearance frames = %d..%d, want 5..19", got.FirstFrame, got.LastFrame)
	}
	face := gocv.IMRead(photo, gocv.IMReadColor)
	defer face.Close()
	want := gocv.NewMat()
	defer want.Close()
	gocv.Resize(face, &want, image.Pt(90, 90), 0, 0, gocv.InterpolationCubic)
	vc, err := gocv.VideoCaptureFile(out)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	box := image.Rect(100, 60, 190, 150)
	frame := gocv.NewMat()
	defer frame.Close()
	var first gocv.Mat
	n := 0
	for ; vc.Read(&frame); n++ {
		if n == 0 {
			first = frame.Clone()
			defer first.Close()
		}
		r := frame.Region(box)
		_, shown := a.At(truth.FrameTime(n))
		if wantShown := n >= 5 && (n < 10 || n >= 15); shown != wantShown {
			t.Errorf("At(frame %d) visible = %v, want %v", n, shown, wantShown)
		}
		if shown {
			if d := meanAbsDiff(r, want); d > 12 {
				t.Errorf("frame %d: face region differs from the photo by %.1f, want under 12", n, d)
			}
		} else if n > 0 {
			r0 := first.Region(box)
			if d := meanAbsDiff(r, r0); d > 6 {
				t.Errorf("frame %d (hidden or absent): region differs from frame 0 by %.1f, want the background (under 6)", n, d)
			}
			r0.Close()
		}
		r.Close()
	}
	if n != 20 {
		t.Errorf("decoded %d frames, want 20", n)
	}
}

// TestServeOverRTSP serves the standard scenario and reads it back through
// OpenCV's RTSP client from the first frame: the frame count and the frame
// size match the script.
func TestServeOverRTSP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sc, err := Johns(testdata.SharedDir(), 320, 180, 5)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(sc.Script.Appearances); got != 8 {
		t.Fatalf("Johns() appearances = %d, want 8", got)
	}
	for _, a := range sc.Script.Appearances {
		if a.Photo == sc.EnrolPhoto {
			t.Errorf("the enrolment photo %s appears in the clip", a.Photo)
		}
	}
	if err := sc.Script.Validate(); err != nil {
		t.Fatal(err)
	}
	sc.Script.Duration = 5 * time.Second
	sc.Script.Appearances = sc.Script.Appearances[:1]
	var sent atomic.Int64
	served, err := Serve(ctx, sc.Script, t.TempDir(), ServeOptions{StartOnPlay: true, OnFrame: func(rtsptest.FrameEvent) { sent.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer served.Server.Close()
	vc, err := gocv.OpenVideoCapture(served.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	m := gocv.NewMat()
	defer m.Close()
	n := 0
	for vc.Read(&m) && !m.Empty() {
		if m.Cols() != 320 || m.Rows() != 180 {
			t.Fatalf("frame %d is %dx%d, want 320x180", n, m.Cols(), m.Rows())
		}
		n++
	}
	if got := int(sent.Load()); got != served.Truth.Frames {
		t.Errorf("served %d frames, want %d", got, served.Truth.Frames)
	}
	// OpenCV's client may lose the last frame when the server ends the
	// session; every other frame must arrive.
	if n < served.Truth.Frames-1 || n > served.Truth.Frames {
		t.Errorf("read %d frames over RTSP, want %d (or one fewer)", n, served.Truth.Frames)
	}
}

// TestFadeInAndResized: a face that fades in changes no frame much (each
// frame's largest change from the one before stays under a third of the
// face's full contrast) and is whole at the end; Resized draws every
// appearance at the asked sizes, inside the frame.
func TestFadeInAndResized(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	photo := testdata.Path(t, "dlib_johns/John_Salley/000179_02159509.jpg")
	a := Appearance{Identity: "John_Salley", Photo: photo, Start: time.Second, End: 4 * time.Second,
		From: image.Pt(100, 60), To: image.Pt(100, 60), Size: 90, FadeIn: 2 * time.Second}
	s := Script{Width: 320, Height: 240, FPS: 5, Duration: 4 * time.Second, Appearances: []Appearance{a}}
	out := filepath.Join(t.TempDir(), "fade.mp4")
	truth, err := Render(ctx, s, out)
	if err != nil {
		t.Fatal(err)
	}
	if got := truth.Appearances[0]; got.FirstFrame != 6 || got.LastFrame != 19 {
		t.Errorf("fading appearance frames = %d..%d, want 6..19 (frame 5 is fully transparent)", got.FirstFrame, got.LastFrame)
	}
	vc, err := gocv.VideoCaptureFile(out)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	box := image.Rect(100, 60, 190, 150)
	var frames []gocv.Mat
	defer func() {
		for _, m := range frames {
			m.Close()
		}
	}()
	for {
		m := gocv.NewMat()
		if !vc.Read(&m) {
			m.Close()
			break
		}
		frames = append(frames, m)
	}
	if len(frames) != 20 {
		t.Fatalf("decoded %d frames, want 20", len(frames))
	}
	maxDiff := func(a, b gocv.Mat) float64 {
		ra, rb := a.Region(box), b.Region(box)
		defer ra.Close()
		defer rb.Close()
		d := gocv.NewMat()
		defer d.Close()
		gocv.AbsDiff(ra, rb, &d)
		g := gocv.NewMat()
		defer g.Close()
		gocv.CvtColor(d, &g, gocv.ColorBGRToGray)
		_, hi, _, _ := gocv.MinMaxLoc(g)
		return float64(hi)
	}
	whole := maxDiff(frames[0], frames[19])
	for i := 1; i < 20; i++ {
		if d := maxDiff(frames[i-1], frames[i]); d > whole/3 {
			t.Errorf("frame %d differs from frame %d by %.0f in the face's box, want under a third of the face's %.0f", i, i-1, d, whole)
		}
	}
	if whole < 60 {
		t.Errorf("the faded-in face differs from the background by %.0f, want a visible face", whole)
	}

	sc, err := Johns(testdata.SharedDir(), 640, 360, 5)
	if err != nil {
		t.Fatal(err)
	}
	small := sc.Resized(56, 80)
	if err := small.Script.Validate(); err != nil {
		t.Fatalf("Resized script: %v", err)
	}
	for i, ap := range small.Script.Appearances {
		orig := sc.Script.Appearances[i]
		if want := []int{56, 80}[i%2]; ap.Size != want || ap.Identity != orig.Identity {
			t.Errorf("Resized appearance %d = %s at %d px, want %s at %d", i, ap.Identity, ap.Size, orig.Identity, want)
		}
		// Same speed in face sides per second, from the same edge.
		speed := func(a Appearance) float64 {
			return float64(a.To.X-a.From.X) / float64(a.Size) / (a.End - a.Start).Seconds()
		}
		if got, want := speed(ap), speed(orig); math.Abs(got-want) > 0.05*math.Abs(want) {
			t.Errorf("Resized appearance %d moves %.2f sides/s, want %.2f", i, got, want)
		}
		if (ap.From.X == 0) != (orig.From.X == 0) || ap.From.X > 0 && ap.From.X+ap.Size != 640 {
			t.Errorf("Resized appearance %d enters at x=%d, want the same edge as %d", i, ap.From.X, orig.From.X)
		}
	}
}
