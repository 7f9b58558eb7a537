package match

/*
#cgo pkg-config: openblas
#include <cblas.h>
*/
import "C"

import "math"

// blasMinRows is the gallery part from which a scan goes through BLAS.
const blasMinRows = 2048

// blasBlock is how many gallery rows one matrix product covers (1 MiB of
// descriptors).
const blasBlock = 2048

// scanBLASLocked finds each probe's nearest identities among rows [lo, hi)
// with a matrix product: |g-q|² = |g|² + |q|² - 2 g·q, the dot products of
// a block of rows with every probe computed by one cblas_sgemm. The
// expansion is only a filter: every row it cannot rule out (within a bound
// well above float32 rounding) is compared exactly with sqDist, so the
// result is the exact search's.
func (x *Index) scanBLASLocked(probes []Probe, sc *scope, tops []topK, lo, hi int) {
	nb := len(probes)
	q := make([]float32, nb*Dim)
	qn := make([]float32, nb)
	for p := range probes {
		copy(q[p*Dim:], probes[p].Vector[:])
		qn[p] = sqNorm(&probes[p].Vector)
	}
	dots := make([]float32, blasBlock*nb)
	for b0 := lo; b0 < hi; b0 += blasBlock {
		b1 := min(b0+blasBlock, hi)
		nr := b1 - b0
		C.cblas_sgemm(C.CblasRowMajor, C.CblasNoTrans, C.CblasTrans, C.blasint(nr), C.blasint(nb), C.blasint(Dim),
			1, (*C.float)(&x.vecs[b0*Dim]), C.blasint(Dim), (*C.float)(&q[0]), C.blasint(Dim),
			0, (*C.float)(&dots[0]), C.blasint(nb))
		for r := b0; r < b1; r++ {
			slot := x.rowSlot[r]
			if !sc.active[slot] {
				continue
			}
			gn := x.norms[r]
			row := dots[(r-b0)*nb : (r-b0+1)*nb]
			for p := range row {
				t := &tops[p]
				approx := gn + qn[p] - 2*row[p]
				// float32 rounding of the expansion is below 2e-5·(|g|²+|q|²).
				if approx-1e-4*(gn+qn[p]) >= t.worst {
					continue
				}
				d := sqDist(probes[p].Vector[:], x.vecs[r*Dim:r*Dim+Dim])
				if d < t.worst {
					t.offer(slot, r, d)
				}
			}
		}
	}
}

// sqNorm is the squared length of v, summed in float64.
func sqNorm(v *Vector) float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return float32(math.Min(s, math.MaxFloat32))
}
