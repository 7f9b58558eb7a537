package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/pipeline"
	"github.com/facewatch/facewatch/internal/wire"
)

// parseCameraIDs parses --cameras.
func parseCameraIDs(list string) ([]string, error) {
	var out []string
	for _, c := range strings.Split(list, ",") {
		if c = strings.TrimSpace(c); c != "" {
			if !wire.ValidToken(c) {
				return nil, usageErrorf("--cameras: %q is not a camera ID", c)
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// configuredCameras are the config's camera IDs.
func configuredCameras(cfg config.Config) []string {
	var out []string
	for _, c := range cfg.Cameras {
		out = append(out, c.ID)
	}
	return out
}

// workerID names this process among its role's workers: host and PID, so
// that a restarted process is a new worker and an operator can tell which
// process holds a camera (`nats kv ls facewatch-cameras`).
func workerID() string {
	host, _ := os.Hostname()
	var b strings.Builder
	for _, r := range host {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		b.WriteString("host")
	}
	return fmt.Sprintf("%s-%d", b.String(), os.Getpid())
}

// leases opens the camera lease bucket and describes this process's
// share: pin when given (each pinned camera must be configured when the
// config lists cameras), otherwise every configured camera.
func (s *stage) leases(ctx context.Context, all, pin []string) (*pipeline.Leases, error) {
	if len(pin) > 0 && len(all) > 0 {
		known := map[string]bool{}
		for _, id := range all {
			known[id] = true
		}
		for _, id := range pin {
			if !known[id] {
				return nil, usageErrorf("--cameras: camera %q is not in the config", id)
			}
		}
	}
	kv, err := natsbus.EnsureCameraLeases(ctx, s.bus.JS, s.cfg.NATS.Replicas)
	if err != nil {
		return nil, err
	}
	l := &pipeline.Leases{KV: kv, Worker: workerID(), Cameras: all}
	if len(pin) > 0 {
		l.Cameras, l.Pinned = pin, true
	}
	return l, nil
}

// cmdCameraStage runs the camera stage alone: it publishes JPEG frames and
// camera health to NATS for detect stages elsewhere.
func cmdCameraStage(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "camera", "camera --config FILE [--cameras ID,ID] | camera probe URL")
	f := registerStageFlags(fs)
	cams := fs.String("cameras", "", "pin: read only these cameras (comma-separated IDs), still through leases; empty shares every configured camera with the other camera processes")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	pin, err := parseCameraIDs(*cams)
	if err != nil {
		return err
	}
	ctx, s, err := e.openStage(ctx, "camera", natsbus.RoleCamera, f, true)
	if err != nil {
		return err
	}
	defer s.close()
	leases, err := s.leases(ctx, configuredCameras(s.cfg), pin)
	if err != nil {
		return err
	}
	cam, err := s.newCameraStage(s.bus, nil, leases)
	if err != nil {
		return err
	}
	grp, gctx := errgroup.WithContext(ctx)
	grp.Go(func() error { return cam.Run(gctx) })
	grp.Go(func() error { return s.serveMetrics(gctx) })
	return ignoreCancel(ctx, grp.Wait())
}

// cmdDetectStage runs detect+embed alone. Embedding runs in the detect
// process (there is no separate embed stage): only the best faces of each
// track are embedded, and their chips never leave memory, so no face of a
// passer-by crosses the network or rests in a stream.
func cmdDetectStage(ctx context.Context, e *env, args []string) error {
	const name = "detect"
	fs := newFlagSet(e, name, name+" --config FILE [--cameras ID,ID]")
	f := registerStageFlags(fs)
	cams := fs.String("cameras", "", "pin: take only these cameras' frames (comma-separated IDs), still through leases; empty shares the configured cameras with the other detect processes")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	pin, err := parseCameraIDs(*cams)
	if err != nil {
		return err
	}
	ctx, s, err := e.openStage(ctx, name, natsbus.RoleDetect, f, true)
	if err != nil {
		return err
	}
	defer s.close()
	all := configuredCameras(s.cfg)
	var leases *pipeline.Leases
	if len(all) > 0 || len(pin) > 0 {
		if leases, err = s.leases(ctx, all, pin); err != nil {
			return err
		}
	} else {
		s.log.Warn("no cameras configured and no --cameras: taking every camera's frames in the detect queue group; with several detect processes a camera's tracks split between them, so list the cameras in the config")
	}
	det, err := s.newDetectStage(e, s.bus, nil, leases)
	if err != nil {
		return err
	}
	defer det.Close()
	grp, gctx := errgroup.WithContext(ctx)
	grp.Go(func() error { return det.Run(gctx) })
	grp.Go(func() error { return s.serveMetrics(gctx) })
	return ignoreCancel(ctx, grp.Wait())
}

// cmdMatchStage runs the matcher alone: it keeps the gallery index in step
// over JetStream, decides tracks and publishes hits.
func cmdMatchStage(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "match", "match --config FILE")
	f := registerStageFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ctx, s, err := e.openStage(ctx, "match", natsbus.RoleMatch, f, true)
	if err != nil {
		return err
	}
	defer s.close()
	g, idx, err := s.matchParts(ctx, s.bus)
	if err != nil {
		return err
	}
	defer g.Close()
	ms, err := s.newMatchStage(s.bus, g, idx)
	if err != nil {
		return err
	}
	grp, gctx := errgroup.WithContext(ctx)
	grp.Go(func() error { return idx.Run(gctx) })
	grp.Go(func() error { return g.RunPublisher(gctx, s.bus.JS, 0) })
	grp.Go(func() error { return g.RunLifecycle(gctx, s.lifecycle()) })
	grp.Go(func() error { return ms.Run(gctx) })
	grp.Go(func() error { return s.serveMetrics(gctx) })
	return ignoreCancel(ctx, grp.Wait())
}
