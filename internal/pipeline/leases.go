package pipeline

import (
	"context"
	"errors"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/internal/lease"
	"github.com/facewatch/facewatch/internal/natsbus"
)

// Lease roles: camera readers and detect workers share cameras
// separately in the one lease bucket.
const (
	RoleCamera = "camera"
	RoleDetect = "detect"
)

// Leases make a stage share the site's cameras with the other processes
// of its role: it works only on the cameras it holds a lease on (package
// internal/lease), so each camera is read, or its frames detected and
// tracked, by exactly one process, and a dead process's cameras move to
// the living within natsbus.CameraLeasePeriod and a renewal interval.
type Leases struct {
	// KV is the lease bucket (natsbus.EnsureCameraLeases).
	KV jetstream.KeyValue
	// Worker is this process's ID, unique per role.
	Worker string
	// Cameras are the cameras to share: every camera of the site, or this
	// worker's pin when Pinned.
	Cameras []string
	// Pinned takes every camera of Cameras that is free and leaves the
	// rest to the unpinned workers (--cameras).
	Pinned bool
}

// pool builds the lease pool for role; busy says a camera is in the middle
// of a track (released last when rebalancing).
func (l *Leases) pool(role string, busy func(string) bool, log *slog.Logger) (*lease.Pool, error) {
	if l.KV == nil {
		return nil, errors.New("camera leases: no key-value bucket")
	}
	return lease.New(lease.Options{
		KV: l.KV, Role: role, Worker: l.Worker, Items: l.Cameras, Pinned: l.Pinned,
		Period: natsbus.CameraLeasePeriod, Busy: busy, Logger: log,
	})
}

// runLeased runs work for each camera while this process holds its lease.
func runLeased(ctx context.Context, l *Leases, role string, busy func(string) bool, log *slog.Logger, work func(context.Context, string)) error {
	p, err := l.pool(role, busy, log)
	if err != nil {
		return err
	}
	log.Info("sharing cameras through leases", "role", role, "worker", l.Worker, "cameras", len(l.Cameras), "pinned", l.Pinned)
	return p.Run(ctx, work)
}
