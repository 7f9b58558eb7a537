package detect

import (
	"context"
	"errors"
	"image"
	"math"
	"slices"
	"time"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/face"
)

// Region search: on the camera path a frame is searched only where faces
// can be (what moved since the last frame, and around the camera's live
// tracks), each region at the scale its faces need, with a whole-frame pass
// every FullFrameEvery so that a face standing still is found all the same.
// See docs/recognition.md, "Where faces are searched".

// Window is the face box side, in searched pixels, that dlib's detectors
// (HOG and MMOD) find at their first pyramid level: a smaller face is found
// only in an image enlarged until it is this wide.
const Window = 80

// FaceRange is the sizes, in box side in full-frame pixels, that a camera's
// faces have: faces are searched for at the scale Min needs, and faces
// found outside the range are dropped. Max 0 sets no upper bound.
type FaceRange struct{ Min, Max int }

// scale is the factor a region is resized by so that a face of side min
// fills the detector's window (above 1: the region is enlarged).
// Faces under 20 pixels are searched as 20-pixel ones (at most 4 times
// enlarged).
func scaleFor(minFace int) float64 { return float64(Window) / float64(max(minFace, 20)) }

// Region is a part of a frame to search and the factor it is resized by
// before the detector sees it.
type Region struct {
	// Rect is in full-frame pixels, inside the frame.
	Rect image.Rectangle
	// Scale is the factor the region is resized by (2: doubled).
	Scale float64
	// Why says what the region comes from: "full", "motion" or "track".
	Why string
}

// Cost is the pixels the detector is given for r: the region's area after
// its resize (the detector's own pyramid levels not counted).
func (r Region) Cost() float64 {
	return float64(r.Rect.Dx()*r.Rect.Dy()) * r.Scale * r.Scale
}

// Plan is what Detector.DetectPlan searches in one frame.
type Plan struct {
	// Regions never overlap much; a full-frame pass is one region.
	Regions []Region
	// Full is set when the plan is one whole-frame pass.
	Full bool
	// Faces bounds the sizes kept.
	Faces FaceRange
}

// Cost is the pixels the plan's searches cover, counted at their scale.
func (p Plan) Cost() float64 {
	var c float64
	for _, r := range p.Regions {
		c += r.Cost()
	}
	return c
}

// ROIOptions configure a Planner.
type ROIOptions struct {
	// Faces is the camera's face sizes (Min must be positive).
	Faces FaceRange
	// FullFrameEvery is how often the whole frame is searched; the first
	// frame, and one whose size changed, always is.
	FullFrameEvery time.Duration
	// MaxWidth caps the full-frame pass: the frame is never searched wider
	// than 2×MaxWidth (so a 4K camera's full pass finds faces from about
	// Window×width/(2×MaxWidth) pixels up); 0 sets no cap.
	MaxWidth int
	// Phase places this camera's full passes within FullFrameEvery: one
	// falls due each time a frame's capture time passes Phase +
	// k×FullFrameEvery (k counted from the Unix epoch), so that cameras
	// given different phases (see Phase) search their whole frames at
	// different moments instead of all at once.
	Phase time.Duration
}

// Phase is the full-pass phase of the k-th camera (from 0) of a detect
// stage: k times the golden ratio, modulo 1, of every. Successive cameras
// land in the largest gap the earlier ones left, so n cameras' full passes
// are at least about every/(2.6n) apart (8 cameras at the default 3 s:
// 0.27 s, more than a frame apart at 5 fps) whatever n is.
func Phase(k int, every time.Duration) time.Duration {
	if every <= 0 || k <= 0 {
		return 0
	}
	_, f := math.Modf(float64(k) * (math.Sqrt(5) - 1) / 2)
	return time.Duration(f * float64(every))
}

// Motion differencing: each frame is shrunk to motionWidth pixels wide,
// grey, and compared with the last one; cells that changed by more than
// motionLevel (0..255) are motion.
const (
	motionWidth = 192
	motionLevel = 18
	// fullShare: a plan whose regions would cost this share of a full-frame
	// pass (camera shake, a lighting change, a crowd) becomes one.
	fullShare = 0.6
)

// Planner decides, frame by frame, where one camera's faces are searched.
// It keeps a small grey copy of the last frame; it is not for concurrent
// use. Close frees it.
type Planner struct {
	opt      ROIOptions
	prev     gocv.Mat // small grey copy of the last frame (empty at first)
	grey     gocv.Mat
	small    gocv.Mat
	diff     gocv.Mat
	size     image.Point // full frame size prev was made from
	lastFull time.Time
}

// NewPlanner returns a planner for one camera.
func NewPlanner(opt ROIOptions) *Planner {
	return &Planner{opt: opt, prev: gocv.NewMat(), grey: gocv.NewMat(), small: gocv.NewMat(), diff: gocv.NewMat()}
}

// Close frees the planner's images.
func (p *Planner) Close() {
	for _, m := range []*gocv.Mat{&p.prev, &p.grey, &p.small, &p.diff} {
		m.Close()
	}
}

// TrackBox is where an open track of the camera is expected in a frame, in
// full-frame pixels: its last sighting's box and the box its motion
// predicts for the frame's time.
type TrackBox struct{ Last, Next image.Rectangle }

// Plan returns where to search frame, captured at `at`, given where the
// camera's open tracks are expected. frame is an 8-bit BGR, BGRA or grey
// Mat; it is read, never kept.
func (p *Planner) Plan(frame gocv.Mat, at time.Time, tracks []TrackBox) (Plan, error) {
	if frame.Empty() {
		return Plan{}, errors.New("planning regions: frame is empty")
	}
	size := image.Pt(frame.Cols(), frame.Rows())
	moved, err := p.motion(frame, size)
	if err != nil {
		return Plan{}, err
	}
	full := p.lastFull.IsZero() || moved == nil || p.fullDue(at)
	var plan Plan
	if !full {
		plan = planRegions(size, moved, tracks, p.opt.Faces)
		full = plan.Cost() >= fullShare*fullPass(size, p.opt).Cost()
	}
	if full {
		p.lastFull = at
		plan = Plan{Regions: []Region{fullPass(size, p.opt)}, Full: true, Faces: p.opt.Faces}
	}
	return plan, nil
}

// fullDue reports whether a full pass falls due at `at`: a boundary of
// the camera's full-pass slots (Phase + k×FullFrameEvery) lies after the
// last full pass and at or before at. A clock that went back makes one due;
// so does every frame when FullFrameEvery is 0.
func (p *Planner) fullDue(at time.Time) bool {
	if at.Before(p.lastFull) {
		return true
	}
	every := p.opt.FullFrameEvery
	if every <= 0 {
		return true
	}
	slot := func(t time.Time) int64 {
		d := t.UnixNano() - int64(p.opt.Phase)
		s := d / int64(every)
		if d < 0 && d%int64(every) != 0 {
			s--
		}
		return s
	}
	return slot(at) > slot(p.lastFull)
}

// fullPass is the whole-frame region at the camera's scale, capped by
// MaxWidth.
func fullPass(size image.Point, opt ROIOptions) Region {
	s := scaleFor(opt.Faces.Min)
	if opt.MaxWidth > 0 {
		s = min(s, 2*float64(opt.MaxWidth)/float64(size.X))
	}
	return Region{Rect: image.Rectangle{Max: size}, Scale: s, Why: "full"}
}

// motion shrinks frame, compares it with the last frame's copy and returns
// the boxes (full-frame pixels) of what changed; nil (not empty) when there
// was no last frame of this size to compare with.
func (p *Planner) motion(frame gocv.Mat, size image.Point) ([]image.Rectangle, error) {
	switch frame.Channels() {
	case 1:
		frame.CopyTo(&p.grey)
	case 3:
		gocv.CvtColor(frame, &p.grey, gocv.ColorBGRToGray)
	case 4:
		gocv.CvtColor(frame, &p.grey, gocv.ColorBGRAToGray)
	default:
		return nil, errors.New("planning regions: frame is not grey, BGR or BGRA")
	}
	w := min(motionWidth, size.X)
	h := max(1, int(math.Round(float64(size.Y)*float64(w)/float64(size.X))))
	gocv.Resize(p.grey, &p.small, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
	defer func() { p.small, p.prev = p.prev, p.small }()
	if p.size != size || p.prev.Empty() {
		p.size = size
		return nil, nil
	}
	gocv.AbsDiff(p.small, p.prev, &p.diff)
	gocv.Threshold(p.diff, &p.diff, motionLevel, 255, gocv.ThresholdBinary)
	kernel := gocv.GetStructuringElement(gocv.MorphRect, image.Pt(3, 3))
	defer kernel.Close()
	gocv.Dilate(p.diff, &p.diff, kernel)
	contours := gocv.FindContours(p.diff, gocv.RetrievalExternal, gocv.ChainApproxSimple)
	defer contours.Close()
	fx, fy := float64(size.X)/float64(w), float64(size.Y)/float64(h)
	out := make([]image.Rectangle, 0, contours.Size())
	for i := range contours.Size() {
		b := gocv.BoundingRect(contours.At(i))
		out = append(out, image.Rect(
			int(math.Floor(float64(b.Min.X)*fx)), int(math.Floor(float64(b.Min.Y)*fy)),
			int(math.Ceil(float64(b.Max.X)*fx)), int(math.Ceil(float64(b.Max.Y)*fy)),
		).Intersect(image.Rectangle{Max: size}))
	}
	return out, nil
}

// planRegions turns motion boxes and track boxes (full-frame pixels) into
// the regions to search in a frame of size: each expanded to hold a whole
// face and at least the detector's window, at the scale its faces need,
// motion already explained by a track dropped, and regions merged where
// one search is no dearer than two.
func planRegions(size image.Point, moved []image.Rectangle, tracks []TrackBox, faces FaceRange) Plan {
	frame := image.Rectangle{Max: size}
	sMax := scaleFor(faces.Min)
	sMin := 0.0
	if faces.Max > 0 {
		sMin = scaleFor(faces.Max)
	}
	var regions []Region
	// where holds, per track region, the box its person is in: motion
	// there is the tracked person moving.
	var where []image.Rectangle
	for _, t := range tracks {
		span := t.Last.Union(t.Next).Intersect(frame)
		if span.Empty() {
			continue
		}
		side := max(t.Last.Dx(), t.Last.Dy())
		// The face may have grown, turned or moved off its prediction:
		// search half a side around it, for faces from 0.6 of its side.
		s := min(max(scaleFor(int(0.6*float64(side))), sMin), sMax)
		regions = append(regions, Region{Rect: fit(span.Inset(-side/2), s, frame), Scale: s, Why: "track"})
		where = append(where, span.Inset(-side/4))
	}
	for _, m := range moved {
		if m.Empty() {
			continue
		}
		explained := false
		for _, w := range where {
			if in := m.Intersect(w); in.Dx()*in.Dy()*10 >= m.Dx()*m.Dy()*8 {
				explained = true
				break
			}
		}
		if explained {
			continue
		}
		// A face that moved may show only its edges as change.
		r := fit(m.Inset(-max(faces.Min/2, 8)), sMax, frame)
		regions = append(regions, Region{Rect: r, Scale: sMax, Why: "motion"})
	}
	return Plan{Regions: mergeRegions(regions, frame), Faces: faces}
}

// fit grows r (full-frame pixels) to at least the detector's window plus a
// margin at scale s, about its centre, and moves it inside frame where it
// crosses an edge (clipping only what the frame cannot hold).
func fit(r image.Rectangle, s float64, frame image.Rectangle) image.Rectangle {
	least := int(math.Ceil(float64(Window+Window/4) / s))
	grow := func(lo, hi, least, flo, fhi int) (int, int) {
		if d := least - (hi - lo); d > 0 {
			lo -= d / 2
			hi = lo + least
		}
		if lo < flo {
			hi += flo - lo
			lo = flo
		}
		if hi > fhi {
			lo -= hi - fhi
			hi = fhi
		}
		return max(lo, flo), hi
	}
	r.Min.X, r.Max.X = grow(r.Min.X, r.Max.X, least, frame.Min.X, frame.Max.X)
	r.Min.Y, r.Max.Y = grow(r.Min.Y, r.Max.Y, least, frame.Min.Y, frame.Max.Y)
	return r
}

// mergeRegions joins regions while joining two costs no more than searching
// both (their overlap searched twice, or the space between them small):
// the joined region takes the larger scale, so no face size is lost.
func mergeRegions(rs []Region, frame image.Rectangle) []Region {
	rs = slices.Clone(rs)
	for merged := true; merged; {
		merged = false
		for i := 0; i < len(rs) && !merged; i++ {
			for j := i + 1; j < len(rs); j++ {
				a, b := rs[i], rs[j]
				u := Region{Rect: a.Rect.Union(b.Rect).Intersect(frame), Scale: max(a.Scale, b.Scale), Why: a.Why}
				if a.Why != b.Why {
					u.Why = "track"
				}
				// A region inside another at no larger scale costs nothing
				// more joined; neither do two overlapping much.
				if u.Cost() <= 1.1*(a.Cost()+b.Cost()) {
					rs[i] = u
					rs = slices.Delete(rs, j, j+1)
					merged = true
					break
				}
			}
		}
	}
	return rs
}

// DetectPlan finds the faces in the regions of plan (see Planner), in
// full-frame pixels, as Detect does for the whole frame: each region is cut
// out, resized by its scale and searched; boxes are mapped back to the
// frame, faces found twice in overlapping regions kept once (the more
// confident), and faces outside plan.Faces dropped. Landmarks and chips
// come from the full-resolution frame.
func (d *Detector) DetectPlan(ctx context.Context, frame gocv.Mat, plan Plan) ([]face.Face, error) {
	return d.detect(ctx, frame, search{plan: &plan, minFace: keepFrom(plan.Faces.Min)})
}

// keepFrom is the narrowest box kept for a camera whose faces start at
// minFace: dlib's boxes come in steps of its pyramid (6/5), and a face of
// exactly minFace, searched at the scale it needs, gets a box up to one
// step narrower (a 40-pixel face, doubled, a 37-pixel box).
func keepFrom(minFace int) int { return minFace * 5 / 6 }

// findPlan runs the backend on each region of plan and returns candidate
// boxes in frame pixels, deduplicated, by decreasing confidence.
func (d *Detector) findPlan(ctx context.Context, frame gocv.Mat, plan *Plan) ([]Candidate, error) {
	var all []Candidate
	scaled := gocv.NewMat()
	defer scaled.Close()
	bounds := image.Rect(0, 0, frame.Cols(), frame.Rows())
	for _, r := range plan.Regions {
		rect := r.Rect.Intersect(bounds)
		if rect.Empty() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		roi := frame.Region(rect)
		img := roi
		sx, sy := 1.0, 1.0
		if r.Scale != 1 {
			w := max(1, int(math.Round(float64(rect.Dx())*r.Scale)))
			h := max(1, int(math.Round(float64(rect.Dy())*r.Scale)))
			interp := gocv.InterpolationLinear
			if r.Scale < 1 {
				interp = gocv.InterpolationArea
			}
			gocv.Resize(roi, &scaled, image.Pt(w, h), 0, 0, interp)
			img = scaled
			sx, sy = float64(w)/float64(rect.Dx()), float64(h)/float64(rect.Dy())
		}
		// Faces above plan.Faces.Max are dropped: the detector need not
		// look for them (HOG scans fewer of its pyramid's levels).
		opt := Options{}
		if plan.Faces.Max > 0 {
			opt.MaxFace = int(math.Ceil(float64(plan.Faces.Max) * max(sx, sy)))
		}
		found, err := d.backend.Detect(ctx, img, opt)
		roi.Close()
		if err != nil {
			return nil, err
		}
		for _, c := range found {
			c.Box = mapBox(c.Box, rect.Min, sx, sy)
			all = append(all, c)
		}
	}
	return dedupe(all), nil
}

// mapBox maps a box found in a region cut at origin and resized by sx, sy
// back to frame pixels.
func mapBox(b image.Rectangle, origin image.Point, sx, sy float64) image.Rectangle {
	return image.Rect(
		origin.X+int(math.Round(float64(b.Min.X)/sx)), origin.Y+int(math.Round(float64(b.Min.Y)/sy)),
		origin.X+int(math.Round(float64(b.Max.X)/sx)), origin.Y+int(math.Round(float64(b.Max.Y)/sy)),
	)
}

// dedupe keeps, of candidates that are one face found in two overlapping
// regions (IoU of at least 0.4, or the smaller box mostly inside the
// larger), the most confident, and returns them by decreasing confidence.
func dedupe(cs []Candidate) []Candidate {
	slices.SortStableFunc(cs, func(a, b Candidate) int {
		switch {
		case a.Confidence > b.Confidence:
			return -1
		case a.Confidence < b.Confidence:
			return 1
		}
		return 0
	})
	out := cs[:0]
	for _, c := range cs {
		dup := false
		for _, k := range out {
			if sameFace(c.Box, k.Box) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, c)
		}
	}
	return out
}

func sameFace(a, b image.Rectangle) bool {
	in := a.Intersect(b)
	if in.Empty() {
		return false
	}
	ia := in.Dx() * in.Dy()
	aa, ba := a.Dx()*a.Dy(), b.Dx()*b.Dy()
	return float64(ia) >= 0.4*float64(aa+ba-ia) || ia*10 >= min(aa, ba)*7
}
