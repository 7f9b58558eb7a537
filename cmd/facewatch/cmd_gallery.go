package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/facewatch/facewatch/internal/audit"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/curate"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/match"
)

// openGallery loads the config and opens the gallery under its data
// directory (see serviceConfig) with the audit keys, acting as the OS user; note (the --by
// flag) is recorded beside that identity, never instead of it.
func (e *env) openGallery(ctx context.Context, cfgPath, note string) (config.Config, *match.Gallery, error) {
	cfg, err := e.serviceConfig(cfgPath)
	if err != nil {
		return config.Config{}, nil, err
	}
	actor, err := e.localActor()
	if err != nil {
		return config.Config{}, nil, err
	}
	keys, err := auditKeys(cfg)
	if err != nil {
		return config.Config{}, nil, err
	}
	g, err := match.OpenGallery(ctx, cfg.DataDir, match.GalleryOptions{Logger: e.logger(cfg), Audit: keys, Actor: actor, Note: note})
	if err != nil {
		return config.Config{}, nil, err
	}
	return cfg, g, nil
}

// publish sends the gallery's outbox to an external NATS cluster when the
// config names one. With the embedded server (no nats.url) the events wait
// in the outbox for the running `facewatch run`, which publishes them.
func (e *env) publish(ctx context.Context, cfg config.Config, g *match.Gallery) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	done, js, err := connectJS(ctx, e, cfg, "facewatch-curator", natsbus.RoleCurator)
	if err == nil && js != nil {
		defer done()
		if err = natsbus.EnsureStreams(ctx, js, natsbus.TopologyOf(cfg)); err == nil {
			_, err = g.PublishPending(ctx, js)
		}
	}
	if err != nil {
		return fmt.Errorf("publishing gallery events (they stay queued in the gallery): %w", err)
	}
	if js == nil {
		return nil
	}
	c, err := g.AuditCheckpoint(ctx)
	if err != nil {
		return err
	}
	if err := audit.Publish(ctx, js, c); err != nil {
		fmt.Fprintf(e.stderr, "warning: audit checkpoint %s/%d not copied to JetStream (it is in the checkpoint file): %v\n", c.Log, c.Seq, err)
	}
	return nil
}

// parseWhen reads an absolute time (RFC 3339 or a date) or a duration from
// now ("720h"), as the curator API does (curate.ParseWhen).
func parseWhen(s string, now time.Time) (time.Time, error) { return curate.ParseWhen(s, now) }

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

// printLookAlikes lists pairs of identities that may be the same person.
func printLookAlikes(w io.Writer, looks []match.LookAlike) {
	for _, la := range looks {
		fmt.Fprintf(w, "look-alike: %q (%s) and %q (%s) at %.3f: the same person?\n", la.A.Identity, la.A.Watchlist, la.B.Identity, la.B.Watchlist, la.Distance)
	}
}

// actorName is the name a local command's purge records carry: the OS
// user the gallery's audit log records it under.
func actorName(g *match.Gallery) string { return g.Actor().Name }

// cmdGallery runs `facewatch gallery purge|purges`.
func cmdGallery(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageErrorf("want a verb: purge or purges (see `facewatch gallery -h`)")
	}
	verb, args := args[0], args[1:]
	fs := newFlagSet(e, "gallery "+verb, "gallery purge [--grace DURATION] [--by NOTE] [--config FILE]\n       facewatch gallery purges [--json] [--config FILE]")
	cfgPath := fs.String("config", "", "config `FILE` (its data_dir holds the gallery)")
	grace := fs.Duration("grace", 0, "purge: entries expired at least this long ago (default match.purge_grace)")
	by := fs.String("by", "", "purge: a `NOTE` on whose behalf it runs (recorded beside the OS user, never instead)")
	asJSON := fs.Bool("json", false, "purges: print JSON")
	if isHelp(verb) {
		fs.Usage()
		return flag.ErrHelp
	}
	if verb != "purge" && verb != "purges" {
		return usageErrorf("unknown verb %q: want purge or purges", verb)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageErrorf("gallery %s takes no arguments", verb)
	}
	cfg, g, err := e.openGallery(ctx, *cfgPath, *by)
	if err != nil {
		return err
	}
	defer g.Close()
	if verb == "purges" {
		ps, err := g.Purges(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(e.stdout).Encode(ps)
		}
		for _, p := range ps {
			fmt.Fprintln(e.stdout, purgeLine(p))
		}
		return nil
	}
	graceSet := false
	fs.Visit(func(f *flag.Flag) { graceSet = graceSet || f.Name == "grace" })
	if !graceSet {
		*grace = cfg.Match.PurgeGrace
	}
	ps, err := g.PurgeExpired(ctx, *grace, actorName(g))
	if err != nil {
		return err
	}
	for _, p := range ps {
		fmt.Fprintln(e.stdout, purgeLine(p))
	}
	if len(ps) == 0 {
		fmt.Fprintf(e.stdout, "nothing expired %v ago or longer\n", *grace)
	}
	// Each purge was audited in its own transaction; tell the matchers.
	return e.publish(ctx, cfg, g)
}

func purgeLine(p match.Purge) string {
	what := fmt.Sprintf("watchlist %q", p.Watchlist)
	if p.IdentityID != 0 {
		what = fmt.Sprintf("identity %q of %q", p.Identity, p.Watchlist)
	}
	return fmt.Sprintf("%s %s: %s by %s (%s): %d identities, %d descriptors, %d photos removed",
		p.Time.Local().Format(time.RFC3339), p.Cause, what, p.Actor, p.Reason, p.Identities, p.Enrolments, p.Photos)
}
