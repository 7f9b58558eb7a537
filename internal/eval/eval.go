package eval

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sort"

	"github.com/facewatch/facewatch/match"
)

// LabelledSet is descriptors grouped by identity, the input of Evaluate.
type LabelledSet struct {
	Model      match.ModelID      `json:"model"`
	Identities []LabelledIdentity `json:"identities"`
	// Found counts the faces by the still-photo detector pass that found
	// them ("hog upsample 0"), for sets read from photos.
	Found map[string]int `json:"found,omitempty"`
}

// LabelledIdentity is one person's descriptors.
type LabelledIdentity struct {
	Name    string         `json:"name"`
	Vectors []match.Vector `json:"-"`
}

// LoadGoFaceJSON reads a labelled set in go-face's test format: {"idols":
// [{"id", "name"}], "faces": [{"descriptor": base64 of 128 little-endian
// float32, "idol_id"}]}. Every descriptor is checked.
func LoadGoFaceJSON(r io.Reader) (LabelledSet, error) {
	var doc struct {
		Idols []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"idols"`
		Faces []struct {
			Descriptor string `json:"descriptor"`
			IdolID     string `json:"idol_id"`
		} `json:"faces"`
	}
	if err := json.NewDecoder(r).Decode(&doc); err != nil {
		return LabelledSet{}, fmt.Errorf("reading labelled descriptors: %w", err)
	}
	names := map[string]string{}
	for _, i := range doc.Idols {
		names[i.ID] = i.Name
	}
	idx := map[string]int{}
	var set LabelledSet
	for n, f := range doc.Faces {
		b, err := base64.StdEncoding.DecodeString(f.Descriptor)
		if err != nil {
			return LabelledSet{}, fmt.Errorf("reading labelled descriptors: face %d: %w", n, err)
		}
		v, err := match.DecodeVector(b)
		if err != nil {
			return LabelledSet{}, fmt.Errorf("reading labelled descriptors: face %d: %w", n, err)
		}
		if f.IdolID == "" {
			return LabelledSet{}, fmt.Errorf("reading labelled descriptors: face %d has no identity", n)
		}
		i, ok := idx[f.IdolID]
		if !ok {
			name := names[f.IdolID]
			if name == "" {
				name = f.IdolID
			} else {
				name += " (" + f.IdolID[:min(8, len(f.IdolID))] + ")"
			}
			i = len(set.Identities)
			idx[f.IdolID] = i
			set.Identities = append(set.Identities, LabelledIdentity{Name: name})
		}
		set.Identities[i].Vectors = append(set.Identities[i].Vectors, v)
	}
	return set, nil
}

// EvalOptions tune Evaluate; zero values take the defaults.
type EvalOptions struct {
	// TargetFPIR is the false-positive identification rate the
	// recommended thresholds aim for (default 0.01: one stranger in a
	// hundred named as someone).
	TargetFPIR float64
	// GallerySizes are the numbers of enrolled identities to recommend
	// thresholds for (default 1, 10, 100, 1000, 10000, 100000).
	GallerySizes []int
	// Seed makes the sampled galleries of the measured FPIR reproducible.
	Seed uint64
	// DuplicateDistance: two descriptors of different identities closer
	// than this are taken for the same photo under two labels (a label
	// error, common in sets cut from group photos); they are listed in the
	// report and left out of the impostor statistics. Default 0.1, far
	// below any two photos of different people; negative keeps them.
	DuplicateDistance float64
}

// Report is the outcome of an evaluation; it is written as JSON.
type Report struct {
	Model       match.ModelID `json:"model"`
	Identities  int           `json:"identities"`
	Descriptors int           `json:"descriptors"`
	// Found counts the faces by the still-photo detector pass that found
	// them, for sets read from photos.
	Found         map[string]int `json:"found,omitempty"`
	GenuinePairs  int            `json:"genuine_pairs"`
	ImpostorPairs int            `json:"impostor_pairs"`
	Genuine       Summary        `json:"genuine"`
	Impostor      Summary        `json:"impostor"`
	// EER is the equal error rate, where FMR and FNMR cross.
	EER          float64 `json:"eer"`
	EERThreshold float64 `json:"eer_threshold"`
	// ROC has FMR and FNMR over a grid of thresholds.
	ROC []ROCPoint `json:"roc"`
	// AtFMR is the FNMR at FMR 1e-2 .. 1e-5 (pairwise verification).
	AtFMR []OperatingPoint `json:"at_fmr"`
	// IdentityImpostors counts the identity-level impostor comparisons
	// (a probe against another person's nearest enrolment), which bound
	// how small a per-comparison FMR can be measured.
	IdentityImpostors int `json:"identity_impostors"`
	// FPIR is the open-set false-positive identification rate against
	// gallery size at a few thresholds.
	FPIR []FPIRPoint `json:"fpir"`
	// LabelErrors are pairs of descriptors of different identities closer
	// than EvalOptions.DuplicateDistance, left out of the statistics.
	LabelErrors []LabelError `json:"label_errors,omitempty"`
	// Recommendations give, per gallery size, the largest threshold whose
	// estimated FPIR stays at or under the target.
	TargetFPIR      float64          `json:"target_fpir"`
	Recommendations []Recommendation `json:"recommendations"`
	// genuine and impostor distances, sorted, for the plot.
	genuine, impostor []float64
	idImpostor        []float64
}

// LabelError is a suspected mislabelled pair.
type LabelError struct {
	A        string  `json:"a"`
	B        string  `json:"b"`
	Distance float64 `json:"distance"`
}

// Summary describes a distance distribution.
type Summary struct {
	Count  int     `json:"count"`
	Min    float64 `json:"min"`
	P01    float64 `json:"p01"`
	Median float64 `json:"median"`
	Mean   float64 `json:"mean"`
	P99    float64 `json:"p99"`
	Max    float64 `json:"max"`
}

// ROCPoint is the error rates at one threshold (a match is distance <=
// threshold).
type ROCPoint struct {
	Threshold float64 `json:"threshold"`
	FMR       float64 `json:"fmr"`
	FNMR      float64 `json:"fnmr"`
}

// OperatingPoint is the FNMR at the largest threshold whose FMR does not
// exceed TargetFMR. Measurable is false when there are fewer than 1/target
// impostor pairs; the threshold is then the smallest impostor distance.
type OperatingPoint struct {
	TargetFMR  float64 `json:"target_fmr"`
	Threshold  float64 `json:"threshold"`
	FMR        float64 `json:"fmr"`
	FNMR       float64 `json:"fnmr"`
	Measurable bool    `json:"measurable"`
}

// FPIRPoint is the FPIR at one threshold and gallery size: Estimated is
// 1-(1-p)^N from the identity-level impostor rate p; Measured (for sizes
// the labelled set can hold, else -1) comes from sampled galleries.
//
// When no identity-level impostor comparison is within the threshold, p is
// only known to be below 1/IdentityImpostors: the FPIR is not measurable
// on this set. Measurable is then false, Estimated is null (not 0, which
// would claim a perfect list) and UpperBound is the 95% upper bound
// 1-(1-3/n)^N (the rule of three for zero events in n comparisons).
type FPIRPoint struct {
	Threshold   float64  `json:"threshold"`
	GallerySize int      `json:"gallery_size"`
	Measurable  bool     `json:"measurable"`
	Estimated   *float64 `json:"estimated"`
	UpperBound  float64  `json:"upper_bound,omitempty"`
	Measured    float64  `json:"measured"`
}

// fpirPoint estimates the FPIR at threshold t and gallery size from the
// sorted identity-level impostor distances.
func fpirPoint(idImpostor []float64, t float64, size int, measured float64) FPIRPoint {
	pt := FPIRPoint{Threshold: t, GallerySize: size, Measured: measured}
	p := rateLE(idImpostor, t)
	if p == 0 {
		n := float64(max(len(idImpostor), 1))
		pt.UpperBound = -math.Expm1(float64(size) * math.Log1p(-math.Min(1, 3/n)))
		return pt
	}
	est := -math.Expm1(float64(size) * math.Log1p(-p))
	pt.Measurable, pt.Estimated = true, &est
	return pt
}

// Recommendation is a threshold for a gallery size.
type Recommendation struct {
	GallerySize int     `json:"gallery_size"`
	Threshold   float64 `json:"threshold"`
	// PerComparisonFMR is the identity-level false-match rate the target
	// FPIR allows at this size: 1-(1-FPIR)^(1/N).
	PerComparisonFMR float64 `json:"per_comparison_fmr"`
	// EstimatedFPIR and MeasuredFPIR (-1 when the set is too small) at
	// the threshold.
	EstimatedFPIR float64 `json:"estimated_fpir"`
	MeasuredFPIR  float64 `json:"measured_fpir"`
	// FNIR is the share of genuine probes whose own identity is beyond
	// the threshold (missed people).
	FNIR float64 `json:"fnir"`
	// Extrapolated is true when the allowed FMR is below what the set can
	// measure; the threshold then comes from a normal fit of the impostor
	// tail, capped by the smallest impostor distance seen.
	Extrapolated bool   `json:"extrapolated"`
	Note         string `json:"note,omitempty"`
}

// Recommend returns the recommendation for gallery size n (the nearest
// size evaluated at or above n), or false.
func (r *Report) Recommend(n int) (Recommendation, bool) {
	for _, rec := range r.Recommendations {
		if rec.GallerySize >= n {
			return rec, true
		}
	}
	return Recommendation{}, false
}

// Evaluate measures verification and open-set identification error rates
// on a labelled set and recommends thresholds. Pairs of descriptors of the
// same identity are genuine, of different identities impostor.
func Evaluate(set LabelledSet, opt EvalOptions) (*Report, error) {
	if opt.TargetFPIR == 0 {
		opt.TargetFPIR = 0.01
	}
	if !(opt.TargetFPIR > 0 && opt.TargetFPIR < 1) {
		return nil, fmt.Errorf("evaluating: %w: target FPIR %g is not in (0, 1)", match.ErrInvalid, opt.TargetFPIR)
	}
	if opt.DuplicateDistance == 0 {
		opt.DuplicateDistance = 0.1
	}
	if len(opt.GallerySizes) == 0 {
		opt.GallerySizes = []int{1, 10, 100, 1000, 10000, 100000}
	}
	var vecs []match.Vector
	var label []int
	withPairs := 0
	for i, id := range set.Identities {
		for _, v := range id.Vectors {
			if err := match.CheckVector(&v); err != nil {
				return nil, fmt.Errorf("evaluating: identity %q: %w", id.Name, err)
			}
			vecs = append(vecs, v)
			label = append(label, i)
		}
		if len(id.Vectors) >= 2 {
			withPairs++
		}
	}
	if len(set.Identities) < 2 || withPairs == 0 {
		return nil, fmt.Errorf("evaluating: %w: need at least two identities and one with two or more faces (got %d identities, %d with two or more)",
			match.ErrInvalid, len(set.Identities), withPairs)
	}
	n := len(vecs)
	nid := len(set.Identities)
	r := &Report{Model: set.Model, Identities: nid, Descriptors: n, TargetFPIR: opt.TargetFPIR, Found: set.Found}

	// Pairwise distances, and per probe the nearest descriptor of every
	// identity (identity-level scores).
	idMin := make([]float64, n*nid)
	for i := range idMin {
		idMin[i] = math.Inf(1)
	}
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			d := dist64(&vecs[i], &vecs[j])
			if label[i] == label[j] {
				r.genuine = append(r.genuine, d)
			} else if d < opt.DuplicateDistance {
				r.LabelErrors = append(r.LabelErrors, LabelError{A: set.Identities[label[i]].Name, B: set.Identities[label[j]].Name, Distance: d})
				continue
			} else {
				r.impostor = append(r.impostor, d)
			}
			if d < idMin[i*nid+label[j]] {
				idMin[i*nid+label[j]] = d
			}
			if d < idMin[j*nid+label[i]] {
				idMin[j*nid+label[i]] = d
			}
		}
	}
	slices.Sort(r.genuine)
	slices.Sort(r.impostor)
	r.GenuinePairs, r.ImpostorPairs = len(r.genuine), len(r.impostor)
	r.Genuine, r.Impostor = summarize(r.genuine), summarize(r.impostor)

	// Identity level: a probe against its own identity's other faces
	// (genuine; only identities with two or more faces) and against every
	// other identity's nearest face (impostor).
	var idGenuine []float64
	for i := 0; i < n; i++ {
		for id := 0; id < nid; id++ {
			d := idMin[i*nid+id]
			if id == label[i] {
				if !math.IsInf(d, 1) {
					idGenuine = append(idGenuine, d)
				}
				continue
			}
			r.idImpostor = append(r.idImpostor, d)
		}
	}
	slices.Sort(idGenuine)
	slices.Sort(r.idImpostor)
	r.IdentityImpostors = len(r.idImpostor)

	// ROC on a grid covering both distributions.
	hi := max(r.Genuine.Max, r.Impostor.Max)
	const steps = 400
	for s := 0; s <= steps; s++ {
		t := hi * float64(s) / steps
		r.ROC = append(r.ROC, ROCPoint{Threshold: t, FMR: rateLE(r.impostor, t), FNMR: 1 - rateLE(r.genuine, t)})
	}
	r.EER, r.EERThreshold = eer(r.genuine, r.impostor)

	for _, p := range []float64{1e-2, 1e-3, 1e-4, 1e-5} {
		op := OperatingPoint{TargetFMR: p}
		k := int(math.Floor(p * float64(len(r.impostor))))
		op.Measurable = k >= 1
		op.Threshold = below(r.impostor, k)
		op.FMR = rateLE(r.impostor, op.Threshold)
		op.FNMR = 1 - rateLE(r.genuine, op.Threshold)
		r.AtFMR = append(r.AtFMR, op)
	}

	// Normal fit of the identity-level impostor scores for the tail.
	var mean, sd float64
	for _, d := range r.idImpostor {
		mean += d
	}
	mean /= float64(len(r.idImpostor))
	for _, d := range r.idImpostor {
		sd += (d - mean) * (d - mean)
	}
	sd = math.Sqrt(sd / float64(len(r.idImpostor)))

	rng := rand.New(rand.NewPCG(opt.Seed, 0x5eed))
	measure := func(t float64, size int) float64 {
		if size > nid-1 {
			return -1
		}
		return measuredFPIR(idMin, label, nid, size, t, rng)
	}
	sizes := slices.Clone(opt.GallerySizes)
	slices.Sort(sizes)
	for _, size := range sizes {
		if size < 1 {
			return nil, fmt.Errorf("evaluating: %w: gallery size %d", match.ErrInvalid, size)
		}
		rec := Recommendation{GallerySize: size}
		rec.PerComparisonFMR = -math.Expm1(math.Log1p(-opt.TargetFPIR) / float64(size))
		k := int(math.Floor(rec.PerComparisonFMR * float64(len(r.idImpostor))))
		if k >= 1 {
			rec.Threshold = below(r.idImpostor, k)
		} else {
			rec.Extrapolated = true
			fit := mean + sd*normalQuantile(rec.PerComparisonFMR)
			rec.Threshold = math.Max(0, math.Min(fit, below(r.idImpostor, 0)))
			rec.Note = fmt.Sprintf("allowed FMR %.2g is below 1/%d identity-level impostor comparisons: threshold extrapolated from a normal fit of the impostor tail; measure on a larger labelled set", rec.PerComparisonFMR, len(r.idImpostor))
		}
		p := rateLE(r.idImpostor, rec.Threshold)
		rec.EstimatedFPIR = -math.Expm1(float64(size) * math.Log1p(-p))
		rec.MeasuredFPIR = measure(rec.Threshold, size)
		rec.FNIR = 1 - rateLE(idGenuine, rec.Threshold)
		r.Recommendations = append(r.Recommendations, rec)
	}
	for _, t := range []float64{0.4, 0.5, 0.6} {
		for _, size := range []int{1, 10, 100, 1000, 10000, 100000, 1000000} {
			r.FPIR = append(r.FPIR, fpirPoint(r.idImpostor, t, size, measure(t, size)))
		}
	}
	return r, nil
}

// dist64 is the Euclidean distance computed in float64, so that the
// statistics do not depend on float32 rounding at a threshold.
func dist64(a, b *match.Vector) float64 {
	var s float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		s += d * d
	}
	return math.Sqrt(s)
}

// measuredFPIR samples galleries of size identities that exclude each
// probe's own identity and counts probes whose nearest gallery identity is
// within t.
func measuredFPIR(idMin []float64, label []int, nid, size int, t float64, rng *rand.Rand) float64 {
	const rounds = 4
	others := make([]int, 0, nid)
	hits, total := 0, 0
	for i := range label {
		others = others[:0]
		for id := 0; id < nid; id++ {
			if id != label[i] {
				others = append(others, id)
			}
		}
		for range rounds {
			// Partial Fisher-Yates: the first size entries are a sample.
			for k := 0; k < size; k++ {
				j := k + rng.IntN(len(others)-k)
				others[k], others[j] = others[j], others[k]
			}
			best := math.Inf(1)
			for _, id := range others[:size] {
				best = math.Min(best, idMin[i*nid+id])
			}
			if best <= t {
				hits++
			}
			total++
		}
	}
	return float64(hits) / float64(total)
}

// rateLE is the share of sorted values <= t.
func rateLE(sorted []float64, t float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sort.Search(len(sorted), func(i int) bool { return sorted[i] > t })) / float64(len(sorted))
}

// below returns the largest threshold with at most k values <= it: just
// under the (k+1)-th smallest value.
func below(sorted []float64, k int) float64 {
	if k >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return math.Max(0, math.Nextafter(sorted[k], math.Inf(-1)))
}

// eer finds where FMR and FNMR cross, scanning every distance seen.
func eer(genuine, impostor []float64) (rate, threshold float64) {
	best := math.Inf(1)
	try := func(t float64) {
		fmr := rateLE(impostor, t)
		fnmr := 1 - rateLE(genuine, t)
		if gap := math.Abs(fmr - fnmr); gap < best {
			best, rate, threshold = gap, (fmr+fnmr)/2, t
		}
	}
	// FMR rises and FNMR falls with t: bisect on their difference, then
	// look at the neighbours.
	lo, hi := 0.0, math.Max(genuine[len(genuine)-1], impostor[len(impostor)-1])
	for range 60 {
		mid := (lo + hi) / 2
		if rateLE(impostor, mid) < 1-rateLE(genuine, mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	try(lo)
	try(hi)
	return rate, threshold
}

func summarize(sorted []float64) Summary {
	if len(sorted) == 0 {
		return Summary{}
	}
	q := func(p float64) float64 { return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))] }
	var sum float64
	for _, d := range sorted {
		sum += d
	}
	return Summary{Count: len(sorted), Min: sorted[0], P01: q(0.01), Median: q(0.5), Mean: sum / float64(len(sorted)), P99: q(0.99), Max: sorted[len(sorted)-1]}
}

// normalQuantile is the inverse standard normal CDF (Acklam's rational
// approximation, relative error below 1.2e-9).
func normalQuantile(p float64) float64 {
	if p <= 0 {
		return math.Inf(-1)
	}
	if p >= 1 {
		return math.Inf(1)
	}
	a := [...]float64{-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00}
	b := [...]float64{-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01}
	c := [...]float64{-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549671671839140e+00, 4.374664141464968e+00, 2.938163982698783e+00}
	d := [...]float64{7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00}
	const plow = 0.02425
	switch {
	case p < plow:
		q := math.Sqrt(-2 * math.Log(p))
		return (((((c[0]*q+c[1])*q+c[2])*q+c[3])*q+c[4])*q + c[5]) / ((((d[0]*q+d[1])*q+d[2])*q+d[3])*q + 1)
	case p > 1-plow:
		q := math.Sqrt(-2 * math.Log(1-p))
		return -(((((c[0]*q+c[1])*q+c[2])*q+c[3])*q+c[4])*q + c[5]) / ((((d[0]*q+d[1])*q+d[2])*q+d[3])*q + 1)
	default:
		q := p - 0.5
		r := q * q
		return (((((a[0]*r+a[1])*r+a[2])*r+a[3])*r+a[4])*r + a[5]) * q / (((((b[0]*r+b[1])*r+b[2])*r+b[3])*r+b[4])*r + 1)
	}
}

// LoadGoFaceFile reads a labelled set from a go-face style JSON file (see
// LoadGoFaceJSON).
func LoadGoFaceFile(path string) (LabelledSet, error) {
	f, err := os.Open(path)
	if err != nil {
		return LabelledSet{}, fmt.Errorf("reading labelled descriptors: %w", err)
	}
	defer f.Close()
	set, err := LoadGoFaceJSON(f)
	if err != nil {
		return LabelledSet{}, fmt.Errorf("%s: %w", path, err)
	}
	return set, nil
}
