package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
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
