package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/match"
)

// watchlistRun is one verb's action on the opened gallery.
type watchlistRun func(ctx context.Context, w *watchlistCall) error

// watchlistCall is what a verb's action works with.
type watchlistCall struct {
	e      *env
	cfg    config.Config
	g      *match.Gallery
	args   []string
	asJSON bool
	// err, when an action sets it, is returned after the gallery's
	// events are published (the change happened; something after it
	// failed).
	err error
}

// watchlistVerb is one `facewatch watchlist` verb: its arguments (for
// usage), how many it takes, its flags that must be given (name and
// argument, as usage shows them), whether it
// changes the gallery (and so publishes its events), and flags, which
// declares its flags and returns its action.
type watchlistVerb struct {
	name     string
	argNames string
	args     int
	required []string
	changes  bool
	summary  string
	flags    func(e *env, fs *flag.FlagSet) watchlistRun
}

// watchlistVerbs is the verb table, in the order usage lists them.
var watchlistVerbs = []watchlistVerb{
	{"create", "NAME", 1, []string{"kind KIND", "owner WHO", "legal-basis TEXT"}, true, "create a watchlist", watchlistCreate},
	{"list", "", 0, nil, false, "list the watchlists", watchlistList},
	{"show", "NAME", 1, nil, false, "show a watchlist, its identities and look-alikes", watchlistShow},
	{"expire", "NAME", 1, nil, true, "set when a watchlist (or one identity) stops matching", watchlistExpire},
	{"delete", "NAME", 1, nil, true, "delete a watchlist (or one identity) with its photos", watchlistDelete},
	{"threshold", "NAME DISTANCE", 2, nil, true, "set a watchlist's match threshold (0: the default)", watchlistThreshold},
	{"found", "NAME", 1, []string{"identity PERSON", "reason TEXT"}, true, "mark a missing person found: matching ends, their biometric data is purged, the record kept", watchlistFound},
}

// usage is the verb's usage line, required flags first.
func (v *watchlistVerb) usage() string {
	u := "watchlist " + v.name
	if v.argNames != "" {
		u += " " + v.argNames
	}
	for _, r := range v.required {
		u += " --" + r
	}
	return u + " [flags]"
}

// watchlistHelp lists the verbs.
func watchlistHelp(w io.Writer) {
	fmt.Fprintln(w, "usage: facewatch watchlist VERB [ARGS] [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "verbs:")
	for i := range watchlistVerbs {
		v := &watchlistVerbs[i]
		fmt.Fprintf(w, "  %-10s %s\n", v.name, v.summary)
		fmt.Fprintf(w, "  %-10s   facewatch %s\n", "", v.usage())
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run `facewatch watchlist VERB -h` for a verb's flags.")
}

func cmdWatchlist(ctx context.Context, e *env, args []string) error {
	names := make([]string, len(watchlistVerbs))
	for i, v := range watchlistVerbs {
		names[i] = v.name
	}
	wantVerb := strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
	if len(args) == 0 {
		return usageErrorf("want a verb: %s (see `facewatch watchlist -h`)", wantVerb)
	}
	name, args := args[0], args[1:]
	if isHelp(name) {
		watchlistHelp(e.stderr)
		return flag.ErrHelp
	}
	var verb *watchlistVerb
	for i := range watchlistVerbs {
		if watchlistVerbs[i].name == name {
			verb = &watchlistVerbs[i]
		}
	}
	if verb == nil {
		return usageErrorf("unknown verb %q: want %s", name, wantVerb)
	}
	fs := newFlagSet(e, "watchlist "+name, verb.usage())
	cfgPath := fs.String("config", "", "config `FILE` (its data_dir holds the gallery)")
	var asJSON *bool
	if verb.name == "list" || verb.name == "show" {
		asJSON = fs.Bool("json", false, "print JSON")
	}
	by := fs.String("by", "", "a `NOTE` for the audit log (on whose behalf); the OS user is recorded whatever it says")
	run := verb.flags(e, fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != verb.args {
		return usageErrorf("watchlist %s wants %d argument(s), got %d", name, verb.args, fs.NArg())
	}
	for _, r := range verb.required {
		flagName, _, _ := strings.Cut(r, " ")
		if strings.TrimSpace(fs.Lookup(flagName).Value.String()) == "" {
			fmt.Fprintf(e.stderr, "usage: facewatch %s\n", verb.usage())
			return usageErrorf("--%s is required (see `facewatch watchlist %s -h`)", flagName, name)
		}
	}
	cfg, g, err := e.openGallery(ctx, *cfgPath, *by)
	if err != nil {
		return err
	}
	defer g.Close()
	call := &watchlistCall{e: e, cfg: cfg, g: g, args: fs.Args()}
	if asJSON != nil {
		call.asJSON = *asJSON
	}
	if err := run(ctx, call); err != nil {
		return err
	}
	if !verb.changes {
		return call.err
	}
	return errors.Join(e.publish(ctx, cfg, g), call.err)
}
