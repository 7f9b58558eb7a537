package main

import (
	"context"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/wire"
)

// cmdCameraStage runs the camera stage alone: it publishes JPEG frames and
// camera health to NATS for detect stages elsewhere.
func cmdCameraStage(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "camera", "camera --config FILE | camera probe URL")
	f := registerStageFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ctx, s, err := e.openStage(ctx, "camera", natsbus.RoleCamera, f, true)
	if err != nil {
		return err
	}
	defer s.close()
	cam, err := s.newCameraStage(s.bus, nil)
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
	cams := fs.String("cameras", "", "take only these cameras' frames (comma-separated IDs), so that detect processes can split cameras; empty takes all")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var only []string
	for _, c := range strings.Split(*cams, ",") {
		if c = strings.TrimSpace(c); c != "" {
			if !wire.ValidToken(c) {
				return usageErrorf("--cameras: %q is not a camera ID", c)
			}
			only = append(only, c)
		}
	}
	ctx, s, err := e.openStage(ctx, name, natsbus.RoleDetect, f, true)
	if err != nil {
		return err
	}
	defer s.close()
	det, err := s.newDetectStage(e, s.bus, nil, only)
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
