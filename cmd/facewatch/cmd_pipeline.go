package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/facewatch/facewatch/alert"
	"github.com/facewatch/facewatch/camera"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/pipeline"
	"github.com/facewatch/facewatch/internal/track"
	"github.com/facewatch/facewatch/internal/wire"
	"github.com/facewatch/facewatch/match"
	"github.com/facewatch/facewatch/models"
)

// stageFlags are the flags every pipeline command takes.
type stageFlags struct {
	config   string
	metrics  string
	duration time.Duration
}

// registerStageFlags adds the common flags to fs.
func registerStageFlags(fs *flag.FlagSet) *stageFlags {
	f := &stageFlags{}
	fs.StringVar(&f.config, "config", "", "config file")
	fs.StringVar(&f.metrics, "metrics", "", "serve Prometheus /metrics on this address (host:port)")
	fs.DurationVar(&f.duration, "for", 0, "stop by itself after this long (0: run until interrupted)")
	return f
}

// stage is what every pipeline command sets up: config, logger, metrics,
// the NATS bus.
type stage struct {
	cfg         config.Config
	log         *slog.Logger
	reg         *prometheus.Registry
	pm          *pipeline.Metrics
	bus         *natsbus.Bus
	metricsAddr string
	cancel      context.CancelFunc
}

// openStage loads the config, bounds ctx by --for and connects to NATS; the
// caller defers s.close(). needURL refuses an empty nats.url (a single stage
// needs a server someone else runs).
func (e *env) openStage(ctx context.Context, name string, f *stageFlags, needURL bool) (context.Context, *stage, error) {
	cfg, err := e.loadConfig(f.config)
	if err != nil {
		return nil, nil, err
	}
	if needURL && cfg.NATS.URL == "" {
		return nil, nil, fmt.Errorf("%s: nats.url is empty; a single stage needs an external NATS server (or use `facewatch run`)", name)
	}
	s := &stage{cfg: cfg, log: e.logger(cfg), reg: prometheus.NewRegistry(), metricsAddr: f.metrics}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if s.pm, err = pipeline.NewMetrics(s.reg); err != nil {
		return nil, nil, err
	}
	ctx, s.cancel = withDuration(ctx, f.duration)
	s.bus, err = natsbus.Open(ctx, cfg.NATS, cfg.DataDir, natsbus.Options{Name: "facewatch-" + name, Logger: s.log, Registerer: s.reg})
	if err != nil {
		s.cancel()
		return nil, nil, err
	}
	return ctx, s, nil
}

// close disconnects from NATS (stopping an embedded server) and releases
// the --for timer.
func (s *stage) close() {
	s.bus.Close()
	s.cancel()
}

// serveMetrics serves the stage's registry on --metrics until ctx ends.
func (s *stage) serveMetrics(ctx context.Context) error {
	return serveMetrics(ctx, s.metricsAddr, s.reg, s.log)
}

// modelDir is where the dlib models are for this config.
func (s *stage) modelDir(e *env) (models.Dir, error) {
	d, _, err := models.Locate("", s.cfg.ModelDir, e.getenv)
	if err != nil {
		return "", err
	}
	return models.Dir(d), nil
}

// serveMetrics serves /metrics on addr until ctx ends (nothing when addr is
// empty).
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("metrics listening", "url", "http://"+ln.Addr().String()+"/metrics")
	go func() { // ends when ctx does
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving metrics: %w", err)
	}
	return nil
}

// withDuration bounds ctx by d when d > 0.
func withDuration(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

// trackConfig is the tracker's configuration for the configured cameras:
// a track ends after a gap of several frame intervals of the slowest
// camera.
func trackConfig(cfg config.Config) track.Config {
	tc := track.DefaultConfig()
	for _, c := range cfg.Cameras {
		if c.MaxFPS > 0 {
			tc.MaxGap = max(tc.MaxGap, time.Duration(5*float64(time.Second)/c.MaxFPS))
		}
	}
	return tc
}

// matchParts opens the gallery and its index for a match stage.
func (s *stage) matchParts(ctx context.Context) (*match.Gallery, *match.Index, error) {
	g, err := match.OpenGallery(ctx, s.cfg.DataDir, match.GalleryOptions{Logger: s.log})
	if err != nil {
		return nil, nil, err
	}
	idx := match.NewIndex(s.cfg.Match, match.IndexOptions{Gallery: g, JetStream: s.bus.JS, Replicas: s.cfg.NATS.Replicas, Logger: s.log})
	return g, idx, nil
}

func (s *stage) newMatchStage(g *match.Gallery, idx *match.Index) (*pipeline.MatchStage, error) {
	return pipeline.NewMatchStage(pipeline.MatchOptions{
		Bus: s.bus, Decider: idx, Ready: idx.Ready(), Photos: g, AckWait: s.cfg.NATS.AckWait,
		Replicas: s.cfg.NATS.Replicas, Logger: s.log, Metrics: s.pm,
	})
}

func (s *stage) newDetectStage(e *env, local <-chan pipeline.Frame, cameras []string) (*pipeline.DetectStage, error) {
	dir, err := s.modelDir(e)
	if err != nil {
		return nil, err
	}
	return pipeline.NewDetectStage(pipeline.DetectOptions{
		Bus: s.bus, Models: dir, Detect: s.cfg.Detect, Embed: s.cfg.Embed, Track: trackConfig(s.cfg),
		Local: local, Cameras: cameras, Replicas: s.cfg.NATS.Replicas, Logger: s.log, Metrics: s.pm,
	})
}

func (s *stage) newCameraStage(local chan<- pipeline.Frame) (*pipeline.CameraStage, error) {
	cm, err := camera.NewMetrics(s.reg)
	if err != nil {
		return nil, err
	}
	return pipeline.NewCameraStage(pipeline.CameraOptions{Bus: s.bus, Cameras: s.cfg.Cameras, Local: local, Logger: s.log, CameraMetrics: cm, Metrics: s.pm})
}

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
		if cam, err = s.newCameraStage(frames); err != nil {
			return err
		}
	}
	svc, err := alert.Open(ctx, s.cfg.DataDir, s.cfg.Alert, alert.Options{Logger: s.log, Registry: s.reg, PhotoDir: alertPhotoDir(s.cfg), AckWait: s.cfg.NATS.AckWait})
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
	grp.Go(func() error { return printAlerts(gctx, js, e.stdout, s.log) })
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

// printAlerts prints each hit stored in the hits stream from now on, one
// line each, until ctx ends. The ordered consumer sees a hit once however
// often it was published.
func printAlerts(ctx context.Context, js jetstream.JetStream, w io.Writer, log *slog.Logger) error {
	cons, err := js.OrderedConsumer(ctx, wire.HitsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{wire.HitsWildcard},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return fmt.Errorf("following alerts: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("following alerts: %w", err)
	}
	defer it.Stop()
	var mu sync.Mutex
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return fmt.Errorf("following alerts: %w", err)
			}
			log.Warn("following alerts", "err", err)
			continue
		}
		h, _, err := wire.DecodeHit(msg.Data())
		if err != nil {
			continue // the alert service dead-letters it
		}
		mu.Lock()
		fmt.Fprintln(w, formatAlert(h))
		mu.Unlock()
	}
}

func formatAlert(h wire.Hit) string {
	name := h.IdentityName
	if name == "" {
		name = h.Identity
	}
	return fmt.Sprintf("ALERT %s camera=%s identity=%q watchlist=%s distance=%.3f threshold=%.3f track=%d id=%s",
		h.Time.UTC().Format("15:04:05.000"), h.Camera, name, h.Watchlist, h.Distance, h.Threshold, h.Track, h.ID)
}

// cmdCameraStage runs the camera stage alone: it publishes JPEG frames and
// camera health to NATS for detect stages elsewhere.
func cmdCameraStage(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "camera", "camera --config FILE | camera probe URL")
	f := registerStageFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ctx, s, err := e.openStage(ctx, "camera", f, true)
	if err != nil {
		return err
	}
	defer s.close()
	cam, err := s.newCameraStage(nil)
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
	ctx, s, err := e.openStage(ctx, name, f, true)
	if err != nil {
		return err
	}
	defer s.close()
	det, err := s.newDetectStage(e, nil, only)
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
	ctx, s, err := e.openStage(ctx, "match", f, true)
	if err != nil {
		return err
	}
	defer s.close()
	g, idx, err := s.matchParts(ctx)
	if err != nil {
		return err
	}
	defer g.Close()
	ms, err := s.newMatchStage(g, idx)
	if err != nil {
		return err
	}
	grp, gctx := errgroup.WithContext(ctx)
	grp.Go(func() error { return idx.Run(gctx) })
	grp.Go(func() error { return g.RunPublisher(gctx, s.bus.JS, 0) })
	grp.Go(func() error { return ms.Run(gctx) })
	grp.Go(func() error { return s.serveMetrics(gctx) })
	return ignoreCancel(ctx, grp.Wait())
}

func ignoreCancel(ctx context.Context, err error) error {
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return nil
	}
	return err
}
