package main

// Start-up shared by the pipeline commands (run and the single-stage
// commands): common flags, config, logger, metrics, the NATS bus, and the
// stage constructors.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/facewatch/facewatch/camera"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/pipeline"
	"github.com/facewatch/facewatch/internal/track"
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
	fs.StringVar(&f.config, "config", "", "config `FILE` (required: it names the data directory, cameras and NATS)")
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
	if f.config == "" {
		return nil, nil, usageErrorf("--config FILE is required")
	}
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
	s.log.Info("data directory", "component", name, "dir", absPath(cfg.DataDir))
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

// ignoreCancel turns the end of the command's context (Ctrl-C, --for)
// into success.
func ignoreCancel(ctx context.Context, err error) error {
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return nil
	}
	return err
}
