// Package natsbus owns facewatch's connection to NATS: it starts the
// embedded nats-server with JetStream (its store under the data directory)
// or connects to an external cluster, keeps the connection reconnecting,
// declares and creates facewatch's whole JetStream topology (every stream
// and durable consumer, in topology.go, and nowhere else), and stores
// refused messages in the dead-letter stream with their reason. It moves
// bytes; it must not decode or judge the messages themselves (that is
// package wire's job) nor hold any process-wide state.
package natsbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/facewatch/facewatch/internal/config"
)

// Options are what a caller injects into Open.
type Options struct {
	// Name is the client connection name (shown by the server's monitoring).
	Name string
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
	// Registerer receives the dead-letter counter; nil registers nothing.
	Registerer prometheus.Registerer
}

// Bus is one process's NATS connection, with the embedded server when it
// started one.
type Bus struct {
	Conn *nats.Conn
	JS   jetstream.JetStream

	srv *server.Server // nil when connected to an external URL
	url string         // the URL other processes can use (redacted form for external)
	log *slog.Logger

	deadLetters *prometheus.CounterVec
	dlMu        sync.Mutex
	// dlCount is guarded by dlMu: dead letters sent per stage, for tests and
	// status.
	dlCount map[string]int64

	closeOnce sync.Once
}

// Open connects according to cfg.NATS: to cfg.NATS.URL when set, otherwise
// to a freshly started embedded server whose JetStream store lives in
// dataDir/jetstream. The returned Bus must be closed.
func Open(ctx context.Context, cfg config.NATS, dataDir string, opts Options) (*Bus, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log = log.With("component", "natsbus")
	b := &Bus{log: log, dlCount: map[string]int64{}}
	b.deadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "facewatch_dead_letters_total",
		Help: "Messages a stage refused and sent to the dead-letter subject, by stage.",
	}, []string{"stage"})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(b.deadLetters); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("registering nats metrics: %w", err)
			}
			b.deadLetters = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	name := opts.Name
	if name == "" {
		name = "facewatch"
	}
	nopts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", config.RedactError(err))
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("nats reconnected", "url", config.Redact(c.ConnectedUrl()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("nats async error", "subject", subj, "err", config.RedactError(err))
		}),
	}
	var connectURL string
	if cfg.URL == "" {
		srv, err := startServer(ctx, dataDir, cfg.Listen, cfg.MQTT.Listen, log)
		if err != nil {
			return nil, err
		}
		b.srv = srv
		b.url = srv.ClientURL()
		connectURL = srv.ClientURL()
		nopts = append(nopts, nats.InProcessServer(srv))
	} else {
		connectURL = cfg.URL
		b.url = config.Redact(cfg.URL)
		if cfg.CredsFile != "" {
			nopts = append(nopts, nats.UserCredentials(cfg.CredsFile))
		}
	}
	nc, err := connect(ctx, connectURL, nopts)
	if err != nil {
		b.shutdownServer()
		return nil, fmt.Errorf("connecting to nats %s: %s", config.Redact(connectURL), config.RedactError(err))
	}
	b.Conn = nc
	js, err := jetstream.New(nc)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("opening jetstream: %w", err)
	}
	b.JS = js
	log.Info("nats connected", "url", config.Redact(nc.ConnectedUrl()), "embedded", b.srv != nil)
	return b, nil
}

// connect dials, retrying until ctx ends, so that a stage started before
// its NATS server comes up waits for it.
func connect(ctx context.Context, url string, opts []nats.Option) (*nats.Conn, error) {
	wait := 100 * time.Millisecond
	for {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			return nc, nil
		}
		if !errors.Is(err, nats.ErrNoServers) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// StartServer starts an embedded nats-server with JetStream storing under
// dataDir/jetstream, listening on listen (host:port; port 0 picks a free
// one) or, when empty, on a random loopback port. The caller shuts it down.
func StartServer(ctx context.Context, dataDir, listen string, log *slog.Logger) (*server.Server, error) {
	return startServer(ctx, dataDir, listen, "", log)
}

// startServer is StartServer with an MQTT 3.1.1 listener on mqttListen
// (nats.mqtt.listen; empty is none, an empty host is loopback). MQTT
// needs JetStream, which is on, and a server name, which is set.
func startServer(ctx context.Context, dataDir, listen, mqttListen string, log *slog.Logger) (*server.Server, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	host, port := "127.0.0.1", -1
	if listen != "" {
		h, p, err := net.SplitHostPort(listen)
		if err != nil {
			return nil, fmt.Errorf("parsing nats.listen %q: %w", listen, err)
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 65535 {
			return nil, fmt.Errorf("parsing nats.listen %q: port %q is not a number", listen, p)
		}
		host, port = h, n
		if port == 0 {
			port = -1 // nats-server's "any free port"; 0 would mean 4222
		}
		if host == "" {
			host = "0.0.0.0"
		}
	}
	store := filepath.Join(dataDir, "jetstream")
	if err := os.MkdirAll(store, 0o750); err != nil {
		return nil, fmt.Errorf("creating jetstream store: %w", err)
	}
	sopts := &server.Options{
		ServerName: "facewatch",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   store,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: 8 << 20,
	}
	if mqttListen != "" {
		h, p, err := net.SplitHostPort(mqttListen)
		n, perr := strconv.Atoi(p)
		if err != nil || perr != nil || n < 0 || n > 65535 {
			return nil, fmt.Errorf("parsing nats.mqtt.listen %q: want host:port", mqttListen)
		}
		if h == "" {
			h = "127.0.0.1"
		}
		if n == 0 {
			n = -1 // any free port
		}
		sopts.MQTT = server.MQTTOpts{Host: h, Port: n}
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("configuring embedded nats server: %w", err)
	}
	go srv.Start()
	deadline := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		deadline = min(deadline, time.Until(d))
	}
	if !srv.ReadyForConnections(deadline) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("embedded nats server on %s:%d (mqtt %q) did not start within %v", host, port, mqttListen, deadline)
	}
	log.Info("embedded nats server started", "url", srv.ClientURL(), "store", store)
	if mqttListen != "" {
		log.Info("embedded nats server accepts MQTT clients", "listen", net.JoinHostPort(sopts.MQTT.Host, strconv.Itoa(max(sopts.MQTT.Port, 0))))
	}
	return srv, nil
}

// URL is the client URL of the embedded server, or the redacted external
// URL.
func (b *Bus) URL() string { return b.url }

// Embedded reports whether this Bus runs its own server.
func (b *Bus) Embedded() bool { return b.srv != nil }

// Close drains the connection and shuts the embedded server down.
func (b *Bus) Close() {
	b.closeOnce.Do(func() {
		if b.Conn != nil {
			// Drain flushes what we published; bound it so that a dead
			// server cannot hold shutdown.
			done := make(chan struct{})
			b.Conn.SetClosedHandler(func(*nats.Conn) { close(done) })
			if err := b.Conn.Drain(); err != nil {
				b.Conn.Close()
			} else {
				select {
				case <-done:
				case <-time.After(3 * time.Second):
					b.Conn.Close()
				}
			}
		}
		b.shutdownServer()
	})
}

func (b *Bus) shutdownServer() {
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
}

// EnsureStream creates the stream described by cfg or updates it to cfg.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("creating stream %s: %w", cfg.Name, err)
	}
	return s, nil
}
