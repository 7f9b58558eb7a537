package match

import (
	"fmt"
	"slices"
	"strings"
)

// minWeight is the vote weight of a face whose quality is 0 or unknown, so
// that it still counts a little.
const minWeight = 0.01

// FarDistance stands for "the winner is not among this face's nearest
// candidates" in Decision.FaceDistances: farther than any two descriptors
// of dlib's unit-length vectors can be (2), so beyond every threshold.
const FarDistance = 4.0

// FaceScore is one face of a track as the reviewer sees it: its quality,
// its nearest identities, and what it voted for.
type FaceScore struct {
	Quality    float64     `json:"quality"`
	Candidates []Candidate `json:"candidates"`
	// VoteID is the identity this face voted for; 0 is "nobody".
	VoteID int64 `json:"vote_id"`
	// Reason says why the face voted for nobody.
	Reason string `json:"reason,omitempty"`
}

// Decision is the outcome for one track. When Matched is false the
// identity fields are empty and Reason says why; the per-face scores and
// candidates are kept either way for the reviewer.
type Decision struct {
	Matched        bool   `json:"matched"`
	IdentityID     int64  `json:"identity_id,omitempty"`
	Identity       string `json:"identity,omitempty"`
	ExternalRef    string `json:"external_ref,omitempty"`
	WatchlistID    int64  `json:"watchlist_id,omitempty"`
	Watchlist      string `json:"watchlist,omitempty"`
	Kind           Kind   `json:"kind,omitempty"`
	Priority       int    `json:"priority,omitempty"`
	SecondReviewer bool   `json:"second_reviewer,omitempty"`
	EnrolmentID    int64  `json:"enrolment_id,omitempty"`
	// Distance is the winner's smallest distance over the track's faces;
	// for no name, the nearest identity's.
	Distance  float64 `json:"distance"`
	Threshold float64 `json:"threshold"`
	Margin    float64 `json:"margin"`
	// Support is the winner's share of the track's quality-weighted votes.
	Support float64 `json:"support"`
	Reason  string  `json:"reason,omitempty"`
	// Candidates are the TopK identities over the whole track (each at its
	// smallest distance to any face), nearest first.
	Candidates []Candidate `json:"candidates"`
	Faces      []FaceScore `json:"faces"`

	// The fields below are set only for a match (Matched is true).

	// BestFace is the index of the face to show with the hit: the first
	// (best-quality, as faces are given best first) face that voted for
	// the winner, else 0.
	BestFace int `json:"best_face,omitempty"`
	// SecondDistance is the distance of the nearest other identity among
	// Candidates; 0 when there is none.
	SecondDistance float64 `json:"second_distance,omitempty"`
	// FaceDistances is each face's distance to the winner, FarDistance
	// where the winner is not among that face's candidates.
	FaceDistances []float64 `json:"face_distances,omitempty"`
}

// DecideTrack identifies one track from the descriptors of its faces. Each
// face votes for its nearest identity when that identity is within its
// list's threshold and beats the second-best identity by the margin;
// otherwise it votes for nobody. Votes weigh by quality. The track gets a
// name only when one identity holds more than config's vote_share of the
// weight and no other identity holds half as much as it: ambiguity yields
// no name.
func (x *Index) DecideTrack(faces []Probe, opt SearchOptions) (Decision, error) {
	if len(faces) == 0 {
		return Decision{}, fmt.Errorf("deciding track: %w: no faces", ErrInvalid)
	}
	res, err := x.search(faces, opt)
	if err != nil {
		return Decision{}, fmt.Errorf("deciding track: %w", err)
	}
	topK := opt.TopK
	if topK <= 0 {
		topK = x.cfg.TopK
	}
	d := Decision{Margin: x.cfg.Margin, Faces: make([]FaceScore, len(faces))}
	weights := map[int64]float64{}
	best := map[int64]Candidate{}
	var total float64
	for i, cs := range res {
		w := faces[i].Quality
		if !(w >= minWeight) { // also catches NaN
			w = minWeight
		}
		w = min(w, 1)
		total += w
		fs := FaceScore{Quality: faces[i].Quality, Candidates: cs[:min(len(cs), topK)]}
		fs.VoteID, fs.Reason = x.vote(cs)
		weights[fs.VoteID] += w
		d.Faces[i] = fs
		for _, c := range cs {
			if b, ok := best[c.IdentityID]; !ok || c.Distance < b.Distance {
				best[c.IdentityID] = c
			}
		}
	}
	for _, c := range best {
		d.Candidates = append(d.Candidates, c)
	}
	slices.SortFunc(d.Candidates, func(a, b Candidate) int {
		if a.Distance != b.Distance {
			if a.Distance < b.Distance {
				return -1
			}
			return 1
		}
		return int(a.IdentityID - b.IdentityID)
	})
	d.Candidates = d.Candidates[:min(len(d.Candidates), topK)]
	if len(d.Candidates) > 0 {
		d.Distance, d.Threshold = d.Candidates[0].Distance, d.Candidates[0].Threshold
	} else {
		d.Threshold = x.cfg.DefaultThreshold
	}

	// Rank the identities that got votes.
	type tally struct {
		id int64
		w  float64
	}
	var ranked []tally
	for id, w := range weights {
		if id != 0 {
			ranked = append(ranked, tally{id, w})
		}
	}
	slices.SortFunc(ranked, func(a, b tally) int {
		if a.w != b.w {
			if a.w > b.w {
				return -1
			}
			return 1
		}
		return int(a.id - b.id)
	})
	switch {
	case len(res[0]) == 0 && len(ranked) == 0:
		d.Reason = "the searched watchlists hold no active identity"
		return d, nil
	case len(ranked) == 0:
		d.Reason = "no face matched an identity: " + d.Faces[0].Reason
		return d, nil
	}
	win := ranked[0]
	d.Support = win.w / total
	c := best[win.id]
	if len(ranked) > 1 && ranked[1].w >= win.w/2 {
		d.Reason = fmt.Sprintf("ambiguous: faces voted for %q (%.0f%%) and %q (%.0f%%)",
			c.Identity, 100*d.Support, best[ranked[1].id].Identity, 100*ranked[1].w/total)
		return d, nil
	}
	if !(d.Support > x.cfg.VoteShare) {
		d.Reason = fmt.Sprintf("%q holds %.0f%% of the quality-weighted votes, more than %.0f%% needed",
			c.Identity, 100*d.Support, 100*x.cfg.VoteShare)
		return d, nil
	}
	d.Matched = true
	d.IdentityID, d.Identity, d.ExternalRef = c.IdentityID, c.Identity, c.ExternalRef
	d.WatchlistID, d.Watchlist, d.Kind, d.Priority, d.SecondReviewer = c.WatchlistID, c.Watchlist, c.Kind, c.Priority, c.SecondReviewer
	d.EnrolmentID, d.Distance, d.Threshold = c.EnrolmentID, c.Distance, c.Threshold
	d.explainMatch()
	return d, nil
}

// explainMatch fills in the face to show, the second-best distance and
// each face's distance to the winner.
func (d *Decision) explainMatch() {
	d.BestFace = 0
	for i, fs := range d.Faces {
		if fs.VoteID == d.IdentityID {
			d.BestFace = i
			break
		}
	}
	d.SecondDistance = 0
	for _, c := range d.Candidates {
		if c.IdentityID != d.IdentityID {
			d.SecondDistance = c.Distance
			break
		}
	}
	d.FaceDistances = make([]float64, len(d.Faces))
	for i, fs := range d.Faces {
		d.FaceDistances[i] = FarDistance
		for _, c := range fs.Candidates {
			if c.IdentityID == d.IdentityID {
				d.FaceDistances[i] = c.Distance
				break
			}
		}
	}
}

// vote applies the threshold and margin rules to one face's candidates.
func (x *Index) vote(cs []Candidate) (int64, string) {
	if len(cs) == 0 {
		return 0, "no active identity to compare with"
	}
	c1 := cs[0]
	if !c1.Within() {
		return 0, fmt.Sprintf("nearest identity %q at %.3f is beyond the threshold %.3f", c1.Identity, c1.Distance, c1.Threshold)
	}
	if len(cs) > 1 {
		c2 := cs[1]
		if gap := c2.Distance - c1.Distance; gap < x.cfg.Margin {
			return 0, fmt.Sprintf("%q at %.3f and %q at %.3f are within the margin %.3f", c1.Identity, c1.Distance, c2.Identity, c2.Distance, x.cfg.Margin)
		}
	}
	return c1.IdentityID, ""
}

// String summarises a decision in one line for logs.
func (d *Decision) String() string {
	if d.Matched {
		return fmt.Sprintf("%s on %s at %.3f (threshold %.3f, support %.0f%%)", d.Identity, d.Watchlist, d.Distance, d.Threshold, 100*d.Support)
	}
	return "no name: " + strings.TrimSpace(d.Reason)
}
