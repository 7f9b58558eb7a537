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
	kv, err := js.CreateOrUpdateKeyValue(ctx, CameraLeases(replicas))
	if err != nil {
		return nil, fmt.Errorf("creating key-value bucket %s: %w", CameraLeaseBucket, err)
	}
	return kv, nil
}

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
			Duplicates:  GalleryDuplicateWindow,
			Replicas:    replicas,
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
