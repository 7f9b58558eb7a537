package track

import (
	"image"
	"testing"
	"time"
)

// view is the frame of the appearance tests: boxes are 100 px, frames
// 200 ms apart.
var view = image.Rect(0, 0, 1000, 600)

// runView is run with the tracker told the frame's bounds.
func runView(cfg Config, v image.Rectangle, frames []frame) []Track[int] {
	tr := New[int](cfg, 100)
	tr.SetView(v)
	var out []Track[int]
	for i, f := range frames {
		var dets []Detection[int]
		for _, b := range f.boxes {
			dets = append(dets, Detection[int]{Box: b, Quality: 0.5, Payload: i})
		}
		out = append(out, tr.Update(uint64(i), t0.Add(time.Duration(i)*step), dets)...)
	}
	return append(out, tr.Flush()...)
}

// path is n frames of one box of side 100 whose top-left corner starts at
// (x, y) and moves dx, dy a frame.
func path(n, x, y, dx, dy int) []image.Rectangle {
	var bs []image.Rectangle
	for i := range n {
		bs = append(bs, box(x+i*dx, y+i*dy, 100))
	}
	return bs
}

// jittered is bs with its last box moved dx to the right.
func jittered(bs []image.Rectangle, dx int) []image.Rectangle {
	bs[len(bs)-1] = bs[len(bs)-1].Add(image.Pt(dx, 0))
	return bs
}

// then is a followed by `hidden` empty frames and b.
func then(a []frame, hidden int, b []frame) []frame {
	return append(append(append([]frame(nil), a...), make([]frame, hidden)...), b...)
}

func TestAppearances(t *testing.T) {
	cfg := DefaultConfig()
	cfg.EarlyFaces = 0
	tests := []struct {
		name   string
		frames []frame
		// want names each final track's appearance (in order of start)
		// by the index of the final track that began it.
		want []int
	}{
		{"one track is its own appearance", framesOf(path(8, 100, 200, 30, 0)), []int{0}},
		// Walking right at 150 px/s, lost mid-frame for 2.8 s (longer
		// than MaxGap, so a new track), found again where its motion
		// puts it.
		{"break in the middle links", then(framesOf(path(8, 100, 200, 30, 0)), 14, framesOf(path(6, 760, 200, 30, 0))), []int{0, 0}},
		// The last sighting 40 px off (the detector's jitter): from the
		// last two sightings alone the walker would be doing 350 px/s and
		// be out of the view by now; over the last second it did 190.
		{"jitter in the last sighting still links", then(framesOf(jittered(path(8, 100, 200, 30, 0), 40)), 14, framesOf(path(6, 760, 200, 30, 0))), []int{0, 0}},
		{"stopped behind something links", then(framesOf(path(8, 100, 200, 30, 0)), 14, framesOf(path(6, 320, 200, 0, 0))), []int{0, 0}},
		// Hidden 1.2 s (the first track is still open) and found 1.5
		// box sides beyond where its motion puts it: too far to continue
		// the track, near enough to continue the appearance.
		{"open track's appearance continues", then(framesOf(path(8, 100, 200, 30, 0)), 5, framesOf(path(6, 660, 200, 30, 0))), []int{0, 0}},
		{"chain of breaks is one appearance", then(then(framesOf(path(6, 100, 200, 30, 0)), 14, framesOf(path(4, 700, 200, -30, 0))), 14, framesOf(path(4, 610, 200, -30, 0))), []int{0, 0, 0}},
		// Left through the right edge (last box 900..1000), back 3 s
		// later walking left from the same edge: a new appearance.
		{"exit at edge then re-entry", then(framesOf(path(6, 650, 200, 50, 0)), 14, framesOf(path(6, 900, 300, -50, 0))), []int{0, 1}},
		// Last seen 100 px (one box side) from the edge but moving 60 px a frame
		// outwards: the next frame would have it at the edge.
		{"fast exit before the edge", then(framesOf(path(6, 500, 200, 60, 0)), 14, framesOf(path(6, 800, 200, -60, 0))), []int{0, 1}},
		{"exit at the top edge", then(framesOf(path(6, 450, 300, 0, -60)), 14, framesOf(path(6, 450, 0, 0, 60))), []int{0, 1}},
		{"too late", then(framesOf(path(8, 100, 200, 30, 0)), 30, framesOf(path(6, 320, 200, 30, 0))), []int{0, 1}},
		{"too far", then(framesOf(path(8, 100, 200, 30, 0)), 14, framesOf(path(6, 700, 450, -30, 0))), []int{0, 1}},
		// Its motion would have carried it out of the view by then.
		{"motion out of view", then(framesOf(path(6, 400, 200, 60, 0)), 20, framesOf(path(6, 620, 200, 0, 0))), []int{0, 1}},
		// Lost at x 250 walking right; someone comes in through the left
		// edge 1.8 s later, within reach of where it was last seen.
		{"entry through the edge is someone else", then(framesOf(path(6, 100, 200, 30, 0)), 8, framesOf(path(6, 0, 200, 30, 0))), []int{0, 1}},
		// Stood at the right edge, stepped out of view and back 2.8 s
		// later: nothing but the edge tells.
		{"stood at the edge, out and back", then(framesOf(path(6, 895, 200, 0, 0)), 13, framesOf(path(6, 895, 200, 0, 0))), []int{0, 1}},
		{"stood inside, hidden and back", then(framesOf(path(6, 700, 200, 0, 0)), 13, framesOf(path(6, 700, 200, 0, 0))), []int{0, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := finals(runView(cfg, view, tc.frames))
			if len(got) != len(tc.want) {
				t.Fatalf("final tracks = %d, want %d (%+v)", len(got), len(tc.want), got)
			}
			for i, r := range got {
				if w := got[tc.want[i]].ID; r.Appearance != w {
					t.Errorf("track %d (ID %d) appearance = %d, want %d (track %d's)", i, r.ID, r.Appearance, w, tc.want[i])
				}
			}
		})
	}
}

// TestAppearancesOfTwo: two people lost at once whose paths cross while
// hidden each continue their own appearance (where their motion puts
// them, not whoever was last seen nearer), and a lost track continues one
// new track at most.
func TestAppearancesOfTwo(t *testing.T) {
	cfg := DefaultConfig()
	cfg.EarlyFaces = 0
	// A walks right from x 100, B left from x 600, 100 px/s on one row;
	// both are hidden 2.6 s, in which they pass each other.
	a := framesOf(path(6, 100, 200, 20, 0))         // last at 200
	b := framesOf(path(6, 600, 200, -20, 0))        // last at 500
	a2 := framesOf(path(5, 200+20*14, 200, 20, 0))  // at 480, near B's last
	b2 := framesOf(path(5, 500-20*14, 200, -20, 0)) // at 220, near A's last
	frames := then(mergeFrames(a, b), 13, mergeFrames(a2, b2))
	got := finals(runView(cfg, view, frames))
	if len(got) != 4 {
		t.Fatalf("final tracks = %d, want 4 (%+v)", len(got), got)
	}
	// Tracks start in the order of the frames' boxes: A, B, A', B'.
	startX := func(r Track[int]) int { return r.Best[len(r.Best)-1].Box.Min.X }
	byID := map[uint64]Track[int]{}
	for _, r := range got {
		byID[r.ID] = r
	}
	for _, r := range got[2:] {
		first, ok := byID[r.Appearance]
		if !ok || first.ID == r.ID {
			t.Errorf("track from x %d has appearance %d, want one of the first two tracks", startX(r), r.Appearance)
			continue
		}
		// Same direction of travel: A' (moving right) continues A.
		if (r.Best[0].Box.Min.X < r.Best[len(r.Best)-1].Box.Min.X) != (first.Best[0].Box.Min.X < first.Best[len(first.Best)-1].Box.Min.X) {
			t.Errorf("track from x %d continues track from x %d, which walked the other way", startX(r), startX(first))
		}
	}
	if got[2].Appearance == got[3].Appearance {
		t.Errorf("both new tracks continue appearance %d", got[2].Appearance)
	}

	// One lost track, two new ones near it: one continues it.
	frames = then(framesOf(path(6, 300, 200, 0, 0)), 12, mergeFrames(framesOf(path(4, 300, 200, 0, 0)), framesOf(path(4, 420, 200, 0, 0))))
	got = finals(runView(cfg, view, frames))
	if len(got) != 3 {
		t.Fatalf("final tracks = %d, want 3", len(got))
	}
	n := 0
	for _, r := range got[1:] {
		if r.Appearance == got[0].ID {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d new tracks continue the lost one, want 1 (%+v)", n, got)
	}
}

// TestAppearanceUnknown: without the frame's bounds, or with linkage off,
// reports carry no appearance (the alert service then falls back to its
// time rule).
func TestAppearanceUnknown(t *testing.T) {
	frames := then(framesOf(path(8, 100, 200, 30, 0)), 14, framesOf(path(6, 760, 200, 30, 0)))
	off := DefaultConfig()
	off.LinkGap = 0
	for name, rs := range map[string][]Track[int]{
		"no view":     run(DefaultConfig(), frames),
		"linkage off": runView(off, view, frames),
	} {
		if len(rs) == 0 {
			t.Fatalf("%s: no reports", name)
		}
		for _, r := range rs {
			if r.Appearance != 0 {
				t.Errorf("%s: track %d appearance = %d, want 0", name, r.ID, r.Appearance)
			}
		}
	}
	tr := New[int](DefaultConfig(), 77)
	if tr.Base() != 77 {
		t.Errorf("Base() = %d, want 77", tr.Base())
	}
}
