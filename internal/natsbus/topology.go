package natsbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/wire"
)

// This file is facewatch's NATS topology: every JetStream stream with its
// limits, every durable consumer and queue group, declared once and created
// by EnsureStreams and EnsureConsumer only. Subjects and stream names are
// wire's constants; docs/pipeline.md's topology table lists the same
// (TestTopologyDocumented keeps the two in step).

// Durable consumer and queue-group names.
const (
	// MatchDurable is the durable consumer the matchers share on the
	// tracks stream: N match processes split the tracks between them.
	MatchDurable = "facewatch-match"
	// AlertDurable is the default durable consumer of the alert service on
	// the hits stream (config alert.consumer; internal/config's default
	// must equal it).
	AlertDurable = "facewatch-alert"
	// DetectQueue is the core-NATS queue group detect processes share on
	// the frame subjects.
	DetectQueue = "facewatch-detect"
)

// Camera leases: which worker owns which camera (package internal/lease).
const (
	// CameraLeaseBucket is the JetStream key-value bucket holding camera
	// leases ("<role>.item.<camera>" = owning worker) and worker presence
	// ("<role>.worker.<worker>"), roles "camera" and "detect".
	CameraLeaseBucket = "facewatch-cameras"
	// CameraLeasePeriod is the lease period, the bucket's TTL: a dead
	// worker's cameras are free this long after its last renewal and taken
	// over within a renewal interval (a fifth of a period) more, 12 s in
	// all, inside the 15 s the design promises. It is not shorter because
	// an owner stops working on a camera when its renewals have failed for
	// 9/10 of it, and losing the NATS node that leads the bucket stops
	// renewals until JetStream elects a new leader, which takes 4-9 s
	// (measured: docs/deploy.md): a shorter lease would pause every camera
	// at each node loss.
	CameraLeasePeriod = 10 * time.Second
)

// CameraLeases declares the camera lease bucket: one value per key, keys
// expiring CameraLeasePeriod after their last write, replicas copies.
func CameraLeases(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      CameraLeaseBucket,
		Description: "facewatch camera leases: which worker reads and detects which camera",
		History:     1,
		TTL:         CameraLeasePeriod,
		Storage:     jetstream.FileStorage,
		Replicas:    max(1, replicas),
	}
}

// EnsureCameraLeases creates the camera lease bucket, or updates it to its
// declaration, and returns it.
func EnsureCameraLeases(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	// Stage identities may use the bucket but not create or change it
	// (roles.go): an existing bucket as declared is taken as it is.
	want := CameraLeases(replicas)
	kv, err := retryRead(ctx, func(ctx context.Context) (jetstream.KeyValue, error) { return js.KeyValue(ctx, want.Bucket) })
	if err == nil {
		st, err := retryRead(ctx, kv.Status)
		if err == nil && st.TTL() == want.TTL {
			return kv, nil
		}
	}
	kv, err = js.CreateOrUpdateKeyValue(ctx, want)
	if err != nil {
		return nil, fmt.Errorf("creating key-value bucket %s: %w", CameraLeaseBucket, err)
	}
	return kv, nil
}

// Stream limits.
const (
	// TracksMaxAge is how long an untaken track report waits for a
	// matcher when the configuration does not say (alert.unmatched_retention
	// does): the descriptors of anyone, strangers included, live in the
	// tracks stream, in memory only, at most this long.
	TracksMaxAge = 5 * time.Minute
	// TracksMaxBytes bounds the tracks stream's memory; when a matcher is
	// down long enough to fill it, the oldest reports go first.
	TracksMaxBytes = 64 << 20
	// TracksDuplicateWindow is how long JetStream remembers a track
	// report's message ID: a retried publish inside it is not stored twice.
	// It may not exceed the stream's max age; see Streams.
	TracksDuplicateWindow = 2 * time.Minute
	// HitsMaxAge is the longest an unconsumed hit waits in the stream: the
	// alert service may be down this long without losing one. A shorter
	// alert.retention bounds it (a hit's crop is not kept in the stream
	// longer than the alert it becomes).
	HitsMaxAge = 7 * 24 * time.Hour
	// HitsDuplicateWindow is how long JetStream remembers a hit's message
	// ID, so that a publisher's retry within it is dropped as a duplicate
	// (the alert service's own idempotent store catches later ones).
	HitsDuplicateWindow = 10 * time.Minute
	// GalleryMaxAge is how long gallery events are kept. Matchers start
	// from a SQLite snapshot and read only what follows it, so old events
	// are not needed for long; a week covers matchers that were down.
	GalleryMaxAge = 7 * 24 * time.Hour
	// GalleryDuplicateWindow is how long JetStream remembers a gallery
	// event's message ID (match.MsgID).
	GalleryDuplicateWindow = 10 * time.Minute
	// AuditMaxAge is how long audit checkpoints are kept: longer than any
	// retention, so that a log cut or rewritten within it is caught.
	AuditMaxAge = 400 * 24 * time.Hour
	// AuditMaxBytes bounds the checkpoint stream (a checkpoint is ~300 B;
	// the alert service checkpoints at most every 5 s).
	AuditMaxBytes = 256 << 20
	// AuditDuplicateWindow drops a checkpoint published twice (two
	// processes signing the same head; message ID log-seq-head).
	AuditDuplicateWindow = 10 * time.Minute
)

// Stream byte caps. JetStream's store shares the disk with the SQLite
// databases (data_dir): without a cap, a flood of messages (forged, or a
// consumer down for days) fills the disk, and then the audit log cannot be
// written and every audited request is refused. Each stream refuses new
// messages at its cap (DiscardNew) rather than discarding old ones: an
// unconsumed hit is an alert not yet stored, and is never dropped for a
// newer one; the publisher retries until there is room. They are
// constants, not configuration, because every process declares the
// streams and would otherwise undo each other's settings; budget
// HitsMaxBytes+GalleryMaxBytes (1.25 GiB) of disk for them (the tracks
// stream is in memory, TracksMaxBytes, and drops its oldest reports).
const (
	// HitsMaxBytes caps the hits stream: a week of hits (HitsMaxAge) with
	// their crops, about 50,000 of them.
	HitsMaxBytes = 1 << 30
	// GalleryMaxBytes caps the gallery event stream.
	GalleryMaxBytes = 256 << 20
)

// Dead-letter stream limits.
const (
	// DeadLetterMaxAge is the longest a dead letter is kept (a shorter
	// alert.retention bounds it: a refused hit holds a crop).
	DeadLetterMaxAge = 7 * 24 * time.Hour
	// DeadLetterMaxBytes and DeadLetterMaxMsgs bound the dead-letter
	// stream; past them the oldest letters go.
	DeadLetterMaxBytes = 256 << 20
	DeadLetterMaxMsgs  = 100000
	// DeadLetterMaxMsgSize is the largest dead letter: a refused hit with
	// its headers.
	DeadLetterMaxMsgSize = wire.MaxCrop + wire.MaxMeta + 4 + 8<<10
)

// Topology is what a process knows of the configuration that shapes the
// streams. A zero field means "not known here": a missing stream is created
// with the default, an existing one keeps what it has (so that a process
// started without the alert settings does not undo them).
type Topology struct {
	// Replicas is nats.replicas (at least 1).
	Replicas int
	// Retention is alert.retention: the hits and dead-letter streams keep
	// nothing longer than this.
	Retention time.Duration
	// Unmatched is alert.unmatched_retention: the tracks stream's max age.
	Unmatched time.Duration
}

// TopologyOf is the Topology of a whole configuration.
func TopologyOf(cfg config.Config) Topology {
	return Topology{Replicas: cfg.NATS.Replicas, Retention: cfg.Alert.Retention, Unmatched: cfg.Alert.UnmatchedRetention}
}

// HitsMaxAgeFor is the hits stream's max age under alert.retention
// retention (0: the default).
func HitsMaxAgeFor(retention time.Duration) time.Duration { return hitsMaxAge(retention) }

// hitsMaxAge is the hits stream's max age for retention (0: the default).
func hitsMaxAge(retention time.Duration) time.Duration {
	if retention > 0 {
		return min(HitsMaxAge, retention)
	}
	return HitsMaxAge
}

// Streams returns facewatch's JetStream streams for t. It is the one
// declaration of their names, subjects, retention, storage and limits.
func Streams(t Topology) []jetstream.StreamConfig {
	replicas := max(1, t.Replicas)
	tracksAge := TracksMaxAge
	if t.Unmatched > 0 {
		tracksAge = t.Unmatched
	}
	hitsAge := hitsMaxAge(t.Retention)
	return []jetstream.StreamConfig{
		{
			Name:        wire.TracksStream,
			Description: "facewatch track reports (best descriptors of each track, no crops), consumed by the matchers; memory only",
			Subjects:    []string{wire.TracksWildcard},
			// Memory: the descriptors of strangers never reach a disk.
			Storage:    jetstream.MemoryStorage,
			Retention:  jetstream.WorkQueuePolicy,
			Discard:    jetstream.DiscardOld,
			MaxAge:     tracksAge,
			MaxBytes:   TracksMaxBytes,
			Duplicates: min(TracksDuplicateWindow, tracksAge),
			Replicas:   replicas,
			MaxMsgSize: wire.MaxMeta + wire.MaxTrackFaces*wire.DescriptorBytes + 4,
		},
		{
			Name:        wire.HitsStream,
			Description: "facewatch watchlist hits, consumed by the alert service",
			Subjects:    []string{wire.HitsWildcard},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      hitsAge,
			MaxBytes:    HitsMaxBytes,
			Discard:     jetstream.DiscardNew,
			Duplicates:  min(HitsDuplicateWindow, hitsAge),
			Replicas:    replicas,
			MaxMsgSize:  wire.MaxCrop + wire.MaxMeta + 4,
		},
		{
			Name:        wire.GalleryStream,
			Description: "facewatch gallery changes (watchlists, identities, enrolments)",
			Subjects:    []string{wire.GalleryEvents},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      GalleryMaxAge,
			MaxBytes:    GalleryMaxBytes,
			Discard:     jetstream.DiscardNew,
			Duplicates:  GalleryDuplicateWindow,
			Replicas:    replicas,
		},
		{
			Name:        wire.AuditStream,
			Description: "facewatch audit log checkpoints (signed chain heads), a copy the databases' writers cannot alter",
			Subjects:    []string{wire.AuditWildcard},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      AuditMaxAge,
			MaxBytes:    AuditMaxBytes,
			Discard:     jetstream.DiscardOld,
			Duplicates:  AuditDuplicateWindow,
			DenyDelete:  true,
			DenyPurge:   true,
			Replicas:    replicas,
			MaxMsgSize:  4 << 10,
		},
		{
			Name:        wire.DeadLetterStream,
			Description: "facewatch refused messages with their reason (frames and tracks without their body)",
			Subjects:    []string{wire.DeadLetterWildcard},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			MaxAge:      min(DeadLetterMaxAge, hitsAge),
			MaxBytes:    DeadLetterMaxBytes,
			MaxMsgs:     DeadLetterMaxMsgs,
			MaxMsgSize:  DeadLetterMaxMsgSize,
			Replicas:    replicas,
		},
	}
}

// EnsureStreams creates every stream of Streams(t), or updates it to its
// declaration. Every process that publishes to or consumes from a stream
// calls it at start-up (it is idempotent), so that the first one up
// creates the whole topology and none publishes into nothing. Limits t
// does not know (zero fields) are left as an existing stream has them.
//
// It first reads each stream's info and changes nothing when the stream
// already matches its declaration: stage identities may read stream info
// but not create or update streams (roles.go), so on a secured server the
// admin identity (`facewatch nats setup`, or `facewatch run`'s own
// connection) creates the topology and the stages only check it.
//
// A stream whose storage type changed (the tracks stream was a file
// stream before it moved to memory) is deleted and created again: the
// reports it held are the at-rest faces of strangers this change exists
// to remove (Ensure says how many went).
func EnsureStreams(ctx context.Context, js jetstream.JetStream, t Topology) error {
	_, err := Ensure(ctx, js, t)
	return err
}

// Ensured reports what Ensure had to do beyond creating or updating.
type Ensured struct {
	// Recreated names streams deleted and created again because their
	// storage type changed, with the messages they held.
	Recreated map[string]uint64
}

// Ensure is EnsureStreams reporting what it did.
func Ensure(ctx context.Context, js jetstream.JetStream, t Topology) (Ensured, error) {
	var out Ensured
	for _, cfg := range Streams(t) {
		old, err := retryRead(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.Stream(ctx, cfg.Name) })
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
		case err != nil:
			return out, fmt.Errorf("reading stream %s: %w", cfg.Name, err)
		default:
			have := old.CachedInfo().Config
			if t.Retention == 0 && (cfg.Name == wire.HitsStream || cfg.Name == wire.DeadLetterStream) {
				cfg.MaxAge, cfg.Duplicates = have.MaxAge, have.Duplicates
			}
			if t.Unmatched == 0 && cfg.Name == wire.TracksStream && have.Storage == cfg.Storage {
				cfg.MaxAge, cfg.Duplicates = have.MaxAge, have.Duplicates
			}
			if streamMatches(have, cfg) {
				continue
			}
			if have.Storage != cfg.Storage {
				n := old.CachedInfo().State.Msgs
				if err := js.DeleteStream(ctx, cfg.Name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
					return out, fmt.Errorf("deleting stream %s to change its storage from %v to %v: %w", cfg.Name, have.Storage, cfg.Storage, err)
				}
				if out.Recreated == nil {
					out.Recreated = map[string]uint64{}
				}
				out.Recreated[cfg.Name] = n
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = EnsureStream(cctx, js, cfg)
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				return out, fmt.Errorf("%w (no answer: if this identity may not create streams, create them as the admin identity with `facewatch nats setup`)", err)
			}
			return out, err
		}
	}
	return out, nil
}

// streamMatches reports whether a stream's config has every declared
// setting of want. A duplicate window left undeclared (0) is the server's
// default, whatever it is.
func streamMatches(got, want jetstream.StreamConfig) bool {
	return slices.Equal(got.Subjects, want.Subjects) && got.Retention == want.Retention &&
		got.Storage == want.Storage && got.MaxAge == want.MaxAge && (got.Duplicates == want.Duplicates || want.Duplicates == 0) &&
		got.Replicas == want.Replicas && noLimit(got.MaxMsgSize) == noLimit(want.MaxMsgSize) && got.Description == want.Description &&
		noLimit64(got.MaxBytes) == noLimit64(want.MaxBytes) && noLimit64(got.MaxMsgs) == noLimit64(want.MaxMsgs) &&
		got.Discard == want.Discard && got.DenyDelete == want.DenyDelete && got.DenyPurge == want.DenyPurge
}

// noLimit64 is noLimit for the 64-bit limits.
func noLimit64(v int64) int64 {
	if v <= 0 {
		return -1
	}
	return v
}

// noLimit maps JetStream's two spellings of "no limit" (0 and -1) to one.
func noLimit(v int32) int32 {
	if v <= 0 {
		return -1
	}
	return v
}

// Consumer is a durable consumer's declaration: the stream it reads and
// its configuration.
type Consumer struct {
	Stream string
	jetstream.ConsumerConfig
}

// MatchConsumer declares the matchers' shared durable consumer on the
// tracks stream. ackWait is how long a taken track may go unacknowledged
// before another matcher gets it.
func MatchConsumer(ackWait time.Duration) Consumer {
	return Consumer{Stream: wire.TracksStream, ConsumerConfig: jetstream.ConsumerConfig{
		Durable:       MatchDurable,
		Description:   "facewatch matchers",
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: wire.TracksWildcard,
		AckWait:       ackWait,
		MaxAckPending: 256,
		MaxDeliver:    -1,
	}}
}

// AlertConsumer declares the alert service's durable consumer on the hits
// stream, named durable (config alert.consumer, by default AlertDurable).
// maxAckPending bounds the hits in flight (a few store batches).
func AlertConsumer(durable string, ackWait time.Duration, maxAckPending int) Consumer {
	return Consumer{Stream: wire.HitsStream, ConsumerConfig: jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   "facewatch alert service",
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: wire.HitsWildcard,
		AckWait:       ackWait,
		MaxAckPending: maxAckPending,
		MaxDeliver:    -1,
	}}
}

// EnsureConsumer creates the durable consumer c, or updates it to c.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, c Consumer) (jetstream.Consumer, error) {
	// Creating or updating to one configuration is idempotent: tried again
	// like a read.
	cons, err := retryRead(ctx, func(ctx context.Context) (jetstream.Consumer, error) {
		return js.CreateOrUpdateConsumer(ctx, c.Stream, c.ConsumerConfig)
	})
	if err != nil {
		return nil, fmt.Errorf("creating consumer %s on %s: %w", c.Durable, c.Stream, err)
	}
	return cons, nil
}

// Start-up reads of the JetStream API are tried again while the answer may
// be on its way: a cluster that is still forming or electing a leader does
// not answer (the request waits for its deadline), and a request can be
// lost while a fresh cluster's routes settle. One such read used to end a
// stage at start.
const (
	// readAttempt bounds one try.
	readAttempt = 5 * time.Second
	// readRetryFor bounds all tries: a cluster that has no leader for this
	// long is down, and the caller says so.
	readRetryFor = 2 * time.Minute
)

// retryRead calls read, with a deadline of readAttempt each time, until it
// succeeds, fails for a reason a retry cannot change (a stream that does
// not exist, a permission), ctx ends or readRetryFor has passed. Only for
// reads and calls that are idempotent: a write that timed out may have
// been done.
func retryRead[T any](ctx context.Context, read func(context.Context) (T, error)) (T, error) {
	deadline := time.Now().Add(readRetryFor)
	wait := 250 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, readAttempt)
		v, err := read(actx)
		cancel()
		if err == nil || !unanswered(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// unanswered reports whether err means the JetStream API gave no answer
// (yet): a timeout, no responders, or "temporarily unavailable".
func unanswered(err error) bool {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout), errors.Is(err, nats.ErrNoResponders):
		return true
	case errors.As(err, &apiErr):
		return apiErr.Code == 503 && !errors.Is(err, jetstream.ErrJetStreamNotEnabled)
	}
	return false
}
