package match

// Lifecycle: what is kept about listed people ends. An expired list or
// identity is purged (descriptors, chips, photo files, rows) once the
// grace period after its expiry has passed; a missing person who is found
// is purged at once. Each purge leaves a Purge record, without biometric
// data, that is also the outbox of its audit entry.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/internal/wire"
)

// PurgeCause says why biometric data was purged.
type PurgeCause string

// The causes of a purge.
const (
	// PurgeExpired: the list or identity expired longer ago than the
	// grace period.
	PurgeExpired PurgeCause = "expired"
	// PurgeFound: a curator marked a missing person found.
	PurgeFound PurgeCause = "found"
)

// Purge is the record kept of one purge: who, when, which list or
// identity and why. It holds no biometric data (no descriptor, chip or
// photo, nor their hashes); the identity's name and external reference
// say whom it concerned.
type Purge struct {
	ID          int64      `json:"id"`
	Time        time.Time  `json:"time"`
	Cause       PurgeCause `json:"cause"`
	Actor       string     `json:"actor"`
	Reason      string     `json:"reason"`
	WatchlistID int64      `json:"watchlist_id"`
	Watchlist   string     `json:"watchlist"`
	// IdentityID is 0 when the whole list was purged.
	IdentityID  int64  `json:"identity_id,omitempty"`
	Identity    string `json:"identity,omitempty"`
	ExternalRef string `json:"external_ref,omitempty"`
	// Expired is the expiry that caused an expiry purge.
	Expired time.Time `json:"expired,omitzero"`
	// Identities, Enrolments and Photos count what was removed (photos:
	// distinct photo files the removed enrolments referred to).
	Identities int `json:"identities"`
	Enrolments int `json:"enrolments"`
	Photos     int `json:"photos"`
	// Audited is true once the purge is in the audit log.
	Audited bool `json:"audited"`
}

// Target names what was purged, as an audit log target:
// "identity/<id>" or "watchlist/<id>".
func (p *Purge) Target() string {
	if p.IdentityID != 0 {
		return "identity/" + strconv.FormatInt(p.IdentityID, 10)
	}
	return "watchlist/" + strconv.FormatInt(p.WatchlistID, 10)
}

// removal is what a deletion inside a transaction took away.
type removal struct {
	photos     []string
	identities int
	enrolments int
}

// deleteIdentityTx deletes identity id with its enrolments, removes their
// descriptors from the event outbox (queueing the published ones for
// deletion from the stream) and appends the identity.delete event, which
// ends the identity's matching in every matcher.
func deleteIdentityTx(ctx context.Context, tx *sql.Tx, id int64) (removal, error) {
	rm := removal{identities: 1}
	var err error
	if rm.photos, err = photosOf(ctx, tx, "i.id = ?", id); err != nil {
		return rm, err
	}
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM enrolments WHERE identity_id = ?", id).Scan(&rm.enrolments); err != nil {
		return rm, err
	}
	if err := scrubEnrolmentEvents(ctx, tx, "identity_id", id); err != nil {
		return rm, err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM identities WHERE id = ?", id); err != nil {
		return rm, err
	}
	return rm, appendEvent(ctx, tx, &Event{Type: EventIdentityDelete, DeletedID: id}, nil)
}

// deleteWatchlistTx is deleteIdentityTx for a whole list.
func deleteWatchlistTx(ctx context.Context, tx *sql.Tx, id int64) (removal, error) {
	var rm removal
	var err error
	if rm.photos, err = photosOf(ctx, tx, "i.watchlist_id = ?", id); err != nil {
		return rm, err
	}
	if err := tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM identities WHERE watchlist_id = ?),
		(SELECT count(*) FROM enrolments e JOIN identities i ON e.identity_id = i.id WHERE i.watchlist_id = ?)`, id, id).Scan(&rm.identities, &rm.enrolments); err != nil {
		return rm, err
	}
	if err := scrubEnrolmentEvents(ctx, tx, "watchlist_id", id); err != nil {
		return rm, err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM watchlists WHERE id = ?", id); err != nil {
		return rm, err
	}
	return rm, appendEvent(ctx, tx, &Event{Type: EventWatchlistDelete, DeletedID: id}, nil)
}

// scrubEnrolmentEvents deletes the enrolment.add events whose enrolment's
// field (identity_id or watchlist_id) is id from the outbox: they carry
// the descriptor. Those already published are queued in stream_scrub, so
// that the next PublishPending deletes them from the stream as well.
// Nothing is lost for matchers: the delete event that follows removes
// the enrolments anyway.
func scrubEnrolmentEvents(ctx context.Context, tx *sql.Tx, field string, id int64) error {
	rows, err := tx.QueryContext(ctx, `SELECT seq, stream_seq FROM events
		WHERE json_extract(CAST(payload AS TEXT), '$.type') = ? AND json_extract(CAST(payload AS TEXT), '$.enrolment.`+field+`') = ?`,
		string(EventEnrolmentAdd), id)
	if err != nil {
		return fmt.Errorf("finding descriptors in the gallery outbox: %w", err)
	}
	var seqs []int64
	var streamSeqs []int64
	for rows.Next() {
		var seq int64
		var ss sql.NullInt64
		if err := rows.Scan(&seq, &ss); err != nil {
			rows.Close()
			return fmt.Errorf("finding descriptors in the gallery outbox: %w", err)
		}
		seqs = append(seqs, seq)
		if ss.Valid {
			streamSeqs = append(streamSeqs, ss.Int64)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("finding descriptors in the gallery outbox: %w", err)
	}
	for _, s := range streamSeqs {
		if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO stream_scrub (stream_seq) VALUES (?)", s); err != nil {
			return fmt.Errorf("queueing stream message %d for deletion: %w", s, err)
		}
	}
	for _, s := range seqs {
		if _, err := tx.ExecContext(ctx, "DELETE FROM events WHERE seq = ?", s); err != nil {
			return fmt.Errorf("removing descriptor event %d from the outbox: %w", s, err)
		}
	}
	return nil
}

// afterRemoval removes the photo files a committed removal left without
// enrolment and checkpoints the write-ahead log, so that the zeroed pages
// (secure_delete) replace the old ones in the database file and the log
// no longer holds the deleted rows.
func (g *Gallery) afterRemoval(ctx context.Context, rm removal) error {
	err := g.removePhotos(ctx, rm.photos)
	g.checkpoint(ctx)
	return err
}

// checkpoint runs a truncating WAL checkpoint. A reader in another
// process can keep it from completing; the next one finishes the job.
func (g *Gallery) checkpoint(ctx context.Context) {
	var busy, logFrames, done int
	if err := g.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &done); err != nil {
		g.log.Warn("checkpointing the gallery after a removal", "err", err)
		return
	}
	if busy != 0 {
		g.log.Debug("gallery checkpoint incomplete: a reader holds the log", "frames", logFrames, "checkpointed", done)
	}
}

const purgeCols = "id, time_ms, cause, actor, reason, watchlist_id, watchlist, identity_id, identity, external_ref, expired_ms, identities, enrolments, photos, audited"

func scanPurge(r scanner) (Purge, error) {
	var p Purge
	var at int64
	var exp *int64
	var cause string
	err := r.Scan(&p.ID, &at, &cause, &p.Actor, &p.Reason, &p.WatchlistID, &p.Watchlist, &p.IdentityID, &p.Identity, &p.ExternalRef,
		&exp, &p.Identities, &p.Enrolments, &p.Photos, &p.Audited)
	p.Time, p.Cause, p.Expired = time.UnixMilli(at).UTC(), PurgeCause(cause), fromMS(exp)
	return p, err
}

// insertPurge records a purge in the same transaction as the deletion.
// A gallery with its own audit log (keys configured) writes the audit
// entry in that transaction too, and the record is born audited; without
// one the record waits for AuditPurges.
func (g *Gallery) insertPurge(ctx context.Context, tx *sql.Tx, p *Purge, rm removal) error {
	p.Identities, p.Enrolments = rm.identities, rm.enrolments
	p.Photos = len(rm.photos)
	p.Audited = g.alog != nil
	res, err := tx.ExecContext(ctx, `INSERT INTO purges (time_ms, cause, actor, reason, watchlist_id, watchlist, identity_id, identity,
		external_ref, expired_ms, identities, enrolments, photos, audited) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.Time.UnixMilli(), string(p.Cause), p.Actor, p.Reason, p.WatchlistID, p.Watchlist, p.IdentityID, p.Identity,
		p.ExternalRef, ms(p.Expired), p.Identities, p.Enrolments, p.Photos, p.Audited)
	if err != nil {
		return fmt.Errorf("recording the purge: %w", err)
	}
	if p.ID, err = res.LastInsertId(); err != nil {
		return err
	}
	action := "gallery_purge_expired"
	if p.Cause == PurgeFound {
		action = "gallery_found"
	}
	return g.auditTx(ctx, tx, action, p.Target(), p.ExternalRef, map[string]any{
		"purge": p.ID, "by": p.Actor, "reason": p.Reason, "watchlist": p.Watchlist, "identity": p.Identity, "external_ref": p.ExternalRef,
		"identities": p.Identities, "enrolments": p.Enrolments, "photos": p.Photos})
}

// PurgeExpired purges every list and identity that expired at least grace
// ago (at time now-grace or before): their descriptors, chips, photo
// files and rows, in one transaction, with one Purge record each (a list
// purged whole is one record). The delete events reach the matchers like
// any change. actor is who runs the purge ("lifecycle sweep" for the
// service's own loop). It returns the records written; audit them with
// AuditPurges.
func (g *Gallery) PurgeExpired(ctx context.Context, grace time.Duration, actor string) ([]Purge, error) {
	if grace < 0 {
		return nil, fmt.Errorf("purging expired entries: %w: grace %v is negative", ErrInvalid, grace)
	}
	if err := checkName("purged by", actor); err != nil {
		return nil, fmt.Errorf("purging expired entries: %w", err)
	}
	now := g.now().UTC().Truncate(time.Millisecond)
	cutoff := now.Add(-grace).UnixMilli()
	var out []Purge
	var all removal
	err := g.tx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		all = removal{}
		lists, err := queryAll(ctx, tx, "SELECT "+watchlistCols+" FROM watchlists WHERE expires_ms IS NOT NULL AND expires_ms <= ? ORDER BY id", cutoff, scanWatchlist)
		if err != nil {
			return err
		}
		for _, w := range lists {
			rm, err := deleteWatchlistTx(ctx, tx, w.ID)
			if err != nil {
				return err
			}
			p := Purge{Time: now, Cause: PurgeExpired, Actor: actor, Reason: "expired " + w.Expires.Format(time.RFC3339) + ", grace " + grace.String(),
				WatchlistID: w.ID, Watchlist: w.Name, Expired: w.Expires}
			if err := g.insertPurge(ctx, tx, &p, rm); err != nil {
				return err
			}
			out = append(out, p)
			all.photos = append(all.photos, rm.photos...)
		}
		ids, err := queryAll(ctx, tx, "SELECT "+identityCols+" FROM identities WHERE expires_ms IS NOT NULL AND expires_ms <= ? ORDER BY id", cutoff, scanIdentity)
		if err != nil {
			return err
		}
		for _, i := range ids {
			var list string
			if err := tx.QueryRowContext(ctx, "SELECT name FROM watchlists WHERE id = ?", i.WatchlistID).Scan(&list); err != nil {
				return err
			}
			rm, err := deleteIdentityTx(ctx, tx, i.ID)
			if err != nil {
				return err
			}
			p := Purge{Time: now, Cause: PurgeExpired, Actor: actor, Reason: "expired " + i.Expires.Format(time.RFC3339) + ", grace " + grace.String(),
				WatchlistID: i.WatchlistID, Watchlist: list, IdentityID: i.ID, Identity: i.Name, ExternalRef: i.ExternalRef, Expired: i.Expires}
			if err := g.insertPurge(ctx, tx, &p, rm); err != nil {
				return err
			}
			out = append(out, p)
			all.photos = append(all.photos, rm.photos...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("purging expired entries: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	for _, p := range out {
		g.log.Info("purged expired gallery entry", "target", p.Target(), "watchlist", p.Watchlist, "identities", p.Identities,
			"enrolments", p.Enrolments, "photos", p.Photos)
	}
	return out, g.afterRemoval(ctx, all)
}

// Found marks a missing person found: the identity is deleted with its
// descriptors, chips and photo files in one transaction, its delete
// event ends its matching in every matcher as soon as it is published,
// and a Purge record (cause found, who, when, which identity, reason) is
// kept. Only an identity on a list of kind missing can be found
// (ErrInvalid otherwise: delete the identity instead); reason is
// required.
func (g *Gallery) Found(ctx context.Context, identityID int64, actor, reason string) (Purge, error) {
	if err := checkName("found by", actor); err != nil {
		return Purge{}, fmt.Errorf("marking identity %d found: %w", identityID, err)
	}
	if strings.TrimSpace(reason) == "" {
		return Purge{}, fmt.Errorf("marking identity %d found: reason: %w: must not be empty", identityID, ErrInvalid)
	}
	if err := checkText("reason", reason, maxTextRunes, true); err != nil {
		return Purge{}, fmt.Errorf("marking identity %d found: %w", identityID, err)
	}
	var p Purge
	var rm removal
	err := g.tx(ctx, func(tx *sql.Tx) error {
		i, err := scanIdentity(tx.QueryRowContext(ctx, "SELECT "+identityCols+" FROM identities WHERE id = ?", identityID))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("identity %d: %w", identityID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		w, err := scanWatchlist(tx.QueryRowContext(ctx, "SELECT "+watchlistCols+" FROM watchlists WHERE id = ?", i.WatchlistID))
		if err != nil {
			return err
		}
		if w.Kind != KindMissing {
			return fmt.Errorf("%w: %q is on watchlist %q of kind %s; only a missing person can be found (delete the identity instead)",
				ErrInvalid, i.Name, w.Name, w.Kind)
		}
		if rm, err = deleteIdentityTx(ctx, tx, i.ID); err != nil {
			return err
		}
		p = Purge{Time: g.now().UTC().Truncate(time.Millisecond), Cause: PurgeFound, Actor: actor, Reason: reason,
			WatchlistID: w.ID, Watchlist: w.Name, IdentityID: i.ID, Identity: i.Name, ExternalRef: i.ExternalRef}
		return g.insertPurge(ctx, tx, &p, rm)
	})
	if err != nil {
		return Purge{}, fmt.Errorf("marking identity %d found: %w", identityID, err)
	}
	g.log.Info("missing person found; biometric data purged", "target", p.Target(), "watchlist", p.Watchlist,
		"enrolments", p.Enrolments, "photos", p.Photos)
	return p, g.afterRemoval(ctx, rm)
}

// Purges returns the purge records, oldest first.
func (g *Gallery) Purges(ctx context.Context) ([]Purge, error) {
	return g.purges(ctx, "1 = 1")
}

func (g *Gallery) purges(ctx context.Context, where string) ([]Purge, error) {
	rows, err := g.db.QueryContext(ctx, "SELECT "+purgeCols+" FROM purges WHERE "+where+" ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("reading purge records: %w", err)
	}
	defer rows.Close()
	var out []Purge
	for rows.Next() {
		p, err := scanPurge(rows)
		if err != nil {
			return nil, fmt.Errorf("reading purge records: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// PurgeAuditor writes one purge to the audit log. The gallery declares
// it and the command wiring provides it (the alert service's audit log):
// match does not know where the log lives.
type PurgeAuditor interface {
	AuditPurge(ctx context.Context, p Purge) error
}

// AuditPurges hands every purge record not yet audited to a, oldest
// first, and marks each audited once a took it. It stops at the first
// failure (the rest wait for the next call) and returns how many it
// audited. A crash between a's write and the mark writes that entry again
// next time: the entry carries the record's ID, so a reader can tell.
func (g *Gallery) AuditPurges(ctx context.Context, a PurgeAuditor) (int, error) {
	todo, err := g.purges(ctx, "audited = 0")
	if err != nil {
		return 0, err
	}
	for i, p := range todo {
		if err := a.AuditPurge(ctx, p); err != nil {
			return i, fmt.Errorf("auditing purge %d (%s): %w", p.ID, p.Target(), err)
		}
		if _, err := g.db.ExecContext(ctx, "UPDATE purges SET audited = 1 WHERE id = ?", p.ID); err != nil {
			return i, fmt.Errorf("marking purge %d audited: %w", p.ID, err)
		}
	}
	return len(todo), nil
}

// LifecycleOptions configure RunLifecycle.
type LifecycleOptions struct {
	// Grace is how long after its expiry a list or identity is purged.
	Grace time.Duration
	// Interval is how often the sweep runs (default 1h).
	Interval time.Duration
	// Actor names the sweep in the purge records and the audit log.
	Actor string
	// Auditor receives each purge; nil leaves the records unaudited (a
	// later AuditPurges with an auditor writes them).
	Auditor PurgeAuditor
	// AuditDetailRetention is how long the details of the gallery's audit
	// entries (identity names, external references, notes) are kept
	// before ExpireAuditDetails replaces them by their digest; 0 keeps
	// them.
	AuditDetailRetention time.Duration
}

// RunLifecycle purges expired entries (PurgeExpired) and audits the purge
// records (AuditPurges) every interval until ctx ends, starting at once.
// It returns nil when ctx is cancelled; errors are logged and retried.
// Run it in the process that owns the gallery (the one running
// RunPublisher): several processes on one gallery file are harmless, the
// second finds nothing left to purge.
func (g *Gallery) RunLifecycle(ctx context.Context, o LifecycleOptions) error {
	interval := o.Interval
	if interval <= 0 {
		interval = time.Hour
	}
	if o.Actor == "" {
		o.Actor = "lifecycle sweep"
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := g.PurgeExpired(ctx, o.Grace, o.Actor); err != nil && ctx.Err() == nil {
			g.log.Error("lifecycle sweep: purging expired entries", "err", err)
		}
		if o.Auditor != nil {
			if _, err := g.AuditPurges(ctx, o.Auditor); err != nil && ctx.Err() == nil {
				g.log.Error("lifecycle sweep: auditing purges", "err", err)
			}
		}
		if o.AuditDetailRetention > 0 && g.alog != nil {
			if n, err := g.ExpireAuditDetails(ctx, g.now().Add(-o.AuditDetailRetention)); err != nil && ctx.Err() == nil {
				g.log.Error("lifecycle sweep: expiring audit details", "err", err)
			} else if n > 0 {
				g.log.Info("gallery audit details expired", "entries", n)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// scrubStream deletes from the gallery stream the published events that
// purges queued (they carry descriptors), overwriting them on disk
// (SecureDeleteMsg). A message already gone (aged out) counts as done.
func (g *Gallery) scrubStream(ctx context.Context, js jetstream.JetStream) (int, error) {
	rows, err := g.db.QueryContext(ctx, "SELECT stream_seq FROM stream_scrub ORDER BY stream_seq")
	if err != nil {
		return 0, fmt.Errorf("reading stream scrub queue: %w", err)
	}
	var todo []uint64
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return 0, fmt.Errorf("reading stream scrub queue: %w", err)
		}
		todo = append(todo, uint64(s))
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(todo) == 0 {
		return 0, err
	}
	st, err := js.Stream(ctx, wire.GalleryStream)
	if err != nil {
		return 0, fmt.Errorf("opening stream %s to delete purged descriptors: %w", wire.GalleryStream, err)
	}
	n := 0
	for _, s := range todo {
		if err := st.SecureDeleteMsg(ctx, s); err != nil && !gone(ctx, st, s) {
			return n, fmt.Errorf("deleting purged descriptor message %d from stream %s: %w", s, wire.GalleryStream, err)
		}
		if _, err := g.db.ExecContext(ctx, "DELETE FROM stream_scrub WHERE stream_seq = ?", int64(s)); err != nil {
			return n, fmt.Errorf("updating stream scrub queue: %w", err)
		}
		n++
	}
	g.log.Info("purged descriptors deleted from the gallery stream", "messages", n)
	return n, nil
}

// gone reports whether the stream no longer holds message seq (deleted
// or aged out), which a failed delete does not say by itself.
func gone(ctx context.Context, st jetstream.Stream, seq uint64) bool {
	_, err := st.GetMsg(ctx, seq)
	return errors.Is(err, jetstream.ErrMsgNotFound)
}

// queryAll runs a one-argument query inside tx and scans every row.
func queryAll[T any](ctx context.Context, tx *sql.Tx, q string, arg any, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := tx.QueryContext(ctx, q, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
