package main

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/testcert"
	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsFlagLoopbackOnly: without --metrics-token-file a stage's own
// --metrics server has no token to check, so it is refused at start on
// any address but loopback (the alert API's /metrics is the one for other
// hosts, with a token).
func TestMetricsFlagLoopbackOnly(t *testing.T) {
	cases := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:9100", true},
		{"[::1]:9100", true},
		{"localhost:9100", true},
		{"127.0.0.2:9100", true},
		{":9100", false},
		{"0.0.0.0:9100", false},
		{"[::]:9100", false},
		{"192.0.2.10:9100", false},
		{"metrics.example.org:9100", false},
		{"9100", false},
	}
	for _, tc := range cases {
		t.Run(tc.addr, func(t *testing.T) {
			if err := checkMetricsAddr(tc.addr, false); (err == nil) != tc.ok {
				t.Errorf("checkMetricsAddr(%q) = %v, want ok=%v", tc.addr, err, tc.ok)
			}
		})
	}
	// Every pipeline command refuses it before doing anything else, as a
	// usage error that says why.
	for _, cmd := range []string{"run", "camera", "detect", "match"} {
		t.Run(cmd, func(t *testing.T) {
			code, _, errOut := runCLI(t, nil, cmd, "--metrics", "0.0.0.0:9100", "--config", "does-not-matter.yaml")
			if code != 2 || !strings.Contains(errOut, "loopback only") {
				t.Errorf("facewatch %s --metrics 0.0.0.0:9100 = exit %d, stderr %q; want exit 2 saying loopback only", cmd, code, errOut)
			}
		})
	}
}

// TestServeMetricsOnLoopback: on loopback the metrics are served.
func TestServeMetricsOnLoopback(t *testing.T) {
	addr := freeAddr(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "facewatch_test_marker_total", Help: "marker"}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (metricsServer{addr: addr}).serve(ctx, reg, slog.New(slog.DiscardHandler)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveMetrics = %v, want nil after ctx ends", err)
		}
	}()
	var body []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /metrics on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(string(body), "facewatch_test_marker_total 0") {
		t.Errorf("GET /metrics = %q, want the registry's metrics", body)
	}
}

// TestMetricsTokenFile: the token file is a credential: unreadable,
// readable by others or too short, it stops the command with a reason.
func TestMetricsTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "  0123456789abcdef-scraper\n", 0o600)
	cases := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope"), "no such file"},
		{"others read it", write("open", "0123456789abcdef-scraper\n", 0o644), "chmod 600"},
		{"short", write("short", "tiny\n", 0o600), "at least 16"},
		{"blank", write("blank", " \n\n", 0o600), "has 0 characters"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := readMetricsToken(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("readMetricsToken(%s) = %q, %v; want an error saying %q", tc.name, tok, err, tc.want)
			}
		})
	}
	tok, err := readMetricsToken(good)
	if err != nil || string(tok) != "0123456789abcdef-scraper" {
		t.Fatalf("readMetricsToken(good) = %q, %v; want the trimmed token", tok, err)
	}
	if tok, err := readMetricsToken(""); tok != nil || err != nil {
		t.Fatalf("readMetricsToken(\"\") = %q, %v; want no token and no error", tok, err)
	}
}

// TestMetricsBeyondLoopback: with a token and alert.tls, --metrics may
// listen on every interface; it then answers only HTTPS requests that
// carry the token, and a plain-HTTP request gets no metrics.
func TestMetricsBeyondLoopback(t *testing.T) {
	if err := checkMetricsAddr("0.0.0.0:9100", true); err != nil {
		t.Fatalf("checkMetricsAddr(0.0.0.0:9100, token) = %v, want ok", err)
	}
	dir := t.TempDir()
	ca := testcert.NewCA(t, dir)
	cert, key := ca.Issue(t, testcert.Leaf{Name: "metrics"})
	_, port, err := net.SplitHostPort(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	m := metricsServer{addr: "0.0.0.0:" + port, token: []byte("0123456789abcdef-scraper")}
	if err := m.useTLS(config.HTTPTLS{CertFile: cert, KeyFile: key}, nil); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "facewatch_test_marker_total", Help: "marker"}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.serve(ctx, reg, slog.New(slog.DiscardHandler)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve = %v, want nil after ctx ends", err)
		}
	}()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	url := "https://127.0.0.1:" + port + "/metrics"
	get := func(auth string) (int, string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := client.Do(req)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp.StatusCode, string(body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v", url, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, auth := range []string{"", "Bearer wrong-token-0123456789", "Basic MDEyMzQ1Njc4OWFiY2RlZi1zY3JhcGVy", "Bearer 0123456789abcdef-scrape", "bearer 0123456789abcdef-scraper"} {
		if code, body := get(auth); code != http.StatusUnauthorized || strings.Contains(body, "facewatch_test_marker_total") {
			t.Errorf("GET /metrics with Authorization %q = %d %q; want 401 and no metrics", auth, code, body)
		}
	}
	if code, body := get("Bearer 0123456789abcdef-scraper"); code != http.StatusOK || !strings.Contains(body, "facewatch_test_marker_total 0") {
		t.Errorf("GET /metrics with the token = %d %q; want 200 and the registry's metrics", code, body)
	}
	// Plain HTTP on the TLS port carries no metrics.
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://127.0.0.1:" + port + "/metrics")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), "facewatch_test_marker_total") {
			t.Errorf("plain HTTP GET /metrics served the metrics: %q", body)
		}
	}
}

// TestMetricsBeyondLoopbackNeedsTLS: a token alone is not enough beyond
// loopback; the command stops before connecting anywhere and says why.
func TestMetricsBeyondLoopbackNeedsTLS(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("0123456789abcdef-scraper\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "facewatch.yaml")
	if err := os.WriteFile(cfg, []byte("data_dir: "+filepath.Join(dir, "data")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, nil, "detect", "--metrics", "0.0.0.0:9100", "--metrics-token-file", tok, "--config", cfg)
	if code != 2 || !strings.Contains(errOut, "HTTPS only") {
		t.Errorf("facewatch detect --metrics 0.0.0.0:9100 with a token and no alert.tls = exit %d, stderr %q; want exit 2 saying HTTPS only", code, errOut)
	}
}
