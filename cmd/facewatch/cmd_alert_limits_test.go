package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAlertServerLimits: `facewatch alert` serves its API through the
// limited server on its real listener. A request whose headers exceed
// 32 KiB is refused with 431 (net/http alone reads up to 1 MB of them),
// and with alert.max_connections 8 a ninth client waits while eight
// connections are held, is served once one of them closes, and the held
// ones are still served. (The slow-loris header case is in TestAlertStage;
// the body read timeout is in internal/httpserve.)
func TestAlertServerLimits(t *testing.T) {
	_, cfgPath, addr := alertStageConfig(t, "  max_connections: 8\n  live_max_clients: 2\n  live_max_per_token: 1\n")
	code, tok, errOut := runAlertCLI(t, "token", "create", "--role", "operator", "--scope", "all", "--person", "Ana", "--config", cfgPath)
	if code != 0 {
		t.Fatalf("token create = exit %d, %s", code, errOut)
	}
	tok = strings.TrimSpace(tok)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() { // ends when ctx is cancelled
		done <- realMain(ctx, []string{"alert", "--config", cfgPath}, &env{stdout: io.Discard, stderr: &stderr, getenv: func(string) string { return "" }})
	}()
	// No kept-alive connection: each request's connection closes with it,
	// so that only the connections held below count against the limit.
	get := func(timeout time.Duration, header string) (int, error) {
		c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
		req, _ := http.NewRequest("GET", "http://"+addr+"/healthz", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if header != "" {
			req.Header.Set("X-Padding", header)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := get(5*time.Second, ""); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("facewatch alert not serving /healthz within 30s; stderr: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Header size.
	for _, tc := range []struct {
		size, want int
	}{{8 << 10, 200}, {64 << 10, http.StatusRequestHeaderFieldsTooLarge}} {
		if code, err := get(10*time.Second, strings.Repeat("x", tc.size)); code != tc.want {
			t.Errorf("GET /healthz with a %d KiB header = %d (%v), want %d", tc.size>>10, code, err, tc.want)
		}
	}

	// Connection limit: eight connections, each holding a request whose
	// headers are unfinished (well inside the 10 s header timeout).
	var held []net.Conn
	defer func() {
		for _, c := range held {
			if c != nil {
				c.Close()
			}
		}
	}()
	for range 8 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET /healthz HTTP/1.1\r\n")
		held = append(held, c)
	}
	if code, err := get(1500*time.Millisecond, ""); err == nil {
		t.Fatalf("a ninth client was served (%d) while 8 of alert.max_connections 8 are held, want it to wait", code)
	}
	held[0].Close()
	held[0] = nil
	if code, err := get(10*time.Second, ""); code != 200 {
		t.Errorf("GET /healthz after one held connection closed = %d, %v; want 200", code, err)
	}
	// A held connection was accepted, not refused: its request completes.
	io.WriteString(held[1], "Host: facewatch\r\nAuthorization: Bearer "+tok+"\r\nConnection: close\r\n\r\n")
	held[1].SetReadDeadline(time.Now().Add(10 * time.Second))
	if line, err := bufio.NewReader(held[1]).ReadString('\n'); err != nil || !strings.Contains(line, " 200 ") {
		t.Errorf("held connection's response = %q, %v; want 200", line, err)
	}
	for i, c := range held {
		if c != nil {
			c.Close()
			held[i] = nil
		}
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
