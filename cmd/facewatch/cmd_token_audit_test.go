package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/facewatch/facewatch/alert"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/wire"
)

func runAlertCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = realMain(context.Background(), args, &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

func TestTokenCreateAndAuditVerify(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "facewatch.yaml")
	if err := os.WriteFile(cfgPath, []byte("data_dir: data\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")

	for _, c := range []struct {
		name string
		args []string
		code int
	}{
		{"unknown role", []string{"token", "create", "--role", "root", "--config", cfgPath}, 2},
		{"no role", []string{"token", "create", "--config", cfgPath}, 2},
		{"bad ttl", []string{"token", "create", "--role", "admin", "--person", "Ada", "--ttl", "-1h", "--config", cfgPath}, 1},
		{"no person", []string{"token", "create", "--role", "admin", "--name", "ada", "--config", cfgPath}, 2},
		{"no subcommand", []string{"token"}, 2},
		{"audit without verify", []string{"audit", "--config", cfgPath}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runAlertCLI(t, c.args...)
			if code != c.code {
				t.Errorf("facewatch %v = exit %d (%s), want %d", c.args, code, stderr, c.code)
			}
			if code == 1 && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("facewatch %v stderr = %q, want one line", c.args, stderr)
			}
		})
	}

	code, tok, stderr := runAlertCLI(t, "token", "create", "--role", "operator", "--scope", "all", "--person", "Ana Silva", "--name", "ana", "--ttl", "1h", "--by", "ticket 881", "--config", cfgPath)
	tok = strings.TrimSpace(tok)
	if code != 0 || !regexp.MustCompile(`^fwt_[A-Za-z0-9_-]{43}$`).MatchString(tok) {
		t.Fatalf("token create = exit %d, stdout %q, stderr %q; want the token alone on stdout", code, tok, stderr)
	}
	// The printed token works against the service on the same data dir.
	svc, err := alert.Open(context.Background(), dataDir, config.Defaults().Alert, alert.Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	srv := httptest.NewServer(svc.Handler())
	defer srv.Close()
	for _, path := range []string{"/api/v1/whoami", "/api/v1/queue"} {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s with the created token = %d, want 200", path, resp.StatusCode)
		}
	}
	code, out, _ := runAlertCLI(t, "token", "list", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "operator") || !strings.Contains(out, "Ana Silva") || strings.Contains(out, tok) {
		t.Errorf("token list = exit %d %q, want Ana Silva's operator token without its secret", code, out)
	}
	svc.Close()

	// keyed-era entry, token_create (by the OS user), view_queue (by Ana).
	code, out, stderr = runAlertCLI(t, "audit", "verify", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "audit log alert ok: 3 entries") {
		t.Fatalf("audit verify after a token issue and one queue view = exit %d %q %q, want ok with 3 entries", code, out, stderr)
	}
	// Edit the one entry behind the service's back.
	db, err := sql.Open("sqlite3", "file:"+alert.DBPath(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u, _ := user.Current()
	var actor, name, detail string
	db.QueryRow(`SELECT actor, actor_name, detail FROM audit WHERE action = 'token_create'`).Scan(&actor, &name, &detail)
	if actor != "os:"+u.Username || name != u.Username || !strings.Contains(detail, "ticket 881") || !strings.Contains(detail, "Ana Silva") {
		t.Errorf("token_create audit entry = %s %q %s, want os:%s, the person and the --by note", actor, name, detail, u.Username)
	}
	if _, err := db.Exec(`DROP TRIGGER audit_no_update; UPDATE audit SET actor_name = 'mallory' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runAlertCLI(t, "audit", "verify", "--config", cfgPath)
	if code != 1 || !strings.Contains(stderr, "entry 2:") {
		t.Errorf("audit verify after an edit = exit %d %q, want exit 1 naming entry 2", code, stderr)
	}
}

// TestAlertStage runs `facewatch alert` against a real NATS server: a hit
// published to the stream shows up in the API, and cancelling the context
// stops the command cleanly.
func TestAlertStage(t *testing.T) {
	ns, cfgPath, addr := alertStageConfig(t, "")
	_, tok, _ := runAlertCLI(t, "token", "create", "--role", "operator", "--scope", "all", "--person", "Ana", "--config", cfgPath)
	tok = strings.TrimSpace(tok)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() { // ends when ctx is cancelled
		done <- realMain(ctx, []string{"alert", "--config", cfgPath}, &env{stdout: io.Discard, stderr: &stderr, getenv: func(string) string { return "" }})
	}()
	get := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _ := get("/readyz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("facewatch alert not ready within 20s; stderr: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	h := wire.Hit{Camera: "gate-1", Track: 9, Time: time.Now(), Watchlist: "missing", Identity: "p-17", Distance: 0.4, Threshold: 0.5,
		Model: wire.Model{Name: "resnet", SHA256: strings.Repeat("0", 64)}}
	h.ID = wire.HitID(h.Camera, h.Track, h.Identity)
	msg, err := wire.EncodeHit(h, []byte{0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, wire.HitsSubject(h.Watchlist), msg, jetstream.WithMsgID(h.ID)); err != nil {
		t.Fatal(err)
	}
	for {
		code, body := get("/api/v1/queue")
		if code == 200 && strings.Contains(body, h.ID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hit %s not in the queue within 20s: %d %s", h.ID, code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A slow-loris client (headers one byte a second) is cut off within the
	// API server's header timeout (10 s), while others are served.
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	cut := make(chan time.Duration, 1)
	start := time.Now()
	go func() { // ends when the server closes the connection
		io.Copy(io.Discard, slow)
		cut <- time.Since(start)
	}()
	header := "GET /healthz HTTP/1.1\r\nHost: facewatch\r\nAuthorization: Bearer " + tok + "\r\n\r\n"
	sent := 0
	tick := time.NewTicker(time.Second)
	var held time.Duration
loris:
	for sent < len(header) {
		select {
		case held = <-cut:
			break loris
		case <-tick.C:
			slow.Write([]byte{header[sent]})
			sent++
			if sent == 3 {
				if code, _ := get("/healthz"); code != 200 {
					t.Errorf("GET /healthz beside a slow-loris client = %d, want 200", code)
				}
			}
		}
	}
	tick.Stop()
	if held == 0 || held > 15*time.Second || sent >= len(header) {
		t.Errorf("slow-loris client held the connection %v and sent %d of %d header bytes, want it cut off within 10s (+5s slack)", held, sent, len(header))
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("facewatch alert after cancel = exit %d, want 0; stderr: %s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("facewatch alert did not stop within 15s of cancel")
	}
}

// TestAuditVerifyReadsTheStream: someone who can write both the database
// and the checkpoint file cuts the log's tail and the checkpoints that
// cover it. The file alone cannot tell; the JetStream copy, which refuses
// deletes, still does.
func TestAuditVerifyReadsTheStream(t *testing.T) {
	dir := t.TempDir()
	ns := startJetStream(t, filepath.Join(dir, "js"))
	withNATS := filepath.Join(dir, "nats.yaml")
	fileOnly := filepath.Join(dir, "file.yaml")
	os.WriteFile(withNATS, []byte("data_dir: data\nnats:\n  url: "+ns.ClientURL()+"\n"), 0o600)
	os.WriteFile(fileOnly, []byte("data_dir: data\n"), 0o600)
	for _, p := range []string{"Ana", "Ben"} {
		if code, _, stderr := runAlertCLI(t, "token", "create", "--role", "operator", "--scope", "all", "--person", p, "--config", withNATS); code != 0 {
			t.Fatalf("token create --person %s = exit %d %s", p, code, stderr)
		}
	}
	if code, out, stderr := runAlertCLI(t, "audit", "verify", "--config", withNATS); code != 0 || !strings.Contains(out, "audit log alert ok: 3 entries") {
		t.Fatalf("audit verify before the attack = exit %d %q %q, want ok with 3 entries", code, out, stderr)
	}
	// The attack: Ben's token issue (entry 3) cut from the database, and
	// every checkpoint covering it cut from the checkpoint file.
	db, err := sql.Open("sqlite3", "file:"+alert.DBPath(filepath.Join(dir, "data")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	cpFile := filepath.Join(dir, "data", "audit", "alert.checkpoints")
	b, err := os.ReadFile(cpFile)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.Contains(l, `"seq":3,`) {
			kept = append(kept, l)
		}
	}
	if len(kept) == len(strings.Split(strings.TrimSpace(string(b)), "\n")) {
		t.Fatalf("checkpoint file has no checkpoint of entry 3:\n%s", b)
	}
	os.WriteFile(cpFile, []byte(strings.Join(kept, "\n")+"\n"), 0o600)

	if code, out, _ := runAlertCLI(t, "audit", "verify", "--config", fileOnly); code != 0 || !strings.Contains(out, "alert ok: 2 entries") {
		t.Fatalf("audit verify from the file alone = exit %d %q, want it fooled (ok, 2 entries): the test's attack is not the one intended", code, out)
	}
	code, _, stderr := runAlertCLI(t, "audit", "verify", "--config", withNATS)
	if code != 1 || !strings.Contains(stderr, "truncated") {
		t.Errorf("audit verify with the JetStream copy = exit %d %q, want exit 1 saying truncated", code, stderr)
	}
}

// alertStageConfig starts a JetStream server and writes the config of a
// `facewatch alert` against it, listening on a free loopback address;
// alertExtra is more YAML under alert: (indented two spaces).
func alertStageConfig(t *testing.T, alertExtra string) (ns *server.Server, cfgPath, addr string) {
	t.Helper()
	dir := t.TempDir()
	ns = startJetStream(t, filepath.Join(dir, "js"))
	addr = freeAddr(t)
	cfgPath = filepath.Join(dir, "facewatch.yaml")
	cfg := fmt.Sprintf("data_dir: data\nnats:\n  url: %s\nalert:\n  listen: %s\n%s", ns.ClientURL(), addr, alertExtra)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return ns, cfgPath, addr
}
