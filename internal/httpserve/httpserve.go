// Package httpserve builds facewatch's HTTP servers (the alert API and
// console, and each stage's --metrics endpoint) with the limits that keep a
// stranger from exhausting them: header and read timeouts, an idle
// timeout, a header size limit and a bound on open connections. It owns
// no routes and no authentication.
package httpserve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits bound what one client, or many, may hold of a server.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's headers: a client that
	// sends them a byte at a time (slow loris) is cut off after it.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included. Streaming
	// handlers (the live feed) lift it for their connection once the
	// request is read (see http.ResponseController).
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response. Streaming handlers replace it
	// with a deadline per write.
	WriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection with no request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header block.
	MaxHeaderBytes int
	// MaxConns bounds the connections open at once; more wait in the
	// kernel's accept queue until one closes.
	MaxConns int
}

// DefaultLimits are the limits of the alert API and the metrics servers.
func DefaultLimits() Limits {
	return Limits{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		MaxConns:          256,
	}
}

// withDefaults fills the zero fields of l from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = d.ReadTimeout
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = d.WriteTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = d.IdleTimeout
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxConns <= 0 {
		l.MaxConns = d.MaxConns
	}
	return l
}

// Server is an HTTP server with Limits applied, on its own listener.
type Server struct {
	srv *http.Server
	ln  net.Listener
	tls bool
}

// Listen listens on addr and returns a server for h with lim applied
// (zero fields take DefaultLimits).
func Listen(addr string, h http.Handler, lim Limits) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	return New(ln, h, lim), nil
}

// New returns a server for h on ln with lim applied (zero fields take
// DefaultLimits).
func New(ln net.Listener, h http.Handler, lim Limits) *Server {
	lim = lim.withDefaults()
	return &Server{
		ln: LimitListener(ln, lim.MaxConns),
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: lim.ReadHeaderTimeout,
			ReadTimeout:       lim.ReadTimeout,
			WriteTimeout:      lim.WriteTimeout,
			IdleTimeout:       lim.IdleTimeout,
			MaxHeaderBytes:    lim.MaxHeaderBytes,
		},
	}
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// HTTP is the underlying server (for tests and for its settings).
func (s *Server) HTTP() *http.Server { return s.srv }

// UseTLS makes the server speak only TLS with cfg (its GetCertificate may
// reload the certificate). TLS sits above the connection limit, so that
// handlers see the TLS state (r.TLS) and a handshake holds a slot.
func (s *Server) UseTLS(cfg *tls.Config) {
	s.srv.TLSConfig = cfg
	s.tls = true
}

// Serve serves until ctx ends, then shuts down, waiting up to grace for
// requests in flight before closing the rest (live feeds do not end on
// Shutdown). It returns nil after a shutdown caused by ctx.
func (s *Server) Serve(ctx context.Context, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { // ends on Shutdown/Close below
		if s.tls {
			errc <- s.srv.ServeTLS(s.ln, "", "")
			return
		}
		errc <- s.srv.Serve(s.ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serving http on %s: %w", s.ln.Addr(), err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := s.srv.Shutdown(shutCtx); err != nil {
		s.srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving http on %s: %w", s.ln.Addr(), err)
	}
	return nil
}

// LimitListener returns a listener that holds at most n connections open
// at once: Accept waits while n are open (the kernel queues the rest).
func LimitListener(ln net.Listener, n int) net.Listener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	sem       chan struct{}
	closeOnce sync.Once
	done      chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
