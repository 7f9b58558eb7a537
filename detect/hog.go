package detect

import (
	"context"
	"image"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/dlib"
	"github.com/facewatch/facewatch/models"
)

// hogBackend is dlib's frontal face detector: HOG features and linear SVMs,
// on the CPU, no model file. Confidence is the SVM margin.
type hogBackend struct{ hog *dlib.HOG }

func openHOG(models.Dir, config.Detect) (Backend, error) {
	h, err := dlib.NewHOG()
	if err != nil {
		return nil, err
	}
	return &hogBackend{hog: h}, nil
}

func (b *hogBackend) Detect(ctx context.Context, img gocv.Mat, opt Options) ([]Candidate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	im, cleanup, err := matImage(img)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	rs, err := b.hog.DetectUpTo(im, opt.Upsample, 0, opt.MaxFace)
	if err != nil {
		return nil, err
	}
	out := make([]Candidate, len(rs))
	for i, r := range rs {
		out[i] = Candidate{Box: image.Rect(r.Left, r.Top, r.Right+1, r.Bottom+1), Confidence: r.Score}
	}
	return out, nil
}

func (b *hogBackend) Close() error {
	b.hog.Close()
	return nil
}
