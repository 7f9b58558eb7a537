package eval

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/facewatch/facewatch/internal/enroll"
	"github.com/facewatch/facewatch/match"
)

// LabelledDir computes a labelled set from a directory of one directory
// per identity, for Evaluate: each photo's single face (photos with no
// face or several are skipped and returned as refusals).
func LabelledDir(ctx context.Context, det enroll.FaceDetector, emb enroll.FaceEmbedder, dir string, maxPixels int64, progress enroll.Progress) (LabelledSet, []*enroll.Refusal, error) {
	names, photos, err := enroll.IdentityPhotos(dir)
	if err != nil {
		return LabelledSet{}, nil, fmt.Errorf("reading labelled set: %w", err)
	}
	total := 0
	for _, n := range names {
		total += len(photos[n])
	}
	set := LabelledSet{Model: match.ModelID(emb.Model())}
	var refused []*enroll.Refusal
	done := 0
	for _, who := range names {
		li := LabelledIdentity{Name: who}
		for _, p := range photos[who] {
			if err := ctx.Err(); err != nil {
				return LabelledSet{}, nil, err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return LabelledSet{}, nil, fmt.Errorf("reading labelled set: %w", err)
			}
			label := filepath.Join(who, filepath.Base(p))
			faces, err := enroll.Faces(ctx, det, emb, label, data, maxPixels)
			var ref *enroll.Refusal
			switch {
			case errors.As(err, &ref):
				refused = append(refused, ref)
			case err != nil:
				return LabelledSet{}, nil, err
			case len(faces) == 0:
				refused = append(refused, &enroll.Refusal{Photo: label, Reason: enroll.RefuseNoFace})
			case len(faces) > 1:
				refused = append(refused, &enroll.Refusal{Photo: label, Reason: enroll.RefuseSeveralFaces, Detail: fmt.Sprintf("%d faces", len(faces))})
			default:
				li.Vectors = append(li.Vectors, faces[0].Descriptor.Vector)
				if set.Found == nil {
					set.Found = map[string]int{}
				}
				set.Found[faces[0].Found.String()]++
			}
			done++
			if progress != nil {
				progress(done, total, label)
			}
		}
		if len(li.Vectors) > 0 {
			set.Identities = append(set.Identities, li)
		}
	}
	return set, refused, nil
}
