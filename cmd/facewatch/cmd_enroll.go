package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/embed"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/enroll"
	"github.com/facewatch/facewatch/match"
	"github.com/facewatch/facewatch/models"
)

// recognition loads the still-photo detector and the embedder of the photo
// commands (faces, enroll, identify, eval): one policy (p, normally
// detect.DefaultStillPolicy) for all of them, so that they find the same
// faces in the same photo. Of the config's detect section only the detector
// and max_pixels apply; its max_width and upsample are the cameras'. (C's
// malloc is set for these commands when the binary loads: malloc.go.)
func recognition(e *env, cfg config.Config, modelDir string, p detect.StillPolicy) (*detect.Still, *embed.Embedder, error) {
	dir, _, err := models.Locate(modelDir, cfg.ModelDir, e.getenv)
	if err != nil {
		return nil, nil, err
	}
	det, err := detect.NewStill(models.Dir(dir), cfg.Detect, p)
	if err != nil {
		return nil, nil, err
	}
	emb, err := embed.New(models.Dir(dir), cfg.Embed)
	if err != nil {
		det.Close()
		return nil, nil, err
	}
	return det, emb, nil
}

// photoProgress draws a progress bar on a terminal, nothing otherwise.
func photoProgress(e *env, what string) enroll.Progress {
	f, ok := e.stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return func(done, total int, photo string) {
		const width = 30
		n := width * done / max(total, 1)
		fmt.Fprintf(e.stderr, "\r%s [%s%s] %d/%d %-40.40s", what, strings.Repeat("#", n), strings.Repeat(".", width-n), done, total, photo)
		if done == total {
			fmt.Fprintln(e.stderr)
		}
	}
}

func cmdEnroll(ctx context.Context, e *env, args []string) error {
	const usage = "enroll --list NAME [--by WHO] [--config FILE] [--model-dir DIR] DIR   (DIR holds one directory of photos per identity, named after it)\n" +
		"       facewatch enroll --list NAME --identity PERSON [--notes TEXT] [--ref ID] [--expires TIME] [--by WHO] FILE..."
	fs := newFlagSet(e, "enroll", usage)
	cfgPath := fs.String("config", "", "config file")
	dirFlag := fs.String("model-dir", "", "model directory")
	list := fs.String("list", "", "watchlist `NAME` to enrol into (required)")
	by := fs.String("by", "", "a `NOTE` for the audit log (on whose behalf); the OS user is recorded as the enroller whatever it says")
	identity := fs.String("identity", "", "the `PERSON` the FILEs show (required to enrol FILEs; without it, DIR holds a directory per identity)")
	notes := fs.String("notes", "", "with --identity: notes on a new identity")
	ref := fs.String("ref", "", "with --identity: external reference (case number) of a new identity")
	expires := fs.String("expires", "", "with --identity: when a new identity stops matching (RFC 3339, YYYY-MM-DD or a duration)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *list == "" || (*identity == "" && fs.NArg() != 1) || (*identity != "" && fs.NArg() == 0) {
		return usageErrorf("want --list NAME and one directory, or --list NAME --identity PERSON and photo files")
	}
	who := match.IdentitySpec{Name: *identity, Notes: *notes, ExternalRef: *ref}
	if *expires != "" {
		t, err := parseWhen(*expires, time.Now())
		if err != nil {
			return usageErrorf("--expires: %v", err)
		}
		who.Expires = t
	}
	actor, err := e.localActor()
	if err != nil {
		return err
	}
	cfg, g, err := e.openGallery(ctx, *cfgPath, *by)
	if err != nil {
		return err
	}
	defer g.Close()
	if _, err := g.Watchlist(ctx, *list); err != nil {
		return err
	}
	det, emb, err := recognition(e, cfg, *dirFlag, detect.DefaultStillPolicy())
	if err != nil {
		return err
	}
	defer det.Close()
	defer emb.Close()
	en := enroll.NewEnroller(g, det, emb, enroll.EnrollerOptions{Match: cfg.Match, MaxPixels: cfg.Detect.MaxPixels, Logger: e.logger(cfg)})
	var rep enroll.DirReport
	if *identity != "" {
		rep, err = en.EnrolFiles(ctx, *list, who, fs.Args(), actor.Name, photoProgress(e, "enrolling"))
	} else {
		rep, err = en.EnrolDir(ctx, *list, fs.Arg(0), actor.Name, photoProgress(e, "enrolling"))
	}
	// Whatever was enrolled before an error is in the gallery: publish it.
	perr := e.publish(ctx, cfg, g)
	if err != nil {
		return err
	}
	created := 0
	passes := map[string]int{}
	for _, r := range rep.Enrolled {
		if r.Created {
			created++
		}
		passes[r.Found.String()]++
		if r.Warning != "" {
			fmt.Fprintf(e.stdout, "warning: %s: %s\n", r.Photo, r.Warning)
		}
	}
	fmt.Fprintf(e.stdout, "enrolled %d photos (%d new, %d already there) of %d identities into %q; refused %d\n",
		len(rep.Enrolled), created, len(rep.Enrolled)-created, rep.Identities, *list, len(rep.Refused))
	printPasses(e.stdout, passes)
	byReason := map[enroll.RefusalReason]int{}
	for _, r := range rep.Refused {
		byReason[r.Reason]++
		fmt.Fprintf(e.stdout, "refused: %s: %s\n", r.Photo, refusalText(r))
	}
	for reason, n := range byReason {
		fmt.Fprintf(e.stdout, "  %d refused: %s\n", n, reason)
	}
	printLookAlikes(e.stdout, rep.LookAlikes)
	return perr
}

func refusalText(r *enroll.Refusal) string {
	if r.Detail == "" {
		return string(r.Reason)
	}
	return string(r.Reason) + " (" + r.Detail + ")"
}

// printPasses prints how many faces each still-photo detector pass found
// ("  12 found by hog upsample 0"), sorted by pass.
func printPasses(w io.Writer, passes map[string]int) {
	names := make([]string, 0, len(passes))
	for n := range passes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %d found by %s\n", passes[n], n)
	}
}
