package match

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// TestDecideTrackExplainsMatch checks what a match carries for the hit:
// the face to show (the first that voted for the winner), the nearest
// other identity's distance, and every face's distance to the winner,
// FarDistance where the winner is not among that face's candidates.
func TestDecideTrackExplainsMatch(t *testing.T) {
	ctx := context.Background()
	g := openGallery(t, "")
	rng := rand.New(rand.NewPCG(21, 22))
	mustList(t, g, "l")
	if _, err := g.SetThreshold(ctx, "l", 0.5); err != nil {
		t.Fatal(err)
	}
	va, vb, vc := randVec(rng), randVec(rng), randVec(rng)
	for _, p := range []struct {
		name string
		v    Vector
	}{{"alice", va}, {"bob", vb}, {"carol", vc}} {
		id := mustIdentity(t, g, "l", p.name)
		mustEnrol(t, g, id.ID, p.v, p.name)
	}
	x := NewIndex(testConfig(), IndexOptions{Gallery: g})
	if err := x.Load(ctx); err != nil {
		t.Fatal(err)
	}
	// Face 0 is carol's, faces 1 and 2 alice's and weigh more.
	faces := []Probe{
		{Vector: near(rng, vc, 0.1), Model: testModel, Quality: 0.5},
		{Vector: near(rng, va, 0.2), Model: testModel, Quality: 0.9},
		{Vector: near(rng, va, 0.25), Model: testModel, Quality: 0.9},
	}
	const eps = 1e-6
	t.Run("all candidates", func(t *testing.T) {
		d, err := x.DecideTrack(faces, SearchOptions{})
		if err != nil {
			t.Fatalf("DecideTrack() = %v", err)
		}
		if !d.Matched || d.Identity != "alice" {
			t.Fatalf("DecideTrack() = %q matched=%v (%s), want alice", d.Identity, d.Matched, d.Reason)
		}
		if d.BestFace != 1 {
			t.Errorf("BestFace = %d, want 1 (the first face that voted for alice)", d.BestFace)
		}
		second := math.Inf(1)
		for i := range faces {
			second = min(second, Distance(&faces[i].Vector, &vb), Distance(&faces[i].Vector, &vc))
		}
		if math.Abs(d.SecondDistance-second) > eps {
			t.Errorf("SecondDistance = %.6f, want %.6f (carol's nearest face)", d.SecondDistance, second)
		}
		if len(d.FaceDistances) != len(faces) {
			t.Fatalf("FaceDistances = %v, want one per face", d.FaceDistances)
		}
		for i := range faces {
			if want := Distance(&faces[i].Vector, &va); math.Abs(d.FaceDistances[i]-want) > eps {
				t.Errorf("FaceDistances[%d] = %.6f, want %.6f", i, d.FaceDistances[i], want)
			}
		}
	})
	t.Run("winner not among a face's candidates", func(t *testing.T) {
		d, err := x.DecideTrack(faces, SearchOptions{TopK: 1})
		if err != nil {
			t.Fatalf("DecideTrack() = %v", err)
		}
		if !d.Matched || d.Identity != "alice" {
			t.Fatalf("DecideTrack() = %q matched=%v (%s), want alice", d.Identity, d.Matched, d.Reason)
		}
		if d.FaceDistances[0] != FarDistance {
			t.Errorf("FaceDistances[0] = %v, want FarDistance (%v): face 0 only has carol as candidate", d.FaceDistances[0], FarDistance)
		}
		// The track's one candidate is carol (face 0 is nearer her than
		// faces 1 and 2 are to alice): she is the second.
		if want := Distance(&faces[0].Vector, &vc); math.Abs(d.SecondDistance-want) > eps {
			t.Errorf("SecondDistance = %.6f, want %.6f (carol's, the track's only candidate)", d.SecondDistance, want)
		}
	})
	t.Run("no name carries no explanation", func(t *testing.T) {
		d, err := x.DecideTrack([]Probe{{Vector: randVec(rng), Model: testModel, Quality: 0.9}}, SearchOptions{})
		if err != nil {
			t.Fatalf("DecideTrack() = %v", err)
		}
		if d.Matched || d.BestFace != 0 || d.SecondDistance != 0 || d.FaceDistances != nil {
			t.Errorf("DecideTrack(stranger) = matched=%v best=%d second=%v faces=%v, want no name and no explanation", d.Matched, d.BestFace, d.SecondDistance, d.FaceDistances)
		}
	})
}
