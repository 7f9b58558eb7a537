package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsFlagLoopbackOnly: a stage's own --metrics server has no token
// to check, so it is refused at start on any address but loopback (the
// alert API's /metrics is the one for other hosts, with a token).
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
			if err := checkMetricsAddr(tc.addr); (err == nil) != tc.ok {
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "facewatch_test_marker_total", Help: "marker"}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveMetrics(ctx, addr, reg, slog.New(slog.DiscardHandler)) }()
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
