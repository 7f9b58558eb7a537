package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/internal/enroll"
	"github.com/facewatch/facewatch/internal/eval"
)

func cmdEval(ctx context.Context, e *env, args []string) error {
	const usage = "eval [--target-fpir R] [--sizes N,N,...] [--out report.json] [--plot report.png] [--descriptors FILE.json] [--config FILE] [--model-dir DIR] [DIR]"
	fs := newFlagSet(e, "eval", usage)
	cfgPath := fs.String("config", "", "config file")
	dirFlag := fs.String("model-dir", "", "model directory")
	target := fs.Float64("target-fpir", 0.01, "false-positive identification rate the recommended thresholds aim for")
	sizes := fs.String("sizes", "1,10,100,1000,10000,100000", "gallery sizes (identities) to recommend thresholds for")
	out := fs.String("out", "eval-report.json", "JSON report to write")
	plotPath := fs.String("plot", "eval-report.png", "PNG plot to write")
	descr := fs.String("descriptors", "", "read labelled descriptors from a go-face style JSON file instead of photos in DIR")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*descr == "") == (fs.NArg() != 1) {
		return usageErrorf("want one directory of photos (a directory per identity) or --descriptors FILE")
	}
	opt := eval.EvalOptions{TargetFPIR: *target}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return usageErrorf("--sizes: %q is not a positive number", s)
		}
		opt.GallerySizes = append(opt.GallerySizes, n)
	}
	if !(*target > 0 && *target < 1) {
		return usageErrorf("--target-fpir: %g is not in (0, 1)", *target)
	}
	cfg, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	var set eval.LabelledSet
	if *descr != "" {
		if set, err = eval.LoadGoFaceFile(*descr); err != nil {
			return err
		}
	} else {
		det, emb, err := recognition(e, cfg, *dirFlag, detect.DefaultStillPolicy())
		if err != nil {
			return err
		}
		defer det.Close()
		defer emb.Close()
		var refused []*enroll.Refusal
		set, refused, err = eval.LabelledDir(ctx, det, emb, fs.Arg(0), cfg.Detect.MaxPixels, photoProgress(e, "reading"))
		if err != nil {
			return err
		}
		for _, r := range refused {
			fmt.Fprintf(e.stderr, "skipped: %s: %s\n", r.Photo, refusalText(r))
		}
	}
	rep, err := eval.Evaluate(set, opt)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(*out, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	if err := writeFileAtomic(*plotPath, rep.WritePNG); err != nil {
		return fmt.Errorf("writing plot: %w", err)
	}
	printEvalReport(e.stdout, rep, *out, *plotPath)
	return nil
}

// printEvalReport summarises an evaluation and where its files went.
func printEvalReport(w io.Writer, rep *eval.Report, out, plotPath string) {
	fmt.Fprintf(w, "%d identities, %d faces: %d genuine and %d impostor pairs\n", rep.Identities, rep.Descriptors, rep.GenuinePairs, rep.ImpostorPairs)
	printPasses(w, rep.Found)
	fmt.Fprintf(w, "equal error rate %.2f%% at distance %.3f\n", 100*rep.EER, rep.EERThreshold)
	for _, op := range rep.AtFMR {
		note := ""
		if !op.Measurable {
			note = " (not measurable: too few impostor pairs)"
		}
		fmt.Fprintf(w, "FMR %.0e: threshold %.3f, FNMR %.2f%%%s\n", op.TargetFMR, op.Threshold, 100*op.FNMR, note)
	}
	fmt.Fprintf(w, "recommended thresholds for a false-positive identification rate of %g:\n", rep.TargetFPIR)
	for _, r := range rep.Recommendations {
		note := ""
		if r.Extrapolated {
			note = " (extrapolated)"
		}
		fmt.Fprintf(w, "  %7d identities: %.3f (misses %.1f%% of enrolled people)%s\n", r.GallerySize, r.Threshold, 100*r.FNIR, note)
	}
	printFPIR(w, rep)
	if len(rep.LabelErrors) > 0 {
		fmt.Fprintf(w, "%d pairs of different identities have near-identical descriptors (label errors?), left out\n", len(rep.LabelErrors))
	}
	fmt.Fprintf(w, "report %s, plot %s; set a list's threshold with `facewatch watchlist threshold LIST T`\n", out, plotPath)
}

// printFPIR prints the estimated FPIR per threshold and gallery size,
// "not measurable" (with its 95% upper bound) where the set has no
// impostor comparison within the threshold.
func printFPIR(w io.Writer, rep *eval.Report) {
	fmt.Fprintf(w, "estimated FPIR against gallery size (from %d identity-level impostor comparisons):\n", rep.IdentityImpostors)
	var cur float64 = -1
	for _, pt := range rep.FPIR {
		if pt.Threshold != cur {
			if cur >= 0 {
				fmt.Fprintln(w)
			}
			cur = pt.Threshold
			fmt.Fprintf(w, "  threshold %.2f:", cur)
		}
		if pt.Measurable {
			fmt.Fprintf(w, " N=%d %.3g;", pt.GallerySize, *pt.Estimated)
		} else {
			fmt.Fprintf(w, " N=%d not measurable (under %.2g);", pt.GallerySize, pt.UpperBound)
		}
	}
	if cur >= 0 {
		fmt.Fprintln(w)
	}
}

// writeFileAtomic writes path through a temporary file in its directory.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}
