package main

import (
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
