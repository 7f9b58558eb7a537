package detect

import (
	"image"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/testdata"
)

// TestFit: a region grows to the detector's window (plus a margin) at its
// scale about its centre, and one that crosses a frame edge is moved
// inside, keeping its size, rather than clipped.
func TestFit(t *testing.T) {
	frame := image.Rect(0, 0, 640, 360)
	tests := []struct {
		name  string
		r     image.Rectangle
		scale float64
		want  image.Rectangle
	}{
		{"large enough stays", image.Rect(100, 100, 300, 250), 1, image.Rect(100, 100, 300, 250)},
		{"small grows about its centre", image.Rect(200, 200, 210, 210), 1, image.Rect(155, 155, 255, 255)},
		{"doubled needs half the pixels", image.Rect(200, 200, 210, 210), 2, image.Rect(180, 180, 230, 230)},
		{"left and top edges shift it in", image.Rect(-20, -30, 10, 5), 1, image.Rect(0, 0, 100, 100)},
		{"right and bottom edges shift it in", image.Rect(630, 350, 650, 370), 1, image.Rect(540, 260, 640, 360)},
		{"wider than the frame is clipped", image.Rect(-50, 100, 700, 200), 1, image.Rect(0, 100, 640, 200)},
		{"frame smaller than the window", image.Rect(10, 10, 20, 20), 0.1, image.Rect(0, 0, 640, 360)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := fit(tc.r, tc.scale, frame); got != tc.want {
				t.Errorf("fit(%v, %g) = %v, want %v", tc.r, tc.scale, got, tc.want)
			}
		})
	}
}

// TestMergeRegions: overlapping regions become one when that costs no
// more than two searches, at the larger scale; distant ones stay apart;
// a region inside another of no smaller scale disappears into it; a small
// enlarged region inside a large reduced one is not merged (that would
// enlarge the large one).
func TestMergeRegions(t *testing.T) {
	frame := image.Rect(0, 0, 1280, 720)
	reg := func(x0, y0, x1, y1 int, s float64) Region {
		return Region{Rect: image.Rect(x0, y0, x1, y1), Scale: s, Why: "motion"}
	}
	tests := []struct {
		name string
		in   []Region
		want []image.Rectangle
		// wantScale is each output region's scale.
		wantScale []float64
	}{
		{"apart", []Region{reg(0, 0, 100, 100, 1), reg(500, 500, 600, 600, 1)},
			[]image.Rectangle{image.Rect(0, 0, 100, 100), image.Rect(500, 500, 600, 600)}, []float64{1, 1}},
		{"overlapping", []Region{reg(0, 0, 100, 100, 1), reg(50, 0, 150, 100, 1)},
			[]image.Rectangle{image.Rect(0, 0, 150, 100)}, []float64{1}},
		{"chain of three", []Region{reg(0, 0, 100, 100, 2), reg(200, 0, 300, 100, 2), reg(90, 0, 210, 100, 2)},
			[]image.Rectangle{image.Rect(0, 0, 300, 100)}, []float64{2}},
		{"inside a larger at the same scale", []Region{reg(100, 100, 400, 400, 2), reg(150, 150, 200, 200, 2)},
			[]image.Rectangle{image.Rect(100, 100, 400, 400)}, []float64{2}},
		{"reduced inside enlarged takes the larger scale", []Region{reg(100, 100, 400, 400, 2), reg(150, 150, 300, 300, 0.5)},
			[]image.Rectangle{image.Rect(100, 100, 400, 400)}, []float64{2}},
		{"enlarged inside a large reduced stays apart", []Region{reg(0, 0, 800, 600, 0.5), reg(300, 300, 350, 350, 2)},
			[]image.Rectangle{image.Rect(0, 0, 800, 600), image.Rect(300, 300, 350, 350)}, []float64{0.5, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mergeRegions(tc.in, frame)
			if len(got) != len(tc.want) {
				t.Fatalf("mergeRegions(%v) = %v, want %v", tc.in, got, tc.want)
			}
			for i := range got {
				if got[i].Rect != tc.want[i] || got[i].Scale != tc.wantScale[i] {
					t.Errorf("mergeRegions(%v)[%d] = %v ×%g, want %v ×%g", tc.in, i, got[i].Rect, got[i].Scale, tc.want[i], tc.wantScale[i])
				}
			}
		})
	}
}

// TestPlanRegions: tracks are searched around their expected box at the
// scale of their own face, bounded by the camera's range; motion at the
// scale the camera's smallest face needs; motion a track explains adds
// nothing; regions at the frame's edges stay inside it.
func TestPlanRegions(t *testing.T) {
	size := image.Pt(1280, 720)
	frame := image.Rectangle{Max: size}
	faces := FaceRange{Min: 40, Max: 200}
	still := func(r image.Rectangle) []TrackBox { return []TrackBox{{Last: r, Next: r}} }
	tests := []struct {
		name      string
		moved     []image.Rectangle
		tracks    []TrackBox
		wantWhy   []string
		wantScale []float64
	}{
		{"nothing moved, no track", nil, nil, nil, nil},
		{"motion alone at min_face's scale", []image.Rectangle{image.Rect(600, 300, 640, 340)}, nil, []string{"motion"}, []float64{2}},
		{"track of a 100-px face", nil, still(image.Rect(600, 300, 700, 400)), []string{"track"}, []float64{80.0 / 60}},
		{"track of a huge face bounded by max_face", nil, still(image.Rect(0, 0, 600, 600)), []string{"track"}, []float64{80.0 / 200}},
		{"track of a tiny face bounded by min_face", nil, still(image.Rect(10, 10, 30, 30)), []string{"track"}, []float64{2}},
		{"motion the track explains", []image.Rectangle{image.Rect(610, 310, 690, 390)}, still(image.Rect(600, 300, 700, 400)), []string{"track"}, []float64{80.0 / 60}},
		{"motion elsewhere", []image.Rectangle{image.Rect(100, 100, 140, 140)}, still(image.Rect(600, 300, 700, 400)), []string{"track", "motion"}, []float64{80.0 / 60, 2}},
		// A fast track not seen for a while: its prediction is far from
		// its last box. Its region is searched at its face's scale, not
		// the long span's, and a new face's motion beside the span is
		// not taken for the tracked person's.
		{"stale fast track and a new face", []image.Rectangle{image.Rect(300, 260, 340, 300)},
			[]TrackBox{{Last: image.Rect(100, 100, 200, 200), Next: image.Rect(500, 100, 600, 200)}}, []string{"track", "motion"}, []float64{80.0 / 60, 2}},
		{"track at the corner, at its whole face's scale", nil, still(image.Rect(1230, 680, 1300, 740)), []string{"track"}, []float64{80.0 / 42}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := planRegions(size, tc.moved, tc.tracks, faces)
			if len(p.Regions) != len(tc.wantWhy) {
				t.Fatalf("planRegions(%v, %v) = %+v, want %v", tc.moved, tc.tracks, p.Regions, tc.wantWhy)
			}
			for i, r := range p.Regions {
				if r.Why != tc.wantWhy[i] || r.Scale != tc.wantScale[i] {
					t.Errorf("region %d = %s ×%g, want %s ×%g", i, r.Why, r.Scale, tc.wantWhy[i], tc.wantScale[i])
				}
				if !r.Rect.In(frame) {
					t.Errorf("region %d = %v, outside the frame %v", i, r.Rect, frame)
				}
				if w := float64(min(r.Rect.Dx(), r.Rect.Dy())) * r.Scale; w < Window {
					t.Errorf("region %d = %v ×%g is %g searched pixels across, want at least the window %d", i, r.Rect, r.Scale, w, Window)
				}
			}
			// Every region around a track holds the track's box (clipped).
			for _, tr := range tc.tracks {
				held := false
				for _, r := range p.Regions {
					held = held || tr.Last.Union(tr.Next).Intersect(frame).In(r.Rect)
				}
				if !held {
					t.Errorf("track box %v is in no region of %+v", tr, p.Regions)
				}
			}
		})
	}
}

// TestMapBox: a box found in a region cut at an origin and resized maps
// back to frame pixels.
func TestMapBox(t *testing.T) {
	tests := []struct {
		name   string
		b      image.Rectangle
		origin image.Point
		sx, sy float64
		want   image.Rectangle
	}{
		{"unscaled", image.Rect(10, 20, 90, 100), image.Pt(100, 50), 1, 1, image.Rect(110, 70, 190, 150)},
		{"doubled", image.Rect(10, 20, 90, 100), image.Pt(100, 50), 2, 2, image.Rect(105, 60, 145, 100)},
		{"halved", image.Rect(10, 20, 90, 100), image.Pt(0, 0), 0.5, 0.5, image.Rect(20, 40, 180, 200)},
		{"past the region's edge", image.Rect(-10, -4, 70, 76), image.Pt(300, 200), 2, 2, image.Rect(295, 198, 335, 238)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := mapBox(tc.b, tc.origin, tc.sx, tc.sy); got != tc.want {
				t.Errorf("mapBox(%v, %v, %g) = %v, want %v", tc.b, tc.origin, tc.sx, got, tc.want)
			}
		})
	}
}

// TestDedupe: one face found in two overlapping regions is kept once, the
// more confident; two faces side by side are both kept.
func TestDedupe(t *testing.T) {
	c := func(x0, y0, x1, y1 int, conf float64) Candidate {
		return Candidate{Box: image.Rect(x0, y0, x1, y1), Confidence: conf}
	}
	tests := []struct {
		name string
		in   []Candidate
		want []Candidate
	}{
		{"same face twice", []Candidate{c(100, 100, 180, 180, 0.5), c(102, 98, 182, 178, 1.2)}, []Candidate{c(102, 98, 182, 178, 1.2)}},
		{"smaller box inside", []Candidate{c(100, 100, 190, 190, 0.9), c(110, 110, 170, 170, 0.3)}, []Candidate{c(100, 100, 190, 190, 0.9)}},
		{"neighbours", []Candidate{c(100, 100, 180, 180, 0.5), c(170, 100, 250, 180, 0.7)}, []Candidate{c(170, 100, 250, 180, 0.7), c(100, 100, 180, 180, 0.5)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := dedupe(tc.in)
			if len(got) != len(tc.want) {
				t.Fatalf("dedupe = %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("dedupe[%d] = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// TestPlannerMotion drives a Planner with real frames: the first is a
// full-frame pass; an unchanged frame searches nothing; a square that
// moves is searched where it was and is; after FullFrameEvery the whole
// frame is searched again; a frame of another size starts over with a
// full pass.
func TestPlannerMotion(t *testing.T) {
	const w, h = 1280, 720
	background := func() gocv.Mat {
		return gocv.NewMatWithSizeFromScalar(gocv.NewScalar(90, 100, 110, 0), h, w, gocv.MatTypeCV8UC3)
	}
	withSquare := func(at image.Point) gocv.Mat {
		m := background()
		r := m.Region(image.Rectangle{Min: at, Max: at.Add(image.Pt(60, 60))})
		r.SetTo(gocv.NewScalar(230, 230, 230, 0))
		r.Close()
		return m
	}
	p := NewPlanner(ROIOptions{Faces: FaceRange{Min: 40}, FullFrameEvery: 3 * time.Second, MaxWidth: 1280})
	defer p.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	frames := []struct {
		name     string
		m        gocv.Mat
		at       time.Duration
		wantFull bool
		// wantCover must lie inside the plan's regions.
		wantCover []image.Rectangle
		wantNone  bool
	}{
		{"first frame", background(), 0, true, nil, false},
		{"unchanged", background(), 200 * time.Millisecond, false, nil, true},
		{"square appears", withSquare(image.Pt(400, 300)), 400 * time.Millisecond, false, []image.Rectangle{image.Rect(400, 300, 460, 360)}, false},
		{"square moves", withSquare(image.Pt(440, 300)), 600 * time.Millisecond, false, []image.Rectangle{image.Rect(400, 300, 500, 360)}, false},
		{"square still", withSquare(image.Pt(440, 300)), 800 * time.Millisecond, false, nil, true},
		{"full pass due", withSquare(image.Pt(440, 300)), 3 * time.Second, true, nil, false},
		{"after the full pass", withSquare(image.Pt(440, 300)), 3200 * time.Millisecond, false, nil, true},
	}
	for _, f := range frames {
		t.Run(f.name, func(t *testing.T) {
			defer f.m.Close()
			plan, err := p.Plan(f.m, t0.Add(f.at), nil)
			if err != nil {
				t.Fatal(err)
			}
			if plan.Full != f.wantFull {
				t.Fatalf("Plan(%s).Full = %v, want %v (%+v)", f.name, plan.Full, f.wantFull, plan.Regions)
			}
			if f.wantFull && (len(plan.Regions) != 1 || plan.Regions[0].Rect != image.Rect(0, 0, w, h) || plan.Regions[0].Scale != 2) {
				t.Errorf("full pass = %+v, want the whole frame doubled", plan.Regions)
			}
			if f.wantNone && len(plan.Regions) != 0 {
				t.Errorf("Plan(%s) = %+v, want nothing to search", f.name, plan.Regions)
			}
			for _, c := range f.wantCover {
				covered := false
				for _, r := range plan.Regions {
					covered = covered || c.In(r.Rect)
				}
				if !covered {
					t.Errorf("Plan(%s) = %+v, want %v inside a region", f.name, plan.Regions, c)
				}
			}
			if !f.wantFull && plan.Cost() > 0.2*float64(w*h*4) {
				t.Errorf("Plan(%s) costs %.0f searched pixels, want a small part of the full pass's %d", f.name, plan.Cost(), w*h*4)
			}
		})
	}
	t.Run("new frame size", func(t *testing.T) {
		m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(90, 100, 110, 0), 360, 640, gocv.MatTypeCV8UC3)
		defer m.Close()
		plan, err := p.Plan(m, t0.Add(3400*time.Millisecond), nil)
		if err != nil || !plan.Full || plan.Regions[0].Rect != image.Rect(0, 0, 640, 360) {
			t.Errorf("Plan(640x360 after 1280x720) = %+v, %v; want a full pass of the new size", plan, err)
		}
	})
}

// TestFullPassesStaggered runs eight cameras' planners, phased as the
// detect stage phases them (Phase(k)), over a real still scene at 5 fps
// for 30 s, all started at the same moment: after the first frame (a full
// pass for every camera, as it must be) no two cameras search their whole
// frame in the same frame slot, and each camera still searches it once
// every full_frame_every (give or take a frame). Planners that ignored the
// phase would all fall due in the same slot.
func TestFullPassesStaggered(t *testing.T) {
	const (
		cameras = 8
		fps     = 5
		every   = 3 * time.Second
		seconds = 30
	)
	m, err := DecodeFile(testdata.DlibFace(t, "2007_007763.jpg"), 1<<24)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// Started at an odd moment, not on a slot boundary of phase 0.
	t0 := time.Date(2026, 1, 1, 0, 0, 1, 37e6, time.UTC)
	interval := time.Second / fps
	slots := map[int][]int{} // frame slot -> cameras doing a full pass there
	for k := range cameras {
		p := NewPlanner(ROIOptions{Faces: FaceRange{Min: 40}, FullFrameEvery: every, MaxWidth: 1280, Phase: Phase(k, every)})
		var fulls []int
		for i := range seconds * fps {
			plan, err := p.Plan(m, t0.Add(time.Duration(i)*interval), nil)
			if err != nil {
				p.Close()
				t.Fatal(err)
			}
			if plan.Full {
				fulls = append(fulls, i)
				if i > 0 {
					slots[i] = append(slots[i], k)
				}
			} else if len(plan.Regions) != 0 {
				t.Errorf("camera %d frame %d: still scene planned %+v, want nothing", k, i, plan.Regions)
			}
		}
		p.Close()
		if len(fulls) < seconds*int(time.Second)/int(every) {
			t.Errorf("camera %d: full passes at frames %v, want one every %v", k, fulls, every)
		}
		for j := 2; j < len(fulls); j++ {
			gap := time.Duration(fulls[j]-fulls[j-1]) * interval
			if gap < every-interval || gap > every+interval {
				t.Errorf("camera %d: full passes at frames %v: gap %v, want %v give or take a frame", k, fulls, gap, every)
			}
		}
	}
	for i, ks := range slots {
		if len(ks) > 1 {
			t.Errorf("frame slot %d: cameras %v all search the whole frame", i, ks)
		}
	}
	if len(slots) < cameras*(seconds*int(time.Second)/int(every)-1) {
		t.Errorf("%d slots with a full pass, want about %d", len(slots), cameras*seconds*int(time.Second)/int(every))
	}
}

// TestPhase: phases lie in [0, every), the first camera's is 0, and the
// first n of them are at least every/(2.6n) apart on the circle.
func TestPhase(t *testing.T) {
	const every = 3 * time.Second
	for n := 1; n <= 16; n++ {
		for i := range n {
			pi := Phase(i, every)
			if pi < 0 || pi >= every {
				t.Fatalf("Phase(%d) = %v, want within [0, %v)", i, pi, every)
			}
			for j := range i {
				d := pi - Phase(j, every)
				if d < 0 {
					d = -d
				}
				d = min(d, every-d)
				if float64(d) < float64(every)/(2.6*float64(n)) {
					t.Errorf("n=%d: Phase(%d)=%v and Phase(%d)=%v are %v apart, want at least %v", n, i, pi, j, Phase(j, every), d, every/time.Duration(2.6*float64(n)))
				}
			}
		}
	}
	if Phase(0, every) != 0 || Phase(5, 0) != 0 {
		t.Errorf("Phase(0) = %v, Phase(5, 0) = %v; want 0", Phase(0, every), Phase(5, 0))
	}
}
