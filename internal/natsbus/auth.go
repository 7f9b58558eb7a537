package natsbus

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/facewatch/facewatch/internal/config"
)

// Identities are the nkeys of every role: the seed stays with the process
// that connects as the role, the server knows only the public key.
type Identities map[Role]nkeys.KeyPair

// NewIdentities makes a fresh nkey user for every role.
func NewIdentities() (Identities, error) {
	ids := Identities{}
	for _, r := range Roles() {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, fmt.Errorf("creating nkey for role %s: %w", r, err)
		}
		ids[r] = kp
	}
	return ids, nil
}

// seedFile is where a role's nkey seed is kept in a credentials directory.
func seedFile(dir string, r Role) string { return filepath.Join(dir, string(r)+".nk") }

// credsFile is where a role's JWT credentials are looked for.
func credsFile(dir string, r Role) string { return filepath.Join(dir, string(r)+".creds") }

// WriteIdentities writes each role's seed to dir/<role>.nk, mode 0600 (the
// directory 0700), refusing to overwrite an existing file.
func WriteIdentities(dir string, ids Identities) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating credentials directory: %w", err)
	}
	for _, r := range Roles() {
		kp, ok := ids[r]
		if !ok {
			continue
		}
		seed, err := kp.Seed()
		if err != nil {
			return fmt.Errorf("reading seed of role %s: %w", r, err)
		}
		if err := writeSecret(seedFile(dir, r), append(seed, '\n')); err != nil {
			return err
		}
	}
	return nil
}

// writeSecret creates path with mode 0600; an existing file is an error
// (credentials are never silently replaced).
func writeSecret(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

// LoadIdentities reads every role's seed from dir. A missing file is
// fs.ErrNotExist (wrapped); a file readable by others is refused.
func LoadIdentities(dir string) (Identities, error) {
	ids := Identities{}
	for _, r := range Roles() {
		kp, err := loadSeed(seedFile(dir, r))
		if err != nil {
			return nil, err
		}
		ids[r] = kp
	}
	return ids, nil
}

func loadSeed(path string) (nkeys.KeyPair, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading nats credentials: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("reading nats credentials %s: mode %v lets others read it; chmod 600 it", path, st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading nats credentials: %w", err)
	}
	kp, err := nkeys.FromSeed(bytes.TrimSpace(data))
	if err != nil {
		return nil, fmt.Errorf("reading nats credentials %s: %w", path, err)
	}
	return kp, nil
}

// LoadOrCreateIdentities loads dir's seeds or, when there are none yet,
// creates and writes them (the embedded server's first start).
func LoadOrCreateIdentities(dir string) (Identities, error) {
	ids, err := LoadIdentities(dir)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return ids, err
	}
	if _, serr := os.Stat(seedFile(dir, RoleAdmin)); serr == nil {
		return nil, err // some files exist, some do not: do not paper over it
	}
	if ids, err = NewIdentities(); err != nil {
		return nil, err
	}
	if err := WriteIdentities(dir, ids); err != nil {
		return nil, err
	}
	return ids, nil
}

// HasCredentials reports whether dir holds credentials for role.
func HasCredentials(dir string, role Role) bool {
	for _, p := range []string{seedFile(dir, role), credsFile(dir, role)} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// nkeyOption connects as kp.
func nkeyOption(kp nkeys.KeyPair) (nats.Option, error) {
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("reading nkey: %w", err)
	}
	return nats.Nkey(pub, kp.Sign), nil
}

// roleOptions are the client options that make a connection role's: its
// credentials (from ids, else from credsDir) and its inbox prefix.
func roleOptions(role Role, ids Identities, credsDir string) ([]nats.Option, error) {
	opts := []nats.Option{nats.CustomInboxPrefix(role.InboxPrefix())}
	if kp, ok := ids[role]; ok {
		o, err := nkeyOption(kp)
		if err != nil {
			return nil, err
		}
		return append(opts, o), nil
	}
	if credsDir == "" {
		return nil, fmt.Errorf("no credentials for nats role %s: set nats.creds_dir", role)
	}
	if _, err := os.Stat(seedFile(credsDir, role)); err == nil {
		kp, err := loadSeed(seedFile(credsDir, role))
		if err != nil {
			return nil, err
		}
		o, err := nkeyOption(kp)
		if err != nil {
			return nil, err
		}
		return append(opts, o), nil
	}
	if _, err := os.Stat(credsFile(credsDir, role)); err == nil {
		return append(opts, nats.UserCredentials(credsFile(credsDir, role))), nil
	}
	return nil, fmt.Errorf("no credentials for nats role %s in %s (want %s.nk or %s.creds)", role, credsDir, role, role)
}

// ClientOptions are the options a tool outside the stages (a test, the
// `nats` CLI's equivalent) needs to connect as role with cfg's credentials
// directory and TLS.
func ClientOptions(cfg config.NATS, role Role) ([]nats.Option, error) {
	opts, err := roleOptions(role, nil, cfg.CredsDir)
	if err != nil {
		return nil, err
	}
	tlsOpts, err := clientTLS(cfg.TLS)
	if err != nil {
		return nil, err
	}
	return append(opts, tlsOpts...), nil
}

// clientTLS is the client side of nats.tls.
func clientTLS(t config.TLSFiles) ([]nats.Option, error) {
	if !t.Enabled() {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pool, err := loadCA(t.CAFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading nats.tls certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return []nats.Option{nats.Secure(tc)}, nil
}

// serverTLS is the embedded server's side of nats.tls: its certificate,
// and with a CA file, client certificates required and verified.
func serverTLS(t config.TLSFiles) (*tls.Config, error) {
	if t.CertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading nats.tls certificate: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if t.CAFile != "" {
		pool, err := loadCA(t.CAFile)
		if err != nil {
			return nil, err
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

func loadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading nats.tls.ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("reading nats.tls.ca_file %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// serverPermissions turns a table row into nats-server's form.
func serverPermissions(p Permission) *server.Permissions {
	sp := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: p.Publish, Deny: p.DenyPublish},
		Subscribe: &server.SubjectPermission{Allow: p.Subscribe},
	}
	if p.AllowResponses {
		sp.Response = &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute}
	}
	return sp
}

// serverUsers are the nkey users of ids with their permissions.
func serverUsers(ids Identities, o PermissionOptions) ([]*server.NkeyUser, error) {
	var users []*server.NkeyUser
	for _, p := range Permissions(o) {
		kp, ok := ids[p.Role]
		if !ok {
			continue
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("reading nkey of role %s: %w", p.Role, err)
		}
		users = append(users, &server.NkeyUser{Nkey: pub, Permissions: serverPermissions(p)})
	}
	return users, nil
}

// ServerConfig are the inputs of a nats-server configuration file.
type ServerConfig struct {
	// Listen is host:port for clients.
	Listen string
	// StoreDir is JetStream's store.
	StoreDir string
	// ServerName names the server (JetStream needs one in a cluster).
	ServerName string
	// TLS is the server's TLS (CAFile set: client certificates required).
	TLS config.TLSFiles
	// Identities are the roles' keys (only the public keys are written).
	Identities  Identities
	Permissions PermissionOptions
	// Monitor is the HTTP monitoring address (/healthz, /jsz); "" for none.
	Monitor string
	// MaxFileStore and MaxMemoryStore bound JetStream's storage (nats-server
	// sizes, "20GB"); "" leaves nats-server's default.
	MaxFileStore, MaxMemoryStore string
	// Cluster, when set, makes the server one node of a JetStream cluster.
	Cluster *ClusterRoutes
	// AuthInclude, when set, is the file (relative to this one) that holds
	// the users and permissions (WriteAuthConfig), included instead of
	// written inline: every node of a cluster includes the same file.
	AuthInclude string
}

// ClusterRoutes are a cluster node's routes to the other nodes.
type ClusterRoutes struct {
	// Name is the cluster's name, the same on every node.
	Name string
	// Listen is host:port for routes from the other nodes.
	Listen string
	// Routes are every node's route URL (nats-route://host:port); a node
	// skips its own.
	Routes []string
	// TLS secures the routes: the node's certificate (used both ways) and
	// the CA that must have signed the other nodes'.
	TLS config.TLSFiles
}

// WriteServerConfig renders sc as a nats-server configuration file
// (nats-server -c FILE), with one nkey user per role and the permission
// table (or an include of the file that has them). It holds no secret:
// public keys and file names only.
func WriteServerConfig(sc ServerConfig) ([]byte, error) {
	var b strings.Builder
	q := strconv.Quote
	b.WriteString("# nats-server configuration written by `facewatch nats init`.\n")
	if sc.Cluster != nil {
		b.WriteString("# One node of facewatch's NATS JetStream cluster; the nodes' files differ only\n")
		b.WriteString("# in server_name and their certificate. facewatch's streams and the camera\n")
		b.WriteString("# lease bucket keep nats.replicas: 3 copies, so the cluster serves with any\n")
		b.WriteString("# one node down (docs/deploy.md).\n")
	}
	b.WriteString("# One nkey user per facewatch role, permissions from internal/natsbus/roles.go.\n")
	fmt.Fprintf(&b, "server_name: %s\n", q(sc.ServerName))
	fmt.Fprintf(&b, "listen: %s\n", q(sc.Listen))
	if sc.Monitor != "" {
		b.WriteString("# Monitoring (/healthz, /varz, /jsz) for facewatch doctor and exporters.\n")
		fmt.Fprintf(&b, "http: %s\n", q(sc.Monitor))
	}
	b.WriteString("# One 1080p JPEG frame at quality 90 fits in 1 MB; keep in step with the\n# embedded server (8 MB).\n")
	b.WriteString("max_payload: 8MB\n")
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %s\n", q(sc.StoreDir))
	if sc.MaxFileStore != "" {
		fmt.Fprintf(&b, "  # Track reports wait at most a day, hits and gallery events a week\n  # (internal/natsbus/topology.go): size the disk for a week of hits.\n  max_file_store: %s\n", sc.MaxFileStore)
	}
	if sc.MaxMemoryStore != "" {
		fmt.Fprintf(&b, "  max_memory_store: %s\n", sc.MaxMemoryStore)
	}
	b.WriteString("}\n")
	if sc.TLS.CertFile != "" {
		b.WriteString("# Clients: TLS, and with a CA a client certificate it signed (mutual TLS).\n")
		writeTLS(&b, "", sc.TLS)
	}
	if c := sc.Cluster; c != nil {
		b.WriteString("cluster {\n")
		fmt.Fprintf(&b, "  name: %s\n  listen: %s\n", q(c.Name), q(c.Listen))
		b.WriteString("  # Every node lists all of them; a node skips its own address.\n  routes: [\n")
		for _, r := range c.Routes {
			fmt.Fprintf(&b, "    %s\n", q(r))
		}
		b.WriteString("  ]\n")
		if c.TLS.CertFile != "" {
			b.WriteString("  # Routes: mutual TLS, each node's certificate signed by the site's CA.\n")
			writeTLS(&b, "  ", c.TLS)
		}
		b.WriteString("}\n")
	}
	if sc.AuthInclude != "" {
		b.WriteString("# Users and permissions: the same file on every node.\n")
		fmt.Fprintf(&b, "include %s\n", q(sc.AuthInclude))
		return []byte(b.String()), nil
	}
	auth, err := WriteAuthConfig(sc.Identities, sc.Permissions)
	if err != nil {
		return nil, err
	}
	b.Write(auth)
	return []byte(b.String()), nil
}

// writeTLS writes a tls block, indented by ind.
func writeTLS(b *strings.Builder, ind string, t config.TLSFiles) {
	q := strconv.Quote
	fmt.Fprintf(b, "%stls {\n", ind)
	fmt.Fprintf(b, "%s  cert_file: %s\n%s  key_file: %s\n", ind, q(t.CertFile), ind, q(t.KeyFile))
	if t.CAFile != "" {
		fmt.Fprintf(b, "%s  ca_file: %s\n%s  verify: true\n", ind, q(t.CAFile), ind)
	}
	fmt.Fprintf(b, "%s  timeout: 5\n", ind)
	fmt.Fprintf(b, "%s}\n", ind)
}

// WriteAuthConfig renders the authorization block: one nkey user per role
// of ids with its row of the permission table. Public keys only.
func WriteAuthConfig(ids Identities, o PermissionOptions) ([]byte, error) {
	var b strings.Builder
	b.WriteString("authorization {\n  users: [\n")
	for _, p := range Permissions(o) {
		kp, ok := ids[p.Role]
		if !ok {
			continue
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("reading nkey of role %s: %w", p.Role, err)
		}
		fmt.Fprintf(&b, "    # %s: %s\n", p.Role, p.Purpose)
		fmt.Fprintf(&b, "    { nkey: %s, permissions: {\n", pub)
		fmt.Fprintf(&b, "        publish: { allow: %s", list(p.Publish))
		if len(p.DenyPublish) > 0 {
			fmt.Fprintf(&b, ", deny: %s", list(p.DenyPublish))
		}
		b.WriteString(" }\n")
		fmt.Fprintf(&b, "        subscribe: { allow: %s }\n", list(p.Subscribe))
		if p.AllowResponses {
			b.WriteString("        allow_responses: { max: 1, expires: \"1m\" }\n")
		}
		b.WriteString("    } }\n")
	}
	b.WriteString("  ]\n}\n")
	return []byte(b.String()), nil
}

func list(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// MQTTUser is the user name MQTT clients of the embedded server log in
// with; its password is generated into the credentials directory
// (mqtt.password, 0600) on first start.
const MQTTUser = "facewatch-mqtt"

// MQTTPublisherUser is the user name the alert service's MQTT sink logs in
// to the embedded server with (alert.sinks.mqtt.url empty): it may publish
// under alert.sinks.mqtt.subject_prefix only. Its password is generated
// into the credentials directory (mqtt-publisher.password, 0600) on first
// start.
const MQTTPublisherUser = "facewatch-alert-mqtt"

// mqttPasswordFile and mqttPublisherPasswordFile name the generated
// passwords in the credentials directory.
const (
	mqttPasswordFile          = "mqtt.password"
	mqttPublisherPasswordFile = "mqtt-publisher.password"
)

// mqttPassword loads or creates dir/mqtt.password.
func mqttPassword(dir string) (string, error) {
	return loadOrCreatePassword(dir, mqttPasswordFile)
}

// loadOrCreatePassword loads or creates the password in dir/name.
func loadOrCreatePassword(dir, name string) (string, error) {
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(data)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("reading %s: %w", name, err)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	pw := base64.RawURLEncoding.EncodeToString(raw)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating credentials directory: %w", err)
	}
	if err := writeSecret(path, []byte(pw+"\n")); err != nil {
		return "", err
	}
	return pw, nil
}

// MQTTPassword reads the MQTT password the embedded server generated in
// credsDir.
func MQTTPassword(credsDir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(credsDir, mqttPasswordFile))
	if err != nil {
		return "", fmt.Errorf("reading mqtt password: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}

// MQTTBroker is where an MQTT client connects and as whom.
type MQTTBroker struct {
	// URL is tcp://host:port.
	URL string
	// Username logs in; the password is read from PasswordFile at each
	// connection (the server may create it after the client starts).
	Username     string
	PasswordFile string
}

// EmbeddedMQTTBroker is the embedded server's MQTT listener for cfg (its
// data directory dataDir) as the publisher user: where the alert
// service's MQTT sink publishes when alert.sinks.mqtt.url is empty. It is
// the zero MQTTBroker when cfg has no MQTT listener, or one on a port
// chosen at start (port 0), which a client cannot know.
func EmbeddedMQTTBroker(cfg config.NATS, dataDir string) MQTTBroker {
	h, p, err := net.SplitHostPort(cfg.MQTT.Listen)
	if cfg.URL != "" || err != nil || p == "0" {
		return MQTTBroker{}
	}
	if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
		h = "127.0.0.1" // every interface includes loopback
	}
	dir := cfg.CredsDir
	if dir == "" {
		dir = DefaultCredsDir(dataDir)
	}
	return MQTTBroker{URL: "tcp://" + net.JoinHostPort(h, p), Username: MQTTPublisherUser,
		PasswordFile: filepath.Join(dir, mqttPublisherPasswordFile)}
}

// ClusterSpec describes a JetStream cluster of facewatch's for
// ClusterNodeConfigs: what `facewatch nats init --nodes` writes, and what
// deploy/nats holds for nodes nats1..3.
type ClusterSpec struct {
	// Hosts are the nodes' host names; node i is named after Hosts[i].
	Hosts []string
	// Listen is each node's client address (host:port).
	Listen string
	// RoutePort is the port each node takes routes on.
	RoutePort int
	// StoreDir, Monitor and MaxFileStore are as in ServerConfig.
	StoreDir, Monitor, MaxFileStore string
	// TLS gives a node's TLS files (clients and routes alike).
	TLS func(host string) config.TLSFiles
}

// ClusterAuthFile is the file every node includes for its users.
const ClusterAuthFile = "auth.conf"

// SiteTLSFiles are the TLS files of host as `nats init --make-ca` names
// them under dir: tls/ca.pem, tls/<host>.pem, tls/<host>-key.pem.
func SiteTLSFiles(dir, host string) config.TLSFiles {
	return config.TLSFiles{CAFile: filepath.Join(dir, "tls", "ca.pem"),
		CertFile: filepath.Join(dir, "tls", host+".pem"), KeyFile: filepath.Join(dir, "tls", host+"-key.pem")}
}

// ClusterNodeConfigs renders one nats-server configuration per node: the
// same client listener, JetStream limits and routes to every node, client
// and route TLS (mutual), and the users included from ClusterAuthFile.
func ClusterNodeConfigs(cs ClusterSpec) ([][]byte, error) {
	host, _, err := net.SplitHostPort(cs.Listen)
	if err != nil {
		return nil, fmt.Errorf("cluster listen address %q: %w", cs.Listen, err)
	}
	port := strconv.Itoa(cs.RoutePort)
	var routes []string
	for _, h := range cs.Hosts {
		routes = append(routes, "nats-route://"+net.JoinHostPort(h, port))
	}
	var out [][]byte
	for _, h := range cs.Hosts {
		t := cs.TLS(h)
		text, err := WriteServerConfig(ServerConfig{
			Listen: cs.Listen, StoreDir: cs.StoreDir, ServerName: h, TLS: t, Monitor: cs.Monitor,
			MaxFileStore: cs.MaxFileStore, MaxMemoryStore: "256MB", AuthInclude: ClusterAuthFile,
			Cluster: &ClusterRoutes{Name: "facewatch", Listen: net.JoinHostPort(host, port), Routes: routes, TLS: t},
		})
		if err != nil {
			return nil, err
		}
		out = append(out, text)
	}
	return out, nil
}
