package natsbus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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

// Stream limits.
const (
	// TracksMaxAge is how long an untaken track report waits for a
	// matcher.
	TracksMaxAge = 24 * time.Hour
	// TracksDuplicateWindow is how long JetStream remembers a track
	// report's message ID: a retried publish inside it is not stored twice.
	TracksDuplicateWindow = 10 * time.Minute
	// HitsMaxAge is how long an unconsumed hit waits in the stream: the
	// alert service may be down this long without losing one.
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
// TracksMaxBytes+HitsMaxBytes+GalleryMaxBytes (1.5 GiB) of disk for them.
const (
	// TracksMaxBytes caps the tracks stream (a work queue, normally nearly
	// empty: it fills only while no matcher runs).
	TracksMaxBytes = 256 << 20
	// HitsMaxBytes caps the hits stream: a week of hits (HitsMaxAge) with
	// their crops, about 50,000 of them.
	HitsMaxBytes = 1 << 30
	// GalleryMaxBytes caps the gallery event stream.
	GalleryMaxBytes = 256 << 20
)

// Streams returns facewatch's JetStream streams, each with replicas
// replicas (at least 1). It is the one declaration of their names,
// subjects, retention, storage and limits.
func Streams(replicas int) []jetstream.StreamConfig {
	replicas = max(1, replicas)
	return []jetstream.StreamConfig{
		{
			Name:        wire.TracksStream,
			Description: "facewatch track reports (best descriptors of each track), consumed by the matchers",
			Subjects:    []string{wire.TracksWildcard},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.WorkQueuePolicy,
			MaxAge:      TracksMaxAge,
			MaxBytes:    TracksMaxBytes,
			Discard:     jetstream.DiscardNew,
			Duplicates:  TracksDuplicateWindow,
			Replicas:    replicas,
			MaxMsgSize:  wire.MaxMeta + wire.MaxTrackFaces*wire.DescriptorBytes + wire.MaxCrop + 4,
		},
		{
			Name:        wire.HitsStream,
			Description: "facewatch watchlist hits, consumed by the alert service",
			Subjects:    []string{wire.HitsWildcard},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      HitsMaxAge,
			MaxBytes:    HitsMaxBytes,
			Discard:     jetstream.DiscardNew,
			Duplicates:  HitsDuplicateWindow,
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
	}
}

// EnsureStreams creates every stream of Streams(replicas), or updates it
// to its declaration. Every process that publishes to or consumes from a
// stream calls it at start-up (it is idempotent), so that the first one up
// creates the whole topology and none publishes into nothing.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, replicas int) error {
	for _, cfg := range Streams(replicas) {
		if _, err := EnsureStream(ctx, js, cfg); err != nil {
			return err
		}
	}
	return nil
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
	cons, err := js.CreateOrUpdateConsumer(ctx, c.Stream, c.ConsumerConfig)
	if err != nil {
		return nil, fmt.Errorf("creating consumer %s on %s: %w", c.Durable, c.Stream, err)
	}
	return cons, nil
}
