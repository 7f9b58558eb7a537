package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	stdlog "log"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/alert"
	"github.com/facewatch/facewatch/internal/audit"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/httpserve"
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
	bus, err := natsbus.Open(ctx, cfg.NATS, cfg.DataDir, natsbus.Options{Name: "facewatch-alert", Role: natsbus.RoleAlert, Logger: log,
		PermissionOptions: permissionOptions(cfg)})
	if err != nil {
		return err
	}
	defer bus.Close()
	if err := natsbus.EnsureStreams(ctx, bus.JS, natsbus.TopologyOf(cfg)); err != nil {
		return err
	}
	log.Info("data directory", "component", "alert", "dir", absPath(cfg.DataDir))
	svc, err := alert.Open(ctx, cfg.DataDir, cfg.Alert, alert.Options{Logger: log, PhotoDir: alertPhotoDir(cfg), AckWait: cfg.NATS.AckWait, AuditDir: auditDir(cfg)})
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
// set) with the service's HTTP limits (timeouts, header size, connection
// cap), until ctx ends or either fails, then stops both.
func serveAlert(ctx context.Context, svc *alert.Service, js jetstream.JetStream, acfg config.Alert, log *slog.Logger, ready func(url string)) error {
	ln, rel, url, err := alert.ListenHTTP(acfg, log)
	if err != nil {
		return err
	}
	srv := httpserve.New(ln, svc.Handler(), svc.HTTPLimits())
	srv.HTTP().ErrorLog = slogErrorLog(log)
	if rel != nil {
		srv.UseTLS(rel.TLSConfig())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := 2
	errs := make(chan error, 4)
	go func() { // stops when ctx is cancelled below
		if err := srv.Serve(ctx, 5*time.Second); err != nil {
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

// watchlistNames lists g's watchlist names, for the alert service's
// metric labels.
func watchlistNames(g *match.Gallery) func(context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		ws, err := g.Watchlists(ctx)
		if err != nil {
			return nil, err
		}
		names := make([]string, len(ws))
		for i, w := range ws {
			names[i] = w.Name
		}
		return names, nil
	}
}

func cmdToken(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageErrorf("want a subcommand: create, list or revoke (see `facewatch token -h`)")
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet(e, "token "+sub, "token create --role ROLE --person NAME --scope SCOPE [--name LABEL] [--ttl DURATION] [--config FILE]\n"+
		"       facewatch token list [--config FILE]\n       facewatch token revoke ID [--config FILE]")
	cfgPath := fs.String("config", "", "config `FILE` of the service (its data_dir holds the tokens)")
	role := fs.String("role", "", "create: the token's `ROLE`: admin, curator, operator, investigator or integrator (required)")
	person := fs.String("person", "", "create: the `PERSON` the token belongs to (required; the audit log and the second-reviewer rule go by person)")
	name := fs.String("name", "", "create: a `LABEL` for the token (\"ana's laptop\")")
	ttl := fs.Duration("ttl", alert.DefaultTokenTTL, "create: how long the token is valid")
	by := fs.String("by", "", "a `NOTE` for the audit log (on whose behalf); the OS user is recorded whatever it says")
	scopeFlag := fs.String("scope", "", "create: what the token sees, a `SCOPE`: group:NAME,watchlist:NAME,... (camera groups of alert.camera_groups and watchlists), or all for the whole site (required for operator, investigator and integrator tokens)")
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
	// A token is only of use in the database the service reads. Without
	// --config that must be one a service has opened already: a token
	// written anywhere else is refused by the running service with no
	// hint why (the issue this guards). With --config the file says where,
	// and a first token may come before the service's first start.
	if *cfgPath == "" {
		if _, err := os.Stat(db); err != nil {
			return fmt.Errorf("no alert database %s: give --config FILE, the config of the service whose tokens these are", absPath(db))
		}
	}
	local := func() (alert.Local, func(), error) {
		actor, err := e.localActor()
		if err != nil {
			return alert.Local{}, nil, err
		}
		l := alert.Local{DataDir: cfg.DataDir, AuditDir: auditDir(cfg), Actor: actor, Note: *by}
		done, js, err := connectJS(ctx, e, cfg, "facewatch-token", natsbus.RoleAdmin)
		if err != nil {
			return alert.Local{}, nil, err
		}
		if js == nil {
			return l, done, nil
		}
		if err := natsbus.EnsureStreams(ctx, js, natsbus.TopologyOf(cfg)); err != nil {
			done()
			return alert.Local{}, nil, err
		}
		l.JS = js
		return l, done, nil
	}
	switch sub {
	case "create":
		r, _ := alert.ParseRole(*role) // checked above
		if strings.TrimSpace(*person) == "" {
			return usageErrorf("--person NAME is required: a token belongs to a person")
		}
		sc, err := tokenScope(r, *scopeFlag, cfg.Alert.CameraGroups)
		if err != nil {
			return err
		}
		l, done, err := local()
		if err != nil {
			return err
		}
		defer done()
		tok, info, err := alert.CreateToken(ctx, l, alert.TokenSpec{Role: r, Person: *person, Name: *name, TTL: *ttl, Scope: sc})
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, tok)
		fmt.Fprintf(e.stderr, "token %s for %s as %s (scope %s) valid until %s, stored in %s; it is shown only this once\n", info.ID, info.Person, r, info.Scope, info.Expires.Format(time.RFC3339), absPath(db))
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
			fmt.Fprintf(e.stdout, "%s  %-12s  %-8s  expires %s  scope %s  %s  %s\n", t.ID, t.Role, state, t.Expires.Format(time.RFC3339), t.Scope, t.Person, t.Name)
		}
		return nil
	default: // revoke
		l, done, err := local()
		if err != nil {
			return err
		}
		defer done()
		if err := alert.RevokeToken(ctx, l, fs.Arg(0)); err != nil {
			return err
		}
		id := fs.Arg(0)
		toks, err := alert.ListTokens(ctx, db)
		if err != nil {
			return err
		}
		for _, t := range toks {
			if t.ID == id {
				fmt.Fprintf(e.stdout, "token %s revoked (role %s, person %q, name %q, created %s)\n", t.ID, t.Role, t.Person, t.Name, t.Created.Format(time.RFC3339))
				return nil
			}
		}
		fmt.Fprintf(e.stdout, "token %s revoked\n", id)
		return nil
	}
}

// tokenScope reads token create's --scope for role: required (site-wide
// only as "all") for the roles a scope applies to, and every group it
// names must be one the configuration declares.
func tokenScope(r alert.Role, flag string, groups map[string][]string) (alert.Scope, error) {
	if flag == "" {
		if r != alert.RoleOperator && r != alert.RoleInvestigator && r != alert.RoleIntegrator {
			return alert.Scope{}, nil // admin and curator tokens are site-wide
		}
		return alert.Scope{}, usageErrorf("--scope: %s tokens need a scope: camera groups and/or watchlists (group:NAME,watchlist:NAME), or all for the whole site", r)
	}
	sc, err := alert.ParseScope(flag)
	if err != nil {
		return alert.Scope{}, usageErrorf("--scope: %v", err)
	}
	for _, g := range sc.Groups {
		if _, ok := groups[g]; !ok {
			return alert.Scope{}, usageErrorf("--scope: camera group %q is not declared in alert.camera_groups", g)
		}
	}
	return sc, nil
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
	keys, err := auditKeys(cfg)
	if err != nil {
		return err
	}
	// The stream's copy of the checkpoints, when there is one: a log and
	// checkpoint file cut together still disagree with it.
	streamed := map[string][]audit.Checkpoint{}
	done, js, err := connectJS(ctx, e, cfg, "facewatch-audit", natsbus.RoleAdmin)
	if err != nil {
		return fmt.Errorf("reading audit checkpoints from JetStream: %w", err)
	}
	if js != nil {
		defer done()
		for _, name := range []string{alert.AuditLogName, match.AuditLogName} {
			if streamed[name], err = audit.Fetch(ctx, js, name); err != nil {
				return err
			}
		}
	}
	var errs []error
	for _, l := range []struct {
		name, path string
		verify     func() (audit.Report, error)
	}{
		{alert.AuditLogName, alert.DBPath(cfg.DataDir), func() (audit.Report, error) {
			return alert.VerifyAudit(ctx, cfg.DataDir, auditDir(cfg), streamed[alert.AuditLogName])
		}},
		{match.AuditLogName, filepath.Join(cfg.DataDir, match.GalleryFile), func() (audit.Report, error) {
			return match.VerifyAudit(ctx, cfg.DataDir, keys, streamed[match.AuditLogName])
		}},
	} {
		if _, err := os.Stat(l.path); errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(e.stdout, "audit log %s: no database yet\n", l.name)
			continue
		}
		rep, err := l.verify()
		if err != nil {
			errs = append(errs, fmt.Errorf("audit log %s (%s): %d entries verified before the break: %w", l.name, l.path, rep.Entries, err))
			continue
		}
		fmt.Fprintf(e.stdout, "audit log %s ok: %d entries, chain intact (keyed from entry %d); head %d %s; %d checkpoints, the last covering entry %d; %d details expired\n",
			l.name, rep.Entries, rep.Era, rep.HeadSeq, rep.Head, rep.Checkpoints, rep.Checkpointed, rep.Expired)
	}
	return errors.Join(errs...)
}
