// Package models knows the dlib model files facewatch runs on: their names,
// sizes and SHA-256 digests, where to find them on disk, and how to fetch and
// verify them. It refuses a truncated, altered or wrong file with an error
// naming the file; it never loads a model into memory for inference (that is
// detect's and embed's job).
package models

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Spec describes one model file.
type Spec struct {
	// Name is the file name on disk.
	Name string
	// Size in bytes.
	Size int64
	// SHA256 is the lowercase hex digest of the file.
	SHA256 string
	// Purpose says what the model does, for `facewatch models list`.
	Purpose string
}

// ShortHash is the first 12 hex digits of the digest, used where a model's
// identity is shown to people.
func (s Spec) ShortHash() string { return s.SHA256[:12] }

// The model files, as shipped in the PyPI source archive
// face_recognition_models==0.3.0 (and, bz2-compressed, on dlib.net).
var (
	ShapePredictor5 = Spec{
		Name:    "shape_predictor_5_face_landmarks.dat",
		Size:    9150489,
		SHA256:  "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
		Purpose: "5-point face landmarks, for alignment",
	}
	ResNetV1 = Spec{
		Name:    "dlib_face_recognition_resnet_model_v1.dat",
		Size:    22466066,
		SHA256:  "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
		Purpose: "ResNet face descriptor network (128-d)",
	}
	MMOD = Spec{
		Name:    "mmod_human_face_detector.dat",
		Size:    729940,
		SHA256:  "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
		Purpose: "MMOD CNN face detector",
	}
)

// Known returns every model file facewatch needs, in a fixed order.
func Known() []Spec { return []Spec{ShapePredictor5, ResNetV1, MMOD} }

// Lookup returns the spec of the named file.
func Lookup(name string) (Spec, bool) {
	for _, s := range Known() {
		if s.Name == name {
			return s, true
		}
	}
	return Spec{}, false
}

// Sentinel errors callers branch on with errors.Is.
var (
	ErrMissing      = errors.New("missing")
	ErrSize         = errors.New("wrong size")
	ErrHash         = errors.New("SHA-256 mismatch")
	ErrPipMissing   = errors.New("pip is not available")
	ErrNotInArchive = errors.New("not found in archive")
	// ErrUnsafeArchive refuses an archive with an entry no model archive
	// has: an absolute path or one climbing out with "..", or a link named
	// as a model or pointing out of the archive.
	ErrUnsafeArchive = errors.New("unsafe archive entry")
)

// FileError reports a problem with one model file.
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// Status is the verification result of one file.
type Status struct {
	Spec Spec
	Path string
	// Err is nil when the file is present and verified.
	Err error
}

// Verify checks that dir holds every known model with the right size and
// digest. It returns one Status per file and the first error, if any.
func Verify(dir string) ([]Status, error) {
	var first error
	out := make([]Status, 0, len(Known()))
	for _, s := range Known() {
		p := filepath.Join(dir, s.Name)
		err := VerifyFile(p, s)
		if err != nil && first == nil {
			first = err
		}
		out = append(out, Status{Spec: s, Path: p, Err: err})
	}
	return out, first
}

// VerifyFile checks one file against its spec. The size is checked first
// so that a truncated file is named as such without hashing it.
func VerifyFile(path string, s Spec) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return &FileError{Path: path, Err: ErrMissing}
		}
		return &FileError{Path: path, Err: err}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return &FileError{Path: path, Err: err}
	}
	if !st.Mode().IsRegular() {
		return &FileError{Path: path, Err: errors.New("not a regular file")}
	}
	if st.Size() != s.Size {
		return &FileError{Path: path, Err: fmt.Errorf("%w: %d bytes, want %d (truncated or not %s)", ErrSize, st.Size(), s.Size, s.Name)}
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return &FileError{Path: path, Err: fmt.Errorf("reading: %w", err)}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != s.SHA256 {
		return &FileError{Path: path, Err: fmt.Errorf("%w: got %s, want %s (file altered or corrupt)", ErrHash, got[:16], s.SHA256[:16])}
	}
	return nil
}

// Dir is a directory that holds verified model files.
type Dir string

// Path returns the verified path of the model in the directory, or an error
// naming the file and what is wrong with it. Stages call it at start so that
// a bad model stops them with a clear message, not a dlib exception.
func (d Dir) Path(s Spec) (string, error) {
	p := filepath.Join(string(d), s.Name)
	if err := VerifyFile(p, s); err != nil {
		return "", fmt.Errorf("model %s: %w (run `facewatch models fetch`)", s.Name, err)
	}
	return p, nil
}
