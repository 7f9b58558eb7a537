package detect

import (
	"context"
	"image"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/dlib/mmod"
	"github.com/facewatch/facewatch/models"
)

// mmodBackend is dlib's MMOD CNN face detector (models.MMOD): slower than
// HOG on the CPU, but it finds faces turned further from the camera.
// Confidence is the network's MMOD score.
type mmodBackend struct{ net *mmod.Net }

func openMMOD(dir models.Dir, _ config.Detect) (Backend, error) {
	p, err := dir.Path(models.MMOD)
	if err != nil {
		return nil, err
	}
	n, err := mmod.Load(p)
	if err != nil {
		return nil, err
	}
	return &mmodBackend{net: n}, nil
}

func (b *mmodBackend) Detect(ctx context.Context, img gocv.Mat, opt Options) ([]Candidate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	im, cleanup, err := matImage(img)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	rs, err := b.net.Detect(im.Pix, im.Rows, im.Cols, im.Stride, im.Channels, opt.Upsample, 0)
	if err != nil {
		return nil, err
	}
	return mmodCandidates(rs), nil
}

func (b *mmodBackend) Close() error {
	b.net.Close()
	return nil
}

// mmodCandidates turns MMOD's detections (dlib's inclusive rectangles)
// into candidates.
func mmodCandidates(rs []mmod.Rect) []Candidate {
	out := make([]Candidate, len(rs))
	for i, r := range rs {
		out[i] = Candidate{Box: image.Rect(r.Left, r.Top, r.Right+1, r.Bottom+1), Confidence: r.Score}
	}
	return out
}
