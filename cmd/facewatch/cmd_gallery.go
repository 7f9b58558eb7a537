package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/match"
)

// openGallery loads the config and opens the gallery under its data
// directory (see serviceConfig).
func (e *env) openGallery(ctx context.Context, cfgPath string) (config.Config, *match.Gallery, error) {
	cfg, err := e.serviceConfig(cfgPath)
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
	if err := natsbus.EnsureStreams(ctx, js, cfg.NATS.Replicas); err != nil {
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
