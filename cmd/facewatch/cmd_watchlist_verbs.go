package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/facewatch/facewatch/match"
)

func watchlistCreate(e *env, fs *flag.FlagSet) watchlistRun {
	kind := fs.String("kind", "", "`KIND` of list: missing, wanted or other (required)")
	owner := fs.String("owner", "", "`WHO` is responsible for the list (required)")
	basis := fs.String("legal-basis", "", "the order or law the list rests on, as `TEXT` (required)")
	expires := fs.String("expires", "", "when the list stops matching: RFC 3339, YYYY-MM-DD or a duration from now such as 720h (`TIME`; default: never)")
	priority := fs.Int("priority", 0, "priority of its alerts, 0-100")
	threshold := fs.Float64("threshold", 0, "match threshold, a descriptor `DISTANCE` (0: match.default_threshold; take it from facewatch eval)")
	second := fs.Bool("second-reviewer", false, "alerts need a second reviewer")
	return func(ctx context.Context, w *watchlistCall) error {
		k, err := match.ParseKind(*kind)
		if err != nil {
			return usageErrorf("--kind: %v", err)
		}
		spec := match.WatchlistSpec{Name: w.args[0], Kind: k, Owner: *owner, LegalBasis: *basis, Priority: *priority,
			Threshold: *threshold, SecondReviewer: *second}
		if *expires != "" {
			if spec.Expires, err = parseWhen(*expires, time.Now()); err != nil {
				return usageErrorf("--expires: %v", err)
			}
		}
		l, err := w.g.CreateWatchlist(ctx, spec)
		if err != nil {
			return err
		}
		fmt.Fprintf(w.e.stdout, "watchlist %q created (id %d, %s)\n", l.Name, l.ID, l.Kind)
		return nil
	}
}

func watchlistList(_ *env, _ *flag.FlagSet) watchlistRun {
	return func(ctx context.Context, w *watchlistCall) error {
		lists, err := w.g.Watchlists(ctx)
		if err != nil {
			return err
		}
		if w.asJSON {
			return json.NewEncoder(w.e.stdout).Encode(lists)
		}
		tw := tabwriter.NewWriter(w.e.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tKIND\tPRIORITY\tIDENTITIES\tPHOTOS\tTHRESHOLD\tEXPIRES\tOWNER")
		for _, l := range lists {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", l.Name, l.Kind, l.Priority, l.Identities, l.Enrolments,
				thresholdText(l.Threshold, w.cfg.Match.DefaultThreshold), expiryText(l.Expires), l.Owner)
		}
		return tw.Flush()
	}
}

func watchlistShow(_ *env, _ *flag.FlagSet) watchlistRun {
	return func(ctx context.Context, w *watchlistCall) error {
		name := w.args[0]
		l, err := w.g.Watchlist(ctx, name)
		if err != nil {
			return err
		}
		ids, err := w.g.Identities(ctx, name)
		if err != nil {
			return err
		}
		x := match.NewIndex(w.cfg.Match, match.IndexOptions{Gallery: w.g})
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
		out := w.e.stdout
		if w.asJSON {
			return json.NewEncoder(out).Encode(struct {
				Watchlist  match.Watchlist         `json:"watchlist"`
				Identities []match.IdentitySummary `json:"identities"`
				LookAlikes []match.LookAlike       `json:"look_alikes"`
			}{l, ids, looks})
		}
		fmt.Fprintf(out, "watchlist %s (id %d): %s, priority %d, owner %s\n", l.Name, l.ID, l.Kind, l.Priority, l.Owner)
		fmt.Fprintf(out, "legal basis: %s\nthreshold: %s; second reviewer: %v; expires: %s\n", l.LegalBasis,
			thresholdText(l.Threshold, w.cfg.Match.DefaultThreshold), l.SecondReviewer, expiryText(l.Expires))
		tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tIDENTITY\tPHOTOS\tEXPIRES")
		for _, i := range ids {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\n", i.ID, i.Name, i.Enrolments, expiryText(i.Expires))
		}
		tw.Flush()
		printLookAlikes(out, looks)
		return nil
	}
}

func watchlistExpire(_ *env, fs *flag.FlagSet) watchlistRun {
	at := fs.String("at", "now", "when, as `TIME`: RFC 3339, YYYY-MM-DD or a duration from now")
	identity := fs.String("identity", "", "expire only this identity (`PERSON`) of the list")
	return func(ctx context.Context, w *watchlistCall) error {
		name := w.args[0]
		when, err := parseWhen(*at, time.Now())
		if err != nil {
			return usageErrorf("--at: %v", err)
		}
		if *identity == "" {
			if _, err := w.g.ExpireWatchlist(ctx, name, when); err != nil {
				return err
			}
			fmt.Fprintf(w.e.stdout, "watchlist %q expires %s\n", name, when.Format(time.RFC3339))
			return nil
		}
		id, err := findIdentity(ctx, w.g, name, *identity)
		if err != nil {
			return err
		}
		if _, err := w.g.ExpireIdentity(ctx, id.ID, when); err != nil {
			return err
		}
		fmt.Fprintf(w.e.stdout, "identity %q of %q expires %s\n", id.Name, name, when.Format(time.RFC3339))
		return nil
	}
}

func watchlistDelete(_ *env, fs *flag.FlagSet) watchlistRun {
	identity := fs.String("identity", "", "delete only this identity (`PERSON`) and its photos from the list")
	return func(ctx context.Context, w *watchlistCall) error {
		name := w.args[0]
		if *identity == "" {
			if err := w.g.DeleteWatchlist(ctx, name); err != nil {
				return err
			}
			fmt.Fprintf(w.e.stdout, "watchlist %q deleted with its identities, descriptors and photos\n", name)
			return nil
		}
		id, err := findIdentity(ctx, w.g, name, *identity)
		if err != nil {
			return err
		}
		if err := w.g.DeleteIdentity(ctx, id.ID); err != nil {
			return err
		}
		fmt.Fprintf(w.e.stdout, "identity %q deleted from %q with its descriptors and photos\n", id.Name, name)
		return nil
	}
}

func watchlistThreshold(_ *env, _ *flag.FlagSet) watchlistRun {
	return func(ctx context.Context, w *watchlistCall) error {
		name := w.args[0]
		t, err := strconv.ParseFloat(w.args[1], 64)
		if err != nil {
			return usageErrorf("threshold %q is not a number", w.args[1])
		}
		if _, err := w.g.SetThreshold(ctx, name, t); err != nil {
			return err
		}
		fmt.Fprintf(w.e.stdout, "watchlist %q threshold %s\n", name, thresholdText(t, w.cfg.Match.DefaultThreshold))
		return nil
	}
}

// watchlistFound marks a missing person found: their matching ends (the
// delete event reaches every matcher), their descriptors and photos are
// purged, and the record of it is kept and audited.
func watchlistFound(e *env, fs *flag.FlagSet) watchlistRun {
	identity := fs.String("identity", "", "the person found (required)")
	reason := fs.String("reason", "", "how and when they were found (required; kept in the record and the audit log)")
	return func(ctx context.Context, w *watchlistCall) error {
		name := w.args[0]
		if *identity == "" || strings.TrimSpace(*reason) == "" {
			return usageErrorf("watchlist found needs --identity and --reason")
		}
		id, err := findIdentity(ctx, w.g, name, *identity)
		if err != nil {
			return err
		}
		p, err := w.g.Found(ctx, id.ID, actorName(w.g), *reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(w.e.stdout, "identity %q of %q marked found: matching ended, %d descriptors and %d photos purged (record %d)\n",
			p.Identity, p.Watchlist, p.Enrolments, p.Photos, p.ID)
		return nil
	}
}
