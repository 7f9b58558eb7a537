package eval

import (
	"bytes"
	"encoding/json"
	"image/png"
	"math"
	"strings"
	"testing"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/facewatch/facewatch/match"
)

// smallSet is a synthetic labelled set of ids people with per photos
// each: impostors ~0.9 apart, genuine pairs ~0.3, so that no impostor is
// within 0.4 or 0.5 and the FPIR there cannot be measured.
func smallSet(ids, per int) LabelledSet {
	rng := newRand(7)
	var set LabelledSet
	for i := range ids {
		c := randVec(rng)
		id := LabelledIdentity{Name: string(rune('a'+i%26)) + string(rune('a'+i/26))}
		for range per {
			v := c
			for k := range v {
				v[k] += float32(rng.NormFloat64() * 0.3 / math.Sqrt(2*match.Dim))
			}
			id.Vectors = append(id.Vectors, v)
		}
		set.Identities = append(set.Identities, id)
	}
	return set
}

// TestFPIRNotMeasurableOnASmallSet: where no identity-level impostor
// comparison falls within a threshold, the FPIR there is reported as not
// measurable (JSON null with a 95% upper bound), never as 0; where some
// do, it is estimated and at least 1/comparisons.
func TestFPIRNotMeasurableOnASmallSet(t *testing.T) {
	r, err := Evaluate(smallSet(20, 3), EvalOptions{TargetFPIR: 0.01, Seed: 1, GallerySizes: []int{1, 10}})
	if err != nil {
		t.Fatalf("Evaluate = %v", err)
	}
	n := r.IdentityImpostors
	if n == 0 {
		t.Fatal("no identity-level impostor comparisons")
	}
	// The oracle: count impostor comparisons within each threshold.
	notMeasurable := 0
	for _, pt := range r.FPIR {
		within := 0
		for _, d := range r.idImpostor {
			if d <= pt.Threshold {
				within++
			}
		}
		switch {
		case within == 0:
			notMeasurable++
			if pt.Measurable || pt.Estimated != nil {
				t.Errorf("FPIR(t %.2f, N %d) = measurable %v, estimate %v; want not measurable (0 of %d impostors within)", pt.Threshold, pt.GallerySize, pt.Measurable, pt.Estimated, n)
			}
			want := 1 - math.Pow(1-3/float64(n), float64(pt.GallerySize))
			if math.Abs(pt.UpperBound-want) > 1e-9 {
				t.Errorf("FPIR(t %.2f, N %d) upper bound = %g, want %g", pt.Threshold, pt.GallerySize, pt.UpperBound, want)
			}
		default:
			if !pt.Measurable || pt.Estimated == nil || *pt.Estimated < 1/float64(n)-1e-12 {
				t.Errorf("FPIR(t %.2f, N %d) = %+v, want an estimate of at least 1/%d", pt.Threshold, pt.GallerySize, pt, n)
			}
		}
	}
	if notMeasurable == 0 {
		t.Fatalf("the small set measured every FPIR point; the test needs one it cannot measure")
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		FPIR []map[string]any `json:"fpir"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for i, pt := range back.FPIR {
		if r.FPIR[i].Measurable {
			continue
		}
		if v, ok := pt["estimated"]; !ok || v != nil || pt["measurable"] != false {
			t.Errorf("JSON fpir[%d] = %v, want estimated null and measurable false", i, pt)
		}
	}
	var buf bytes.Buffer
	if err := r.WritePNG(&buf); err != nil {
		t.Fatalf("WritePNG = %v", err)
	}
	if _, err := png.Decode(&buf); err != nil {
		t.Fatalf("WritePNG wrote no PNG: %v", err)
	}
	// The plot draws no zero line: each not-measurable threshold is a
	// dashed upper bound whose legend says so.
	dashed := 0
	for _, l := range r.fpirSeries() {
		for _, pt := range l.pts {
			if pt.Y == 0 {
				t.Errorf("FPIR plot line %q has a point at 0 (N %g)", l.label, pt.X)
			}
		}
		if l.dashed {
			dashed++
			if !strings.Contains(l.label, "not measurable") {
				t.Errorf("FPIR plot upper-bound line labelled %q, want it to say not measurable", l.label)
			}
		}
	}
	if dashed == 0 {
		t.Errorf("FPIR plot has no not-measurable line for the %d points it cannot measure", notMeasurable)
	}
}

// TestHistogramLegendCoversNoBar draws the distance histogram at the size
// WritePNG uses and checks, in canvas coordinates, that the legend's box
// overlaps no bar of either distribution.
func TestHistogramLegendCoversNoBar(t *testing.T) {
	evaluated := func(set LabelledSet) *Report {
		r, err := Evaluate(set, EvalOptions{TargetFPIR: 0.01, Seed: 1, GallerySizes: []int{1}})
		if err != nil {
			t.Fatalf("Evaluate = %v", err)
		}
		return r
	}
	// Impostor distances piled up against their maximum, the shape that
	// puts the tallest bars under a top-right legend.
	rng := newRand(3)
	skewed := &Report{}
	for range 2000 {
		skewed.genuine = append(skewed.genuine, 0.3+0.05*rng.NormFloat64())
		skewed.impostor = append(skewed.impostor, 1.0-math.Abs(0.04*rng.NormFloat64()))
	}
	for _, tc := range []struct {
		name string
		r    *Report
	}{
		{"small synthetic", evaluated(smallSet(20, 3))},
		{"idols", evaluated(idols(t))},
		{"impostors at their maximum", skewed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			p, err := r.histPlot()
			if err != nil {
				t.Fatal(err)
			}
			img := vgimg.New(18*vg.Centimeter, 6*vg.Centimeter)
			c := draw.New(img)
			p.Draw(c)
			da := p.DataCanvas(c)
			// Legend.Rectangle in gonum plot v0.17 swaps Left (Draw puts a
			// Left=false legend on the right, Rectangle on the left): ask
			// it with Left flipped to get the box Draw fills.
			lg := p.Legend
			lg.Left = !lg.Left
			legend := lg.Rectangle(da)
			x, y := p.Transforms(&da)
			bars := 0
			for _, v := range [][]float64{r.genuine, r.impostor} {
				h, err := histOf(v)
				if err != nil {
					t.Fatal(err)
				}
				for _, b := range h.Bins {
					bars++
					x0, x1, top := x(b.Min), x(b.Max), y(b.Weight)
					if x1 > legend.Min.X && x0 < legend.Max.X && top > legend.Min.Y {
						t.Errorf("bar [%.3f, %.3f] height %.3f reaches into the legend box %v", b.Min, b.Max, b.Weight, legend)
					}
				}
			}
			if bars == 0 {
				t.Fatal("no bars checked")
			}
		})
	}
}
