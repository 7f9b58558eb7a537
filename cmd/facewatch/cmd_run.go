package main

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/facewatch/facewatch/alert"
	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/internal/curate"
	"github.com/facewatch/facewatch/internal/enroll"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/pipeline"
	"github.com/facewatch/facewatch/match"
)

// cmdRun runs every stage in one process with an embedded NATS server
// (unless nats.url is set) and prints each alert as it arrives.
func cmdRun(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "run", "run --config FILE [--for DURATION]")
	f := registerStageFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return runAll(ctx, e, f, func(cameras int, natsURL, apiURL string) {
		fmt.Fprintf(e.stdout, "facewatch running: %d cameras, nats %s\n", cameras, natsURL)
		fmt.Fprintf(e.stdout, "API and console: %s/ (create a token with `facewatch token create --role operator --person NAME --scope all --config FILE`)\n", apiURL)
	})
}

// runAll is `facewatch run` once its flags are parsed: every stage in one
// process until ctx ends (or --for). ready is called once the API listens,
// with the number of cameras, the NATS URL and the API's base URL; alerts
// are printed on e.stdout as they arrive.
func runAll(ctx context.Context, e *env, f *stageFlags, ready func(cameras int, natsURL, apiURL string)) error {
	// The process's own connection is the admin identity, which creates
	// the topology (with the embedded server, and with an external one
	// when nats.creds_dir holds admin credentials); each stage then
	// connects under its own role, with exactly the permissions of a stage
	// in its own process.
	ctx, s, err := e.openStage(ctx, "run", "", f, false)
	if err != nil {
		return err
	}
	defer s.close()
	if len(s.cfg.Cameras) == 0 {
		s.log.Warn("no cameras configured; running the API and matchers only")
	}
	if err := natsbus.EnsureStreams(ctx, s.bus.JS, natsbus.TopologyOf(s.cfg)); err != nil {
		return err
	}
	matchBus, err := s.as(ctx, natsbus.RoleMatch)
	if err != nil {
		return err
	}
	alertBus, err := s.as(ctx, natsbus.RoleAlert)
	if err != nil {
		return err
	}
	g, idx, err := s.matchParts(ctx, matchBus)
	if err != nil {
		return err
	}
	defer g.Close()
	ms, err := s.newMatchStage(matchBus, g, idx)
	if err != nil {
		return err
	}
	frames := make(chan pipeline.Frame, 2*max(1, len(s.cfg.Cameras)))
	var det *pipeline.DetectStage
	var cam *pipeline.CameraStage
	if len(s.cfg.Cameras) > 0 {
		detBus, err := s.as(ctx, natsbus.RoleDetect)
		if err != nil {
			return err
		}
		camBus, err := s.as(ctx, natsbus.RoleCamera)
		if err != nil {
			return err
		}
		if det, err = s.newDetectStage(e, detBus, frames, nil); err != nil {
			return err
		}
		defer det.Close()
		if cam, err = s.newCameraStage(camBus, frames, nil); err != nil {
			return err
		}
	}
	// The curator API changes the gallery this process holds; the gallery
	// publisher below sends its events to the matchers.
	cur := curatorAPI(e, s, g)
	defer cur.Close()
	svc, err := alert.Open(ctx, s.cfg.DataDir, s.cfg.Alert, alert.Options{Logger: s.log, Registry: s.reg, PhotoDir: alertPhotoDir(s.cfg), AckWait: s.cfg.NATS.AckWait, AuditDir: auditDir(s.cfg),
		Console: e.stdout, Watchlists: watchlistNames(g), Gallery: cur, EmbeddedMQTT: natsbus.EmbeddedMQTTBroker(s.cfg.NATS, s.cfg.DataDir)})
	if err != nil {
		return err
	}
	defer svc.Close()

	grp, gctx := errgroup.WithContext(ctx)
	grp.Go(func() error { return idx.Run(gctx) })
	grp.Go(func() error { return g.RunPublisher(gctx, matchBus.JS, 0) })
	grp.Go(func() error { return g.RunLifecycle(gctx, s.lifecycle()) })
	grp.Go(func() error { return ms.Run(gctx) })
	if det != nil {
		grp.Go(func() error { return det.Run(gctx) })
		grp.Go(func() error { return cam.Run(gctx) })
	}
	grp.Go(func() error { return s.serveMetrics(gctx) })
	grp.Go(func() error {
		return serveAlert(gctx, svc, alertBus.JS, s.cfg.Alert, s.log, func(url string) {
			ready(len(s.cfg.Cameras), s.bus.URL(), url)
		})
	})
	err = grp.Wait()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = nil
	}
	fmt.Fprintln(e.stdout, "facewatch stopped")
	return err
}

// curatorAPI is the alert service's curator routes over g (the gallery
// this process holds), with the photo commands' detector and embedder,
// loaded on the first upload.
func curatorAPI(e *env, s *stage, g *match.Gallery) *curate.API {
	return curate.New(curate.Options{Gallery: g, Match: s.cfg.Match, MaxPixels: s.cfg.Detect.MaxPixels, Logger: s.log,
		Recognition: func() (enroll.FaceDetector, enroll.FaceEmbedder, func(), error) {
			det, emb, err := recognition(e, s.cfg, "", detect.DefaultStillPolicy())
			if err != nil {
				return nil, nil, nil, err
			}
			return det, emb, func() { det.Close(); emb.Close() }, nil
		}})
}
