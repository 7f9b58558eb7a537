package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/facewatch/facewatch/models"
)

func cmdModels(ctx context.Context, e *env, args []string) error {
	const usage = "models list|fetch|verify [--config FILE] [--model-dir DIR] [fetch: --from ARCHIVE|FILE|URL] [--force]"
	if len(args) == 0 {
		return usageErrorf("want a verb: list, fetch or verify")
	}
	verb := args[0]
	fs := newFlagSet(e, "models "+verb, usage)
	cfgPath := fs.String("config", "", "config file (its model_dir is used after --model-dir and $"+models.EnvDir+")")
	dirFlag := fs.String("model-dir", "", "model directory")
	from := fs.String("from", "", "fetch: a local archive, model file (.dat or .dat.bz2), directory or URL instead of pip")
	force := fs.Bool("force", false, "fetch: fetch again even files that verify")
	if isHelp(verb) {
		fs.Usage()
		return flag.ErrHelp
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageErrorf("unexpected arguments %q", fs.Args())
	}
	cfg, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := e.logger(cfg).With("component", "models")
	dir, src, err := models.Locate(*dirFlag, cfg.ModelDir, e.getenv)
	if err != nil {
		return err
	}
	switch verb {
	case "list":
		st, _ := models.Verify(dir)
		fmt.Fprintf(e.stdout, "model directory %s (from %s)\n", dir, src)
		printStatus(e, st)
		return nil
	case "verify":
		st, err := models.Verify(dir)
		if err != nil {
			// One line per bad file on stderr, the first as the error.
			for _, s := range st {
				if s.Err != nil && s.Err != err {
					fmt.Fprintf(e.stderr, "facewatch models: %v\n", s.Err)
				}
			}
			return err
		}
		fmt.Fprintf(e.stdout, "all %d models verified in %s\n", len(st), dir)
		return nil
	case "fetch":
		opt := models.FetchOptions{Source: *from, Force: *force, Logger: log, Python: e.getenv(models.EnvPython)}
		if f, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			opt.Progress = newProgress(e)
		}
		st, err := models.Fetch(ctx, dir, opt)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "model directory %s (from %s)\n", dir, src)
		printStatus(e, st)
		return nil
	}
	return usageErrorf("unknown verb %q: want list, fetch or verify", verb)
}

func printStatus(e *env, st []models.Status) {
	for _, s := range st {
		state := "ok"
		if s.Err != nil {
			var fe *models.FileError
			if errors.As(s.Err, &fe) {
				state = fe.Err.Error()
			} else {
				state = s.Err.Error()
			}
		}
		fmt.Fprintf(e.stdout, "  %-42s %9d bytes  sha256 %s  %s\n", s.Spec.Name, s.Spec.Size, s.Spec.ShortHash(), state)
	}
}

// newProgress draws one self-overwriting line per file on a terminal,
// at most ten times a second.
func newProgress(e *env) func(string, int64, int64) {
	var mu sync.Mutex
	var last time.Time
	return func(name string, done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if done < total && time.Since(last) < 100*time.Millisecond {
			return
		}
		last = time.Now()
		pct := 0.0
		if total > 0 {
			pct = 100 * float64(done) / float64(total)
		}
		fmt.Fprintf(e.stderr, "\r%-42s %6.1f / %6.1f MB %5.1f%%", name, float64(done)/1e6, float64(total)/1e6, pct)
		if done >= total {
			fmt.Fprintln(e.stderr)
		}
	}
}
