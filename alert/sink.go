package alert

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
)

// Sink is a destination for alerts once they are committed to the
// history: the live feed, the console, a webhook, MQTT. Deliver is never
// called on the commit path (the hit is acknowledged whatever a sink
// does), except for inline sinks, whose Deliver must not block.
type Sink interface {
	// Deliver hands over one committed alert, in alert id order. It may
	// block until ctx ends. An error is a failed attempt: it is counted and
	// the same alert is delivered again after a backoff, so delivery is at
	// least once.
	Deliver(ctx context.Context, a Alert) error
}

// sinkMode says where a sink's deliveries come from.
type sinkMode int

const (
	// sinkInline sinks get each alert on the commit path, right after the
	// commit, and must not block (the live feed's fan-out).
	sinkInline sinkMode = iota
	// sinkFromNow sinks run in their own goroutine from the newest alert
	// stored when Run starts; their cursor is kept in memory (the console).
	sinkFromNow
	// sinkDurable sinks run in their own goroutine from a cursor kept in the
	// alert database (the last alert id delivered), so a receiver that is
	// down, or a restart, loses nothing the history still holds.
	sinkDurable
)

// sinkEnv is what a sink's constructor may use.
type sinkEnv struct {
	cfg     config.Sinks
	log     *slog.Logger
	feed    *feed
	m       *metrics
	console io.Writer
	// embeddedMQTT is the embedded NATS server's MQTT listener, where the
	// MQTT sink publishes when alert.sinks.mqtt.url is empty.
	embeddedMQTT natsbus.MQTTBroker
}

// sinkRetry bounds the backoff between attempts; zero fields take
// defaults (100ms, 30s).
type sinkRetry struct{ min, max time.Duration }

// sinkEntry registers one kind of sink. open returns a nil Sink when the
// sink is not configured.
type sinkEntry struct {
	name string
	mode sinkMode
	open func(env sinkEnv) (Sink, sinkRetry, error)
}

// sinkTable is every kind of alert sink. Adding a sink is one file with
// its open function and one line here.
var sinkTable = []sinkEntry{
	{"live", sinkInline, openLiveSink},
	{"console", sinkFromNow, openConsoleSink},
	{"webhook", sinkDurable, openWebhookSink},
	{"mqtt", sinkDurable, openMQTTSink},
}

// sinkRunner drives one non-inline sink from the alerts table.
type sinkRunner struct {
	name  string
	mode  sinkMode
	sink  Sink
	retry sinkRetry
	// wake is signalled (never blocking: capacity 1) after each commit
	// that stored new alerts; it carries no alerts, only "look again".
	wake chan struct{}
	// start is where runSink begins: the cursor found when the service
	// opened (startCursor), then where the last runSink stopped.
	start cursor
}

// openSinks builds every configured sink.
func openSinks(env sinkEnv) (inline []Sink, runners []*sinkRunner, err error) {
	for _, e := range sinkTable {
		sink, retry, err := e.open(env)
		if err != nil {
			return nil, nil, fmt.Errorf("opening %s sink: %w", e.name, err)
		}
		if sink == nil {
			continue
		}
		if e.mode == sinkInline {
			inline = append(inline, sink)
			continue
		}
		if retry.min <= 0 {
			retry.min = 100 * time.Millisecond
		}
		if retry.max < retry.min {
			retry.max = max(retry.min, 30*time.Second)
		}
		runners = append(runners, &sinkRunner{name: e.name, mode: e.mode, sink: sink, retry: retry, wake: make(chan struct{}, 1)})
		env.log.Info("alert sink enabled", "sink", e.name)
	}
	return inline, runners, nil
}

// notifySinks is called after a commit with the alerts it created: inline
// sinks get them at once, the others are woken to read the history.
func (s *Service) notifySinks(created []Alert) {
	if len(created) == 0 {
		return
	}
	for _, a := range created {
		for _, sk := range s.inline {
			if err := sk.Deliver(context.Background(), a); err != nil {
				s.log.Warn("inline alert sink failed", "alert", a.ID, "err", err)
			}
		}
	}
	for _, r := range s.runners {
		select {
		case r.wake <- struct{}{}:
		default: // already woken
		}
	}
}

// runSinks runs every non-inline sink until ctx ends. A sink that holds a
// connection (MQTT) is closed when its loop ends; a later Run reconnects.
func (s *Service) runSinks(ctx context.Context) {
	var wg sync.WaitGroup
	for _, r := range s.runners {
		// Each stops when ctx ends; waited for below.
		wg.Go(func() {
			s.runSink(ctx, r)
			if c, ok := r.sink.(interface{ Close() }); ok {
				c.Close()
			}
		})
	}
	wg.Wait()
}

// sinkBatch bounds the alerts read from the history at once: the only
// in-memory queue a sink has.
const sinkBatch = 64

// sinkPoll is how often a sink looks at the history without a wake-up.
const sinkPoll = 5 * time.Second

// cursor is the last alert a sink delivered: its id and hit id (the hit
// id tells a reused id apart after the table was emptied by retention).
type cursor struct {
	id  int64
	hit string
}

// runSink delivers the alerts after r's cursor, in id order, until ctx
// ends. A delivery is retried until it succeeds; the cursor advances only
// after it did.
func (s *Service) runSink(ctx context.Context, r *sinkRunner) {
	log := s.log.With("sink", r.name)
	cur := r.start
	defer func() { r.start = cur }() // where a later Run resumes
	delivered := s.m.sinkDelivered.WithLabelValues(r.name)
	backlog := s.m.sinkBacklog.WithLabelValues(r.name)
	poll := time.NewTicker(sinkPoll)
	defer poll.Stop()
	for ctx.Err() == nil {
		cur = s.checkCursor(ctx, r, cur, log)
		alerts, newest, err := s.alertsAfter(ctx, cur.id)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("reading alerts for sink", "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		backlog.Set(float64(max(0, newest-cur.id)))
		if len(alerts) == 0 {
			select {
			case <-ctx.Done():
			case <-r.wake:
			case <-poll.C:
			}
			continue
		}
		// The cursor is saved after each batch, before waiting on a failing
		// receiver, and when ctx ends, rather than after every alert: one
		// write per batch keeps the sinks off the store's writer. A crash
		// sends at most that batch's delivered alerts again.
		saved := cur
		save := func() {
			if r.mode != sinkDurable || cur == saved {
				return
			}
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := s.saveCursor(sctx, r.name, cur); err != nil {
				log.Error("saving sink cursor", "alert", cur.id, "err", err)
				return
			}
			saved = cur
		}
		for _, a := range alerts {
			if gap := a.ID - cur.id - 1; gap > 0 {
				// Removed by retention before this sink delivered them.
				s.m.sinkDropped.WithLabelValues(r.name, "expired").Add(float64(gap))
				log.Warn("alerts expired before delivery", "count", gap, "after", cur.id)
			}
			ok, err := s.deliver(ctx, r, a, cur, log, save)
			if err != nil {
				save() // ctx ended; a is not delivered and is sent again
				return
			}
			if ok {
				delivered.Inc()
			}
			cur = cursor{id: a.ID, hit: a.HitID}
			if !ok {
				break // retention is sweeping: read the history again
			}
		}
		save()
	}
}

// deliver hands a to r's sink, retrying with exponential backoff and
// jitter until it succeeds (true), the alert is removed by retention
// while it waits (false, counted as dropped), or ctx ends (an error).
// failing is called once, at the first failed attempt.
func (s *Service) deliver(ctx context.Context, r *sinkRunner, a Alert, cur cursor, log *slog.Logger, failing func()) (bool, error) {
	wait := r.retry.min
	for attempt := 1; ; attempt++ {
		err := r.sink.Deliver(ctx, a)
		if err == nil {
			return true, nil
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		s.m.sinkFailures.WithLabelValues(r.name).Inc()
		if attempt == 1 {
			failing()
		}
		if newest, err := s.newestID(ctx); err == nil {
			s.m.sinkBacklog.WithLabelValues(r.name).Set(float64(max(0, newest-cur.id)))
		}
		log.Warn("alert delivery failed; retrying", "alert", a.ID, "attempt", attempt, "backoff", wait, "err", err)
		// Full jitter in [wait/2, wait]: receivers coming back are not hit
		// by every sender at once.
		if !sleepCtx(ctx, wait/2+rand.N(wait/2+1)) {
			return false, ctx.Err()
		}
		wait = min(2*wait, r.retry.max)
		var one int
		err = s.db.r.QueryRowContext(ctx, `SELECT 1 FROM alerts WHERE id = ? AND hit_id = ?`, a.ID, a.HitID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			s.m.sinkDropped.WithLabelValues(r.name, "expired").Inc()
			log.Warn("alert expired before delivery", "alert", a.ID)
			return false, nil
		}
	}
}

// startCursor is where r begins, read when the service opens (before any
// hit is consumed): its saved cursor when durable, otherwise (and for a
// durable sink's first start, so that enabling a sink does not replay
// months of history) the newest alert, saved at once.
func (s *Service) startCursor(ctx context.Context, r *sinkRunner) (cursor, error) {
	if r.mode == sinkDurable {
		var c cursor
		err := s.db.r.QueryRowContext(ctx, `SELECT last_id, last_hit FROM sink_cursors WHERE sink = ?`, r.name).Scan(&c.id, &c.hit)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return cursor{}, fmt.Errorf("loading cursor of sink %s: %w", r.name, err)
		}
	}
	var c cursor
	err := s.db.r.QueryRowContext(ctx, `SELECT id, hit_id FROM alerts ORDER BY id DESC LIMIT 1`).Scan(&c.id, &c.hit)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return cursor{}, fmt.Errorf("finding the newest alert: %w", err)
	}
	if r.mode == sinkDurable {
		if err := s.saveCursor(ctx, r.name, c); err != nil {
			return cursor{}, err
		}
	}
	return c, nil
}

// checkCursor notices that the cursor does not fit the history (ids are
// never reused since migration 3, but a database restored from a backup
// or replaced can hold fewer or other alerts: the newest id is below the
// cursor, or the cursor's id holds another hit) and restarts from the
// beginning.
func (s *Service) checkCursor(ctx context.Context, r *sinkRunner, c cursor, log *slog.Logger) cursor {
	if c.id == 0 {
		return c
	}
	newest, err := s.newestID(ctx)
	if err != nil {
		return c
	}
	var hit string
	err = s.db.r.QueryRowContext(ctx, `SELECT hit_id FROM alerts WHERE id = ?`, c.id).Scan(&hit)
	reused := newest < c.id || (err == nil && hit != c.hit)
	if !reused {
		return c
	}
	log.Info("alert ids restarted after retention emptied the history; sink cursor reset", "was", c.id)
	c = cursor{}
	if r.mode == sinkDurable {
		if err := s.saveCursor(ctx, r.name, c); err != nil {
			log.Error("saving sink cursor", "err", err)
		}
	}
	return c
}

// alertsAfter reads up to sinkBatch alerts with ids above after, and the
// newest id stored.
func (s *Service) alertsAfter(ctx context.Context, after int64) ([]Alert, int64, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT `+alertColumns+` FROM alerts WHERE id > ? ORDER BY id LIMIT ?`, after, sinkBatch)
	if err != nil {
		return nil, 0, fmt.Errorf("reading alerts after %d: %w", after, err)
	}
	defer rows.Close()
	var out []Alert
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("reading alerts after %d: %w", after, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("reading alerts after %d: %w", after, err)
	}
	newest, err := s.newestID(ctx)
	if err != nil {
		return nil, 0, err
	}
	return out, newest, nil
}

// newestID is the highest alert id stored (0 when there is none).
func (s *Service) newestID(ctx context.Context) (int64, error) {
	var newest sql.NullInt64
	if err := s.db.r.QueryRowContext(ctx, `SELECT MAX(id) FROM alerts`).Scan(&newest); err != nil {
		return 0, fmt.Errorf("reading the newest alert id: %w", err)
	}
	return newest.Int64, nil
}

// saveCursor records the last alert a durable sink delivered.
func (s *Service) saveCursor(ctx context.Context, name string, c cursor) error {
	_, err := s.db.w.ExecContext(ctx, `INSERT INTO sink_cursors (sink, last_id, last_hit, updated_ns) VALUES (?, ?, ?, ?)
		ON CONFLICT (sink) DO UPDATE SET last_id = excluded.last_id, last_hit = excluded.last_hit, updated_ns = excluded.updated_ns`,
		name, c.id, c.hit, s.now().UnixNano())
	if err != nil {
		return fmt.Errorf("saving cursor of sink %s at alert %d: %w", name, c.id, err)
	}
	return nil
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Event is the JSON document the webhook and MQTT sinks send for one
// alert. It carries no image: CropURL is the API path of the probe crop
// (an operator token is needed to fetch it).
type Event struct {
	// Type is always "alert".
	Type           string    `json:"type"`
	ID             int64     `json:"id"`
	HitID          string    `json:"hit_id"`
	Watchlist      string    `json:"watchlist"`
	WatchlistKind  string    `json:"watchlist_kind"`
	Priority       int       `json:"priority"`
	SecondReviewer bool      `json:"second_reviewer"`
	Identity       string    `json:"identity"`
	IdentityName   string    `json:"identity_name"`
	Distance       float64   `json:"distance"`
	Threshold      float64   `json:"threshold"`
	SecondDistance float64   `json:"second_distance"`
	Camera         string    `json:"camera"`
	Track          uint64    `json:"track"`
	Time           time.Time `json:"time"`
	StoredAt       time.Time `json:"stored_at"`
	Model          string    `json:"model"`
	AlertURL       string    `json:"alert_url"`
	CropURL        string    `json:"crop_url,omitempty"`
	// SceneURL is the API path of the scene image, when the hit carried
	// one; Incident and IncidentURL the incident the sighting belongs to.
	SceneURL    string `json:"scene_url,omitempty"`
	Incident    int64  `json:"incident,omitempty"`
	IncidentURL string `json:"incident_url,omitempty"`
}

// EventOf is the Event a sink sends for a.
func EventOf(a Alert) Event {
	e := Event{
		Type: "alert", ID: a.ID, HitID: a.HitID, Watchlist: a.Watchlist, WatchlistKind: a.WatchlistKind, Priority: a.Priority,
		SecondReviewer: a.SecondReviewer, Identity: a.Identity, IdentityName: a.IdentityName, Distance: a.Distance,
		Threshold: a.Threshold, SecondDistance: a.SecondDistance, Camera: a.Camera, Track: a.Track, Time: a.Time.UTC(),
		StoredAt: a.StoredAt.UTC(), Model: a.Model.Name, AlertURL: "/api/v1/alerts/" + strconv.FormatInt(a.ID, 10),
	}
	if a.CropSHA256 != "" {
		e.CropURL = e.AlertURL + "/crop"
	}
	if a.SceneSHA256 != "" {
		e.SceneURL = e.AlertURL + "/scene"
	}
	if a.Incident != 0 {
		e.Incident, e.IncidentURL = a.Incident, "/api/v1/incidents/"+strconv.FormatInt(a.Incident, 10)
	}
	return e
}
