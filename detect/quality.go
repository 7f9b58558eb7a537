package detect

import (
	"image"
	"math"

	"github.com/facewatch/facewatch/internal/face"
)

// Assess scores a face from its box, landmarks and chip (see face.Quality).
func Assess(box image.Rectangle, lm [5]image.Point, chip face.Chip) face.Quality {
	q := face.Quality{
		Size:        math.Min(1, float64(min(box.Dx(), box.Dy()))/100),
		Sharpness:   sharpness(chip),
		Frontalness: frontalness(lm),
	}
	q.Score = math.Cbrt(q.Size * q.Sharpness * q.Frontalness)
	return q
}

// sharpness maps the variance of the Laplacian of the chip's gray levels
// (its inner part, where the face is) into [0, 1): v/(v+sharpHalf).
func sharpness(chip face.Chip) float64 {
	if len(chip.Pix) != face.ChipBytes {
		return 0
	}
	const n = face.ChipSize
	gray := make([]float64, n*n)
	for i := range gray {
		p := chip.Pix[i*3 : i*3+3]
		gray[i] = 0.299*float64(p[0]) + 0.587*float64(p[1]) + 0.114*float64(p[2])
	}
	var sum, sum2 float64
	cnt := 0
	for y := n / 6; y < n-n/6; y++ {
		for x := n / 6; x < n-n/6; x++ {
			l := 4*gray[y*n+x] - gray[(y-1)*n+x] - gray[(y+1)*n+x] - gray[y*n+x-1] - gray[y*n+x+1]
			sum += l
			sum2 += l * l
			cnt++
		}
	}
	mean := sum / float64(cnt)
	v := sum2/float64(cnt) - mean*mean
	// sharpHalf is the variance that scores 0.5: an in-focus face chip has a
	// few hundred; a blurred one tens.
	const sharpHalf = 100
	return v / (v + sharpHalf)
}

// frontalness is 1 when the nose lies midway between the eyes along the eye
// line and falls to 0 as it reaches either eye (a profile).
func frontalness(lm [5]image.Point) float64 {
	e1x, e1y := float64(lm[0].X+lm[1].X)/2, float64(lm[0].Y+lm[1].Y)/2
	e2x, e2y := float64(lm[2].X+lm[3].X)/2, float64(lm[2].Y+lm[3].Y)/2
	dx, dy := e2x-e1x, e2y-e1y
	d2 := dx*dx + dy*dy
	if d2 == 0 {
		return 0
	}
	t := ((float64(lm[4].X)-e1x)*dx + (float64(lm[4].Y)-e1y)*dy) / d2
	return math.Max(0, 1-math.Abs(t-0.5)*2)
}
