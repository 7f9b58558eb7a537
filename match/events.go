package match

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/internal/wire"
)

// EventType says what changed.
type EventType string

// The gallery events. Every event is idempotent and carries the full new
// state of what it describes, so a matcher may apply it twice or out of
// order and still converge: puts carry a version (newer wins), deletes
// leave a tombstone (a later put of a deleted row is ignored).
const (
	EventWatchlistPut    EventType = "watchlist.put"
	EventWatchlistDelete EventType = "watchlist.delete"
	EventIdentityPut     EventType = "identity.put"
	EventIdentityDelete  EventType = "identity.delete"
	EventEnrolmentAdd    EventType = "enrolment.add"
)

// Event is one gallery change, as stored in the outbox and sent on the
// stream (JSON; the descriptor travels as base64 of 512 little-endian
// float32 bytes).
type Event struct {
	Seq       int64           `json:"seq"`
	Type      EventType       `json:"type"`
	Watchlist *Watchlist      `json:"watchlist,omitempty"`
	Identity  *Identity       `json:"identity,omitempty"`
	Enrolment *EnrolmentEvent `json:"enrolment,omitempty"`
	DeletedID int64           `json:"deleted_id,omitempty"`
}

// EnrolmentEvent is the part of an enrolment a matcher needs.
type EnrolmentEvent struct {
	ID          int64   `json:"id"`
	IdentityID  int64   `json:"identity_id"`
	WatchlistID int64   `json:"watchlist_id"`
	Descriptor  []byte  `json:"descriptor"`
	Model       ModelID `json:"model"`
	Quality     float64 `json:"quality"`
}

func enrolmentEvent(e *Enrolment, watchlistID int64) *EnrolmentEvent {
	return &EnrolmentEvent{ID: e.ID, IdentityID: e.IdentityID, WatchlistID: watchlistID, Descriptor: EncodeVector(&e.Vector), Model: e.Model, Quality: e.Quality}
}

// ParseEvent decodes and checks one event from a message; a malformed
// event, a descriptor of the wrong length or with NaN or Inf is an error
// naming the problem.
func ParseEvent(data []byte) (Event, error) {
	var ev Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return Event{}, fmt.Errorf("parsing gallery event: %w: %v", ErrInvalid, err)
	}
	bad := func(format string, args ...any) (Event, error) {
		return Event{}, fmt.Errorf("gallery event %d (%s): %w: %s", ev.Seq, ev.Type, ErrInvalid, fmt.Sprintf(format, args...))
	}
	if ev.Seq <= 0 {
		return bad("sequence %d is not positive", ev.Seq)
	}
	switch ev.Type {
	case EventWatchlistPut:
		if ev.Watchlist == nil || ev.Watchlist.ID <= 0 {
			return bad("no watchlist")
		}
	case EventIdentityPut:
		if ev.Identity == nil || ev.Identity.ID <= 0 || ev.Identity.WatchlistID <= 0 {
			return bad("no identity")
		}
	case EventWatchlistDelete, EventIdentityDelete:
		if ev.DeletedID <= 0 {
			return bad("no id to delete")
		}
	case EventEnrolmentAdd:
		e := ev.Enrolment
		if e == nil || e.ID <= 0 || e.IdentityID <= 0 || e.WatchlistID <= 0 {
			return bad("no enrolment")
		}
		if _, err := DecodeVector(e.Descriptor); err != nil {
			return bad("%v", err)
		}
		if e.Model.Name == "" || e.Model.SHA256 == "" {
			return bad("descriptor has no model identity")
		}
	default:
		return bad("unknown type")
	}
	return ev, nil
}

// MsgID is the JetStream message ID of a gallery event (on
// wire.GalleryEvents, stream wire.GalleryStream): a publisher that
// retries, or two processes publishing the same outbox, do not duplicate
// it.
func MsgID(seq int64) string { return fmt.Sprintf("gallery-%d", seq) }

// PublishPending sends the outbox's unpublished events to the stream in
// order and marks them published, then deletes from the stream the
// descriptor events of purged enrolments. It returns how many it sent. Any process
// holding the gallery file may call it; JetStream's de-duplication by
// message ID makes a concurrent or repeated call harmless.
func (g *Gallery) PublishPending(ctx context.Context, js jetstream.JetStream) (int, error) {
	type pending struct {
		seq     int64
		payload []byte
	}
	rows, err := g.db.QueryContext(ctx, "SELECT seq, payload FROM events WHERE published = 0 ORDER BY seq LIMIT 1000")
	if err != nil {
		return 0, fmt.Errorf("reading gallery outbox: %w", err)
	}
	var todo []pending
	for rows.Next() {
		var p pending
		if err := rows.Scan(&p.seq, &p.payload); err != nil {
			rows.Close()
			return 0, fmt.Errorf("reading gallery outbox: %w", err)
		}
		todo = append(todo, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("reading gallery outbox: %w", err)
	}
	n := 0
	for _, p := range todo {
		ack, err := js.Publish(ctx, wire.GalleryEvents, p.payload, jetstream.WithMsgID(MsgID(p.seq)))
		if err != nil {
			return n, fmt.Errorf("publishing gallery event %d: %w", p.seq, err)
		}
		// The stream sequence lets a later purge delete this message
		// (it may carry a descriptor) from the stream.
		if _, err := g.db.ExecContext(ctx, "UPDATE events SET published = 1, stream_seq = ? WHERE seq = ?", int64(ack.Sequence), p.seq); err != nil {
			return n, fmt.Errorf("marking gallery event %d published: %w", p.seq, err)
		}
		n++
	}
	if n > 0 {
		g.log.Debug("gallery events published", "count", n)
	}
	if len(todo) == 1000 {
		m, err := g.PublishPending(ctx, js)
		return n + m, err
	}
	// Purged descriptors leave the stream once their delete events are
	// out: a matcher never sees an enrolment come back.
	if _, err := g.scrubStream(ctx, js); err != nil {
		return n, err
	}
	return n, nil
}

// Pending returns how many events wait in the outbox.
func (g *Gallery) Pending(ctx context.Context) (int, error) {
	var n int
	if err := g.db.QueryRowContext(ctx, "SELECT count(*) FROM events WHERE published = 0").Scan(&n); err != nil {
		return 0, fmt.Errorf("counting gallery outbox: %w", err)
	}
	return n, nil
}

// RunPublisher publishes the outbox every interval until ctx ends, so that
// changes written by another process (the `facewatch enroll` command
// against the same data directory) reach every matcher. It returns nil
// when ctx is cancelled; publishing errors are logged and retried.
func (g *Gallery) RunPublisher(ctx context.Context, js jetstream.JetStream, interval time.Duration) error {
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := g.PublishPending(ctx, js); err != nil && ctx.Err() == nil {
			g.log.Warn("publishing gallery events", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// events returns the outbox events after seq, for tests and tools.
func (g *Gallery) events(ctx context.Context, after int64) ([]Event, error) {
	rows, err := g.db.QueryContext(ctx, "SELECT payload FROM events WHERE seq > ? ORDER BY seq", after)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		ev, err := ParseEvent(b)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}
