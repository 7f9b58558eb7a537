package track

import (
	"image"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)

const step = 200 * time.Millisecond // 5 fps

func box(x, y, side int) image.Rectangle { return image.Rect(x, y, x+side, y+side) }

type frame struct {
	boxes []image.Rectangle
	q     []float64
}

// run feeds frames (one per step) and then Flush, returning every report.
func run(cfg Config, frames []frame) []Track[int] {
	tr := New[int](cfg, 100)
	var out []Track[int]
	for i, f := range frames {
		var dets []Detection[int]
		for j, b := range f.boxes {
			q := 0.5
			if j < len(f.q) {
				q = f.q[j]
			}
			dets = append(dets, Detection[int]{Box: b, Quality: q, Payload: i})
		}
		out = append(out, tr.Update(uint64(i), t0.Add(time.Duration(i)*step), dets)...)
	}
	return append(out, tr.Flush()...)
}

func finals(rs []Track[int]) []Track[int] {
	var out []Track[int]
	for _, r := range rs {
		if r.Final {
			out = append(out, r)
		}
	}
	return out
}

func TestTracksAcrossFrames(t *testing.T) {
	cfg := DefaultConfig()
	cfg.EarlyFaces = 0
	walk := func(n, x0, dx, y int) []image.Rectangle {
		var bs []image.Rectangle
		for i := 0; i < n; i++ {
			bs = append(bs, box(x0+i*dx, y, 100))
		}
		return bs
	}
	tests := []struct {
		name   string
		frames []frame
		// want is the number of frames in each final track, in order of
		// start.
		want []int
	}{
		{"one walker", framesOf(walk(10, 0, 30, 50)), []int{10}},
		{"fast walker without overlap", framesOf(walk(6, 0, 70, 50)), []int{6}},
		{"two walkers apart", mergeFrames(framesOf(walk(8, 0, 20, 0)), framesOf(walk(8, 500, -20, 250))), []int{8, 8}},
		{"gone and back is two tracks", append(append(framesOf(walk(5, 0, 10, 0)), make([]frame, 11)...), framesOf(walk(5, 0, 10, 0))...), []int{5, 5}},
		// Hidden for 5 frames while walking 30 px a frame: it reappears
		// 180 px (1.8 box sides) from where it was last seen, beyond the
		// centre-distance bound, where its motion predicts it.
		{"occluded walker is one track", append(append(framesOf(walk(5, 0, 30, 0)), make([]frame, 5)...), framesOf(walk(5, 300, 30, 0))...), []int{10}},
		{"occluded walker turning back is a new track", append(append(framesOf(walk(5, 0, 30, 0)), make([]frame, 5)...), framesOf(walk(5, 400, -30, 300))...), []int{5, 5}},
		{"short gap is one track", append(append(framesOf(walk(5, 0, 10, 0)), make([]frame, 3)...), framesOf(walk(5, 80, 10, 0))...), []int{10}},
		{"one-frame blip dropped", framesOf(walk(1, 0, 0, 0)), nil},
		{"teleport is a new track", append(framesOf(walk(4, 0, 10, 0)), framesOf(walk(4, 600, 10, 300))...), []int{4, 4}},
		// Seen once, then its next three frames dropped (a burst after a
		// reconnect overflowing the detect queue): 0.8 s later it is 2.8
		// box sides along, beyond MaxCentre, and nothing predicts it yet.
		{"walker after dropped frames is one track", append(append(framesOf(walk(1, 0, 70, 0)), make([]frame, 3)...), framesOf(walk(5, 280, 70, 0))...), []int{6}},
		// The same jump without the time: a face 2.8 sides away in the
		// next frame is someone else (the first, seen once, is a blip).
		{"jump within one frame is a new track", append(framesOf(walk(1, 0, 70, 0)), framesOf(walk(5, 280, 70, 0))...), []int{5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := finals(run(cfg, tc.frames))
			if len(got) != len(tc.want) {
				t.Fatalf("final tracks = %d, want %d (%+v)", len(got), len(tc.want), got)
			}
			ids := map[uint64]bool{}
			for i, r := range got {
				if r.Seen != tc.want[i] {
					t.Errorf("track %d seen %d times, want %d", i, r.Seen, tc.want[i])
				}
				if ids[r.ID] {
					t.Errorf("track ID %d reused", r.ID)
				}
				ids[r.ID] = true
				if r.End.Sub(r.Start) != time.Duration(r.Seen-1)*step && !gapped(tc.frames) {
					t.Errorf("track %d spans %v..%v, want %d frames", i, r.Start, r.End, r.Seen)
				}
			}
		})
	}
}

// gapped reports whether some frame shows nobody (a track across it spans
// more frames than it was seen in).
func gapped(fs []frame) bool {
	return slices.ContainsFunc(fs, func(f frame) bool { return len(f.boxes) == 0 })
}

func framesOf(bs []image.Rectangle) []frame {
	fs := make([]frame, len(bs))
	for i, b := range bs {
		fs[i] = frame{boxes: []image.Rectangle{b}}
	}
	return fs
}

func mergeFrames(a, b []frame) []frame {
	out := make([]frame, max(len(a), len(b)))
	for i := range out {
		if i < len(a) {
			out[i].boxes = append(out[i].boxes, a[i].boxes...)
		}
		if i < len(b) {
			out[i].boxes = append(out[i].boxes, b[i].boxes...)
		}
	}
	return out
}

func TestKeepsBestFaces(t *testing.T) {
	cfg := DefaultConfig()
	cfg.EarlyFaces = 0
	qs := []float64{0.1, 0.9, 0.5, 0.7, 0.3, 0.7}
	var fs []frame
	for i, q := range qs {
		fs = append(fs, frame{boxes: []image.Rectangle{box(i*10, 0, 100)}, q: []float64{q}})
	}
	got := finals(run(cfg, fs))
	if len(got) != 1 {
		t.Fatalf("tracks = %d, want 1", len(got))
	}
	var gotQ []float64
	var gotSeq []uint64
	for _, f := range got[0].Best {
		gotQ = append(gotQ, f.Quality)
		gotSeq = append(gotSeq, f.Seq)
	}
	// Ties keep the earlier face first.
	want := []float64{0.9, 0.7, 0.7}
	wantSeq := []uint64{1, 3, 5}
	for i := range want {
		if i >= len(gotQ) || gotQ[i] != want[i] || gotSeq[i] != wantSeq[i] {
			t.Fatalf("best faces = %v (seq %v), want %v (seq %v)", gotQ, gotSeq, want, wantSeq)
		}
	}
	if got[0].Best[0].Payload != 1 {
		t.Errorf("best face payload = %d, want 1 (frame of quality 0.9)", got[0].Best[0].Payload)
	}
}

func TestEarlyReportOnce(t *testing.T) {
	cfg := DefaultConfig()
	cfg.EarlyFaces = 3
	cfg.GoodQuality = 0 // no face is good enough: the sighting count decides
	var fs []frame
	for i := 0; i < 7; i++ {
		fs = append(fs, frame{boxes: []image.Rectangle{box(i*10, 0, 100)}})
	}
	rs := run(cfg, fs)
	if len(rs) != 2 || rs[0].Final || !rs[1].Final {
		t.Fatalf("reports = %+v, want one early then one final", rs)
	}
	if rs[0].Seen != 3 || rs[1].Seen != 7 || rs[0].ID != rs[1].ID {
		t.Errorf("early seen %d id %d, final seen %d id %d; want 3 and 7 of one track", rs[0].Seen, rs[0].ID, rs[1].Seen, rs[1].ID)
	}
}

func TestEndsOnlyAfterGap(t *testing.T) {
	cfg := DefaultConfig()
	tr := New[int](cfg, 1)
	tr.Update(0, t0, []Detection[int]{{Box: box(0, 0, 100)}, {Box: box(300, 0, 100)}})
	tr.Update(1, t0.Add(step), []Detection[int]{{Box: box(0, 0, 100)}, {Box: box(300, 0, 100)}})
	if rs := tr.Update(2, t0.Add(cfg.MaxGap), nil); len(rs) != 0 {
		t.Fatalf("Update(gap %v) ended %d tracks, want 0", cfg.MaxGap-step, len(rs))
	}
	rs := tr.Update(3, t0.Add(step+cfg.MaxGap+time.Millisecond), nil)
	if len(rs) != 2 || !rs[0].Final || rs[0].ID == rs[1].ID {
		t.Fatalf("Update(after gap) = %+v, want two distinct final tracks", rs)
	}
	if tr.Open() != 0 {
		t.Errorf("Open() = %d after the gap, want 0", tr.Open())
	}
}

func TestIDsUniqueAcrossRestarts(t *testing.T) {
	a := New[int](DefaultConfig(), IDBase(t0))
	var last uint64
	for i := 0; i < 5; i++ {
		rs := a.Update(uint64(i), t0.Add(time.Duration(i)*5*time.Second), []Detection[int]{{Box: box(0, 0, 100)}})
		_ = rs
	}
	for _, r := range a.Flush() {
		last = max(last, r.ID)
	}
	// A restart one millisecond later starts above every ID used before.
	b := New[int](DefaultConfig(), IDBase(t0.Add(time.Millisecond)))
	if b.nextID <= last {
		t.Errorf("restarted tracker starts at %d, want above %d", b.nextID, last)
	}
}

func TestIoU(t *testing.T) {
	tests := []struct {
		a, b image.Rectangle
		want float64
	}{
		{box(0, 0, 10), box(0, 0, 10), 1},
		{box(0, 0, 10), box(20, 20, 10), 0},
		{box(0, 0, 10), box(5, 0, 10), 50.0 / 150},
		{image.Rect(0, 0, 0, 0), image.Rect(0, 0, 0, 0), 0},
	}
	for _, tc := range tests {
		if got := IoU(tc.a, tc.b); got != tc.want {
			t.Errorf("IoU(%v, %v) = %g, want %g", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestMaxOpenBoundsTracks: a poster wall of faces opens at most MaxOpen
// tracks; the rest are refused and counted, and the open tracks go on.
func TestMaxOpenBoundsTracks(t *testing.T) {
	var wall []Detection[int]
	for i := range 100 {
		wall = append(wall, Detection[int]{Box: box((i%10)*100, (i/10)*100, 50), Quality: 0.5})
	}
	cases := []struct {
		name     string
		maxOpen  int
		wantOpen int
	}{
		{"unbounded", 0, 100},
		{"bounded to 8", 8, 8},
		{"bound above the crowd", 500, 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.MaxOpen = tc.maxOpen
			tr := New[int](cfg, 1)
			for i := range 3 {
				tr.Update(uint64(i), t0.Add(time.Duration(i)*step), wall)
			}
			if tr.Open() != tc.wantOpen {
				t.Errorf("Open() after 3 frames of 100 faces with MaxOpen %d = %d, want %d", tc.maxOpen, tr.Open(), tc.wantOpen)
			}
			if want := uint64(3 * (100 - tc.wantOpen)); tr.Refused() != want {
				t.Errorf("Refused() = %d, want %d", tr.Refused(), want)
			}
			// The tracks that are open follow their faces (seen in every frame).
			for _, r := range tr.Flush() {
				if r.Seen != 3 {
					t.Errorf("track %d seen %d times, want 3", r.ID, r.Seen)
				}
			}
		})
	}
}

// TestEarlyOnEvidence checks when early reports are given: at the first good
// face (not after EarlyFaces sightings), again only for a clearly better
// face, at most MaxEarly times, and at EarlyFaces sightings when no face is
// good.
func TestEarlyOnEvidence(t *testing.T) {
	cfg := DefaultConfig()
	cfg.EarlyFaces, cfg.GoodQuality, cfg.GoodSide, cfg.Better, cfg.MaxEarly = 3, 0.6, 60, 0.05, 3
	tests := []struct {
		name string
		q    []float64
		side int
		// want is the sequence number of the frame each early report was
		// given at, and its best quality.
		wantSeq []uint64
		wantQ   []float64
	}{
		{"first face good", []float64{0.7, 0.7, 0.72, 0.7}, 100, []uint64{0}, []float64{0.7}},
		{"good from the third frame", []float64{0.3, 0.4, 0.65, 0.66}, 100, []uint64{2}, []float64{0.65}},
		{"no good face: after three sightings", []float64{0.3, 0.4, 0.45, 0.5, 0.52}, 100, []uint64{2, 3}, []float64{0.45, 0.5}},
		{"good but small: after three sightings", []float64{0.9, 0.9, 0.9, 0.9}, 40, []uint64{2}, []float64{0.9}},
		{"better faces, bounded", []float64{0.6, 0.62, 0.7, 0.71, 0.8, 0.9, 0.95}, 100, []uint64{0, 2, 4}, []float64{0.6, 0.7, 0.8}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var fs []frame
			for i, q := range tc.q {
				fs = append(fs, frame{boxes: []image.Rectangle{box(i*10, 0, tc.side)}, q: []float64{q}})
			}
			rs := run(cfg, fs)
			var gotSeq []uint64
			var gotQ []float64
			for i, r := range rs {
				if r.Final {
					if i != len(rs)-1 {
						t.Errorf("final report is not the last: %+v", rs)
					}
					continue
				}
				if r.Report != len(gotSeq) {
					t.Errorf("early report %d numbered %d", len(gotSeq), r.Report)
				}
				gotSeq = append(gotSeq, uint64(r.Seen-1))
				gotQ = append(gotQ, r.Best[0].Quality)
			}
			if !slices.Equal(gotSeq, tc.wantSeq) || !slices.Equal(gotQ, tc.wantQ) {
				t.Errorf("early reports at frames %v with best %v, want %v with %v", gotSeq, gotQ, tc.wantSeq, tc.wantQ)
			}
			if len(finals(rs)) != 1 {
				t.Errorf("final reports = %d, want 1", len(finals(rs)))
			}
		})
	}
}

// TestExpected: each open track is expected at its last box and where its
// velocity over the last two sightings puts it; a track seen once is
// expected where it was.
func TestExpected(t *testing.T) {
	tr := New[int](DefaultConfig(), 1)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tr.Update(1, t0, []Detection[int]{{Box: image.Rect(100, 100, 160, 160)}, {Box: image.Rect(400, 300, 450, 350)}})
	tr.Update(2, t0.Add(200*time.Millisecond), []Detection[int]{{Box: image.Rect(120, 100, 180, 160)}})
	last, next := tr.Expected(t0.Add(600 * time.Millisecond))
	want := map[image.Rectangle]image.Rectangle{
		image.Rect(120, 100, 180, 160): image.Rect(160, 100, 220, 160), // 100 px/s for 0.4 s
		image.Rect(400, 300, 450, 350): image.Rect(400, 300, 450, 350), // seen once: no velocity
	}
	if len(last) != 2 || len(next) != 2 {
		t.Fatalf("Expected = %v, %v; want two tracks", last, next)
	}
	for i := range last {
		if w, ok := want[last[i]]; !ok || next[i] != w {
			t.Errorf("Expected: last %v, next %v; want next %v", last[i], next[i], w)
		}
	}
}
