package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/wire"
)

// cmdNATS writes a site's nats-server configuration and role credentials
// (init), or creates the topology on an external server as the admin
// identity (setup).
func cmdNATS(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageErrorf("want a subcommand: init or setup (see `facewatch nats -h`)")
	}
	if isHelp(args[0]) {
		fmt.Fprintln(e.stderr, "usage: facewatch nats VERB [flags]")
		fmt.Fprintln(e.stderr, "\nverbs:\n  init    write a site's nats-server config and one credentials file per role\n  setup   create the streams and the camera lease bucket as the admin identity")
		fmt.Fprintln(e.stderr, "\nRun `facewatch nats VERB -h` for a verb's flags.")
		return flag.ErrHelp
	}
	switch args[0] {
	case "init":
		return natsInit(e, args[1:])
	case "setup":
		return natsSetup(ctx, e, args[1:])
	default:
		return usageErrorf("unknown subcommand %q: want init or setup", args[0])
	}
}

func natsInit(e *env, args []string) error {
	fs := newFlagSet(e, "nats init", "nats init --dir DIR [--listen HOST:PORT] [--store DIR] [--tls-cert F --tls-key F [--tls-ca F]] [--nodes HOST,HOST,HOST [--make-ca] [--clients NAME,...] [--route-port N] [--conf-dir DIR]] [--config FILE]")
	dir := fs.String("dir", "", "`DIR` to write the nats-server config(s), creds/<role>.nk and (--make-ca) tls/ into (required)")
	listen := fs.String("listen", "0.0.0.0:4222", "client address of the nats-server (not loopback: TLS required)")
	store := fs.String("store", "", "JetStream store directory (default DIR/jetstream; with --nodes /var/lib/nats/jetstream)")
	name := fs.String("name", "facewatch-nats", "server name (with --nodes each node is named after its host)")
	cert := fs.String("tls-cert", "", "server certificate (PEM); with --nodes every node's, for clients and routes, naming every node")
	key := fs.String("tls-key", "", "server key (PEM)")
	ca := fs.String("tls-ca", "", "CA that signs client certificates (PEM): clients must present one (mutual TLS); with --nodes it also signs the routes'")
	nodes := fs.String("nodes", "", "a cluster: the nodes' host names, comma-separated (3 or more); writes one nodeN.conf per node and auth.conf they all include")
	makeCA := fs.Bool("make-ca", false, "with --nodes: make the site's CA and issue each node's certificate and the client certificates into DIR/tls")
	clients := fs.String("clients", "client", "with --make-ca: the client certificates to issue (comma-separated names, e.g. one per host)")
	routePort := fs.Int("route-port", 6222, "with --nodes: the port each node takes routes from the others on")
	confDir := fs.String("conf-dir", "", "with --nodes: where the files will be on the nodes (default DIR); the configs name their TLS files under it")
	monitor := fs.String("monitor", "127.0.0.1:8222", "with --nodes: each node's monitoring address (loopback; \"\" for none)")
	maxFile := fs.String("max-file-store", "20GB", "with --nodes: JetStream disk limit per node (size for a week of hits)")
	cfgPath := fs.String("config", "", "facewatch config, for the alert sink subject in the permissions (default: the defaults)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return usageErrorf("--dir is required")
	}
	cfg, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	abs := func(p string) string {
		if p == "" {
			return p
		}
		a, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		return a
	}
	tlsFiles := config.TLSFiles{CAFile: abs(*ca), CertFile: abs(*cert), KeyFile: abs(*key)}
	if (tlsFiles.CertFile == "") != (tlsFiles.KeyFile == "") {
		return usageErrorf("--tls-cert and --tls-key go together")
	}
	if tlsFiles.CAFile != "" && tlsFiles.CertFile == "" {
		return usageErrorf("--tls-ca needs --tls-cert and --tls-key (the server's own certificate)")
	}
	if *nodes != "" {
		return natsInitCluster(e, clusterInit{
			dir: *dir, confDir: *confDir, nodes: *nodes, listen: *listen, routePort: *routePort, store: *store,
			monitor: *monitor, maxFile: *maxFile, tls: tlsFiles, makeCA: *makeCA, clients: *clients, perms: permissionOptions(cfg),
		})
	}
	if *makeCA {
		return usageErrorf("--make-ca goes with --nodes (a cluster); a single server takes --tls-cert, --tls-key and --tls-ca")
	}
	if err := (config.NATS{Listen: *listen, TLS: tlsFiles}).CheckListen(); err != nil {
		return fmt.Errorf("nats init: --listen %s", err)
	}
	if *store == "" {
		*store = filepath.Join(*dir, "jetstream")
	}
	credsDir := filepath.Join(*dir, "creds")
	conf := filepath.Join(*dir, "nats-server.conf")
	if _, err := os.Stat(conf); err == nil {
		return fmt.Errorf("nats init: %s exists; refusing to replace a site's configuration (remove it and creds/ first)", conf)
	}
	ids, err := natsbus.NewIdentities()
	if err != nil {
		return err
	}
	text, err := natsbus.WriteServerConfig(natsbus.ServerConfig{
		Listen: *listen, StoreDir: abs(*store), ServerName: *name, TLS: tlsFiles,
		Identities: ids, Permissions: permissionOptions(cfg),
	})
	if err != nil {
		return err
	}
	if err := natsbus.WriteIdentities(credsDir, ids); err != nil {
		return err
	}
	if err := os.WriteFile(conf, text, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", conf, err)
	}
	fmt.Fprintf(e.stdout, "wrote %s (public keys and permissions only)\n", conf)
	for _, r := range natsbus.Roles() {
		fmt.Fprintf(e.stdout, "wrote %s (mode 0600)\n", filepath.Join(credsDir, string(r)+".nk"))
	}
	fmt.Fprintf(e.stdout, "next: nats-server -c %s; give each host only its roles' files as nats.creds_dir; `facewatch nats setup` with admin.nk creates the streams\n", conf)
	return nil
}

// clusterInit are `nats init --nodes`'s inputs.
type clusterInit struct {
	dir, confDir, nodes, listen, store, monitor, maxFile, clients string
	routePort                                                     int
	tls                                                           config.TLSFiles
	makeCA                                                        bool
	perms                                                         natsbus.PermissionOptions
}

// natsInitCluster writes a secured JetStream cluster: nodeN.conf per node
// (client TLS and route TLS, both mutual), auth.conf with the role users
// every node includes, creds/<role>.nk, and with --make-ca the site's CA,
// each node's certificate and the client certificates under tls/. Every
// file is written 0600 into a directory that must not hold a site yet.
func natsInitCluster(e *env, ci clusterInit) error {
	var hosts []string
	for _, h := range strings.Split(ci.nodes, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if strings.ContainsAny(h, ":/ \t\"") {
			return usageErrorf("--nodes: %q is not a host name (give host names; ports are --listen and --route-port)", h)
		}
		if slices.Contains(hosts, h) {
			return usageErrorf("--nodes: %q twice", h)
		}
		hosts = append(hosts, h)
	}
	if len(hosts) < 3 {
		return usageErrorf("--nodes: %d node(s); a JetStream cluster that survives a node's loss needs 3 or more", len(hosts))
	}
	if ci.routePort <= 0 || ci.routePort > 65535 {
		return usageErrorf("--route-port %d is not a port", ci.routePort)
	}
	if ci.makeCA && ci.tls.CertFile != "" {
		return usageErrorf("--make-ca or --tls-cert, not both: the CA made here issues the nodes' certificates")
	}
	if !ci.makeCA && ci.tls.CertFile == "" {
		return usageErrorf("--nodes needs TLS: --make-ca, or --tls-cert, --tls-key and --tls-ca (routes and clients cross the network)")
	}
	if !ci.makeCA && ci.tls.CAFile == "" {
		return usageErrorf("--nodes with --tls-cert needs --tls-ca: clients and nodes must present certificates it signed (mutual TLS)")
	}
	if ci.monitor != "" && !config.IsLoopback(ci.monitor) {
		return usageErrorf("--monitor %q: the monitoring port has no authentication; keep it on loopback", ci.monitor)
	}
	if _, port, err := net.SplitHostPort(ci.listen); err != nil || port == "" {
		return usageErrorf("--listen %q: want host:port", ci.listen)
	}
	dir, err := filepath.Abs(ci.dir)
	if err != nil {
		return fmt.Errorf("nats init: %w", err)
	}
	confDir := ci.confDir
	if confDir == "" {
		confDir = dir
	}
	if ci.store == "" {
		ci.store = "/var/lib/nats/jetstream"
	}
	for _, p := range []string{natsbus.ClusterAuthFile, "node1.conf", "creds", "tls"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
			return fmt.Errorf("nats init: %s exists; refusing to replace a site's configuration (use an empty --dir)", filepath.Join(dir, p))
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("nats init: creating %s: %w", dir, err)
	}
	var wrote []string
	write := func(rel string, data []byte) error {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return fmt.Errorf("nats init: creating %s: %w", filepath.Dir(p), err)
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("nats init: writing %s: %w", p, err)
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return fmt.Errorf("nats init: writing %s: %w", p, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("nats init: writing %s: %w", p, err)
		}
		wrote = append(wrote, p)
		return nil
	}
	// TLS files: made here, or the ones given (every node the same).
	nodeTLS := func(host string) config.TLSFiles { return ci.tls }
	if ci.makeCA {
		now := time.Now()
		ca, err := natsbus.NewSiteCA("facewatch", now)
		if err != nil {
			return err
		}
		if err := write("tls/ca.pem", ca.CertPEM); err != nil {
			return err
		}
		if err := write("tls/ca-key.pem", ca.KeyPEM); err != nil {
			return err
		}
		for _, h := range hosts {
			leaf, err := ca.IssueServer(h, []string{h}, now)
			if err != nil {
				return err
			}
			if err := write("tls/"+h+".pem", leaf.CertPEM); err != nil {
				return err
			}
			if err := write("tls/"+h+"-key.pem", leaf.KeyPEM); err != nil {
				return err
			}
		}
		for _, c := range strings.Split(ci.clients, ",") {
			c = strings.TrimSpace(c)
			if c == "" {
				continue
			}
			if !wire.ValidToken(c) || slices.Contains(hosts, c) || c == "ca" {
				return usageErrorf("--clients: %q is not a client name (letters, digits, - and _; not a node's or ca)", c)
			}
			leaf, err := ca.IssueClient(c, now)
			if err != nil {
				return err
			}
			if err := write("tls/"+c+".pem", leaf.CertPEM); err != nil {
				return err
			}
			if err := write("tls/"+c+"-key.pem", leaf.KeyPEM); err != nil {
				return err
			}
		}
		nodeTLS = func(host string) config.TLSFiles { return natsbus.SiteTLSFiles(confDir, host) }
	}
	ids, err := natsbus.NewIdentities()
	if err != nil {
		return err
	}
	auth, err := natsbus.WriteAuthConfig(ids, ci.perms)
	if err != nil {
		return err
	}
	if err := write(natsbus.ClusterAuthFile, append([]byte("# facewatch's NATS users: one nkey per role, permissions from\n# internal/natsbus/roles.go. Public keys only; every node includes it.\n"), auth...)); err != nil {
		return err
	}
	confs, err := natsbus.ClusterNodeConfigs(natsbus.ClusterSpec{Hosts: hosts, Listen: ci.listen, RoutePort: ci.routePort,
		StoreDir: ci.store, Monitor: ci.monitor, MaxFileStore: ci.maxFile, TLS: nodeTLS})
	if err != nil {
		return err
	}
	for i, text := range confs {
		if err := write(fmt.Sprintf("node%d.conf", i+1), text); err != nil {
			return err
		}
	}
	if err := natsbus.WriteIdentities(filepath.Join(dir, "creds"), ids); err != nil {
		return err
	}
	for _, r := range natsbus.Roles() {
		wrote = append(wrote, filepath.Join(dir, "creds", string(r)+".nk"))
	}
	for _, p := range wrote {
		fmt.Fprintf(e.stdout, "wrote %s (mode 0600)\n", p)
	}
	fmt.Fprintf(e.stdout, "next: copy nodeN.conf (as node.conf), auth.conf and its tls files to node N under %s and run nats-server -c %s/node.conf there; give each facewatch host only its roles' creds and a client certificate; `facewatch nats setup` with admin.nk creates the streams (docs/deploy.md)\n", confDir, confDir)
	if ci.makeCA {
		fmt.Fprintf(e.stdout, "keep %s off the cluster's hosts: it signs whatever it is asked to\n", filepath.Join(dir, "tls", "ca-key.pem"))
	}
	return nil
}

func natsSetup(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "nats setup", "nats setup --config FILE")
	cfgPath := fs.String("config", "", "config `FILE` (required: its nats.url and a nats.creds_dir holding admin credentials)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return usageErrorf("--config FILE is required")
	}
	cfg, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if cfg.NATS.URL == "" {
		return usageErrorf("nats setup: nats.url is empty; the embedded server creates its own topology")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	bus, err := natsbus.Open(ctx, cfg.NATS, cfg.DataDir, natsbus.Options{Name: "facewatch-setup", Role: natsbus.RoleAdmin, Logger: e.logger(cfg)})
	if err != nil {
		return err
	}
	defer bus.Close()
	if err := natsbus.EnsureStreams(ctx, bus.JS, natsbus.TopologyOf(cfg)); err != nil {
		return err
	}
	for _, s := range natsbus.Streams(natsbus.TopologyOf(cfg)) {
		fmt.Fprintf(e.stdout, "stream %s on %v: ok (%d replicas)\n", s.Name, s.Subjects, s.Replicas)
	}
	// The camera lease bucket: stage identities use it but may not create it.
	if _, err := natsbus.EnsureCameraLeases(ctx, bus.JS, cfg.NATS.Replicas); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "key-value bucket %s: ok (%d replicas)\n", natsbus.CameraLeaseBucket, max(1, cfg.NATS.Replicas))
	return nil
}
