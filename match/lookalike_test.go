package match

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// TestLookAlikesAndCatchUp checks, on synthetic descriptors, what
// enrolment warns with: the nearest own and other enrolments, look-alike
// pairs within the stricter threshold, and an index catching up from the
// gallery's outbox without NATS.
func TestLookAlikesAndCatchUp(t *testing.T) {
	ctx := context.Background()
	g := openGallery(t, "")
	rng := rand.New(rand.NewPCG(41, 42))
	mustList(t, g, "a")
	mustList(t, g, "b")
	va, vb := randVec(rng), randVec(rng)
	ann := mustIdentity(t, g, "a", "ann")
	bob := mustIdentity(t, g, "a", "bob")
	mustEnrol(t, g, ann.ID, va, "ann1")
	mustEnrol(t, g, bob.ID, vb, "bob1")
	x := NewIndex(testConfig(), IndexOptions{Gallery: g})
	if err := x.CatchUp(ctx); err != nil { // not loaded yet: loads
		t.Fatalf("CatchUp() = %v", err)
	}
	probe := near(rng, va, 0.1)
	own, other, ok := x.NearestOwnAndOther(ann.ID, &probe)
	if !ok || own.IdentityID != ann.ID || other.IdentityID != bob.ID {
		t.Fatalf("NearestOwnAndOther(ann) = own %d, other %d, %v; want ann, bob", own.IdentityID, other.IdentityID, ok)
	}
	if want := Distance(&probe, &va); math.Abs(own.Distance-want) > 1e-6 {
		t.Errorf("own distance = %.6f, want %.6f", own.Distance, want)
	}
	if got := x.LookAlikes(nil); len(got) != 0 {
		t.Errorf("LookAlikes() = %+v, want none: ann and bob are far apart", got)
	}

	// Ann again on list b under another name, written after the load:
	// CatchUp applies it from the outbox and the pair shows up.
	ann2 := mustIdentity(t, g, "b", "A. N. N.")
	mustEnrol(t, g, ann2.ID, near(rng, va, 0.2), "ann2")
	if got := x.LookAlikes(nil); len(got) != 0 {
		t.Fatalf("LookAlikes() before CatchUp = %+v, want none yet", got)
	}
	if err := x.CatchUp(ctx); err != nil {
		t.Fatalf("CatchUp() = %v", err)
	}
	got := x.LookAlikes([]int64{ann2.ID})
	if len(got) != 1 || got[0].A.IdentityID != ann.ID || got[0].B.IdentityID != ann2.ID {
		t.Fatalf("LookAlikes(ann2) = %+v, want the pair ann ~ A. N. N.", got)
	}
	if got[0].Distance > 0.5 {
		t.Errorf("look-alike distance = %.3f, want within the threshold", got[0].Distance)
	}
	// A first photo of a new identity has no own enrolment.
	own, other, ok = x.NearestOwnAndOther(999, &probe)
	if !ok || own.IdentityID != 0 || other.IdentityID != ann.ID {
		t.Errorf("NearestOwnAndOther(new identity) = own %d, other %d, %v; want none, ann", own.IdentityID, other.IdentityID, ok)
	}
}
