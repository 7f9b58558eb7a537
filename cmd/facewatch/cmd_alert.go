package main

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/alert"
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
