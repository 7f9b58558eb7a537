package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/embed"
	"github.com/facewatch/facewatch/internal/face"
	"github.com/facewatch/facewatch/internal/wire"
	"github.com/facewatch/facewatch/models"
)

// faceLine is one line of `facewatch faces` output: one face of one file,
// or a file with no face (Faces 0, no Box), or a file that failed (Error).
type faceLine struct {
	File  string `json:"file"`
	Error string `json:"error,omitempty"`
	// Faces is the number of faces found in the file; Face is this face's
	// index among them (by decreasing confidence).
	Faces      int           `json:"faces"`
	Face       *int          `json:"face,omitempty"`
	Box        *wire.Box     `json:"box,omitempty"`
	Confidence *float64      `json:"confidence,omitempty"`
	Landmarks  [][2]int      `json:"landmarks,omitempty"`
	Quality    *face.Quality `json:"quality,omitempty"`
	// Found is the still-photo detector pass that found the face.
	Found      *detect.Pass `json:"found,omitempty"`
	Descriptor []float32    `json:"descriptor,omitempty"`
	Model      *wire.Model  `json:"model,omitempty"`
}

func cmdFaces(ctx context.Context, e *env, args []string) error {
	const usage = "faces [--descriptors] [--detector hog|cnn] [--fallback cnn|none] [--upsample N] [--max-width PX] [--min-face-size PX] [--jitter N] [--config FILE] [--model-dir DIR] FILE..."
	fs := newFlagSet(e, "faces", usage)
	cfgPath := fs.String("config", "", "config file (its detect and embed sections are the defaults)")
	dirFlag := fs.String("model-dir", "", "model directory")
	withDescr := fs.Bool("descriptors", false, "compute each face's 128-d descriptor")
	policy := detect.DefaultStillPolicy()
	detector := fs.String("detector", "", "first detector backend: "+strings.Join(detect.Backends(), ", ")+" (default: the config's detect.detector)")
	fallback := fs.String("fallback", policy.Fallback, "detector tried when the first finds nothing, or none")
	upsample := fs.Int("upsample", policy.Upsample, "`N` times to double the photo in the first pass (one more for small photos)")
	maxWidth := fs.Int("max-width", policy.MaxWidth, "detect on a copy downscaled to `PX` pixels wide; 0 keeps full resolution")
	minFace := fs.Int("min-face-size", policy.MinFaceSize, "ignore faces smaller than `PX` pixels")
	var jitter overrideInt
	fs.Var(&jitter, "jitter", "average each descriptor over `N` jittered copies (default: the config's embed.jitter)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageErrorf("want at least one image file")
	}
	cfg, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *detector != "" {
		cfg.Detect.Detector = *detector
	}
	// The photo's search follows the still-photo policy; the flags are
	// checked as the config's detect section would be.
	cfg.Detect.Upsample, cfg.Detect.MaxWidth, cfg.Detect.MinFaceSize = *upsample, *maxWidth, *minFace
	policy.Upsample, policy.MaxWidth, policy.MinFaceSize = *upsample, *maxWidth, *minFace
	policy.Fallback = *fallback
	if *fallback == "none" {
		policy.Fallback = ""
	}
	if jitter.set {
		cfg.Embed.Jitter = jitter.v
	}
	if err := detect.ValidateConfig(cfg.Detect); err != nil {
		return usageErrorf("detect.%v", err)
	}
	if err := policy.Validate(); err != nil {
		return usageErrorf("still-photo policy: %v", err)
	}
	if err := cfg.Embed.Validate(); err != nil {
		return usageErrorf("embed.%v", err)
	}
	dir, _, err := models.Locate(*dirFlag, cfg.ModelDir, e.getenv)
	if err != nil {
		return err
	}
	det, err := detect.NewStill(models.Dir(dir), cfg.Detect, policy)
	if err != nil {
		return err
	}
	defer det.Close()
	var emb *embed.Embedder
	if *withDescr {
		if emb, err = embed.New(models.Dir(dir), cfg.Embed); err != nil {
			return err
		}
		defer emb.Close()
	}
	enc := json.NewEncoder(e.stdout)
	failed := 0
	for _, file := range fs.Args() {
		if err := ctx.Err(); err != nil {
			return err
		}
		lines, err := facesInFile(ctx, det, emb, cfg.Detect.MaxPixels, file)
		if err != nil {
			failed++
			lines = []faceLine{{File: file, Error: err.Error()}}
		}
		for i := range lines {
			if err := enc.Encode(&lines[i]); err != nil {
				return fmt.Errorf("writing output: %w", err)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d files failed", failed, fs.NArg())
	}
	return nil
}

func facesInFile(ctx context.Context, det *detect.Still, emb *embed.Embedder, maxPixels int64, file string) ([]faceLine, error) {
	m, err := detect.DecodeFile(file, maxPixels)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	faces, err := det.Detect(ctx, m)
	if err != nil {
		return nil, err
	}
	if len(faces) == 0 {
		return []faceLine{{File: file}}, nil
	}
	m.Close() // the photo's pixels are not needed any more
	var ds []embed.Descriptor
	if emb != nil {
		chips := make([]face.Chip, len(faces))
		for i := range faces {
			chips[i] = faces[i].Chip
		}
		if ds, err = emb.Embed(ctx, chips); err != nil {
			return nil, err
		}
	}
	lines := make([]faceLine, len(faces))
	for i := range faces {
		f := &faces[i]
		l := &lines[i]
		idx, conf, q := i, f.Confidence, f.Quality
		l.File, l.Faces, l.Face, l.Confidence, l.Quality, l.Found = file, len(faces), &idx, &conf, &q, &f.Found
		b := wire.BoxOf(f.Box)
		l.Box = &b
		for _, p := range f.Landmarks {
			l.Landmarks = append(l.Landmarks, [2]int{p.X, p.Y})
		}
		if ds != nil {
			l.Descriptor = ds[i].Vector[:]
			l.Model = &wire.Model{Name: ds[i].Model.Name, SHA256: ds[i].Model.SHA256}
		}
	}
	return lines, nil
}

// overrideInt is an int flag that overrides a config value only when
// given. Unset, it prints no default of its own (the usage text names the
// config key it overrides), so -h shows one default per flag.
type overrideInt struct {
	v   int
	set bool
}

func (o *overrideInt) String() string {
	if o == nil || !o.set {
		return ""
	}
	return strconv.Itoa(o.v)
}

func (o *overrideInt) Set(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not an integer")
	}
	if v < 0 {
		return errors.New("must not be negative")
	}
	o.v, o.set = v, true
	return nil
}
