package match

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"
)

// TestSearchMatchesBruteForce checks the exact search against a plain
// float64 computation over every enrolment.
func TestSearchMatchesBruteForce(t *testing.T) {
	ctx := context.Background()
	g := openGallery(t, "")
	rng := rand.New(rand.NewPCG(5, 6))
	mustList(t, g, "a")
	mustList(t, g, "b")
	type row struct {
		identity int64
		v        Vector
	}
	var rows []row
	for i := range 40 {
		list := []string{"a", "b"}[i%2]
		id := mustIdentity(t, g, list, "p"+string(rune('A'+i)))
		for j := range 1 + i%3 {
			v := randVec(rng)
			mustEnrol(t, g, id.ID, v, id.Name+string(rune('0'+j)))
			rows = append(rows, row{id.ID, v})
		}
	}
	x := NewIndex(testConfig(), IndexOptions{Gallery: g})
	if _, err := x.Search(Probe{Vector: randVec(rng), Model: testModel}, SearchOptions{}); !errors.Is(err, ErrNotReady) {
		t.Errorf("Search(before Load) = %v, want ErrNotReady", err)
	}
	if err := x.Load(ctx); err != nil {
		t.Fatal(err)
	}
	for q := range 20 {
		p := randVec(rng)
		if q%2 == 0 {
			p = near(rng, rows[q].v, 0.3)
		}
		best := map[int64]float64{}
		for _, r := range rows {
			var s float64
			for i := range p {
				d := float64(p[i]) - float64(r.v[i])
				s += d * d
			}
			if b, ok := best[r.identity]; !ok || math.Sqrt(s) < b {
				best[r.identity] = math.Sqrt(s)
			}
		}
		ids := make([]int64, 0, len(best))
		for id := range best {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return best[ids[i]] < best[ids[j]] })
		for _, k := range []int{1, 3, 7} {
			got, err := x.Search(Probe{Vector: p, Model: testModel}, SearchOptions{TopK: k})
			if err != nil {
				t.Fatalf("Search() = %v", err)
			}
			if len(got) != k {
				t.Fatalf("Search(top %d) returned %d candidates", k, len(got))
			}
			for i, c := range got {
				if c.IdentityID != ids[i] || math.Abs(c.Distance-best[ids[i]]) > 1e-5 {
					t.Errorf("query %d top %d: Search()[%d] = identity %d at %.6f, want %d at %.6f", q, k, i, c.IdentityID, c.Distance, ids[i], best[ids[i]])
				}
			}
		}
		// Batched search gives the same answers.
		batch, err := x.SearchBatch([]Probe{{Vector: p, Model: testModel}, {Vector: rows[0].v, Model: testModel}}, SearchOptions{TopK: 3})
		if err != nil {
			t.Fatal(err)
		}
		single, _ := x.Search(Probe{Vector: p, Model: testModel}, SearchOptions{TopK: 3})
		if !slices.Equal(batch[0], single) {
			t.Errorf("SearchBatch()[0] = %v, want %v", batch[0], single)
		}
		if batch[1][0].IdentityID != rows[0].identity || batch[1][0].Distance != 0 {
			t.Errorf("SearchBatch(enrolled descriptor) = %+v, want identity %d at 0", batch[1][0], rows[0].identity)
		}
	}
	// Restricting to a list returns only its identities.
	got, err := x.Search(Probe{Vector: rows[0].v, Model: testModel}, SearchOptions{Watchlists: []string{"b"}, TopK: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range got {
		if c.Watchlist != "b" {
			t.Errorf("Search(list b) returned %q of list %q", c.Identity, c.Watchlist)
		}
	}
}

func TestSearchBadProbes(t *testing.T) {
	ctx := context.Background()
	g := openGallery(t, "")
	rng := rand.New(rand.NewPCG(7, 8))
	mustList(t, g, "a")
	id := mustIdentity(t, g, "a", "x")
	mustEnrol(t, g, id.ID, randVec(rng), "x")
	x := NewIndex(testConfig(), IndexOptions{Gallery: g})
	if err := x.Load(ctx); err != nil {
		t.Fatal(err)
	}
	nan := randVec(rng)
	nan[3] = float32(math.NaN())
	other := testModel
	other.Name = "another-net"
	tests := []struct {
		name    string
		p       Probe
		opt     SearchOptions
		wantErr error
	}{
		{"NaN", Probe{Vector: nan, Model: testModel}, SearchOptions{}, ErrInvalid},
		{"zeros", Probe{Model: testModel}, SearchOptions{}, ErrInvalid},
		{"other model", Probe{Vector: randVec(rng), Model: other}, SearchOptions{}, ErrModelMismatch},
		{"unknown list", Probe{Vector: randVec(rng), Model: testModel}, SearchOptions{Watchlists: []string{"nope"}}, ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := x.Search(tc.p, tc.opt); !errors.Is(err, tc.wantErr) {
				t.Errorf("Search(%s) = %v, want %v", tc.name, err, tc.wantErr)
			}
			if _, err := x.DecideTrack([]Probe{tc.p}, tc.opt); !errors.Is(err, tc.wantErr) {
				t.Errorf("DecideTrack(%s) = %v, want %v", tc.name, err, tc.wantErr)
			}
		})
	}
}

// TestExpiryStopsMatching: an expired identity or list stops matching at
// its expiry time, with nobody acting and no event in between.
func TestExpiryStopsMatching(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := t0
	now := func() time.Time { return clock }
	g, err := OpenGallery(ctx, t.TempDir(), GalleryOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	rng := rand.New(rand.NewPCG(9, 10))
	mustList(t, g, "short")
	mustList(t, g, "long")
	a := mustIdentity(t, g, "short", "a")
	b, _, err := g.EnsureIdentity(ctx, "long", IdentitySpec{Name: "b", Expires: t0.Add(2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	va, vb := randVec(rng), randVec(rng)
	mustEnrol(t, g, a.ID, va, "a")
	mustEnrol(t, g, b.ID, vb, "b")
	if _, err := g.ExpireWatchlist(ctx, "short", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	x := NewIndex(testConfig(), IndexOptions{Gallery: g, Now: now})
	if err := x.Load(ctx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		at    time.Duration
		probe Vector
		want  string
	}{
		{59 * time.Minute, va, "a"},
		{60 * time.Minute, va, ""},
		{119 * time.Minute, vb, "b"},
		{120 * time.Minute, vb, ""},
	}
	for _, tc := range tests {
		clock = t0.Add(tc.at)
		d, err := x.DecideTrack([]Probe{{Vector: near(rng, tc.probe, 0.1), Model: testModel, Quality: 1}}, SearchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d.Identity != tc.want {
			t.Errorf("at +%v: DecideTrack() = %q (%s), want %q", tc.at, d.Identity, d.Reason, tc.want)
		}
	}
}

// TestDecideTrack builds a gallery with known geometry and checks the
// threshold, margin and quality-weighted vote.
func TestDecideTrack(t *testing.T) {
	ctx := context.Background()
	g := openGallery(t, "")
	rng := rand.New(rand.NewPCG(11, 12))
	mustList(t, g, "l")
	w, _ := g.SetThreshold(ctx, "l", 0.5)
	_ = w
	va, vb := randVec(rng), randVec(rng)
	a := mustIdentity(t, g, "l", "alice")
	b := mustIdentity(t, g, "l", "bob")
	mustEnrol(t, g, a.ID, va, "a")
	mustEnrol(t, g, b.ID, vb, "b")
	// mid is equidistant from alice and bob.
	var mid Vector
	for i := range mid {
		mid[i] = (va[i] + vb[i]) / 2
	}
	stranger := randVec(rng)
	cfg := testConfig()
	cfg.Margin = 0.05
	cfg.VoteShare = 0.5
	x := NewIndex(cfg, IndexOptions{Gallery: g})
	if err := x.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if dab := Distance(&va, &vb); dab < 0.7 {
		t.Fatalf("synthetic identities too close: %.3f", dab)
	}
	p := func(v Vector, q float64) Probe { return Probe{Vector: v, Model: testModel, Quality: q} }
	tests := []struct {
		name  string
		faces []Probe
		want  string // identity or "" for no name
	}{
		{"one close face", []Probe{p(near(rng, va, 0.2), 0.9)}, "alice"},
		{"three close faces", []Probe{p(near(rng, vb, 0.2), 0.9), p(near(rng, vb, 0.3), 0.5), p(near(rng, vb, 0.25), 0.7)}, "bob"},
		{"beyond threshold", []Probe{p(near(rng, va, 0.6), 0.9)}, ""},
		{"stranger", []Probe{p(stranger, 0.9), p(near(rng, stranger, 0.1), 0.9)}, ""},
		{"equidistant: margin", []Probe{p(mid, 0.9)}, ""},
		{"split vote", []Probe{p(near(rng, va, 0.2), 0.8), p(near(rng, vb, 0.2), 0.8)}, ""},
		{"minority for another identity", []Probe{p(near(rng, va, 0.2), 0.9), p(near(rng, va, 0.2), 0.9), p(near(rng, va, 0.2), 0.9), p(near(rng, vb, 0.2), 0.3)}, "alice"},
		{"good face outweighs poor non-matches", []Probe{p(near(rng, va, 0.2), 0.9), p(stranger, 0.1), p(near(rng, stranger, 0.1), 0.1)}, "alice"},
		{"poor match outweighed by good non-matches", []Probe{p(near(rng, va, 0.2), 0.1), p(stranger, 0.9), p(near(rng, stranger, 0.1), 0.9)}, ""},
		{"half the weight is not a majority", []Probe{p(near(rng, va, 0.2), 0.5), p(stranger, 0.5)}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := x.DecideTrack(tc.faces, SearchOptions{})
			if err != nil {
				t.Fatalf("DecideTrack() = %v", err)
			}
			if d.Identity != tc.want || d.Matched != (tc.want != "") {
				t.Errorf("DecideTrack(%s) = %q matched=%v (%s), want %q", tc.name, d.Identity, d.Matched, d.Reason, tc.want)
			}
			if len(d.Faces) != len(tc.faces) {
				t.Errorf("DecideTrack() kept %d face scores, want %d", len(d.Faces), len(tc.faces))
			}
			if !d.Matched && d.Reason == "" {
				t.Errorf("DecideTrack(%s) gave no name without a reason", tc.name)
			}
			if d.Matched && (d.Distance > d.Threshold || d.Threshold != 0.5 || d.Watchlist != "l") {
				t.Errorf("DecideTrack(%s) = distance %.3f threshold %.3f list %q, want within the list's 0.5", tc.name, d.Distance, d.Threshold, d.Watchlist)
			}
		})
	}
	if _, err := x.DecideTrack(nil, SearchOptions{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("DecideTrack(no faces) = %v, want ErrInvalid", err)
	}
}

// TestApplyConverges applies the gallery's own events in shuffled and
// repeated orders and checks every index ends where a fresh Load does.
func TestApplyConverges(t *testing.T) {
	ctx := context.Background()
	g := openGallery(t, "")
	rng := rand.New(rand.NewPCG(13, 14))
	mustList(t, g, "a")
	mustList(t, g, "b")
	var ids []Identity
	for i := range 6 {
		id := mustIdentity(t, g, []string{"a", "b"}[i%2], "p"+string(rune('0'+i)))
		ids = append(ids, id)
		mustEnrol(t, g, id.ID, randVec(rng), id.Name+"x")
		mustEnrol(t, g, id.ID, randVec(rng), id.Name+"y")
	}
	if err := g.DeleteIdentity(ctx, ids[2].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := g.ExpireIdentity(ctx, ids[3].ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := g.SetThreshold(ctx, "a", 0.42); err != nil {
		t.Fatal(err)
	}
	if err := g.DeleteWatchlist(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	evs, err := g.events(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := NewIndex(testConfig(), IndexOptions{Gallery: g})
	if err := want.Load(ctx); err != nil {
		t.Fatal(err)
	}
	for trial := range 20 {
		order := slices.Clone(evs)
		if trial > 0 {
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			order = append(order, order[:len(order)/2]...) // duplicates
		}
		x := NewIndex(testConfig(), IndexOptions{})
		for _, ev := range order {
			if err := x.Apply(ev); err != nil {
				t.Fatalf("Apply(%d %s) = %v", ev.Seq, ev.Type, err)
			}
		}
		if got := x.digest(); got != want.digest() {
			t.Fatalf("trial %d: index after events =\n%s\nwant (Load)\n%s", trial, got, want.digest())
		}
	}
}

// TestSearchLargeGallery covers the multi-CPU search of a large gallery
// (split into parts and merged) against a plain float64 scan.
func TestSearchLargeGallery(t *testing.T) {
	x := syntheticIndex(t, parallelMinRows+1000)
	rng := newRand(41)
	for q := range 3 {
		p := randVec(rng)
		if q == 1 {
			// A probe near a row at the far end, in the last part.
			r := len(x.rowID) - 10
			var v Vector
			copy(v[:], x.vecs[r*Dim:(r+1)*Dim])
			p = near(rng, v, 0.05)
		}
		best := map[int64]float64{}
		for r := range x.rowID {
			var s float64
			for i := range Dim {
				d := float64(p[i]) - float64(x.vecs[r*Dim+i])
				s += d * d
			}
			id := x.slots[x.rowSlot[r]].id.ID
			if b, ok := best[id]; !ok || s < b {
				best[id] = s
			}
		}
		ids := make([]int64, 0, len(best))
		for id := range best {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return best[ids[i]] < best[ids[j]] })
		got, err := x.Search(Probe{Vector: p, Model: testModel}, SearchOptions{TopK: 5})
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range got {
			if c.IdentityID != ids[i] || math.Abs(c.Distance-math.Sqrt(best[ids[i]])) > 1e-5 {
				t.Errorf("probe %d: Search()[%d] = identity %d at %.6f, want %d at %.6f", q, i, c.IdentityID, c.Distance, ids[i], math.Sqrt(best[ids[i]]))
			}
		}
	}
}
