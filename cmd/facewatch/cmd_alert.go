package main

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

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
	cfgPath := fs.String("config", "", "config file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if cfg.NATS.URL == "" {
		return errors.New("alert: nats.url is empty; the alert stage alone needs an external NATS server (or use `facewatch run`)")
	}
	log := e.logger(cfg)
	bus, err := natsbus.Open(ctx, cfg.NATS, cfg.DataDir, natsbus.Options{Name: "facewatch-alert", Role: natsbus.RoleAlert, Logger: log,
		PermissionOptions: permissionOptions(cfg)})
	if err != nil {
		return err
	}
	defer bus.Close()
	if err := natsbus.EnsureStreams(ctx, bus.JS, cfg.NATS.Replicas); err != nil {
		return err
	}
	svc, err := alert.Open(ctx, cfg.DataDir, cfg.Alert, alert.Options{Logger: log, PhotoDir: alertPhotoDir(cfg), AckWait: cfg.NATS.AckWait})
	if err != nil {
		return err
	}
	defer svc.Close()
	return serveAlert(ctx, svc, bus.JS, cfg.Alert, log, func(url string) {
		log.Info("alert service listening", "component", "alert", "url", url+"/console")
	})
}

// serveAlert runs svc's consumer and its HTTP API on acfg.Listen (HTTPS
// when alert.tls is set, its certificate reloaded on SIGHUP and when the
// files change; plain HTTP redirected from alert.tls.redirect_listen when
// set) until ctx ends or either fails, then stops both.
func serveAlert(ctx context.Context, svc *alert.Service, js jetstream.JetStream, acfg config.Alert, log *slog.Logger, ready func(url string)) error {
	ln, rel, url, err := alert.ListenHTTP(acfg, log)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slogErrorLog(log)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := 2
	errs := make(chan error, 4)
	go func() { // stops when srv.Shutdown/Close is called below
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("serving the alert API: %w", err)
			return
		}
		errs <- nil
	}()
	go func() { errs <- svc.Run(ctx, js) }() // stops when ctx is cancelled
	if acfg.TLS.RedirectListen != "" {
		n++
		go func() { errs <- alert.ServeRedirect(ctx, acfg, ln.Addr().String(), log) }() // stops with ctx
	}
	if rel != nil {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() { // ends with ctx
			for {
				select {
				case <-ctx.Done():
					return
				case <-hup:
					if err := rel.Reload(); err != nil {
						log.Warn("SIGHUP: keeping the previous https certificate", "component", "alert", "err", err)
					}
				}
			}
		}()
	}
	if ready != nil {
		ready(url)
	}
	first := <-errs
	cancel()
	shutCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	if err := srv.Shutdown(shutCtx); err != nil {
		srv.Close() // live feeds do not end on Shutdown
	}
	all := []error{first}
	for range n - 1 {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// slogErrorLog routes net/http's own log lines (TLS handshake errors,
// plain HTTP sent to the HTTPS port) to the logger at debug level.
func slogErrorLog(log *slog.Logger) *stdlog.Logger {
	if log == nil {
		return nil
	}
	return slog.NewLogLogger(log.With("component", "alert").Handler(), slog.LevelDebug)
}

func cmdToken(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageErrorf("want a subcommand: create, list or revoke")
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet(e, "token "+sub, "token create --role ROLE [--name NAME] [--ttl DURATION] --config FILE | token list --config FILE | token revoke ID --config FILE")
	cfgPath := fs.String("config", "", "config file")
	role := fs.String("role", "", "role: admin, curator, operator, investigator or integrator")
	name := fs.String("name", "", "who the token is for (shown in the audit log)")
	ttl := fs.Duration("ttl", 90*24*time.Hour, "how long the token is valid")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	db := alert.DBPath(cfg.DataDir)
	switch sub {
	case "create":
		if fs.NArg() != 0 {
			return usageErrorf("token create takes no arguments")
		}
		r, err := alert.ParseRole(*role)
		if err != nil {
			return usageErrorf("--role: %v", err)
		}
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
	case "revoke":
		if fs.NArg() != 1 {
			return usageErrorf("token revoke takes one token ID (see token list)")
		}
		return alert.RevokeToken(ctx, db, fs.Arg(0))
	default:
		return usageErrorf("unknown subcommand %q: want create, list or revoke", sub)
	}
}

func cmdAudit(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "verify" {
		return usageErrorf("want the subcommand verify")
	}
	fs := newFlagSet(e, "audit verify", "audit verify --config FILE")
	cfgPath := fs.String("config", "", "config file")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := e.loadConfig(*cfgPath)
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
