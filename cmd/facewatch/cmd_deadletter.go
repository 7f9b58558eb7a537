package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/facewatch/facewatch/internal/natsbus"
)

// cmdDeadLetter reads the dead-letter stream (messages a stage refused,
// with the reason) and replays a kept one, e.g. a hit of a newer schema
// version once the alert service is upgraded.
func cmdDeadLetter(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageErrorf("want a subcommand: list or replay")
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet(e, "deadletter "+sub, "deadletter list [--stage STAGE] [--limit N] [--json] --config FILE\n       facewatch deadletter replay SEQ --config FILE")
	cfgPath := fs.String("config", "", "config `FILE` (required: nats.url, or the data directory of a stopped facewatch run)")
	stage := fs.String("stage", "", "list: only letters of this `STAGE` (camera, detect, match, alert)")
	limit := fs.Int("limit", 100, "list: at most this many letters, the newest (0: all)")
	asJSON := fs.Bool("json", false, "list: one JSON object per line")
	if isHelp(sub) {
		fs.Usage()
		return flag.ErrHelp
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if sub != "list" && sub != "replay" {
		return usageErrorf("unknown subcommand %q: want list or replay", sub)
	}
	var seq uint64
	if sub == "replay" {
		if fs.NArg() != 1 {
			return usageErrorf("deadletter replay takes one sequence number (see deadletter list)")
		}
		n, err := strconv.ParseUint(fs.Arg(0), 10, 64)
		if err != nil || n == 0 {
			return usageErrorf("deadletter replay: %q is not a sequence number", fs.Arg(0))
		}
		seq = n
	} else if fs.NArg() != 0 {
		return usageErrorf("deadletter list takes no arguments")
	}
	// Without a config the default data directory would start an empty
	// embedded server there and report no dead letters of any service.
	if *cfgPath == "" {
		return usageErrorf("--config FILE is required")
	}
	cfg, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	bus, err := natsbus.Open(ctx, cfg.NATS, cfg.DataDir, natsbus.Options{Name: "facewatch-deadletter", Role: natsbus.RoleAdmin, Logger: e.logger(cfg)})
	if err != nil {
		return err
	}
	defer bus.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := natsbus.EnsureStreams(ctx, bus.JS, natsbus.TopologyOf(cfg)); err != nil {
		return err
	}
	if sub == "replay" {
		l, err := natsbus.GetDeadLetter(ctx, bus.JS, seq)
		if err != nil {
			return err
		}
		if l.Bytes == 0 {
			return fmt.Errorf("dead letter %d kept no body (%s): nothing to replay", seq, l.Body)
		}
		m := nats.NewMsg(l.Subject)
		m.Data = l.Data
		// Its own message ID: the original's may still be in the stream's
		// duplicate window; the alert service stores one alert per hit ID.
		m.Header.Set(nats.MsgIdHdr, "deadletter-"+strconv.FormatUint(seq, 10))
		if _, err := bus.JS.PublishMsg(ctx, m); err != nil {
			return fmt.Errorf("replaying dead letter %d to %s: %w", seq, l.Subject, err)
		}
		fmt.Fprintf(e.stdout, "dead letter %d replayed to %s (%d bytes)\n", seq, l.Subject, l.Bytes)
		return nil
	}
	letters, err := natsbus.ListDeadLetters(ctx, bus.JS, *stage, *limit)
	if err != nil {
		return err
	}
	for _, l := range letters {
		if *asJSON {
			b, _ := json.Marshal(l)
			fmt.Fprintln(e.stdout, string(b))
			continue
		}
		body := fmt.Sprintf("%d bytes kept", l.Bytes)
		if l.Body != "" {
			body = "body " + l.Body
		}
		fmt.Fprintf(e.stdout, "%d  %s  %-6s  %s  v%s  %s  reason: %s\n", l.Seq, l.Time.Format(time.RFC3339), l.Stage, l.Subject, l.Version, body, l.Reason)
	}
	if !*asJSON {
		fmt.Fprintf(e.stderr, "%d dead letters\n", len(letters))
	}
	return nil
}
