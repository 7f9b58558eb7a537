package alert

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
)

// consoleSink prints one line per new alert (the `facewatch run` console).
type consoleSink struct {
	mu sync.Mutex // serialises writes to w
	w  io.Writer
	// log reports write errors; console output is best effort and never
	// retried.
	log *slog.Logger
}

func openConsoleSink(env sinkEnv) (Sink, sinkRetry, error) {
	if env.console == nil {
		return nil, sinkRetry{}, nil
	}
	return &consoleSink{w: env.console, log: env.log}, sinkRetry{}, nil
}

// Deliver writes a's line.
func (c *consoleSink) Deliver(_ context.Context, a Alert) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := fmt.Fprintln(c.w, FormatAlert(a)); err != nil {
		c.log.Warn("writing alert to the console", "alert", a.ID, "err", err)
	}
	return nil
}

// FormatAlert is the console's one-line form of an alert.
func FormatAlert(a Alert) string {
	name := a.IdentityName
	if name == "" {
		name = a.Identity
	}
	return fmt.Sprintf("ALERT %s camera=%s identity=%q watchlist=%s distance=%.3f threshold=%.3f track=%d id=%s",
		a.Time.UTC().Format("15:04:05.000"), a.Camera, name, a.Watchlist, a.Distance, a.Threshold, a.Track, a.HitID)
}
