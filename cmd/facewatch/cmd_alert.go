package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/alert"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/match"
)

// alertPhotoDir is where the alert service looks for enrolled photos: the
// gallery's photo directory under the data directory (match.OpenGallery
// keeps them as gallery-photos/<sha[:2]>/<sha256>.<ext>).
func alertPhotoDir(cfg config.Config) string { return match.PhotoDir(cfg.DataDir) }

// cmdAlertStage runs the alert service alone against an external NATS
// server: it consumes hits, serves the API and console on alert.listen.
func cmdAlertStage(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "alert", "alert --config FILE")
	cfgPath := fs.String("config", "", "config `FILE` (required: it names the data directory and NATS)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return usageErrorf("--config FILE is required")
	}
	cfg, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if cfg.NATS.URL == "" {
		return errors.New("alert: nats.url is empty; the alert stage alone needs an external NATS server (or use `facewatch run`)")
	}
	log := e.logger(cfg)
	opts := []nats.Option{nats.Name("facewatch-alert"), nats.MaxReconnects(-1)}
	if cfg.NATS.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATS.CredsFile))
	}
	nc, err := nats.Connect(cfg.NATS.URL, opts...)
	if err != nil {
		return fmt.Errorf("connecting to NATS %s: %w", config.Redact(cfg.NATS.URL), err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("opening JetStream: %w", err)
	}
	if err := natsbus.EnsureStreams(ctx, js, cfg.NATS.Replicas); err != nil {
		return err
	}
	log.Info("data directory", "component", "alert", "dir", absPath(cfg.DataDir))
	svc, err := alert.Open(ctx, cfg.DataDir, cfg.Alert, alert.Options{Logger: log, PhotoDir: alertPhotoDir(cfg), AckWait: cfg.NATS.AckWait})
	if err != nil {
		return err
	}
	defer svc.Close()
	return serveAlert(ctx, svc, js, cfg.Alert.Listen, func(addr string) {
		log.Info("alert service listening", "component", "alert", "url", "http://"+addr+"/console")
	})
}

// serveAlert runs svc's consumer and its HTTP API on listen until ctx ends
// or either fails, then stops both.
func serveAlert(ctx context.Context, svc *alert.Service, js jetstream.JetStream, listen string, ready func(addr string)) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", listen, err)
	}
	srv := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	go func() { // stops when srv.Shutdown/Close is called below
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("serving the alert API: %w", err)
			return
		}
		errs <- nil
	}()
	go func() { errs <- svc.Run(ctx, js) }() // stops when ctx is cancelled
	if ready != nil {
		ready(ln.Addr().String())
	}
	first := <-errs
	cancel()
	shutCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	if err := srv.Shutdown(shutCtx); err != nil {
		srv.Close() // live feeds do not end on Shutdown
	}
	second := <-errs
	return errors.Join(first, second)
}

func cmdToken(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageErrorf("want a subcommand: create, list or revoke (see `facewatch token -h`)")
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet(e, "token "+sub, "token create --role ROLE [--name NAME] [--ttl DURATION] [--config FILE]\n"+
		"       facewatch token list [--config FILE]\n       facewatch token revoke ID [--config FILE]")
	cfgPath := fs.String("config", "", "config `FILE` of the service (its data_dir holds the tokens)")
	role := fs.String("role", "", "create: the token's `ROLE`: admin, curator, operator, investigator or integrator (required)")
	name := fs.String("name", "", "create: who the token is for, shown in the audit log")
	ttl := fs.Duration("ttl", 90*24*time.Hour, "create: how long the token is valid")
	if isHelp(sub) {
		fs.Usage()
		return flag.ErrHelp
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch sub {
	case "create":
		if fs.NArg() != 0 {
			return usageErrorf("token create takes no arguments")
		}
		if *role == "" {
			return usageErrorf("--role is required: admin, curator, operator, investigator or integrator")
		}
		if _, err := alert.ParseRole(*role); err != nil {
			return usageErrorf("--role: %v", err)
		}
	case "list":
	case "revoke":
		if fs.NArg() != 1 {
			return usageErrorf("token revoke takes one token ID (see token list)")
		}
	default:
		return usageErrorf("unknown subcommand %q: want create, list or revoke", sub)
	}
	cfg, err := e.serviceConfig(*cfgPath)
	if err != nil {
		return err
	}
	db := alert.DBPath(cfg.DataDir)
	switch sub {
	case "create":
		r, _ := alert.ParseRole(*role) // checked above
		tok, err := alert.CreateToken(ctx, db, r, *name, *ttl)
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, tok)
		fmt.Fprintf(e.stderr, "token for %s (%q) valid until %s; it is shown only this once\n", r, *name, time.Now().Add(*ttl).UTC().Format(time.RFC3339))
		return nil
	case "list":
		toks, err := alert.ListTokens(ctx, db)
		if err != nil {
			return err
		}
		for _, t := range toks {
			state := "active"
			if t.Revoked {
				state = "revoked"
			} else if time.Now().After(t.Expires) {
				state = "expired"
			}
			fmt.Fprintf(e.stdout, "%s  %-12s  %-8s  expires %s  %s\n", t.ID, t.Role, state, t.Expires.Format(time.RFC3339), t.Name)
		}
		return nil
	default: // revoke
		if err := alert.RevokeToken(ctx, db, fs.Arg(0)); err != nil {
			return err
		}
		id := fs.Arg(0)
		toks, err := alert.ListTokens(ctx, db)
		if err != nil {
			return err
		}
		for _, t := range toks {
			if t.ID == id {
				fmt.Fprintf(e.stdout, "token %s revoked (role %s, name %q, created %s)\n", t.ID, t.Role, t.Name, t.Created.Format(time.RFC3339))
				return nil
			}
		}
		fmt.Fprintf(e.stdout, "token %s revoked\n", id)
		return nil
	}
}

func cmdAudit(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "audit verify", "audit verify [--config FILE]")
	cfgPath := fs.String("config", "", "config `FILE` of the service (its data_dir holds the audit log)")
	if len(args) > 0 && isHelp(args[0]) {
		fs.Usage()
		return flag.ErrHelp
	}
	if len(args) == 0 || args[0] != "verify" {
		return usageErrorf("want the subcommand verify")
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := e.serviceConfig(*cfgPath)
	if err != nil {
		return err
	}
	n, err := alert.VerifyAudit(ctx, alert.DBPath(cfg.DataDir))
	if err != nil {
		return fmt.Errorf("audit log %s: %d entries verified before the break: %w", alert.DBPath(cfg.DataDir), n, err)
	}
	seq, head, err := alert.AuditHead(ctx, alert.DBPath(cfg.DataDir))
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "audit log ok: %d entries, chain intact; head %d %s\n", n, seq, head)
	return nil
}
