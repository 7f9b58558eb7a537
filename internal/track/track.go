// Package track follows faces across the frames of one camera, so that a
// person walking past is one track rather than fifty detections. It
// associates boxes by overlap (IoU) and centre distance, also against where
// the track's motion predicts the box after a gap (a person briefly hidden
// keeps the track), keeps the best few faces of each track by quality, and
// reports a track as soon as it has one good face (early), again when a
// clearly better face comes (a bounded number of times), and when it ends
// after a gap (final). It also says which tracks are one appearance: a
// track lost inside the view (not through the frame's edge) and a new one
// that starts soon after near where its motion predicts share an
// Appearance, while a person who left through the edge and comes back is a
// new one. It is
// pure bookkeeping: it must not detect, embed, decode or talk to NATS, and
// a Tracker serves one camera from one goroutine.
package track

import (
	"cmp"
	"image"
	"math"
	"slices"
	"time"
)

// Config tunes association and what a track keeps.
type Config struct {
	// MaxGap ends a track not seen for this long.
	MaxGap time.Duration
	// MinIoU is the least overlap for a detection to continue a track.
	MinIoU float64
	// MaxCentre is the largest centre distance, as a fraction of the
	// track's box side, for a detection to continue a track when the
	// boxes do not overlap enough (a fast walker at a low frame rate).
	MaxCentre float64
	// MaxSpeed and MaxJump widen MaxCentre for a track seen once (whose
	// motion is not known yet, so nothing predicts where it went): after a
	// gap of dt the bound is MaxSpeed*dt box sides if that is more, but at
	// most MaxJump. A walker's second sighting is far from its first when
	// the frames between were dropped (a burst of frames after a NATS
	// reconnect overflows the detect queue, which drops the oldest), and
	// would otherwise start a new track for the same crossing. 0 turns it
	// off.
	MaxSpeed, MaxJump float64
	// Keep is how many faces a track keeps (the best by quality).
	Keep int
	// EarlyFaces: a track is reported early (not final) when it has been
	// seen this many times even if none of its faces is good (see
	// GoodQuality), so that a decision need not wait for the person to
	// leave. 0 disables early reports altogether.
	EarlyFaces int
	// GoodQuality and GoodSide: a track is reported early at the first
	// sighting whose face has at least this quality score and a box side
	// of at least GoodSide pixels, without waiting for EarlyFaces
	// sightings. GoodQuality 0 turns this off (only EarlyFaces counts).
	GoodQuality float64
	GoodSide    int
	// Better: after its first early report a track is reported again
	// (early) only when its best face beats the best face of its last
	// report by at least this quality, at most MaxEarly early reports in
	// all. So each report adds evidence and their number is bounded.
	Better   float64
	MaxEarly int
	// MinFaces: a track seen fewer times than this is dropped when it ends
	// (a one-frame false detection).
	MinFaces int
	// MaxOpen bounds the open tracks: a detection that would open one more
	// is not tracked (counted by Refused). 0 means no bound.
	MaxOpen int
	// LinkGap: a new track continues the appearance of a track lost
	// inside the view (see EdgeMargin) whose last sighting is at most this
	// long before the new track's first, when it starts near where the
	// lost track's motion predicts (see LinkSpeed). A track that left
	// through the frame's edge ends its appearance: someone coming back is
	// a new appearance. 0 turns this off, and every report's Appearance is
	// 0 (not known).
	LinkGap time.Duration
	// EdgeMargin: a track left the view when the box where its motion
	// puts it one sighting interval after it was last seen is within this
	// many box sides of the frame's edge, unless it was walking away from
	// that edge; a track that starts this close to an edge came in
	// through it, and continues a lost track only if that one's motion
	// puts it at the same edge.
	EdgeMargin float64
	// LinkSpeed bounds how far from the lost track a new one may start to
	// continue its appearance: MaxCentre plus LinkSpeed box sides per
	// second of the gap (from where it was last seen or where its motion
	// puts it, whichever is nearer), at most MaxJump.
	LinkSpeed float64
}

// DefaultConfig suits 5 fps street cameras.
func DefaultConfig() Config {
	// MaxSpeed is MaxCentre per frame interval at 5 fps: the motion the
	// bound already allows between consecutive frames, kept up over a gap.
	return Config{MaxGap: 2 * time.Second, MinIoU: 0.2, MaxCentre: 0.8, MaxSpeed: 4, MaxJump: 3, Keep: 3, EarlyFaces: 3, MinFaces: 2,
		GoodQuality: 0.5, GoodSide: 50, Better: 0.05, MaxEarly: 3,
		LinkGap: 5 * time.Second, EdgeMargin: 0.5, LinkSpeed: 1}
}

// Detection is one face found in a frame, with what the caller wants kept
// beside it (a chip, a crop).
type Detection[P any] struct {
	Box     image.Rectangle
	Quality float64
	Payload P
}

// Face is a detection kept by a track.
type Face[P any] struct {
	Seq     uint64
	Time    time.Time
	Box     image.Rectangle
	Quality float64
	Payload P
}

// Track is a report about one track: its best faces, best first.
type Track[P any] struct {
	ID         uint64
	Start, End time.Time
	// Seen is how many frames the track was detected in.
	Seen int
	// Best holds at most Config.Keep faces, highest quality first.
	Best []Face[P]
	// Final is set when the track has ended; otherwise this is an early
	// report.
	Final bool
	// Report numbers the early reports of a track from 0 (0 on the final
	// report).
	Report int
	// Appearance is the ID of the first track of the appearance this track
	// is part of: its own ID, or that of a track lost inside the view that
	// it continues (Config.LinkGap). 0 when not known: linkage is off, or
	// the tracker was not told the frame's size (SetView).
	Appearance uint64
}

type state[P any] struct {
	Track[P]
	last image.Rectangle
	// vx, vy is the box centre's velocity in pixels per second, from the
	// last two sightings, and step the time between them.
	vx, vy float64
	step   time.Duration
	// recent holds the last sightings' centres and times, oldest first
	// (at most recentKeep): the motion over them (drift) is what linkage
	// predicts from, steadier than the last two sightings' over a gap of
	// seconds, where a few pixels of the detector's jitter between two
	// frames would become a wrong place far off.
	recent []sighting
	// view is the frame's bounds at the last sighting (empty: not
	// known).
	view image.Rectangle
	// linked is set once a newer track took over the appearance.
	linked bool
	// early is how many early reports were given; shownQ the best
	// quality in the last one.
	early  int
	shownQ float64
}

// sighting is where a track's box centre was, and when.
type sighting struct {
	at   time.Time
	x, y float64
}

// recentKeep is how many sightings drift looks back over (about a second
// at 5 fps).
const recentKeep = 6

// drift is the box centre's velocity in pixels per second over the recent
// sightings (the first of them to the last); 0 with fewer than two.
func (s *state[P]) drift() (vx, vy float64) {
	if len(s.recent) < 2 {
		return 0, 0
	}
	a, b := s.recent[0], s.recent[len(s.recent)-1]
	dt := b.at.Sub(a.at).Seconds()
	if dt <= 0 {
		return 0, 0
	}
	return (b.x - a.x) / dt, (b.y - a.y) / dt
}

// lost is what a track that ended is kept as while a new track may still
// continue its appearance: where and when it was last seen, and its
// motion.
type lost struct {
	appearance uint64
	end        time.Time
	box        image.Rectangle
	vx, vy     float64
	step       time.Duration
	seen       int
	view       image.Rectangle
}

// maxLost bounds the ended tracks kept for linkage (they are also
// dropped after Config.LinkGap).
const maxLost = 256

// Tracker associates one camera's detections into tracks.
type Tracker[P any] struct {
	cfg     Config
	base    uint64
	nextID  uint64
	open    []*state[P]
	refused uint64
	view    image.Rectangle
	// gone holds the tracks that ended inside the view within LinkGap,
	// oldest first, whose appearance no newer track has taken over.
	gone []lost
}

// New returns a tracker whose track IDs start at firstID. Starting from a
// clock reading (see IDBase) keeps IDs unique across restarts of the
// process.
func New[P any](cfg Config, firstID uint64) *Tracker[P] {
	if cfg.Keep < 1 {
		cfg.Keep = 1
	}
	return &Tracker[P]{cfg: cfg, base: firstID, nextID: firstID}
}

// Base returns the tracker's first track ID: it names this tracker (an
// appearance is only ever a track ID of the same tracker, at least Base).
func (t *Tracker[P]) Base() uint64 { return t.base }

// SetView tells the tracker the bounds of the frames whose detections
// follow (boxes are in the same pixels): it needs them to tell a track
// that left through the frame's edge from one lost inside the view.
// Until it is set, reports carry no Appearance.
func (t *Tracker[P]) SetView(r image.Rectangle) { t.view = r.Canon() }

// IDBase is a track-ID start derived from t: microseconds since the Unix
// epoch. A restarted detector, which cannot have made a million tracks a
// second, never reuses an ID.
func IDBase(t time.Time) uint64 { return uint64(t.UnixMicro()) }

// Open returns how many tracks are open.
func (t *Tracker[P]) Open() int { return len(t.open) }

// Refused returns how many detections did not open a track because
// MaxOpen tracks were open.
func (t *Tracker[P]) Refused() uint64 { return t.refused }

// Update adds the detections of frame seq captured at `at`, and returns the
// reports it caused: tracks that ended (their last sighting is more than
// MaxGap before `at`) and tracks that reached EarlyFaces.
func (t *Tracker[P]) Update(seq uint64, at time.Time, dets []Detection[P]) []Track[P] {
	var out []Track[P]
	// End the tracks that have been gone too long before associating, so a
	// new person in the same place starts a new track.
	keep := t.open[:0]
	t.forget(at)
	for _, s := range t.open {
		if at.Sub(s.End) > t.cfg.MaxGap {
			if r, ok := t.finish(s); ok {
				out = append(out, r)
				t.keepLost(s)
			}
			continue
		}
		keep = append(keep, s)
	}
	clear(t.open[len(keep):])
	t.open = keep

	type pair struct {
		s, d  int
		iou   float64
		centr float64
	}
	var pairs []pair
	for si, s := range t.open {
		// Where the track's motion puts it now: a walker hidden for a few
		// frames reappears further along, not where last seen.
		pred := s.predict(at)
		gate := t.cfg.MaxCentre
		if s.Seen < 2 && t.cfg.MaxSpeed > 0 {
			gate = max(gate, min(t.cfg.MaxSpeed*at.Sub(s.End).Seconds(), t.cfg.MaxJump))
		}
		for di, d := range dets {
			iou := max(IoU(s.last, d.Box), IoU(pred, d.Box))
			c := min(centreDist(s.last, d.Box), centreDist(pred, d.Box))
			if iou >= t.cfg.MinIoU || c <= gate {
				pairs = append(pairs, pair{si, di, iou, c})
			}
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := cmp.Compare(b.iou, a.iou); c != 0 {
			return c
		}
		return cmp.Compare(a.centr, b.centr)
	})
	usedS := make([]bool, len(t.open))
	usedD := make([]bool, len(dets))
	for _, p := range pairs {
		if usedS[p.s] || usedD[p.d] {
			continue
		}
		usedS[p.s], usedD[p.d] = true, true
		s := t.open[p.s]
		t.add(s, seq, at, dets[p.d])
		if r, ok := t.early(s); ok {
			out = append(out, r)
		}
	}
	var fresh []*state[P]
	for di, d := range dets {
		if usedD[di] {
			continue
		}
		if t.cfg.MaxOpen > 0 && len(t.open) >= t.cfg.MaxOpen {
			t.refused++
			continue
		}
		s := &state[P]{Track: Track[P]{ID: t.nextID, Start: at}}
		t.nextID++
		t.add(s, seq, at, d)
		t.open = append(t.open, s)
		fresh = append(fresh, s)
	}
	t.link(at, fresh)
	for _, s := range fresh {
		if r, ok := t.early(s); ok {
			out = append(out, r)
		}
	}
	return out
}

// linking reports whether appearances are linked: configured, and the
// view known.
func (t *Tracker[P]) linking() bool { return t.cfg.LinkGap > 0 && !t.view.Empty() }

// link gives each of the new tracks fresh (seen once, at `at`) its
// appearance: that of a lost track it continues, the nearest first, each
// lost track continued at most once; otherwise its own.
func (t *Tracker[P]) link(at time.Time, fresh []*state[P]) {
	if len(fresh) == 0 {
		return
	}
	if !t.linking() {
		for _, s := range fresh {
			s.Appearance = 0
		}
		return
	}
	// Candidates: the ended tracks kept, and the open ones not seen in
	// this frame (a person hidden for less than MaxGap who reappears
	// further than association allows).
	type cand struct {
		l    lost
		open *state[P] // nil for an ended one
		gone int       // index in t.gone
	}
	var cands []cand
	for i, l := range t.gone {
		cands = append(cands, cand{l: l, gone: i})
	}
	for _, s := range t.open {
		if s.End.Before(at) && !s.linked && s.Seen >= t.cfg.MinFaces {
			cands = append(cands, cand{l: s.lost(), open: s, gone: -1})
		}
	}
	type pair struct {
		c, f int
		d    float64
	}
	var pairs []pair
	for ci, c := range cands {
		for fi, s := range fresh {
			if d, ok := t.continues(c.l, at, s.last); ok {
				pairs = append(pairs, pair{ci, fi, d})
			}
		}
	}
	slices.SortStableFunc(pairs, func(a, b pair) int { return cmp.Compare(a.d, b.d) })
	usedC := make([]bool, len(cands))
	for _, s := range fresh {
		s.Appearance = s.ID
	}
	linked := make([]bool, len(fresh))
	var drop []int
	for _, p := range pairs {
		if usedC[p.c] || linked[p.f] {
			continue
		}
		usedC[p.c], linked[p.f] = true, true
		c := cands[p.c]
		fresh[p.f].Appearance = c.l.appearance
		if c.open != nil {
			c.open.linked = true
		} else {
			drop = append(drop, c.gone)
		}
	}
	if len(drop) > 0 {
		slices.Sort(drop)
		for i := len(drop) - 1; i >= 0; i-- {
			t.gone = slices.Delete(t.gone, drop[i], drop[i]+1)
		}
	}
}

// continues reports whether a track first seen at `at` in box b continues
// the appearance of the lost track l, and how far from it (in l's box
// sides) it starts.
func (t *Tracker[P]) continues(l lost, at time.Time, b image.Rectangle) (float64, bool) {
	gap := at.Sub(l.end)
	if gap <= 0 || gap > t.cfg.LinkGap || l.view != t.view || l.left(t.cfg.EdgeMargin) {
		return 0, false
	}
	pred := l.predict(at)
	// Its motion has carried it out of the view by now: whoever appears
	// is someone else (or the same person back, a new appearance).
	if c := centre(pred); !c.In(t.view) {
		return 0, false
	}
	// Someone coming in through an edge is a new appearance, unless the
	// lost track was heading out there.
	if e := edges(b, t.view, t.cfg.EdgeMargin); e != 0 && e&edges(pred, t.view, t.cfg.EdgeMargin) == 0 {
		return 0, false
	}
	d := min(centreDist(l.box, b), centreDist(pred, b))
	if d > min(t.cfg.MaxCentre+t.cfg.LinkSpeed*gap.Seconds(), max(t.cfg.MaxJump, t.cfg.MaxCentre)) {
		return 0, false
	}
	return d, true
}

// forget drops the ended tracks too old to be continued at `at`.
func (t *Tracker[P]) forget(at time.Time) {
	n := 0
	for n < len(t.gone) && at.Sub(t.gone[n].end) > t.cfg.LinkGap {
		n++
	}
	t.gone = slices.Delete(t.gone, 0, n)
}

// keepLost keeps an ending track for linkage, unless it left the view,
// was continued already, or linkage is off.
func (t *Tracker[P]) keepLost(s *state[P]) {
	if !t.linking() || s.linked || s.Appearance == 0 {
		return
	}
	l := s.lost()
	if l.left(t.cfg.EdgeMargin) {
		return
	}
	if len(t.gone) >= maxLost {
		t.gone = slices.Delete(t.gone, 0, len(t.gone)-maxLost+1)
	}
	t.gone = append(t.gone, l)
}

func (s *state[P]) lost() lost {
	vx, vy := s.drift()
	return lost{appearance: s.Appearance, end: s.End, box: s.last, vx: vx, vy: vy, step: s.step, seen: s.Seen, view: s.view}
}

// predict is where l's motion puts its box at `at`.
func (l lost) predict(at time.Time) image.Rectangle {
	return moved(l.box, l.vx, l.vy, l.seen, at.Sub(l.end))
}

// left reports whether l left the view through its edge: the box where
// its motion puts it one sighting interval on (at most a second) is
// within margin box sides of an edge it was not walking away from. A
// view that is not known counts as left (nothing is linked).
func (l lost) left(margin float64) bool {
	if l.view.Empty() {
		return true
	}
	next := moved(l.box, l.vx, l.vy, l.seen, min(l.step, time.Second))
	e := edges(next, l.view, margin)
	// Walking away from an edge (into the view) at more than half a box
	// side a second is not leaving through it.
	away := 0.5 * float64(max(l.box.Dx(), l.box.Dy(), 1))
	if l.vx > away {
		e &^= edgeLeft
	}
	if l.vx < -away {
		e &^= edgeRight
	}
	if l.vy > away {
		e &^= edgeTop
	}
	if l.vy < -away {
		e &^= edgeBottom
	}
	return e != 0
}

const (
	edgeLeft = 1 << iota
	edgeTop
	edgeRight
	edgeBottom
)

// edges returns the edges of view that b is within margin of its larger
// side of (or beyond).
func edges(b, view image.Rectangle, margin float64) int {
	m := int(math.Round(margin * float64(max(b.Dx(), b.Dy(), 1))))
	e := 0
	if b.Min.X-view.Min.X <= m {
		e |= edgeLeft
	}
	if b.Min.Y-view.Min.Y <= m {
		e |= edgeTop
	}
	if view.Max.X-b.Max.X <= m {
		e |= edgeRight
	}
	if view.Max.Y-b.Max.Y <= m {
		e |= edgeBottom
	}
	return e
}

func centre(r image.Rectangle) image.Point {
	return image.Pt((r.Min.X+r.Max.X)/2, (r.Min.Y+r.Max.Y)/2)
}

// Flush ends every open track (at shutdown or end of stream) and returns
// their final reports.
func (t *Tracker[P]) Flush() []Track[P] {
	var out []Track[P]
	for _, s := range t.open {
		if r, ok := t.finish(s); ok {
			out = append(out, r)
		}
	}
	t.open = nil
	t.gone = nil
	return out
}

// Expected returns, for each open track, its last sighting's box and the
// box its motion predicts at `at`: where a detector should look for it in
// the frame captured then.
func (t *Tracker[P]) Expected(at time.Time) (last, next []image.Rectangle) {
	last = make([]image.Rectangle, len(t.open))
	next = make([]image.Rectangle, len(t.open))
	for i, s := range t.open {
		last[i], next[i] = s.last, s.predict(at)
	}
	return last, next
}

// predict is the track's last box moved by its velocity to time at.
func (s *state[P]) predict(at time.Time) image.Rectangle {
	return moved(s.last, s.vx, s.vy, s.Seen, at.Sub(s.End))
}

// moved is box b moved by velocity vx, vy for d: b itself for a track seen
// fewer than twice (no velocity yet).
func moved(b image.Rectangle, vx, vy float64, seen int, d time.Duration) image.Rectangle {
	dt := d.Seconds()
	if seen < 2 || dt <= 0 {
		return b
	}
	return b.Add(image.Pt(int(math.Round(vx*dt)), int(math.Round(vy*dt))))
}

func (t *Tracker[P]) add(s *state[P], seq uint64, at time.Time, d Detection[P]) {
	if s.Seen > 0 {
		if dt := at.Sub(s.End).Seconds(); dt > 0 {
			ax, ay := float64(s.last.Min.X+s.last.Max.X)/2, float64(s.last.Min.Y+s.last.Max.Y)/2
			bx, by := float64(d.Box.Min.X+d.Box.Max.X)/2, float64(d.Box.Min.Y+d.Box.Max.Y)/2
			s.vx, s.vy = (bx-ax)/dt, (by-ay)/dt
			s.step = at.Sub(s.End)
		}
	}
	s.view = t.view
	s.End = at
	s.Seen++
	s.last = d.Box
	if len(s.recent) == recentKeep {
		s.recent = append(s.recent[:0], s.recent[1:]...)
	}
	s.recent = append(s.recent, sighting{at, float64(d.Box.Min.X+d.Box.Max.X) / 2, float64(d.Box.Min.Y+d.Box.Max.Y) / 2})
	f := Face[P]{Seq: seq, Time: at, Box: d.Box, Quality: d.Quality, Payload: d.Payload}
	// Insert after every face at least as good, so that ties keep the
	// earlier face.
	i := len(s.Best)
	for j, b := range s.Best {
		if b.Quality < f.Quality {
			i = j
			break
		}
	}
	if i >= t.cfg.Keep {
		return
	}
	s.Best = slices.Insert(s.Best, i, f)
	if len(s.Best) > t.cfg.Keep {
		s.Best = s.Best[:t.cfg.Keep]
	}
}

// early gives the track's next early report if it is due: the first as
// soon as a face is good or the track has EarlyFaces sightings, each later
// one (up to MaxEarly) only when the best face beats the last report's by
// Better.
func (t *Tracker[P]) early(s *state[P]) (Track[P], bool) {
	if t.cfg.EarlyFaces <= 0 || len(s.Best) == 0 || s.early >= max(t.cfg.MaxEarly, 1) {
		return Track[P]{}, false
	}
	best := s.Best[0]
	if s.early == 0 {
		if !t.good(best) && s.Seen < t.cfg.EarlyFaces {
			return Track[P]{}, false
		}
	} else if best.Quality < s.shownQ+t.cfg.Better {
		return Track[P]{}, false
	}
	r := s.Track
	r.Best = slices.Clone(s.Best)
	r.Report = s.early
	s.early++
	s.shownQ = best.Quality
	return r, true
}

// good reports whether f alone is enough for an early report.
func (t *Tracker[P]) good(f Face[P]) bool {
	return t.cfg.GoodQuality > 0 && f.Quality >= t.cfg.GoodQuality && min(f.Box.Dx(), f.Box.Dy()) >= t.cfg.GoodSide
}

func (t *Tracker[P]) finish(s *state[P]) (Track[P], bool) {
	if s.Seen < t.cfg.MinFaces {
		return Track[P]{}, false
	}
	r := s.Track
	r.Best = slices.Clone(s.Best)
	r.Final = true
	r.Report = 0
	return r, true
}

// IoU is the intersection over union of two boxes.
func IoU(a, b image.Rectangle) float64 {
	in := a.Intersect(b)
	if in.Empty() {
		return 0
	}
	ia := float64(in.Dx() * in.Dy())
	u := float64(a.Dx()*a.Dy()+b.Dx()*b.Dy()) - ia
	if u <= 0 {
		return 0
	}
	return ia / u
}

// centreDist is the distance between the boxes' centres divided by the
// larger side of a.
func centreDist(a, b image.Rectangle) float64 {
	ax, ay := float64(a.Min.X+a.Max.X)/2, float64(a.Min.Y+a.Max.Y)/2
	bx, by := float64(b.Min.X+b.Max.X)/2, float64(b.Min.Y+b.Max.Y)/2
	side := float64(max(a.Dx(), a.Dy(), 1))
	return math.Hypot(ax-bx, ay-by) / side
}
