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
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	// Role is the identity the connection uses (its credentials from
	// nats.creds_dir, or the embedded server's own keys). Empty is
	// RoleAdmin with the embedded server, and with an external one the
	// single nats.creds_file (or none).
	Role Role
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
	// Registerer receives the dead-letter counter; nil registers nothing.
	Registerer prometheus.Registerer
	// PermissionOptions are the config values the embedded server's
	// permission table depends on.
	PermissionOptions PermissionOptions
}

// Bus is one process's NATS connection, with the embedded server when it
// started one.
type Bus struct {
	Conn *nats.Conn
	JS   jetstream.JetStream

	srv      *server.Server // the server this Bus started and shuts down
	embedded *server.Server // the embedded server of the Bus this one came from (As)
	role     Role
	ids      Identities // the embedded server's role keys (nil for external)
	cfg      config.NATS
	url      string // the URL other processes can use (redacted form for external)
	log      *slog.Logger
	reg      prometheus.Registerer

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
//
// The embedded server always authenticates: each role has an nkey (kept in
// memory, or, when the server listens for other processes, in
// nats.creds_dir, by default dataDir/nats/creds, written 0600 on first
// start) and the permissions of roles.go. It listens on nothing but the
// process itself unless nats.listen is set, and refuses a non-loopback
// nats.listen without nats.tls.
func Open(ctx context.Context, cfg config.NATS, dataDir string, opts Options) (*Bus, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log = log.With("component", "natsbus")
	b := &Bus{log: log, dlCount: map[string]int64{}, cfg: cfg, reg: opts.Registerer}
	if cfg.URL == "" {
		if cfg.CredsDir == "" {
			cfg.CredsDir = DefaultCredsDir(dataDir)
			b.cfg.CredsDir = cfg.CredsDir
		}
		srv, ids, err := startServer(ctx, dataDir, cfg, opts.PermissionOptions, log)
		if err != nil {
			return nil, err
		}
		b.srv, b.ids = srv, ids
		if cfg.Listen != "" {
			b.url = srv.ClientURL()
		} else {
			b.url = "in-process"
		}
		if opts.Role == "" {
			opts.Role = RoleAdmin
		}
	} else {
		b.url = config.Redact(cfg.URL)
	}
	if err := b.connect(ctx, opts.Role, opts.Name); err != nil {
		b.shutdownServer()
		return nil, err
	}
	return b, nil
}

// DefaultCredsDir is where the embedded server keeps its roles' keys when
// nats.creds_dir is not set.
func DefaultCredsDir(dataDir string) string { return filepath.Join(dataDir, "nats", "creds") }

// As opens another connection to the same NATS server under role's
// identity, for a stage of this process: `facewatch run` gives each of its
// stages its own. Closing it leaves the server (and b) running.
func (b *Bus) As(ctx context.Context, role Role, name string) (*Bus, error) {
	nb := &Bus{log: b.log, dlCount: map[string]int64{}, cfg: b.cfg, ids: b.ids, url: b.url, reg: b.reg}
	nb.embedded = b.server()
	if err := nb.connect(ctx, role, name); err != nil {
		return nil, err
	}
	return nb, nil
}

// connect dials the server as role and opens JetStream.
func (b *Bus) connect(ctx context.Context, role Role, name string) error {
	log := b.log
	b.role = role
	b.deadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "facewatch_dead_letters_total",
		Help: "Messages a stage refused and sent to the dead-letter subject, by stage.",
	}, []string{"stage"})
	if b.reg != nil {
		if err := b.reg.Register(b.deadLetters); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return fmt.Errorf("registering nats metrics: %w", err)
			}
			b.deadLetters = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
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
			log.Warn("nats async error", "role", string(role), "subject", subj, "err", config.RedactError(err))
		}),
	}
	srv := b.server()
	var connectURL string
	switch {
	case srv != nil:
		// In-process connections never cross a wire: the server does not
		// require TLS of them, and a tls:// URL would make the client
		// insist on it.
		connectURL = "nats://" + strings.TrimPrefix(strings.TrimPrefix(srv.ClientURL(), "tls://"), "nats://")
		ro, err := roleOptions(role, b.ids, "")
		if err != nil {
			return err
		}
		nopts = append(nopts, nats.InProcessServer(srv))
		nopts = append(nopts, ro...)
	default:
		connectURL = b.cfg.URL
		switch {
		case b.cfg.CredsDir != "":
			if role == "" {
				return errors.New("connecting to nats: nats.creds_dir is set but no role was chosen")
			}
			ro, err := roleOptions(role, nil, b.cfg.CredsDir)
			if err != nil {
				return err
			}
			nopts = append(nopts, ro...)
		case b.cfg.CredsFile != "":
			nopts = append(nopts, nats.UserCredentials(b.cfg.CredsFile))
		}
		if role != "" && b.cfg.CredsDir == "" {
			nopts = append(nopts, nats.CustomInboxPrefix(role.InboxPrefix()))
		}
		to, err := clientTLS(b.cfg.TLS)
		if err != nil {
			return err
		}
		nopts = append(nopts, to...)
	}
	nc, err := connect(ctx, connectURL, nopts)
	if err != nil {
		return fmt.Errorf("connecting to nats %s as %s: %s", config.Redact(connectURL), roleName(role), config.RedactError(err))
	}
	b.Conn = nc
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return fmt.Errorf("opening jetstream: %w", err)
	}
	b.JS = js
	log.Info("nats connected", "url", config.Redact(nc.ConnectedUrl()), "embedded", srv != nil, "role", string(role))
	return nil
}

func roleName(r Role) string {
	if r == "" {
		return "the configured user"
	}
	return "role " + string(r)
}

// server is the embedded server this Bus (or the Bus it came from) runs.
func (b *Bus) server() *server.Server {
	if b.srv != nil {
		return b.srv
	}
	return b.embedded
}

// Role is the identity this Bus connected as ("" for an external server
// without nats.creds_dir).
func (b *Bus) Role() Role { return b.role }

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
// one; a non-loopback host is refused, as it has no TLS here). Clients
// authenticate with the roles' nkeys, written to DefaultCredsDir(dataDir)
// on first start (load them with ClientOptions). The caller shuts it down.
func StartServer(ctx context.Context, dataDir, listen string, log *slog.Logger) (*server.Server, error) {
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	srv, _, err := startServer(ctx, dataDir, config.NATS{Listen: listen, CredsDir: DefaultCredsDir(dataDir)}, PermissionOptions{AlertSubjectPrefix: config.Defaults().Alert.Sinks.MQTT.SubjectPrefix}, log)
	return srv, err
}

// parseListen splits host:port for the embedded server; port 0 is "any free
// port".
func parseListen(key, listen string) (string, int, error) {
	h, p, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("parsing %s %q: %w", key, listen, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("parsing %s %q: port %q is not a number", key, listen, p)
	}
	if n == 0 {
		n = -1 // nats-server's "any free port"; 0 would mean the default
	}
	return h, n, nil
}

// startServer starts the embedded server for cfg: nkey users for every
// role (and the MQTT user when nats.mqtt.listen is set), TLS from
// cfg.TLS, listening only where cfg says.
func startServer(ctx context.Context, dataDir string, cfg config.NATS, po PermissionOptions, log *slog.Logger) (*server.Server, Identities, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := cfg.CheckListen(); err != nil {
		return nil, nil, err
	}
	listening := cfg.Listen != "" || cfg.MQTT.Listen != ""
	var ids Identities
	var err error
	if listening {
		// Other processes need the keys: keep them in the credentials
		// directory (0600), the same across restarts.
		ids, err = LoadOrCreateIdentities(cfg.CredsDir)
	} else {
		ids, err = NewIdentities()
	}
	if err != nil {
		return nil, nil, err
	}
	users, err := serverUsers(ids, po)
	if err != nil {
		return nil, nil, err
	}
	store := filepath.Join(dataDir, "jetstream")
	if err := os.MkdirAll(store, 0o750); err != nil {
		return nil, nil, fmt.Errorf("creating jetstream store: %w", err)
	}
	sopts := &server.Options{
		ServerName: "facewatch",
		Host:       "127.0.0.1",
		Port:       -1,
		DontListen: cfg.Listen == "",
		JetStream:  true,
		StoreDir:   store,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: 8 << 20,
		Nkeys:      users,
	}
	if cfg.Listen != "" {
		h, p, err := parseListen("nats.listen", cfg.Listen)
		if err != nil {
			return nil, nil, err
		}
		if h == "" {
			h = "0.0.0.0"
		}
		sopts.Host, sopts.Port = h, p
	}
	tc, err := serverTLS(cfg.TLS)
	if err != nil {
		return nil, nil, err
	}
	if tc != nil {
		sopts.TLSConfig = tc
		sopts.TLS = true
		sopts.TLSVerify = tc.ClientAuth == tls.RequireAndVerifyClientCert
		sopts.TLSTimeout = 5
	}
	if cfg.MQTT.Listen != "" {
		h, n, err := parseListen("nats.mqtt.listen", cfg.MQTT.Listen)
		if err != nil {
			return nil, nil, fmt.Errorf("parsing nats.mqtt.listen %q: want host:port", cfg.MQTT.Listen)
		}
		if h == "" {
			h = "127.0.0.1"
		}
		pw, err := mqttPassword(cfg.CredsDir)
		if err != nil {
			return nil, nil, err
		}
		sopts.MQTT = server.MQTTOpts{Host: h, Port: n, TLSConfig: tc}
		sopts.Users = []*server.User{mqttUser(pw, po)}
		if po.AlertSubjectPrefix != "" {
			ppw, err := loadOrCreatePassword(cfg.CredsDir, mqttPublisherPasswordFile)
			if err != nil {
				return nil, nil, err
			}
			sopts.Users = append(sopts.Users, mqttPublisher(ppw, po))
		}
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, nil, fmt.Errorf("configuring embedded nats server: %w", err)
	}
	go srv.Start()
	deadline := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		deadline = min(deadline, time.Until(d))
	}
	if !srv.ReadyForConnections(deadline) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, nil, fmt.Errorf("embedded nats server (listen %q, mqtt %q) did not start within %v", cfg.Listen, cfg.MQTT.Listen, deadline)
	}
	if cfg.Listen != "" {
		log.Info("embedded nats server started", "url", srv.ClientURL(), "store", store, "tls", tc != nil, "creds_dir", cfg.CredsDir)
	} else {
		log.Info("embedded nats server started (in-process only)", "store", store)
	}
	if cfg.MQTT.Listen != "" {
		log.Info("embedded nats server accepts MQTT clients", "listen", net.JoinHostPort(sopts.MQTT.Host, strconv.Itoa(max(sopts.MQTT.Port, 0))), "user", MQTTUser)
	}
	return srv, ids, nil
}

// mqttUser is the password user MQTT clients log in as: it may subscribe
// to the alert subjects and publish nothing.
func mqttUser(password string, po PermissionOptions) *server.User {
	sub := []string{"$MQTT.sub.>"}
	if po.AlertSubjectPrefix != "" {
		// An MQTT "prefix/#" filter subscribes to the prefix itself too.
		sub = append(sub, po.AlertSubjectPrefix, po.AlertSubjectPrefix+".>")
	}
	return &server.User{Username: MQTTUser, Password: password, Permissions: &server.Permissions{
		Publish:   &server.SubjectPermission{Deny: []string{">"}},
		Subscribe: &server.SubjectPermission{Allow: sub},
	}}
}

// mqttPublisher is the password user the alert service's MQTT sink logs
// in as: it may publish under the alert prefix only, and subscribe to
// nothing. A QoS 1 publish it may not make is still acknowledged by the
// server (and dropped), so this row and the sink's topics must agree.
func mqttPublisher(password string, po PermissionOptions) *server.User {
	return &server.User{Username: MQTTPublisherUser, Password: password, Permissions: &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{po.AlertSubjectPrefix, po.AlertSubjectPrefix + ".>"}},
		Subscribe: &server.SubjectPermission{Deny: []string{">"}},
	}}
}

// URL is the client URL of the embedded server, or the redacted external
// URL.
func (b *Bus) URL() string { return b.url }

// Embedded reports whether this Bus talks to an embedded server.
func (b *Bus) Embedded() bool { return b.server() != nil }

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
