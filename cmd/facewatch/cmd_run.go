package main

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/facewatch/facewatch/alert"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/pipeline"
)

// cmdRun runs every stage in one process with an embedded NATS server
// (unless nats.url is set) and prints each alert as it arrives.
func cmdRun(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "run", "run --config FILE [--for DURATION]")
	f := registerStageFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ctx, s, err := e.openStage(ctx, "run", f, false)
	if err != nil {
		return err
	}
	defer s.close()
	if len(s.cfg.Cameras) == 0 {
		s.log.Warn("no cameras configured; running the API and matchers only")
	}
	js := s.bus.JS
	if err := natsbus.EnsureStreams(ctx, js, s.cfg.NATS.Replicas); err != nil {
		return err
	}
	g, idx, err := s.matchParts(ctx)
	if err != nil {
		return err
	}
	defer g.Close()
	ms, err := s.newMatchStage(g, idx)
	if err != nil {
		return err
	}
	frames := make(chan pipeline.Frame, 2*max(1, len(s.cfg.Cameras)))
	var det *pipeline.DetectStage
	var cam *pipeline.CameraStage
	if len(s.cfg.Cameras) > 0 {
		if det, err = s.newDetectStage(e, frames, nil); err != nil {
			return err
		}
		defer det.Close()
		if cam, err = s.newCameraStage(frames, nil); err != nil {
			return err
		}
	}
	svc, err := alert.Open(ctx, s.cfg.DataDir, s.cfg.Alert, alert.Options{Logger: s.log, Registry: s.reg, PhotoDir: alertPhotoDir(s.cfg), AckWait: s.cfg.NATS.AckWait,
		Console: e.stdout})
	if err != nil {
		return err
	}
	defer svc.Close()

	grp, gctx := errgroup.WithContext(ctx)
	grp.Go(func() error { return idx.Run(gctx) })
	grp.Go(func() error { return g.RunPublisher(gctx, js, 0) })
	grp.Go(func() error { return ms.Run(gctx) })
	if det != nil {
		grp.Go(func() error { return det.Run(gctx) })
		grp.Go(func() error { return cam.Run(gctx) })
	}
	grp.Go(func() error { return s.serveMetrics(gctx) })
	grp.Go(func() error {
		return serveAlert(gctx, svc, js, s.cfg.Alert.Listen, func(addr string) {
			fmt.Fprintf(e.stdout, "facewatch running: %d cameras, nats %s\n", len(s.cfg.Cameras), s.bus.URL())
			fmt.Fprintf(e.stdout, "API and console: http://%s/ (create a token with `facewatch token create --role operator --config FILE`)\n", addr)
		})
	})
	err = grp.Wait()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = nil
	}
	fmt.Fprintln(e.stdout, "facewatch stopped")
	return err
}
