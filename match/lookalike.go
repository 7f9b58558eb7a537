package match

import (
	"context"
	"fmt"
	"math"
	"slices"
)

// CatchUp brings an index loaded from the gallery up to date from the
// gallery's own outbox (no NATS needed): used by tools that write and read
// the same gallery.
func (x *Index) CatchUp(ctx context.Context) error {
	x.mu.RLock()
	loaded, seq := x.loaded, x.lastSeq
	x.mu.RUnlock()
	if !loaded {
		return x.Load(ctx)
	}
	evs, err := x.gallery.events(ctx, seq)
	if err != nil {
		return fmt.Errorf("reading gallery events: %w", err)
	}
	for _, ev := range evs {
		if err := x.Apply(ev); err != nil {
			return err
		}
	}
	return nil
}

// NearestOwnAndOther returns the nearest enrolment of identity id and the
// nearest of any other active identity.
func (x *Index) NearestOwnAndOther(id int64, v *Vector) (own, other Candidate, ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	sc, _ := x.scopeLocked(SearchOptions{})
	ownSlot, hasOwn := x.slotOf[id]
	bo, bx := newTopK(1), newTopK(1)
	for r := range x.rowID {
		s := x.rowSlot[r]
		d := sqDist(v[:], x.vecs[r*Dim:r*Dim+Dim])
		switch {
		case hasOwn && s == ownSlot:
			if d < bo.worst {
				bo.offer(s, r, d)
			}
		case sc.active[s]:
			if d < bx.worst {
				bx.offer(s, r, d)
			}
		}
	}
	if len(bx.e) == 0 {
		return Candidate{}, Candidate{}, false
	}
	other = x.candidatesLocked(&bx, &sc)[0]
	if len(bo.e) > 0 {
		own = Candidate{IdentityID: id, Distance: sqrt32(bo.e[0].d)}
	}
	return own, other, true
}

// LookAlike is a pair of identities, on any lists, whose nearest
// enrolments are within the stricter of their lists' thresholds: perhaps
// the same person enrolled twice.
type LookAlike struct {
	A, B     Candidate
	Distance float64
}

// LookAlikes lists pairs of identities that look like the same person,
// among pairs involving the given identities (every identity when ids is
// empty), nearest first.
func (x *Index) LookAlikes(ids []int64) []LookAlike {
	x.mu.RLock()
	defer x.mu.RUnlock()
	sc, _ := x.scopeLocked(SearchOptions{})
	want := map[int32]bool{}
	for _, id := range ids {
		if s, ok := x.slotOf[id]; ok {
			want[s] = true
		}
	}
	type key struct{ a, b int32 }
	best := map[key]topEntry{}
	rows := map[key][2]int{}
	for r := range x.rowID {
		sr := x.rowSlot[r]
		if !sc.active[sr] || (len(want) > 0 && !want[sr]) {
			continue
		}
		for q := range x.rowID {
			sq := x.rowSlot[q]
			if sq == sr || !sc.active[sq] || (len(want) == 0 && q < r) {
				continue
			}
			k := key{min(sr, sq), max(sr, sq)}
			d := sqDist(x.vecs[r*Dim:r*Dim+Dim], x.vecs[q*Dim:q*Dim+Dim])
			if b, ok := best[k]; !ok || d < b.d {
				best[k] = topEntry{d: d}
				if sr < sq {
					rows[k] = [2]int{r, q}
				} else {
					rows[k] = [2]int{q, r}
				}
			}
		}
	}
	var out []LookAlike
	for k, b := range best {
		d := float64(sqrt32(b.d))
		t := min(sc.thresh[k.a], sc.thresh[k.b])
		if d > t {
			continue
		}
		rr := rows[k]
		ta, tb := topK{e: []topEntry{{k.a, rr[0], b.d}}}, topK{e: []topEntry{{k.b, rr[1], b.d}}}
		out = append(out, LookAlike{A: x.candidatesLocked(&ta, &sc)[0], B: x.candidatesLocked(&tb, &sc)[0], Distance: d})
	}
	slices.SortFunc(out, func(p, q LookAlike) int {
		if p.Distance != q.Distance {
			if p.Distance < q.Distance {
				return -1
			}
			return 1
		}
		return int(p.A.IdentityID - q.A.IdentityID)
	})
	return out
}

func sqrt32(d float32) float64 {
	return math.Sqrt(float64(d))
}
