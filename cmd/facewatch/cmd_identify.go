package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/internal/enroll"
	"github.com/facewatch/facewatch/internal/wire"
	"github.com/facewatch/facewatch/match"
)

// identifyLine is one line of `facewatch identify`: one face of one file,
// or a file with no face or an error.
type identifyLine struct {
	File     string            `json:"file"`
	Error    string            `json:"error,omitempty"`
	Faces    int               `json:"faces"`
	Face     *int              `json:"face,omitempty"`
	Box      *wire.Box         `json:"box,omitempty"`
	Quality  *float64          `json:"quality,omitempty"`
	Found    *detect.Pass      `json:"found,omitempty"`
	Best     []match.Candidate `json:"best,omitempty"`
	Decision *identifyDecision `json:"decision,omitempty"`
}

type identifyDecision struct {
	Matched   bool    `json:"matched"`
	Identity  string  `json:"identity,omitempty"`
	Watchlist string  `json:"watchlist,omitempty"`
	Distance  float64 `json:"distance"`
	Threshold float64 `json:"threshold"`
	Margin    float64 `json:"margin"`
	Reason    string  `json:"reason,omitempty"`
}

func cmdIdentify(ctx context.Context, e *env, args []string) error {
	const usage = "identify --case REF [--list NAME]... [--top K] [--by NOTE] [--config FILE] [--model-dir DIR] FILE..."
	fs := newFlagSet(e, "identify", usage)
	cfgPath := fs.String("config", "", "config file")
	dirFlag := fs.String("model-dir", "", "model directory")
	var lists listFlag
	fs.Var(&lists, "list", "watchlist `NAME` to search (repeat for several; default: every active list)")
	top := fs.Int("top", 0, "identities to report per face (default: match.top_k)")
	caseRef := fs.String("case", "", "case reference the search is for (required: a 1:N face search is audited)")
	by := fs.String("by", "", "a note for the audit log (on whose behalf); the OS user is recorded whatever it says")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageErrorf("want at least one image file")
	}
	if !caseFormat.MatchString(*caseRef) {
		return usageErrorf("--case: a case reference (3-64 letters, digits or ' ._/:#-') is required: a 1:N face search is audited")
	}
	cfg, g, err := e.openGallery(ctx, *cfgPath, *by)
	if err != nil {
		return err
	}
	defer g.Close()
	opt := match.SearchOptions{Watchlists: lists, TopK: *top}
	if err := g.CheckSearchable(ctx, lists, time.Now()); err != nil {
		return fmt.Errorf("identifying: %w", err)
	}
	// Recorded before anything is searched: nothing is shown that is not.
	target := "watchlists/*"
	if len(lists) > 0 {
		target = "watchlists/" + strings.Join(lists, ",")
	}
	files := make([]string, fs.NArg())
	for i, f := range fs.Args() {
		files[i] = filepath.Base(f)
	}
	if err := g.Audit(ctx, "identify", target, *caseRef, map[string]any{"files": files, "top": *top}); err != nil {
		return err
	}
	if cfg.NATS.URL != "" {
		c, err := g.AuditCheckpoint(ctx)
		if err != nil {
			return err
		}
		publishCheckpoint(ctx, e, cfg, c)
	}
	x := match.NewIndex(cfg.Match, match.IndexOptions{Gallery: g})
	if err := x.Load(ctx); err != nil {
		return err
	}
	det, emb, err := recognition(e, cfg, *dirFlag, detect.DefaultStillPolicy())
	if err != nil {
		return err
	}
	defer det.Close()
	defer emb.Close()
	enc := json.NewEncoder(e.stdout)
	failed := 0
	for _, file := range fs.Args() {
		if err := ctx.Err(); err != nil {
			return err
		}
		line := identifyLine{File: file}
		data, err := os.ReadFile(file)
		var faces []enroll.PhotoFace
		if err == nil {
			faces, err = enroll.Faces(ctx, det, emb, "probe "+file, data, cfg.Detect.MaxPixels)
		} else {
			err = &enroll.Unreadable{Image: "probe " + file, Err: err}
		}
		if err != nil {
			failed++
			line.Error = err.Error()
			enc.Encode(line)
			continue
		}
		line.Faces = len(faces)
		if len(faces) == 0 {
			enc.Encode(line)
			continue
		}
		for i := range faces {
			f := &faces[i]
			d, err := x.DecideTrack([]match.Probe{f.Probe()}, opt)
			if err != nil {
				return fmt.Errorf("identifying %s: %w", file, err)
			}
			idx, q := i, f.Face.Quality.Score
			b := f.Face.Box
			l := line
			l.Face, l.Quality, l.Found = &idx, &q, &f.Found
			wb := wire.BoxOf(b)
			l.Box = &wb
			l.Best = d.Candidates
			l.Decision = &identifyDecision{Matched: d.Matched, Identity: d.Identity, Watchlist: d.Watchlist,
				Distance: d.Distance, Threshold: d.Threshold, Margin: d.Margin, Reason: d.Reason}
			if err := enc.Encode(l); err != nil {
				return err
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d files failed", failed, fs.NArg())
	}
	return nil
}

// listFlag collects repeated --list flags.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// caseFormat is what a case reference looks like (as the alert API's).
var caseFormat = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._/:#-]{2,63}$`)
