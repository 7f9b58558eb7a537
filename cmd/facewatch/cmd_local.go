package main

import (
	"context"
	"fmt"
	"os/user"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/internal/audit"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
)

// localActor is who a local command acts as in the audit logs: the OS
// user running it (os/user), never a name given on the command line.
// Under sudo, the invoking user sudo reports is added to the name.
func (e *env) localActor() (audit.Actor, error) {
	u, err := user.Current()
	if err != nil {
		return audit.Actor{}, fmt.Errorf("finding the OS user to record in the audit log: %w", err)
	}
	name := u.Username
	if su := e.getenv("SUDO_USER"); su != "" && su != u.Username {
		name += " (sudo from " + su + ")"
	}
	return audit.Actor{ID: "os:" + u.Username, Name: name, Role: "local"}, nil
}

// auditDir is the configured audit directory (keys and checkpoints).
func auditDir(cfg config.Config) string {
	if cfg.Audit.Dir != "" {
		return cfg.Audit.Dir
	}
	return audit.DefaultDir(cfg.DataDir)
}

// auditKeys loads (on first use, generates) the audit keys.
func auditKeys(cfg config.Config) (*audit.Keys, error) {
	return audit.LoadKeys(auditDir(cfg), cfg.DataDir)
}

// connectJS connects to the configured external NATS server as role
// (its credentials from nats.creds_dir, or nats.creds_file); a nil
// JetStream when there is none (the embedded server of `facewatch run` is
// in-process). The returned function closes the connection.
func connectJS(ctx context.Context, e *env, cfg config.Config, name string, role natsbus.Role) (func(), jetstream.JetStream, error) {
	if cfg.NATS.URL == "" {
		return func() {}, nil, nil
	}
	bus, err := natsbus.Open(ctx, cfg.NATS, cfg.DataDir, natsbus.Options{Name: name, Role: role, Logger: e.logger(cfg)})
	if err != nil {
		return nil, nil, err
	}
	return bus.Close, bus.JS, nil
}

// publishCheckpoint copies a checkpoint to the audit stream when
// nats.url is set (the file already has it: a failure is reported, not
// fatal to the change, which is done).
func publishCheckpoint(ctx context.Context, e *env, cfg config.Config, c audit.Checkpoint) {
	done, js, err := connectJS(ctx, e, cfg, "facewatch-audit", natsbus.RoleCurator)
	if err == nil && js != nil {
		defer done()
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err = natsbus.EnsureStreams(ctx, js, natsbus.TopologyOf(cfg)); err == nil {
			err = audit.Publish(ctx, js, c)
		}
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "warning: audit checkpoint %s/%d not copied to JetStream (it is in the checkpoint file): %v\n", c.Log, c.Seq, err)
	}
}
