package eval

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"image/png"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/match"
)

// idols loads go-face's real reference descriptors (computed with dlib's
// ResNet v1 from photos of 134 people).
func idols(t testing.TB) LabelledSet {
	t.Helper()
	f, err := os.Open(testdata.Path(t, "go-face-testdata/idols.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	set, err := LoadGoFaceJSON(f)
	if err != nil {
		t.Fatalf("LoadGoFaceJSON() = %v", err)
	}
	return set
}

// rawIdols parses idols.json independently of LoadGoFaceJSON: descriptors
// as float64 and their labels.
func rawIdols(t *testing.T) (vecs [][]float64, label []string) {
	b, err := os.ReadFile(testdata.Path(t, "go-face-testdata/idols.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Faces []struct {
			Descriptor string `json:"descriptor"`
			IdolID     string `json:"idol_id"`
		} `json:"faces"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, f := range doc.Faces {
		raw, _ := base64.StdEncoding.DecodeString(f.Descriptor)
		v := make([]float64, len(raw)/4)
		for i := range v {
			v[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
		}
		vecs = append(vecs, v)
		label = append(label, f.IdolID)
	}
	return vecs, label
}

func TestEvaluateIdols(t *testing.T) {
	set := idols(t)
	r, err := Evaluate(set, EvalOptions{TargetFPIR: 0.01, Seed: 1})
	if err != nil {
		t.Fatalf("Evaluate() = %v", err)
	}
	vecs, label := rawIdols(t)
	ids := map[string]int{}
	for _, l := range label {
		ids[l]++
	}
	genuinePairs := 0
	for _, c := range ids {
		genuinePairs += c * (c - 1) / 2
	}
	n := len(vecs)
	// Brute-force error rates at a threshold, independently of Evaluate;
	// impostor pairs under 0.1 are the same photo under two names (the
	// set was cut from group photos) and are left out.
	dist := func(i, j int) float64 {
		var s float64
		for k := range vecs[i] {
			d := vecs[i][k] - vecs[j][k]
			s += d * d
		}
		return math.Sqrt(s)
	}
	dups := 0
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			if label[i] != label[j] && dist(i, j) < 0.1 {
				dups++
			}
		}
	}
	if r.Identities != len(ids) || r.Descriptors != n || r.GenuinePairs != genuinePairs || r.ImpostorPairs != n*(n-1)/2-genuinePairs-dups || len(r.LabelErrors) != dups {
		t.Fatalf("Evaluate() counts = %d ids %d faces %d/%d pairs %d label errors, want %d %d %d/%d %d",
			r.Identities, r.Descriptors, r.GenuinePairs, r.ImpostorPairs, len(r.LabelErrors), len(ids), n, genuinePairs, n*(n-1)/2-genuinePairs-dups, dups)
	}
	rates := func(th float64) (fmr, fnmr float64) {
		var fm, fnm int
		for i := 0; i < n; i++ {
			for j := i + 1; j < n; j++ {
				d := dist(i, j)
				if label[i] == label[j] && d > th {
					fnm++
				}
				if label[i] != label[j] && d <= th && d >= 0.1 {
					fm++
				}
			}
		}
		return float64(fm) / float64(r.ImpostorPairs), float64(fnm) / float64(r.GenuinePairs)
	}
	fmr, fnmr := rates(r.EERThreshold)
	if math.Abs(fmr-fnmr) > 0.01 || math.Abs(r.EER-(fmr+fnmr)/2) > 0.005 {
		t.Errorf("at EER threshold %.4f: brute force FMR %.4f FNMR %.4f, report EER %.4f", r.EERThreshold, fmr, fnmr, r.EER)
	}
	// dlib's ResNet separates people, if less well on this set than on
	// LFW: a broken distance or decoding would put the EER near 50%.
	if r.EER > 0.4 || r.Genuine.Median >= r.Impostor.Median {
		t.Errorf("EER = %.3f, genuine median %.3f, impostor median %.3f; want EER well under chance and genuine nearer", r.EER, r.Genuine.Median, r.Impostor.Median)
	}
	for _, op := range r.AtFMR {
		fmr, fnmr := rates(op.Threshold)
		if op.Measurable && fmr > op.TargetFMR {
			t.Errorf("at FMR %g: threshold %.4f has brute-force FMR %g, over the target", op.TargetFMR, op.Threshold, fmr)
		}
		if math.Abs(fnmr-op.FNMR) > 1e-9 || math.Abs(fmr-op.FMR) > 1e-9 {
			t.Errorf("at FMR %g: report FMR %g FNMR %g, brute force %g %g", op.TargetFMR, op.FMR, op.FNMR, fmr, fnmr)
		}
		if want := float64(r.ImpostorPairs)*op.TargetFMR >= 1; op.Measurable != want {
			t.Errorf("at FMR %g: Measurable = %v, want %v with %d impostor pairs", op.TargetFMR, op.Measurable, want, r.ImpostorPairs)
		}
	}
	for i := 1; i < len(r.ROC); i++ {
		if r.ROC[i].FMR < r.ROC[i-1].FMR || r.ROC[i].FNMR > r.ROC[i-1].FNMR {
			t.Fatalf("ROC not monotone at %d: %+v after %+v", i, r.ROC[i], r.ROC[i-1])
		}
	}
	// Larger galleries need stricter thresholds; the open-set estimate
	// honours the target; sampled galleries agree with it roughly.
	for i, rec := range r.Recommendations {
		if i > 0 && rec.Threshold > r.Recommendations[i-1].Threshold {
			t.Errorf("threshold for %d identities %.4f > for %d: %.4f", rec.GallerySize, rec.Threshold, r.Recommendations[i-1].GallerySize, r.Recommendations[i-1].Threshold)
		}
		if rec.EstimatedFPIR > r.TargetFPIR*1.0001 {
			t.Errorf("Recommend(%d) estimated FPIR %.4g over the target %g", rec.GallerySize, rec.EstimatedFPIR, r.TargetFPIR)
		}
		if rec.MeasuredFPIR > 3*r.TargetFPIR {
			t.Errorf("Recommend(%d) at %.3f: measured FPIR %.4g, want near the target %g", rec.GallerySize, rec.Threshold, rec.MeasuredFPIR, r.TargetFPIR)
		}
		if wantExtra := rec.PerComparisonFMR*float64(r.IdentityImpostors) < 1; rec.Extrapolated != wantExtra {
			t.Errorf("Recommend(%d) extrapolated = %v, want %v", rec.GallerySize, rec.Extrapolated, wantExtra)
		}
		t.Logf("gallery %6d: threshold %.3f FNIR %.3f est FPIR %.4f measured %.4f extrapolated %v", rec.GallerySize, rec.Threshold, rec.FNIR, rec.EstimatedFPIR, rec.MeasuredFPIR, rec.Extrapolated)
	}
	t.Logf("EER %.4f at %.3f; FNMR at FMR 1e-3: %.4f", r.EER, r.EERThreshold, r.AtFMR[1].FNMR)

	var buf bytes.Buffer
	if err := r.WritePNG(&buf); err != nil {
		t.Fatalf("WritePNG() = %v", err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("WritePNG() wrote no PNG: %v", err)
	}
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
		}
	}
	for name, c := range map[string][3]uint32{"genuine": {0x1f, 0x77, 0xb4}, "impostor": {0xd6, 0x27, 0x28}} {
		if !seen[c] {
			t.Errorf("plot has no %s curve colour", name)
		}
	}
	js, err := json.Marshal(r)
	if err != nil || !strings.Contains(string(js), `"recommendations"`) {
		t.Errorf("json.Marshal(report) = %.80s, %v", js, err)
	}
}

func TestEvaluateBadInput(t *testing.T) {
	rng := newRand(31)
	one := LabelledIdentity{Name: "a", Vectors: []match.Vector{randVec(rng), randVec(rng)}}
	single := LabelledIdentity{Name: "b", Vectors: []match.Vector{randVec(rng)}}
	nan := randVec(rng)
	nan[0] = float32(math.NaN())
	tests := []struct {
		name string
		set  LabelledSet
		opt  EvalOptions
	}{
		{"empty", LabelledSet{}, EvalOptions{}},
		{"one identity", LabelledSet{Identities: []LabelledIdentity{one}}, EvalOptions{}},
		{"no genuine pairs", LabelledSet{Identities: []LabelledIdentity{single, single}}, EvalOptions{}},
		{"NaN", LabelledSet{Identities: []LabelledIdentity{one, {Name: "n", Vectors: []match.Vector{nan}}}}, EvalOptions{}},
		{"target over 1", LabelledSet{Identities: []LabelledIdentity{one, single}}, EvalOptions{TargetFPIR: 2}},
		{"gallery size 0", LabelledSet{Identities: []LabelledIdentity{one, single}}, EvalOptions{GallerySizes: []int{0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Evaluate(tc.set, tc.opt); !errors.Is(err, match.ErrInvalid) {
				t.Errorf("Evaluate(%s) = %v, want match.ErrInvalid", tc.name, err)
			}
		})
	}
	if _, err := LoadGoFaceJSON(strings.NewReader(`{"faces":[{"descriptor":"AAAA","idol_id":"x"}]}`)); !errors.Is(err, match.ErrInvalid) {
		t.Errorf("LoadGoFaceJSON(short descriptor) = %v, want match.ErrInvalid", err)
	}
}
