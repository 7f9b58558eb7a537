package httpserve

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// start serves a handler answering "ok" with lim on a loopback port.
func start(t *testing.T, lim Limits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}), lim)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v, want nil after ctx ends", err)
		}
	})
	return ln.Addr().String()
}

// get fetches / with a client timeout and reports whether "ok" came back.
func get(addr string, timeout time.Duration) error {
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "ok" {
		return fmt.Errorf("GET / = %d %q", resp.StatusCode, b)
	}
	return nil
}

// trickle writes msg one byte per interval on a new connection and
// returns how long the server kept the connection open and how many bytes
// it accepted before closing it.
func trickle(t *testing.T, addr, msg string, interval time.Duration) (time.Duration, int) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	closed := make(chan struct{})
	go func() { // ends when the server closes the connection (or the deferred Close)
		io.Copy(io.Discard, c)
		close(closed)
	}()
	sent := 0
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for sent < len(msg) {
		select {
		case <-closed:
			return time.Since(start), sent
		case <-tick.C:
			if _, err := c.Write([]byte{msg[sent]}); err != nil {
				return time.Since(start), sent
			}
			sent++
		}
	}
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
	}
	return time.Since(start), sent
}

func TestSlowClientsCutOff(t *testing.T) {
	header := "GET / HTTP/1.1\r\nHost: example\r\nUser-Agent: slow-loris-test-client\r\nX-Padding: aaaaaaaaaaaaaaaaaaaa\r\n\r\n"
	body := "POST / HTTP/1.1\r\nHost: example\r\nContent-Length: 64\r\n\r\n" + strings.Repeat("b", 64)
	cases := []struct {
		name  string
		lim   Limits
		msg   string
		bound time.Duration
		// after is the part of msg that the server must not have waited
		// for: the cut-off comes before the client finishes.
		interval time.Duration
	}{
		{"headers one byte per second", Limits{ReadHeaderTimeout: 2 * time.Second, ReadTimeout: 30 * time.Second}, header, 2 * time.Second, time.Second},
		{"body one byte per 100ms", Limits{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 3 * time.Second}, body, 3 * time.Second, 100 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := start(t, tc.lim)
			type result struct {
				held time.Duration
				sent int
			}
			res := make(chan result, 1)
			go func() { // ends when the server cuts the connection or msg is sent
				held, sent := trickle(t, addr, tc.msg, tc.interval)
				res <- result{held, sent}
			}()
			// A normal client is served while the slow one trickles.
			time.Sleep(300 * time.Millisecond)
			if err := get(addr, 5*time.Second); err != nil {
				t.Errorf("normal client during a slow one: %v, want served", err)
			}
			r := <-res
			// Generous slack for a loaded machine, far below the time the
			// slow client needs to finish.
			if r.held > tc.bound+3*time.Second || r.sent >= len(tc.msg) {
				t.Errorf("slow client held the connection %v and sent %d of %d bytes, want cut off within %v (+3s slack)", r.held.Round(time.Millisecond), r.sent, len(tc.msg), tc.bound)
			}
			if r.held < tc.bound-200*time.Millisecond {
				t.Errorf("slow client cut off after %v, before the %v bound", r.held, tc.bound)
			}
		})
	}
}

func TestHeaderSizeLimit(t *testing.T) {
	addr := start(t, Limits{MaxHeaderBytes: 4 << 10})
	cases := []struct {
		name string
		size int
		want int
	}{
		{"small header", 1 << 10, 200},
		{"header over the limit", 64 << 10, http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
			req.Header.Set("X-Big", strings.Repeat("x", tc.size))
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
			if err != nil {
				t.Fatalf("GET with a %d-byte header: %v", tc.size, err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("GET with a %d-byte header = %d, want %d", tc.size, resp.StatusCode, tc.want)
			}
		})
	}
}

func TestConnectionLimit(t *testing.T) {
	addr := start(t, Limits{MaxConns: 2, ReadHeaderTimeout: 20 * time.Second})
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		// Send a partial request so that the connection is accepted and held.
		io.WriteString(c, "GET / HTTP/1.1\r\n")
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	if err := get(addr, time.Second); err == nil {
		t.Fatal("third connection served while 2 of MaxConns=2 are held, want it to wait")
	}
	held[0].Close()
	if err := get(addr, 5*time.Second); err != nil {
		t.Errorf("GET after one held connection closed: %v, want served", err)
	}
	// The held connection still works: the limit refused nobody it had
	// accepted.
	io.WriteString(held[1], "Host: x\r\n\r\n")
	held[1].SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(held[1]).ReadString('\n')
	if err != nil || !strings.Contains(line, "200") {
		t.Errorf("held connection's response = %q, %v, want 200", line, err)
	}
}
