package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/testdata"
)

// units are the systemd units and what each must run.
var units = map[string]string{
	"facewatch.service":         "facewatch run ",
	"facewatch-camera.service":  "facewatch camera ",
	"facewatch-detect@.service": "facewatch detect ",
	"facewatch-match.service":   "facewatch match ",
	"facewatch-alert.service":   "facewatch alert ",
	"nats-server.service":       "nats-server -c ",
}

// TestSystemdUnits runs systemd-analyze verify over every unit (with the
// binaries pointed at an executable that exists here) and checks that each
// restarts on failure and carries the hardening the deployment guide
// promises.
func TestSystemdUnits(t *testing.T) {
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for name, runs := range units {
		b, err := os.ReadFile(filepath.Join("systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if !strings.Contains(s, "ExecStart=/usr/local/bin/"+runs) {
			t.Errorf("%s: ExecStart does not run %q", name, runs)
		}
		user := "facewatch"
		if name == "nats-server.service" {
			user = "nats"
		}
		for _, want := range []string{
			"Restart=on-failure", "User=" + user, "Group=" + user, "NoNewPrivileges=yes", "ProtectSystem=strict",
			"ProtectHome=yes", "PrivateTmp=yes", "ReadWritePaths=/var/lib/" + user, "StateDirectory=" + user,
			"CapabilityBoundingSet=\n", "SystemCallFilter=@system-service", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
		} {
			if !strings.Contains(s, want) {
				t.Errorf("%s lacks %q", name, strings.TrimSpace(want))
			}
		}
		s = strings.ReplaceAll(s, "/usr/local/bin/facewatch", exe)
		s = strings.ReplaceAll(s, "/usr/local/bin/nats-server", exe)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	sysusers, err := os.ReadFile(filepath.Join("systemd", "facewatch.sysusers"))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"facewatch", "nats"} {
		if !regexp.MustCompile(`(?m)^u\s+` + u + `\s`).Match(sysusers) {
			t.Errorf("facewatch.sysusers does not create user %s", u)
		}
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: units checked for their keys only, not verified")
	}
	out, err := exec.Command(sa, append([]string{"verify", "--man=no"}, paths...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify = %v, want success and no complaint:\n%s", err, out)
	}
}

// TestNATSClusterConfigs checks that deploy/nats/node{1,2,3}.conf are
// exactly what `facewatch nats init --nodes nats1,nats2,nats3 --make-ca
// --conf-dir /etc/nats` writes (natsbus.ClusterNodeConfigs), that they
// make one secured cluster (distinct names, one cluster name, routes to
// all three, client and route TLS with verification, the users included),
// and that nats-server -t accepts each with a site's auth.conf and
// certificates beside it.
func TestNATSClusterConfigs(t *testing.T) {
	bin := testdata.NATSServer(t)
	hosts := []string{"nats1", "nats2", "nats3"}
	want, err := natsbus.ClusterNodeConfigs(natsbus.ClusterSpec{Hosts: hosts, Listen: "0.0.0.0:4222", RoutePort: 6222,
		StoreDir: "/var/lib/nats/jetstream", Monitor: "127.0.0.1:8222", MaxFileStore: "20GB",
		TLS: func(h string) config.TLSFiles { return natsbus.SiteTLSFiles("/etc/nats", h) }})
	if err != nil {
		t.Fatal(err)
	}
	site := fakeSite(t, hosts)
	names := map[string]bool{}
	for i, n := range []string{"1", "2", "3"} {
		path := filepath.Join("nats", "node"+n+".conf")
		t.Run("node"+n, func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			if s != string(want[i]) {
				t.Errorf("%s is not what `facewatch nats init --nodes nats1,nats2,nats3 --make-ca --conf-dir /etc/nats` writes as node%s.conf; regenerate it:\n%s", path, n, want[i])
			}
			m := regexp.MustCompile(`(?m)^server_name:\s*"?([^"\s]+)`).FindStringSubmatch(s)
			if m == nil || m[1] != "nats"+n {
				t.Errorf("%s server_name = %v, want nats%s", path, m, n)
			} else {
				names[m[1]] = true
			}
			for _, want := range []string{"jetstream {", `name: "facewatch"`, "nats-route://nats1:6222", "nats-route://nats2:6222", "nats-route://nats3:6222",
				`include "auth.conf"`, `cert_file: "/etc/nats/tls/nats` + n + `.pem"`, `ca_file: "/etc/nats/tls/ca.pem"`} {
				if !strings.Contains(s, want) {
					t.Errorf("%s lacks %q", path, want)
				}
			}
			if c := strings.Count(s, "verify: true"); c != 2 {
				t.Errorf("%s has %d TLS blocks that verify the peer's certificate, want 2 (clients and routes)", path, c)
			}
			local := filepath.Join(site, "node"+n+".conf")
			if err := os.WriteFile(local, []byte(strings.ReplaceAll(s, "/etc/nats/", site+"/")), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, "-t", "-c", local).CombinedOutput(); err != nil {
				t.Fatalf("nats-server -t -c %s (with a site's auth.conf and certificates) = %v:\n%s", path, err, out)
			}
		})
	}
	if len(names) != 3 {
		t.Errorf("server names %v, want three distinct", names)
	}
}

// fakeSite writes what `nats init --make-ca` puts beside the node configs
// (auth.conf, tls/) into a temporary directory.
func fakeSite(t *testing.T, hosts []string) string {
	t.Helper()
	dir := t.TempDir()
	ids, err := natsbus.NewIdentities()
	if err != nil {
		t.Fatal(err)
	}
	auth, err := natsbus.WriteAuthConfig(ids, natsbus.PermissionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{natsbus.ClusterAuthFile: auth}
	now := time.Now()
	ca, err := natsbus.NewSiteCA("test", now)
	if err != nil {
		t.Fatal(err)
	}
	files["tls/ca.pem"] = ca.CertPEM
	for _, h := range hosts {
		leaf, err := ca.IssueServer(h, []string{h}, now)
		if err != nil {
			t.Fatal(err)
		}
		files["tls/"+h+".pem"], files["tls/"+h+"-key.pem"] = leaf.CertPEM, leaf.KeyPEM
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestConfigs loads every facewatch config in deploy/ with facewatch's own
// loader; the cluster ones must name all three nodes and keep three
// replicas.
func TestConfigs(t *testing.T) {
	for _, tc := range []struct {
		file     string
		replicas int
		servers  int
	}{
		{"facewatch.yaml", 1, 0},
		{"edge.yaml", 3, 3},
		{"compose-facewatch.yaml", 3, 3},
	} {
		t.Run(tc.file, func(t *testing.T) {
			cfg, err := config.Load(tc.file)
			if err != nil {
				t.Fatalf("config.Load(%s) = %v", tc.file, err)
			}
			if cfg.NATS.Replicas != tc.replicas {
				t.Errorf("%s nats.replicas = %d, want %d", tc.file, cfg.NATS.Replicas, tc.replicas)
			}
			servers := 0
			if cfg.NATS.URL != "" {
				servers = len(strings.Split(cfg.NATS.URL, ","))
			}
			if servers != tc.servers {
				t.Errorf("%s nats.url names %d servers, want %d", tc.file, servers, tc.servers)
			}
			if len(cfg.Cameras) == 0 {
				t.Errorf("%s has no cameras", tc.file)
			}
			// A cluster's clients cross the network: mutual TLS to every
			// node and their roles' nkeys, as `nats init --nodes` sets up.
			if tc.servers > 0 {
				for _, u := range strings.Split(cfg.NATS.URL, ",") {
					if !strings.HasPrefix(u, "tls://") {
						t.Errorf("%s nats.url %q is not tls://", tc.file, u)
					}
				}
				if tl := cfg.NATS.TLS; tl.CAFile == "" || tl.CertFile == "" || tl.KeyFile == "" || cfg.NATS.CredsDir == "" {
					t.Errorf("%s nats.tls = %+v, creds_dir %q; want a CA, a client certificate and key, and a credentials directory", tc.file, tl, cfg.NATS.CredsDir)
				}
			}
		})
	}
}

// TestComposeFile checks that the compose file starts the three NATS nodes
// (each with its own config and volume, nats-server from the image) and
// every stage, two detect workers among them, none as root-capable.
func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Entrypoint  []string       `yaml:"entrypoint"`
			Command     []string       `yaml:"command"`
			Volumes     []string       `yaml:"volumes"`
			CapDrop     []string       `yaml:"cap_drop"`
			SecurityOpt []string       `yaml:"security_opt"`
			Deploy      map[string]any `yaml:"deploy"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"1", "2", "3"} {
		s, ok := doc.Services["nats"+n]
		if !ok {
			t.Errorf("compose has no service nats%s", n)
			continue
		}
		vols := strings.Join(s.Volumes, " ")
		if strings.Join(s.Entrypoint, " ") != "/usr/local/bin/nats-server" || !strings.Contains(vols, "./nats/node"+n+".conf:/etc/nats/node.conf") {
			t.Errorf("nats%s runs %v with %v, want the image's nats-server with nats/node%s.conf", n, s.Entrypoint, s.Volumes, n)
		}
		// What node.conf includes and names: the site's users and TLS files.
		for _, want := range []string{"./site/auth.conf:/etc/nats/auth.conf", "./site/tls:/etc/nats/tls"} {
			if !strings.Contains(vols, want) {
				t.Errorf("nats%s volumes %v lack %s (nats init's users and certificates)", n, s.Volumes, want)
			}
		}
	}
	for _, stage := range []string{"camera", "detect", "match", "alert"} {
		s, ok := doc.Services[stage]
		if !ok {
			t.Errorf("compose has no service %s", stage)
			continue
		}
		if len(s.Command) == 0 || s.Command[0] != stage {
			t.Errorf("service %s command = %v, want facewatch %s", stage, s.Command, stage)
		}
		if !strings.Contains(strings.Join(s.Volumes, " "), "./site/creds:/etc/facewatch/creds") {
			t.Errorf("service %s volumes %v lack the site's role credentials", stage, s.Volumes)
		}
		if strings.Join(s.CapDrop, ",") != "ALL" || len(s.SecurityOpt) == 0 {
			t.Errorf("service %s cap_drop %v, security_opt %v; want ALL and no-new-privileges", stage, s.CapDrop, s.SecurityOpt)
		}
	}
	if r := doc.Services["detect"].Deploy["replicas"]; r != 2 {
		t.Errorf("detect replicas = %v, want 2 (workers sharing cameras through leases)", r)
	}
}

// TestContainerFile checks the container file's shape (Debian bookworm,
// multi-stage, the runtime stage not root) and builds it where a container
// builder runs.
func TestContainerFile(t *testing.T) {
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var froms []string
	lastUser := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "FROM "):
			froms = append(froms, line)
			lastUser = ""
		case strings.HasPrefix(line, "USER "):
			lastUser = strings.TrimPrefix(line, "USER ")
		}
	}
	if len(froms) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a runtime stage", len(froms))
	}
	for _, from := range froms {
		if !strings.Contains(from, "bookworm") {
			t.Errorf("%q is not a Debian bookworm base", from)
		}
	}
	if lastUser == "" || lastUser == "root" || strings.HasPrefix(lastUser, "0") {
		t.Errorf("runtime stage USER = %q, want a non-root user", lastUser)
	}
	docker, err := exec.LookPath("docker")
	if err != nil || exec.Command(docker, "info").Run() != nil {
		t.Skip("no container builder running here (docker info fails): the container file was not built")
	}
	out, err := exec.Command(docker, "build", "-f", "Dockerfile", "-t", "facewatch:test", "..").CombinedOutput()
	if err != nil {
		t.Fatalf("docker build = %v:\n%s", err, out)
	}
}
