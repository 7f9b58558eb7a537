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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/pipeline"
	"github.com/facewatch/facewatch/models"
)

// stageFlags are the flags every pipeline command takes.
type stageFlags struct {
	config   string
	metrics  string
	token    string // --metrics-token-file
	duration time.Duration
}

// registerStageFlags adds the common flags to fs.
func registerStageFlags(fs *flag.FlagSet) *stageFlags {
	f := &stageFlags{}
	fs.StringVar(&f.config, "config", "", "config `FILE` (required: it names the data directory, cameras and NATS)")
	fs.StringVar(&f.metrics, "metrics", "", "serve Prometheus /metrics on this `ADDRESS` (host:port): loopback only, unless --metrics-token-file is given and alert.tls is set")
	fs.StringVar(&f.token, "metrics-token-file", "", "`FILE` holding the bearer token /metrics requires (at least 16 characters; mode 0600); with it and alert.tls, --metrics may listen beyond loopback, over HTTPS")
	fs.DurationVar(&f.duration, "for", 0, "stop by itself after this long (0: run until interrupted)")
	return f
}

// stage is what every pipeline command sets up: config, logger, metrics,
// the NATS bus.
type stage struct {
	cfg     config.Config
	log     *slog.Logger
	reg     *prometheus.Registry
	pm      *pipeline.Metrics
	bus     *natsbus.Bus
	extra   []*natsbus.Bus // per-stage connections from as
	metrics metricsServer
	cancel  context.CancelFunc
}

// openStage loads the config, bounds ctx by --for and connects to NATS as
// role; the caller defers s.close(). needURL refuses an empty nats.url (a
// single stage needs a server someone else runs).
func (e *env) openStage(ctx context.Context, name string, role natsbus.Role, f *stageFlags, needURL bool) (context.Context, *stage, error) {
	token, err := readMetricsToken(f.token)
	if err != nil {
		return nil, nil, err
	}
	if err := checkMetricsAddr(f.metrics, token != nil); err != nil {
		return nil, nil, err
	}
	if f.config == "" {
		return nil, nil, usageErrorf("--config FILE is required")
	}
	cfg, err := e.loadConfig(f.config)
	if err != nil {
		return nil, nil, err
	}
	log := e.logger(cfg)
	metrics := metricsServer{addr: f.metrics, token: token}
	if err := metrics.useTLS(cfg.Alert.TLS, log); err != nil {
		return nil, nil, err
	}
	if needURL && cfg.NATS.URL == "" {
		return nil, nil, fmt.Errorf("%s: nats.url is empty; a single stage needs an external NATS server (or use `facewatch run`)", name)
	}
	s := &stage{cfg: cfg, log: log, reg: prometheus.NewRegistry(), metrics: metrics}
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
	return s.metrics.serve(ctx, s.reg, s.log)
}

// modelDir is where the dlib models are for this config.
func (s *stage) modelDir(e *env) (models.Dir, error) {
	d, _, err := models.Locate("", s.cfg.ModelDir, e.getenv)
	if err != nil {
		return "", err
	}
	return models.Dir(d), nil
}

// withDuration bounds ctx by d when d > 0.
func withDuration(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

// ignoreCancel turns the end of the command's context (Ctrl-C, --for)
// into success.
func ignoreCancel(ctx context.Context, err error) error {
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return nil
	}
	return err
}
