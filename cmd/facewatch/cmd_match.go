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
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/term"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/embed"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/enroll"
	"github.com/facewatch/facewatch/internal/eval"
	"github.com/facewatch/facewatch/internal/wire"
	"github.com/facewatch/facewatch/match"
	"github.com/facewatch/facewatch/models"
)

// openGallery loads the config and opens the gallery under its data
// directory.
func (e *env) openGallery(ctx context.Context, cfgPath string) (config.Config, *match.Gallery, error) {
	cfg, err := e.loadConfig(cfgPath)
	if err != nil {
		return config.Config{}, nil, err
	}
	g, err := match.OpenGallery(ctx, cfg.DataDir, match.GalleryOptions{Logger: e.logger(cfg)})
	if err != nil {
		return config.Config{}, nil, err
	}
	return cfg, g, nil
}

// publish sends the gallery's outbox to an external NATS cluster when the
// config names one. With the embedded server (no nats.url) the events wait
// in the outbox for the running `facewatch run`, which publishes them.
func (e *env) publish(ctx context.Context, cfg config.Config, g *match.Gallery) error {
	if cfg.NATS.URL == "" {
		return nil
	}
	opts := []nats.Option{nats.Name("facewatch-curator"), nats.Timeout(5 * time.Second)}
	if cfg.NATS.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATS.CredsFile))
	}
	nc, err := nats.Connect(cfg.NATS.URL, opts...)
	if err != nil {
		return fmt.Errorf("publishing gallery events (they stay queued in the gallery): connecting to %s: %s", config.Redact(cfg.NATS.URL), config.RedactError(err))
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("publishing gallery events: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := match.EnsureStream(ctx, js, cfg.NATS.Replicas); err != nil {
		return fmt.Errorf("publishing gallery events (they stay queued in the gallery): %w", err)
	}
	if _, err := g.PublishPending(ctx, js); err != nil {
		return fmt.Errorf("publishing gallery events (they stay queued in the gallery): %w", err)
	}
	return nil
}

// parseWhen reads an absolute time (RFC 3339 or a date) or a duration from
// now ("720h").
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" || s == "now" {
		return now, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (RFC 3339, YYYY-MM-DD) or a duration from now (720h)", s)
}

func cmdWatchlist(ctx context.Context, e *env, args []string) error {
	const usage = "watchlist create|list|show|expire|delete|threshold [--config FILE] ..."
	if len(args) == 0 {
		return usageErrorf("want a verb: create, list, show, expire, delete or threshold")
	}
	verb, args := args[0], args[1:]
	fs := newFlagSet(e, "watchlist "+verb, usage)
	cfgPath := fs.String("config", "", "config file (its data_dir holds the gallery)")
	asJSON := fs.Bool("json", false, "list, show: print JSON")
	var (
		kind, owner, basis, expires *string
		priority                    *int
		threshold                   *float64
		second                      *bool
		at, identity                *string
	)
	switch verb {
	case "create":
		kind = fs.String("kind", "", "missing, wanted or other (required)")
		owner = fs.String("owner", e.getenv("USER"), "who is responsible for the list")
		basis = fs.String("legal-basis", "", "the order or law the list rests on (required)")
		expires = fs.String("expires", "", "when the list stops matching: RFC 3339, YYYY-MM-DD or a duration from now (720h)")
		priority = fs.Int("priority", 0, "priority of its alerts, 0-100")
		threshold = fs.Float64("threshold", 0, "match threshold (0 = match.default_threshold; take it from `facewatch eval`)")
		second = fs.Bool("second-reviewer", false, "alerts need a second reviewer")
	case "expire":
		at = fs.String("at", "now", "when: RFC 3339, YYYY-MM-DD or a duration from now")
		identity = fs.String("identity", "", "expire only this identity of the list")
	case "delete":
		identity = fs.String("identity", "", "delete only this identity (and its photos) from the list")
	case "list", "show", "threshold":
	default:
		return usageErrorf("unknown verb %q: want create, list, show, expire, delete or threshold", verb)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	want := map[string]int{"list": 0, "threshold": 2}[verb]
	if verb != "list" && verb != "threshold" {
		want = 1
	}
	if fs.NArg() != want {
		return usageErrorf("watchlist %s wants %d argument(s), got %d", verb, want, fs.NArg())
	}
	_, g, err := e.openGallery(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer g.Close()
	cfg, _ := e.loadConfig(*cfgPath)
	name := fs.Arg(0)
	switch verb {
	case "create":
		k, err := match.ParseKind(*kind)
		if err != nil {
			return usageErrorf("--kind: %v", err)
		}
		spec := match.WatchlistSpec{Name: name, Kind: k, Owner: *owner, LegalBasis: *basis, Priority: *priority,
			Threshold: *threshold, SecondReviewer: *second}
		if *expires != "" {
			if spec.Expires, err = parseWhen(*expires, time.Now()); err != nil {
				return usageErrorf("--expires: %v", err)
			}
		}
		w, err := g.CreateWatchlist(ctx, spec)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "watchlist %q created (id %d, %s)\n", w.Name, w.ID, w.Kind)
	case "list":
		lists, err := g.Watchlists(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(e.stdout).Encode(lists)
		}
		tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tKIND\tPRIORITY\tIDENTITIES\tPHOTOS\tTHRESHOLD\tEXPIRES\tOWNER")
		for _, l := range lists {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", l.Name, l.Kind, l.Priority, l.Identities, l.Enrolments,
				thresholdText(l.Threshold, cfg.Match.DefaultThreshold), expiryText(l.Expires), l.Owner)
		}
		return tw.Flush()
	case "show":
		w, err := g.Watchlist(ctx, name)
		if err != nil {
			return err
		}
		ids, err := g.Identities(ctx, name)
		if err != nil {
			return err
		}
		x := match.NewIndex(cfg.Match, match.IndexOptions{Gallery: g})
		if err := x.Load(ctx); err != nil {
			return err
		}
		var idList []int64
		for _, i := range ids {
			idList = append(idList, i.ID)
		}
		var looks []match.LookAlike
		if len(idList) > 0 {
			looks = x.LookAlikes(idList)
		}
		if *asJSON {
			return json.NewEncoder(e.stdout).Encode(struct {
				Watchlist  match.Watchlist         `json:"watchlist"`
				Identities []match.IdentitySummary `json:"identities"`
				LookAlikes []match.LookAlike       `json:"look_alikes"`
			}{w, ids, looks})
		}
		fmt.Fprintf(e.stdout, "watchlist %s (id %d): %s, priority %d, owner %s\n", w.Name, w.ID, w.Kind, w.Priority, w.Owner)
		fmt.Fprintf(e.stdout, "legal basis: %s\nthreshold: %s; second reviewer: %v; expires: %s\n", w.LegalBasis,
			thresholdText(w.Threshold, cfg.Match.DefaultThreshold), w.SecondReviewer, expiryText(w.Expires))
		tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tIDENTITY\tPHOTOS\tEXPIRES")
		for _, i := range ids {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\n", i.ID, i.Name, i.Enrolments, expiryText(i.Expires))
		}
		tw.Flush()
		for _, la := range looks {
			fmt.Fprintf(e.stdout, "look-alike: %q (%s) and %q (%s) at %.3f: the same person?\n", la.A.Identity, la.A.Watchlist, la.B.Identity, la.B.Watchlist, la.Distance)
		}
		return nil
	case "expire":
		when, err := parseWhen(*at, time.Now())
		if err != nil {
			return usageErrorf("--at: %v", err)
		}
		if *identity != "" {
			id, err := findIdentity(ctx, g, name, *identity)
			if err != nil {
				return err
			}
			if _, err := g.ExpireIdentity(ctx, id.ID, when); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "identity %q of %q expires %s\n", id.Name, name, when.Format(time.RFC3339))
		} else {
			if _, err := g.ExpireWatchlist(ctx, name, when); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "watchlist %q expires %s\n", name, when.Format(time.RFC3339))
		}
	case "delete":
		if *identity != "" {
			id, err := findIdentity(ctx, g, name, *identity)
			if err != nil {
				return err
			}
			if err := g.DeleteIdentity(ctx, id.ID); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "identity %q deleted from %q with its descriptors and photos\n", id.Name, name)
		} else {
			if err := g.DeleteWatchlist(ctx, name); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "watchlist %q deleted with its identities, descriptors and photos\n", name)
		}
	case "threshold":
		t, err := strconv.ParseFloat(fs.Arg(1), 64)
		if err != nil {
			return usageErrorf("threshold %q is not a number", fs.Arg(1))
		}
		if _, err := g.SetThreshold(ctx, name, t); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "watchlist %q threshold %s\n", name, thresholdText(t, cfg.Match.DefaultThreshold))
	}
	return e.publish(ctx, cfg, g)
}

func findIdentity(ctx context.Context, g *match.Gallery, list, name string) (match.Identity, error) {
	ids, err := g.Identities(ctx, list)
	if err != nil {
		return match.Identity{}, err
	}
	for _, i := range ids {
		if i.Name == name {
			return i.Identity, nil
		}
	}
	return match.Identity{}, fmt.Errorf("identity %q on watchlist %q: %w", name, list, match.ErrNotFound)
}

func thresholdText(t, def float64) string {
	if t == 0 {
		return fmt.Sprintf("%.3f (default)", def)
	}
	return fmt.Sprintf("%.3f", t)
}

func expiryText(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	s := t.Local().Format(time.RFC3339)
	if !time.Now().Before(t) {
		s += " (expired)"
	}
	return s
}

// recognition loads the detector (configured for enrolment photos when
// enrol is set: upsampled once so that small faces are found and refused
// as too small rather than missed) and the embedder.
func recognition(e *env, cfg config.Config, modelDir string, enrol bool) (*detect.Detector, *embed.Embedder, error) {
	dir, _, err := models.Locate(modelDir, cfg.ModelDir, e.getenv)
	if err != nil {
		return nil, nil, err
	}
	dc := cfg.Detect
	if enrol {
		dc.Upsample = max(dc.Upsample, 1)
		dc.MinFaceSize = min(dc.MinFaceSize, 20)
	}
	det, err := detect.New(models.Dir(dir), dc)
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
	list := fs.String("list", "", "watchlist to enrol into (required)")
	by := fs.String("by", e.getenv("USER"), "who is enrolling, for the record")
	identity := fs.String("identity", "", "enrol the FILEs as this person (instead of a directory per identity)")
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
	if *by == "" {
		*by = "unknown"
	}
	cfg, g, err := e.openGallery(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer g.Close()
	if _, err := g.Watchlist(ctx, *list); err != nil {
		return err
	}
	det, emb, err := recognition(e, cfg, *dirFlag, true)
	if err != nil {
		return err
	}
	defer det.Close()
	defer emb.Close()
	en := enroll.NewEnroller(g, det, emb, enroll.EnrollerOptions{Match: cfg.Match, MaxPixels: cfg.Detect.MaxPixels, Logger: e.logger(cfg)})
	var rep enroll.DirReport
	if *identity != "" {
		rep, err = en.EnrolFiles(ctx, *list, who, fs.Args(), *by, photoProgress(e, "enrolling"))
	} else {
		rep, err = en.EnrolDir(ctx, *list, fs.Arg(0), *by, photoProgress(e, "enrolling"))
	}
	// Whatever was enrolled before an error is in the gallery: publish it.
	perr := e.publish(ctx, cfg, g)
	if err != nil {
		return err
	}
	created := 0
	for _, r := range rep.Enrolled {
		if r.Created {
			created++
		}
		if r.Warning != "" {
			fmt.Fprintf(e.stdout, "warning: %s: %s\n", r.Photo, r.Warning)
		}
	}
	fmt.Fprintf(e.stdout, "enrolled %d photos (%d new, %d already there) of %d identities into %q; refused %d\n",
		len(rep.Enrolled), created, len(rep.Enrolled)-created, rep.Identities, *list, len(rep.Refused))
	byReason := map[enroll.RefusalReason]int{}
	for _, r := range rep.Refused {
		byReason[r.Reason]++
		fmt.Fprintf(e.stdout, "refused: %s: %s\n", r.Photo, refusalText(r))
	}
	for reason, n := range byReason {
		fmt.Fprintf(e.stdout, "  %d refused: %s\n", n, reason)
	}
	for _, la := range rep.LookAlikes {
		fmt.Fprintf(e.stdout, "look-alike: %q (%s) and %q (%s) at %.3f: the same person?\n", la.A.Identity, la.A.Watchlist, la.B.Identity, la.B.Watchlist, la.Distance)
	}
	return perr
}

func refusalText(r *enroll.Refusal) string {
	if r.Detail == "" {
		return string(r.Reason)
	}
	return string(r.Reason) + " (" + r.Detail + ")"
}

// identifyLine is one line of `facewatch identify`: one face of one file,
// or a file with no face or an error.
type identifyLine struct {
	File     string            `json:"file"`
	Error    string            `json:"error,omitempty"`
	Faces    int               `json:"faces"`
	Face     *int              `json:"face,omitempty"`
	Box      *wire.Box         `json:"box,omitempty"`
	Quality  *float64          `json:"quality,omitempty"`
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
	const usage = "identify [--list NAME]... [--top K] [--config FILE] [--model-dir DIR] FILE..."
	fs := newFlagSet(e, "identify", usage)
	cfgPath := fs.String("config", "", "config file")
	dirFlag := fs.String("model-dir", "", "model directory")
	var lists listFlag
	fs.Var(&lists, "list", "watchlist to search (repeat for several; default: every active list)")
	top := fs.Int("top", 0, "identities to report per face (default: match.top_k)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageErrorf("want at least one image file")
	}
	cfg, g, err := e.openGallery(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer g.Close()
	opt := match.SearchOptions{Watchlists: lists, TopK: *top}
	summaries, err := g.Watchlists(ctx)
	if err != nil {
		return err
	}
	for _, l := range lists {
		w, err := g.Watchlist(ctx, l)
		if err != nil {
			return err
		}
		if !w.Active(time.Now()) {
			return fmt.Errorf("watchlist %q %w at %s: it matches nobody", l, match.ErrExpired, w.Expires.Format(time.RFC3339))
		}
		for _, s := range summaries {
			if s.ID == w.ID && s.Enrolments == 0 {
				return fmt.Errorf("watchlist %q is %w: enrol someone first", l, match.ErrEmpty)
			}
		}
	}
	x := match.NewIndex(cfg.Match, match.IndexOptions{Gallery: g})
	if err := x.Load(ctx); err != nil {
		return err
	}
	if x.Stats().Descriptors == 0 {
		return fmt.Errorf("identifying: the gallery is %w: enrol someone first", match.ErrEmpty)
	}
	det, emb, err := recognition(e, cfg, *dirFlag, false)
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
			faces, err = enroll.Faces(ctx, det, emb, file, data, cfg.Detect.MaxPixels)
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
			l.Face, l.Quality = &idx, &q
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
		f, err := os.Open(*descr)
		if err != nil {
			return fmt.Errorf("reading labelled descriptors: %w", err)
		}
		set, err = eval.LoadGoFaceJSON(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", *descr, err)
		}
	} else {
		det, emb, err := recognition(e, cfg, *dirFlag, false)
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
	fmt.Fprintf(e.stdout, "%d identities, %d faces: %d genuine and %d impostor pairs\n", rep.Identities, rep.Descriptors, rep.GenuinePairs, rep.ImpostorPairs)
	fmt.Fprintf(e.stdout, "equal error rate %.2f%% at distance %.3f\n", 100*rep.EER, rep.EERThreshold)
	for _, op := range rep.AtFMR {
		note := ""
		if !op.Measurable {
			note = " (not measurable: too few impostor pairs)"
		}
		fmt.Fprintf(e.stdout, "FMR %.0e: threshold %.3f, FNMR %.2f%%%s\n", op.TargetFMR, op.Threshold, 100*op.FNMR, note)
	}
	fmt.Fprintf(e.stdout, "recommended thresholds for a false-positive identification rate of %g:\n", rep.TargetFPIR)
	for _, r := range rep.Recommendations {
		note := ""
		if r.Extrapolated {
			note = " (extrapolated)"
		}
		fmt.Fprintf(e.stdout, "  %7d identities: %.3f (misses %.1f%% of enrolled people)%s\n", r.GallerySize, r.Threshold, 100*r.FNIR, note)
	}
	if len(rep.LabelErrors) > 0 {
		fmt.Fprintf(e.stdout, "%d pairs of different identities have near-identical descriptors (label errors?), left out\n", len(rep.LabelErrors))
	}
	fmt.Fprintf(e.stdout, "report %s, plot %s; set a list's threshold with `facewatch watchlist threshold LIST T`\n", *out, *plotPath)
	return nil
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
