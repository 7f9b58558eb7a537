package camera

import (
	"image"
	"time"

	"gocv.io/x/gocv"
)

// Reasons a frame is not handed on, as counted in Status.Drops and the
// frames_dropped_total metric.
const (
	// DropFPSCap: the frame came sooner than the camera's max_fps allows.
	DropFPSCap = "fps_cap"
	// DropNoMotion: the frame differs too little from the last one handed
	// on (motion gating).
	DropNoMotion = "no_motion"
	// DropQueueFull: the hand-off queue was full and this, its oldest
	// frame, was dropped for a newer one.
	DropQueueFull = "queue_full"
)

// motionWidth is the width frames are shrunk to before differencing: small
// enough to cost little, large enough to see a person walk.
const motionWidth = 160

// sampler decides which decoded frames are handed on: an fps cap first
// (free), then motion gating (a shrink and a difference). One sampler
// serves one capture session; it is not safe for concurrent use.
type sampler struct {
	interval  time.Duration // 0: no cap
	threshold float64       // 0: no gating
	maxSkip   time.Duration

	due      time.Time // the earliest time the next frame may pass the cap
	lastPass time.Time // when a frame last passed the motion gate
	ref      gocv.Mat  // the small grey image of the last frame handed on
	small    gocv.Mat
	grey     gocv.Mat
	diff     gocv.Mat
}

func newSampler(maxFPS, threshold float64, maxSkip time.Duration) *sampler {
	s := &sampler{threshold: threshold, maxSkip: maxSkip}
	if maxFPS > 0 {
		s.interval = time.Duration(float64(time.Second) / maxFPS)
	}
	if threshold > 0 {
		s.ref, s.small, s.grey, s.diff = gocv.NewMat(), gocv.NewMat(), gocv.NewMat(), gocv.NewMat()
	}
	return s
}

// decide returns "" to hand the frame taken at t on, or the reason to skip
// it.
func (s *sampler) decide(t time.Time, m gocv.Mat) string {
	if s.interval > 0 {
		if !s.due.IsZero() && t.Before(s.due) {
			return DropFPSCap
		}
		// The frame is considered: advance the schedule by one interval,
		// never letting it fall more than one behind, so that the average
		// rate stays at the cap and motion gating looks at no more than
		// max_fps frames a second.
		if s.due.IsZero() || t.Sub(s.due) > s.interval {
			s.due = t
		}
		s.due = s.due.Add(s.interval)
	}
	if s.threshold > 0 {
		if moved := s.motion(m); !moved && t.Sub(s.lastPass) < s.maxSkip {
			return DropNoMotion
		}
		s.lastPass = t
		s.small.CopyTo(&s.ref)
	}
	return ""
}

// motion shrinks m into s.small and reports whether its mean absolute
// difference from the reference reaches the threshold. A first frame or a
// change of size counts as motion.
func (s *sampler) motion(m gocv.Mat) bool {
	w, h := m.Cols(), m.Rows()
	if w == 0 || h == 0 {
		return false
	}
	sh := max(1, h*motionWidth/w)
	gocv.Resize(m, &s.small, image.Pt(motionWidth, sh), 0, 0, gocv.InterpolationArea)
	if s.small.Channels() == 3 {
		gocv.CvtColor(s.small, &s.grey, gocv.ColorBGRToGray)
		s.grey.CopyTo(&s.small)
	}
	if s.ref.Empty() || s.ref.Rows() != s.small.Rows() || s.ref.Cols() != s.small.Cols() {
		return true
	}
	gocv.AbsDiff(s.small, s.ref, &s.diff)
	mean := s.diff.Mean()
	return mean.Val1 >= s.threshold
}

func (s *sampler) close() {
	if s.threshold > 0 {
		s.ref.Close()
		s.small.Close()
		s.grey.Close()
		s.diff.Close()
	}
}
