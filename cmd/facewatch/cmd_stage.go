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
	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/internal/audit"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/httpserve"
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
	fs.StringVar(&f.metrics, "metrics", "", "serve Prometheus /metrics without a token on this loopback address (127.0.0.1:port); other hosts scrape the alert API's /metrics with a token")
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
	extra       []*natsbus.Bus // per-stage connections from as
	metricsAddr string
	cancel      context.CancelFunc
}

// openStage loads the config, bounds ctx by --for and connects to NATS as
// role; the caller defers s.close(). needURL refuses an empty nats.url (a
// single stage needs a server someone else runs).
func (e *env) openStage(ctx context.Context, name string, role natsbus.Role, f *stageFlags, needURL bool) (context.Context, *stage, error) {
	if err := checkMetricsAddr(f.metrics); err != nil {
		return nil, nil, err
	}
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
	if role == "" && cfg.NATS.URL != "" && cfg.NATS.CredsDir != "" {
		// `run` against an external cluster: admin when this host holds
		// the admin credentials, else the matcher (run always matches).
		role = natsbus.RoleMatch
		if natsbus.HasCredentials(cfg.NATS.CredsDir, natsbus.RoleAdmin) {
			role = natsbus.RoleAdmin
		}
	}
	ctx, s.cancel = withDuration(ctx, f.duration)
	s.log.Info("data directory", "component", name, "dir", absPath(cfg.DataDir))
	s.bus, err = natsbus.Open(ctx, cfg.NATS, cfg.DataDir, natsbus.Options{Name: "facewatch-" + name, Role: role, Logger: s.log, Registerer: s.reg,
		PermissionOptions: permissionOptions(cfg)})
	if err != nil {
		s.cancel()
		return nil, nil, err
	}
	return ctx, s, nil
}

// permissionOptions are the config values the NATS permission table
// depends on.
func permissionOptions(cfg config.Config) natsbus.PermissionOptions {
	return natsbus.PermissionOptions{AlertSubjectPrefix: cfg.Alert.Sinks.MQTT.SubjectPrefix}
}

// as is a connection for one stage of this process under role's identity:
// the stage's own connection, closed with the stage (s.close). A process
// whose bus already is that role shares it.
func (s *stage) as(ctx context.Context, role natsbus.Role) (*natsbus.Bus, error) {
	if s.bus.Role() == role {
		return s.bus, nil
	}
	b, err := s.bus.As(ctx, role, "facewatch-"+string(role))
	if err != nil {
		return nil, err
	}
	s.extra = append(s.extra, b)
	return b, nil
}

// close disconnects from NATS (the stages' connections first, then the
// one that may run the embedded server) and releases the --for timer.
func (s *stage) close() {
	for _, b := range s.extra {
		b.Close()
	}
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
// empty). It serves without a token, so addr must be a loopback address
// (checkMetricsAddr); the alert API's /metrics is the one for other hosts.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	if err := checkMetricsAddr(addr); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv, err := httpserve.Listen(addr, mux, httpserve.Limits{MaxConns: 16})
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	log.Info("metrics listening", "url", "http://"+srv.Addr().String()+"/metrics")
	if err := srv.Serve(ctx, time.Second); err != nil {
		return fmt.Errorf("serving metrics: %w", err)
	}
	return nil
}

// checkMetricsAddr refuses a --metrics address that is not loopback: the
// stage's own metrics server has no token database to check a caller
// against, so it must not be reachable from other hosts.
func checkMetricsAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usageErrorf("--metrics %q: want host:port: %v", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return usageErrorf("--metrics %q: serves without a token, so it listens on loopback only (127.0.0.1:PORT or [::1]:PORT); scrape the alert API's /metrics with an integrator token from other hosts", addr)
}

// withDuration bounds ctx by d when d > 0.
func withDuration(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

// trackConfig is the tracker's configuration from the detect section and
// the configured cameras: a track ends after detect.track_gap, or several
// frame intervals of the slowest camera if longer.
func trackConfig(cfg config.Config) track.Config {
	tc := track.DefaultConfig()
	tc.MaxGap = cfg.Detect.TrackGap
	tc.GoodQuality, tc.GoodSide = cfg.Detect.EarlyQuality, cfg.Detect.EarlyFaceSize
	for _, c := range cfg.Cameras {
		if c.MaxFPS > 0 {
			tc.MaxGap = max(tc.MaxGap, time.Duration(5*float64(time.Second)/c.MaxFPS))
		}
	}
	return tc
}

// lifecycle is how the running matcher purges expired gallery entries.
func (s *stage) lifecycle() match.LifecycleOptions {
	return match.LifecycleOptions{Grace: s.cfg.Match.PurgeGrace, Interval: s.cfg.Match.PurgeInterval,
		Actor: "lifecycle sweep", AuditDetailRetention: s.cfg.Match.AuditDetailRetention}
}

// matchParts opens the gallery and its index for a match stage.
func (s *stage) matchParts(ctx context.Context, bus *natsbus.Bus) (*match.Gallery, *match.Index, error) {
	// The gallery's audit keys: the lifecycle sweep's purges are audited
	// in their own transactions, as the system.
	keys, err := auditKeys(s.cfg)
	if err != nil {
		return nil, nil, err
	}
	g, err := match.OpenGallery(ctx, s.cfg.DataDir, match.GalleryOptions{Logger: s.log, Audit: keys,
		Actor: audit.Actor{ID: "system:lifecycle", Name: "lifecycle sweep", Role: "system"}})
	if err != nil {
		return nil, nil, err
	}
	idx := match.NewIndex(s.cfg.Match, match.IndexOptions{Gallery: g, JetStream: bus.JS, Replicas: s.cfg.NATS.Replicas, Logger: s.log})
	return g, idx, nil
}

func (s *stage) newMatchStage(bus *natsbus.Bus, g *match.Gallery, idx *match.Index) (*pipeline.MatchStage, error) {
	return pipeline.NewMatchStage(pipeline.MatchOptions{
		Bus: bus, Decider: idx, Ready: idx.Ready(), Photos: g, AckWait: s.cfg.NATS.AckWait,
		Topology: natsbus.TopologyOf(s.cfg), Logger: s.log, Metrics: s.pm,
	})
}

func (s *stage) newDetectStage(e *env, bus *natsbus.Bus, local <-chan pipeline.Frame, leases *pipeline.Leases) (*pipeline.DetectStage, error) {
	dir, err := s.modelDir(e)
	if err != nil {
		return nil, err
	}
	return pipeline.NewDetectStage(pipeline.DetectOptions{
		Bus: bus, Models: dir, Detect: s.cfg.Detect, Embed: s.cfg.Embed, Track: trackConfig(s.cfg),
		Local: local, Leases: leases, Topology: natsbus.TopologyOf(s.cfg), CropTTL: s.cfg.Alert.UnmatchedRetention, Logger: s.log, Metrics: s.pm,
		Faces: cameraFaces(s.cfg),
	})
}

// cameraFaces is each configured camera's face size range.
func cameraFaces(cfg config.Config) map[string]detect.FaceRange {
	out := make(map[string]detect.FaceRange, len(cfg.Cameras))
	for _, c := range cfg.Cameras {
		lo, hi := c.Faces(cfg.Detect)
		out[c.ID] = detect.FaceRange{Min: lo, Max: hi}
	}
	return out
}

func (s *stage) newCameraStage(bus *natsbus.Bus, local chan<- pipeline.Frame, leases *pipeline.Leases) (*pipeline.CameraStage, error) {
	cm, err := camera.NewMetrics(s.reg)
	if err != nil {
		return nil, err
	}
	return pipeline.NewCameraStage(pipeline.CameraOptions{Bus: bus, Cameras: s.cfg.Cameras, Local: local, Leases: leases, Logger: s.log, CameraMetrics: cm, Metrics: s.pm})
}

// ignoreCancel turns the end of the command's context (Ctrl-C, --for)
// into success.
func ignoreCancel(ctx context.Context, err error) error {
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return nil
	}
	return err
}
