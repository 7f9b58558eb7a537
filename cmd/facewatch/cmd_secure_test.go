package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/testcert"
	"github.com/facewatch/facewatch/internal/testdata"
)

// freeAddr is a loopback address whose port is free now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startJetStream starts an embedded JetStream server on a loopback port,
// storing under storeDir, and shuts it down when the test ends.
func startJetStream(t *testing.T, storeDir string) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: storeDir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start() // stopped by the cleanup
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return ns
}

// TestNATSInit: `nats init` writes a server config nats-server loads and
// one 0600 seed per role; the server started from it takes `nats setup`
// as admin; a non-loopback listen without TLS is refused with one line;
// a second init never replaces a site's credentials.
func TestNATSInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "site")
	addr := freeAddr(t)
	code, out, errOut := runCLI(t, nil, "nats", "init", "--dir", dir, "--listen", addr)
	if code != 0 {
		t.Fatalf("nats init = %d, %q", code, errOut)
	}
	for _, r := range natsbus.Roles() {
		p := filepath.Join(dir, "creds", string(r)+".nk")
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("nats init did not write %s: %v\n%s", p, err, out)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", p, st.Mode().Perm())
		}
	}
	conf := filepath.Join(dir, "nats-server.conf")
	text, _ := os.ReadFile(conf)
	if bytes.Contains(text, []byte("SU")) && bytes.Contains(text, []byte("seed")) {
		t.Errorf("server config seems to hold a seed:\n%s", text)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("nats-server cannot load %s: %v", conf, err)
	}
	if len(opts.Nkeys) != len(natsbus.Roles()) {
		t.Errorf("server config has %d nkey users, want one per role (%d)", len(opts.Nkeys), len(natsbus.Roles()))
	}
	opts.NoLog, opts.NoSigs = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server from the generated config did not start")
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	cfgPath := filepath.Join(t.TempDir(), "admin.yaml")
	os.WriteFile(cfgPath, fmt.Appendf(nil, "data_dir: data\nnats:\n  url: nats://%s\n  creds_dir: %s\n", addr, filepath.Join(dir, "creds")), 0o644)
	code, out, errOut = runCLI(t, nil, "nats", "setup", "--config", cfgPath)
	if want := len(natsbus.Streams(natsbus.Topology{})) + 1; code != 0 || strings.Count(out, ": ok") != want {
		t.Fatalf("nats setup = %d, %q, %q; want every stream and the lease bucket ok (%d)", code, out, errOut, want)
	}

	code, _, errOut = runCLI(t, nil, "nats", "init", "--dir", dir, "--listen", addr)
	if code != 1 || !strings.Contains(errOut, "refusing to replace") {
		t.Errorf("second nats init = %d, %q; want exit 1 refusing to replace", code, errOut)
	}
	code, _, errOut = runCLI(t, nil, "nats", "init", "--dir", filepath.Join(t.TempDir(), "open"))
	if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "0.0.0.0:4222") || !strings.Contains(errOut, "tls") {
		t.Errorf("nats init on 0.0.0.0 without TLS = %d, %q; want exit 1 and one line about TLS", code, errOut)
	}
}

// TestEmbeddedOpenListenRefused: `facewatch run` with the embedded server
// on every interface and no TLS stops at start with one line.
func TestEmbeddedOpenListenRefused(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:4222", ":4222"} {
		t.Run(listen, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "c.yaml")
			os.WriteFile(cfg, fmt.Appendf(nil, "data_dir: data\nnats:\n  listen: %q\n", listen), 0o644)
			code, _, errOut := runCLI(t, nil, "run", "--config", cfg, "--for", "5s")
			msg := strings.TrimSpace(errOut)
			if code != 1 || strings.Contains(msg, "\n") || !strings.Contains(msg, "nats.listen") || !strings.Contains(msg, "nats.tls") {
				t.Errorf("run with nats.listen %s and no TLS = %d, %q; want exit 1 and one line naming nats.listen and nats.tls", listen, code, errOut)
			}
		})
	}
}

// syncBuf is a bytes.Buffer safe for a command writing while the test
// reads.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestHTTPS runs `facewatch run` (no cameras: match and the alert service)
// with alert.tls: the API and console answer over HTTPS with HSTS; plain
// HTTP on the HTTPS port is refused; the redirect port sends browsers to
// HTTPS; a renewed certificate is served without a restart.
func TestHTTPS(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, dir)
	cert, key := ca.Issue(t, testcert.Leaf{Name: "api"})
	httpsAddr, redirectAddr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `data_dir: data
alert:
  listen: %s
  tls:
    cert_file: %s
    key_file: %s
    redirect_listen: %s
`, httpsAddr, cert, key, redirectAddr), 0o644)
	code, tokOut, errOut := runCLI(t, nil, "token", "create", "--role", "operator", "--person", "Olga Operator", "--scope", "all", "--config", cfg)
	if code != 0 {
		t.Fatalf("token create = %d, %q", code, errOut)
	}
	token := strings.TrimSpace(tokOut)

	ctx, cancel := context.WithCancel(context.Background())
	out, errb := &syncBuf{}, &syncBuf{}
	done := make(chan int, 1)
	go func() {
		done <- realMain(ctx, []string{"run", "--config", cfg, "--for", "2m"}, &env{stdout: out, stderr: errb, getenv: os.Getenv})
	}()
	defer func() {
		cancel()
		if c := <-done; c != 0 {
			t.Errorf("run exit = %d, stderr %q", c, errb.String())
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "API and console: https://"+httpsAddr) {
		if time.Now().After(deadline) {
			t.Fatalf("run did not announce https://%s within 60s; stdout %q stderr %q", httpsAddr, out.String(), errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	client := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	defer client.CloseIdleConnections()
	get := func(t *testing.T, url string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}

	t.Run("api", func(t *testing.T) {
		resp, body := get(t, "https://"+httpsAddr+"/api/v1/queue", "Authorization", "Bearer "+token)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/v1/queue over https = %d %q, want 200", resp.StatusCode, body)
		}
		if h := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(h, "max-age=31536000") {
			t.Errorf("Strict-Transport-Security = %q, want max-age=31536000 (a year)", h)
		}
		resp, _ = get(t, "https://"+httpsAddr+"/api/v1/alerts")
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Strict-Transport-Security") == "" {
			t.Errorf("GET without a token over https = %d (HSTS %q), want 401 with HSTS", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
		}
	})
	t.Run("console", func(t *testing.T) {
		resp, body := get(t, "https://"+httpsAddr+"/console", "Cookie", "facewatch_token="+token)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "<html") {
			t.Fatalf("GET /console over https = %d, want 200 and the page", resp.StatusCode)
		}
	})
	t.Run("sign-in sets a secure cookie", func(t *testing.T) {
		resp, body := get(t, "https://"+httpsAddr+"/console", "Accept", "text/html")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `action="/signin"`) || strings.Contains(body, "document.cookie") {
			t.Errorf("login page over https = %d; want 401 with a form posting to /signin and no script writing the cookie:\n%s", resp.StatusCode, body)
		}
		// The server sets the cookie: over HTTPS Secure, always HttpOnly
		// and SameSite=Strict.
		req, err := http.NewRequest("POST", "https://"+httpsAddr+"/signin", strings.NewReader("token="+token))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err = client.Do(req) // does not follow the redirect

		if err != nil {
			t.Fatalf("POST /signin: %v", err)
		}
		resp.Body.Close()
		var ck *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "facewatch_token" {
				ck = c
			}
		}
		if resp.StatusCode != http.StatusSeeOther || ck == nil || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
			t.Errorf("POST /signin over https = %d cookie %+v, want 303 and a Secure, HttpOnly, SameSite=Strict cookie", resp.StatusCode, ck)
		}
	})
	t.Run("plain http refused", func(t *testing.T) {
		resp, err := http.Get("http://" + httpsAddr + "/api/v1/alerts")
		if err != nil {
			return // a reset connection is a refusal too
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS") {
			t.Errorf("plain GET to the https port = %d %q, want 400 naming HTTPS", resp.StatusCode, body)
		}
	})
	t.Run("redirect", func(t *testing.T) {
		resp, _ := get(t, "http://"+redirectAddr+"/console?x=1")
		_, port, _ := net.SplitHostPort(httpsAddr)
		want := "https://127.0.0.1:" + port + "/console?x=1"
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
			t.Errorf("GET on the redirect port = %d Location %q, want 308 to %s", resp.StatusCode, resp.Header.Get("Location"), want)
		}
	})
	t.Run("renewed certificate", func(t *testing.T) {
		serial := func() string {
			c, err := tls.Dial("tcp", httpsAddr, &tls.Config{RootCAs: ca.Pool()})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
		}
		before := serial()
		time.Sleep(1100 * time.Millisecond) // modification times must differ
		ca.IssueTo(t, testcert.Leaf{Name: "api-renewed"}, cert, key)
		var after string
		deadline := time.Now().Add(10 * time.Second)
		for after = serial(); after == before && time.Now().Before(deadline); after = serial() {
			time.Sleep(200 * time.Millisecond)
		}
		if after == before {
			t.Errorf("certificate serial still %s 10 s after the files were renewed; want the new one served", before)
		}
	})
}

// TestDoctorCertificates: doctor says how long each configured
// certificate has left, and an expired one is a failure line.
func TestDoctorCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, dir)
	expired, expiredKey := ca.Issue(t, testcert.Leaf{Name: "old", NotBefore: time.Now().Add(-60 * 24 * time.Hour), NotAfter: time.Now().Add(-3 * 24 * time.Hour)})
	soon, soonKey := ca.Issue(t, testcert.Leaf{Name: "soon", NotAfter: time.Now().Add(10 * 24 * time.Hour)})
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `data_dir: data
nats:
  tls:
    ca_file: %s
    cert_file: %s
    key_file: %s
alert:
  listen: 127.0.0.1:0
  tls:
    cert_file: %s
    key_file: %s
`, ca.File, soon, soonKey, expired, expiredKey), 0o644)
	code, out, errOut := runCLI(t, nil, "doctor", "--config", cfg, "--model-dir", string(testdata.ModelDir(t)))
	if code != 1 {
		t.Errorf("doctor with an expired certificate = %d, %q; want exit 1", code, errOut)
	}
	for _, want := range []struct{ status, name, detail string }{
		{"FAIL", "alert.tls.cert_file", `"old" expired 3 days ago`},
		{"warn", "nats.tls.cert_file", `"soon" expires in 9 days`},
		{"warn", "nats.tls.ca_file", `"facewatch test CA" expires in 2`}, // 23 or 24 hours
	} {
		found := false
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) > 2 && f[0] == want.status && f[1] == want.name && strings.Contains(l, want.detail) {
				found = true
			}
		}
		if !found {
			t.Errorf("doctor output lacks %s %s %s:\n%s", want.status, want.name, want.detail, out)
		}
	}
}

// TestNATSInitCluster: `nats init --nodes` writes one config per node that
// nats-server loads as a node of one secured cluster (client and route
// TLS, both verifying the peer against the CA it made; every role's nkey
// user, included from auth.conf), certificates that verify for their
// names, and every file 0600; it refuses a cluster of fewer than three, a
// cluster without TLS, and replacing a site.
func TestNATSInitCluster(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "site")
	code, out, errOut := runCLI(t, nil, "nats", "init", "--dir", dir, "--nodes", "nats1,nats2,nats3", "--make-ca", "--clients", "edge-1,central")
	if code != 0 {
		t.Fatalf("nats init --nodes = %d, %q", code, errOut)
	}
	files := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v (%v), want 0600", p, st.Mode().Perm(), err)
		}
		return nil
	})
	// 3 configs, auth.conf, 6 seeds, CA cert and key, 3 node and 2 client pairs.
	if want := 3 + 1 + len(natsbus.Roles()) + 2 + 2*3 + 2*2; files != want {
		t.Errorf("nats init --nodes wrote %d files, want %d:\n%s", files, want, out)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	for i, node := range []string{"nats1", "nats2", "nats3"} {
		conf := filepath.Join(dir, fmt.Sprintf("node%d.conf", i+1))
		opts, err := server.ProcessConfigFile(conf)
		if err != nil {
			t.Fatalf("nats-server cannot load %s: %v", conf, err)
		}
		if opts.ServerName != node || opts.Cluster.Name != "facewatch" || len(opts.Routes) != 3 {
			t.Errorf("%s: server %q, cluster %q, %d routes; want %s in cluster facewatch with routes to all 3", conf, opts.ServerName, opts.Cluster.Name, len(opts.Routes), node)
		}
		if opts.TLSConfig == nil || opts.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert {
			t.Errorf("%s: clients without mutual TLS", conf)
		}
		if opts.Cluster.TLSConfig == nil || opts.Cluster.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert {
			t.Errorf("%s: routes without mutual TLS", conf)
		}
		if len(opts.Nkeys) != len(natsbus.Roles()) {
			t.Errorf("%s: %d nkey users, want one per role (%d)", conf, len(opts.Nkeys), len(natsbus.Roles()))
		}
		if !opts.JetStream {
			t.Errorf("%s: JetStream off", conf)
		}
		leaf := readCert(t, filepath.Join(dir, "tls", node+".pem"))
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: node, Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("%s's certificate for %s (usage %v): %v", node, node, usage, err)
			}
		}
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "nats9", Roots: pool}); err == nil {
			t.Errorf("%s's certificate verifies for nats9, want only its own names", node)
		}
	}
	client := readCert(t, filepath.Join(dir, "tls", "edge-1.pem"))
	if _, err := client.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate edge-1: %v", err)
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("client certificate edge-1 verifies as a server's, want client use only")
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"again", []string{"--dir", dir, "--nodes", "nats1,nats2,nats3", "--make-ca"}, "refusing to replace"},
		{"two nodes", []string{"--dir", t.TempDir(), "--nodes", "a,b", "--make-ca"}, "3 or more"},
		{"no tls", []string{"--dir", t.TempDir(), "--nodes", "a,b,c"}, "needs TLS"},
		{"no ca", []string{"--dir", t.TempDir(), "--nodes", "a,b,c", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, "--tls-ca"},
		{"port in host", []string{"--dir", t.TempDir(), "--nodes", "a:4222,b,c", "--make-ca"}, "not a host name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, nil, append([]string{"nats", "init"}, tc.args...)...)
			if code == 0 || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("nats init %v = %d, %q; want a failure, one line saying %q", tc.args, code, errOut, tc.want)
			}
		})
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s holds no PEM block", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
