// Package embed turns aligned face chips into 128-d descriptors with dlib's
// face recognition ResNet (dlib_face_recognition_resnet_model_v1), in
// batches, each Embedder owning its own network so that workers share no
// lock. Every descriptor carries the identity (name and SHA-256) of the model
// that made it. It does not detect faces or compare them with watchlists.
package embed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/dlib/resnet"
	"github.com/facewatch/facewatch/internal/face"
	"github.com/facewatch/facewatch/models"
)

// Dim is the length of a descriptor.
const Dim = 128

// Vector is a face descriptor: faces of one person lie close together
// (dlib's threshold is a Euclidean distance of 0.6).
type Vector [Dim]float32

// ModelID identifies the network that made a descriptor; descriptors of
// different models must never be compared.
type ModelID struct{ Name, SHA256 string }

// String is the model's name and the first 12 hex digits of its digest.
func (m ModelID) String() string {
	h := m.SHA256
	if len(h) > 12 {
		h = h[:12]
	}
	return m.Name + "@" + h
}

// Descriptor is one face's vector and the model that computed it.
type Descriptor struct {
	Vector Vector
	Model  ModelID
}

// ErrClosed is returned by calls on a closed Embedder.
var ErrClosed = errors.New("embedder is closed")

// Embedder computes descriptors. Each worker owns one; it is not for
// concurrent use (calls are serialised by its own lock, never a shared one).
type Embedder struct {
	cfg   config.Embed
	model ModelID

	mu  sync.Mutex // guards net and buf against Close during a call
	net *resnet.Net
	buf []byte
	out []float32
}

// New loads the network from dir. A positive cfg.BLASThreads is applied to
// OpenBLAS, process-wide (every Embedder of a process should use the same
// value; config.Defaults gives 1).
func New(dir models.Dir, cfg config.Embed) (*Embedder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("embed config: %w", err)
	}
	p, err := dir.Path(models.ResNetV1)
	if err != nil {
		return nil, err
	}
	if cfg.BLASThreads > 0 {
		resnet.SetBLASThreads(cfg.BLASThreads)
	}
	net, err := resnet.Load(p)
	if err != nil {
		return nil, err
	}
	return &Embedder{
		cfg:   cfg,
		model: ModelID{Name: models.ResNetV1.Name, SHA256: models.ResNetV1.SHA256},
		net:   net,
	}, nil
}

// Model returns the identity of the network.
func (e *Embedder) Model() ModelID { return e.model }

// Embed returns one descriptor per chip, in order, running up to
// cfg.BatchSize chips per forward pass (with cfg.Jitter > 0, each chip's
// descriptor is the mean over that many jittered copies). ctx is checked
// between batches.
func (e *Embedder) Embed(ctx context.Context, chips []face.Chip) ([]Descriptor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i, c := range chips {
		if len(c.Pix) != face.ChipBytes {
			return nil, fmt.Errorf("computing descriptors: chip %d has %d bytes, want %d (150x150 RGB)", i, len(c.Pix), face.ChipBytes)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.net == nil {
		return nil, ErrClosed
	}
	out := make([]Descriptor, len(chips))
	bs := max(1, e.cfg.BatchSize)
	for start := 0; start < len(chips); start += bs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := min(len(chips), start+bs)
		n := end - start
		e.buf = e.buf[:0]
		for _, c := range chips[start:end] {
			e.buf = append(e.buf, c.Pix...)
		}
		if cap(e.out) < n*Dim {
			e.out = make([]float32, n*Dim)
		}
		vecs := e.out[:n*Dim]
		if err := e.net.Embed(e.buf, bs, e.cfg.Jitter, vecs); err != nil {
			return nil, fmt.Errorf("computing descriptors: %w", err)
		}
		for i := 0; i < n; i++ {
			copy(out[start+i].Vector[:], vecs[i*Dim:(i+1)*Dim])
			out[start+i].Model = e.model
		}
	}
	return out, nil
}

// Close frees the network. It is safe to call more than once.
func (e *Embedder) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.net != nil {
		e.net.Close()
		e.net = nil
	}
	return nil
}

// Distance is the Euclidean distance between two descriptors.
func Distance(a, b *Vector) float32 {
	var s float32
	for i := range a {
		d := a[i] - b[i]
		s += d * d
	}
	return float32(math.Sqrt(float64(s)))
}
