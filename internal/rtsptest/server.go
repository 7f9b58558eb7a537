// Package rtsptest is a real RTSP server on loopback that serves H.264 clips
// (encoded from real footage with ffmpeg) and injects the faults city
// cameras show: refusing connections, stalling with the connection open,
// dropping and coming back, garbage NAL units, a resolution change and fewer
// frames than announced. Tests use it, and the demo serves a synthetic
// camera with it. It serves only what it is given; it must not decide what a
// camera worker should do, and it imports no testing code outside _test
// files.
package rtsptest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtcp"
)

// Options configures a Server.
type Options struct {
	// Addr is the TCP address to listen on; empty means a random loopback
	// port.
	Addr string
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
	// Sources are served from the start; more can be added with Add.
	Sources []Source
	// UDP also offers RTP over UDP, on a free pair of loopback ports
	// (TCP interleaving is always offered).
	UDP bool
	// TLS, when set, serves RTSPS (TCP only) with this configuration.
	TLS *tls.Config
}

// Source is one stream path.
type Source struct {
	// Name is the path, without a leading slash ("cam1").
	Name string
	// Clip is what is served. Alt, when set, is served after SwitchClip (a
	// resolution change mid-stream).
	Clip, Alt *Clip
	// Loop restarts the clip at its end; without it the clip is served
	// once, then the path's sessions are closed, new readers are refused
	// and Done is closed.
	Loop bool
	// StartOnPlay holds the clip until the first reader plays, so that the
	// reader sees it from its first frame; otherwise it starts at once,
	// like a live camera.
	StartOnPlay bool
	// User and Pass, when set, are required of readers (basic or digest).
	User, Pass string
	// OnFrame, when set, is called after each frame is written, from the
	// path's sending goroutine; it must not block.
	OnFrame func(FrameEvent)
}

// FrameEvent reports one frame served.
type FrameEvent struct {
	Path string
	// Seq counts frames served on the path, from 0, across loops and clip
	// switches.
	Seq uint64
	// Loop is the pass through the clip (0 first) and Index the frame's
	// position in it.
	Loop, Index int
	// PTS is the presentation time of the frame in the stream (Seq/FPS),
	// the time carried in the RTP timestamp relative to the first frame.
	PTS time.Duration
	// Sent is the wall-clock time the frame was written.
	Sent time.Time
	// Garbage is true when the frame was replaced by garbage NAL units.
	Garbage bool
}

// Server is a running RTSP server.
type Server struct {
	log    *slog.Logger
	srv    *gortsplib.Server
	addr   string
	scheme string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // path senders

	mu    sync.Mutex // guards paths
	paths map[string]*Path
}

// Start starts a server; it stops when ctx is done or Close is called.
func Start(ctx context.Context, opts Options) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	// Bind first so that a random port is known before gortsplib listens.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("starting rtsp test server: %w", err)
	}
	s := &Server{
		log:    log.With("component", "rtsptest"),
		addr:   ln.Addr().String(),
		paths:  map[string]*Path{},
		scheme: "rtsp",
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.srv = &gortsplib.Server{
		Handler:     (*handler)(s),
		RTSPAddress: s.addr,
		Listen: func(string, string) (net.Listener, error) {
			return ln, nil
		},
		// Short write timeout so that a stalled reader cannot hold a
		// sender for long.
		WriteTimeout: 5 * time.Second,
	}
	if opts.TLS != nil {
		s.srv.TLSConfig = opts.TLS
		s.scheme = "rtsps"
	}
	if opts.UDP && opts.TLS == nil {
		rtp, rtcp, err := freeUDPPair()
		if err != nil {
			ln.Close()
			s.cancel()
			return nil, fmt.Errorf("starting rtsp test server: %w", err)
		}
		s.srv.UDPRTPAddress, s.srv.UDPRTCPAddress = rtp, rtcp
	}
	if err := s.srv.Start(); err != nil {
		ln.Close()
		s.cancel()
		return nil, fmt.Errorf("starting rtsp test server: %w", err)
	}
	for _, src := range opts.Sources {
		if _, err := s.Add(src); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.wg.Add(1)
	go func() { // stops the server when ctx is done
		defer s.wg.Done()
		<-s.ctx.Done()
		s.srv.Close()
	}()
	return s, nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }

// URL returns the rtsp:// (or rtsps://) URL of path.
func (s *Server) URL(path string) string {
	return s.scheme + "://" + s.addr + "/" + strings.TrimPrefix(path, "/")
}

// URLWithUser returns the URL of path carrying credentials.
func (s *Server) URLWithUser(path, user, pass string) string {
	u := url.URL{Scheme: s.scheme, Host: s.addr, Path: "/" + strings.TrimPrefix(path, "/"), User: url.UserPassword(user, pass)}
	return u.String()
}

// Close stops serving, closes every session and waits for the senders.
func (s *Server) Close() error {
	s.cancel() // the watcher started by Start closes the gortsplib server
	s.wg.Wait()
	s.mu.Lock()
	for _, p := range s.paths {
		p.stream.Close()
	}
	s.mu.Unlock()
	return nil
}

// Path returns the path named name, or nil.
func (s *Server) Path(name string) *Path {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paths[strings.TrimPrefix(name, "/")]
}

// Add starts serving src.
func (s *Server) Add(src Source) (*Path, error) {
	name := strings.TrimPrefix(src.Name, "/")
	if name == "" || src.Clip == nil {
		return nil, errors.New("adding rtsp test path: a source needs a name and a clip")
	}
	desc := &description.Session{Medias: []*description.Media{{
		Type: description.MediaTypeVideo,
		Formats: []format.Format{&format.H264{
			PayloadTyp:        96,
			PacketizationMode: 1,
			SPS:               src.Clip.SPS,
			PPS:               src.Clip.PPS,
		}},
	}}}
	stream := &gortsplib.ServerStream{Server: s.srv, Desc: desc}
	if err := stream.Initialize(); err != nil {
		return nil, fmt.Errorf("adding rtsp test path %s: %w", name, err)
	}
	p := &Path{
		name:     name,
		src:      src,
		stream:   stream,
		playing:  make(chan struct{}),
		done:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
		sessions: map[*gortsplib.ServerSession]bool{},
		rate:     src.Clip.FPS,
	}
	s.mu.Lock()
	if _, dup := s.paths[name]; dup {
		s.mu.Unlock()
		stream.Close()
		return nil, fmt.Errorf("adding rtsp test path %s: already served", name)
	}
	s.paths[name] = p
	s.mu.Unlock()
	s.wg.Add(1)
	go func() { // stops when the server's context is done or a once clip ends
		defer s.wg.Done()
		p.send(s.ctx, s.log)
	}()
	return p, nil
}

// Path is one served stream and its fault controls. Its methods are safe
// for concurrent use.
type Path struct {
	name   string
	src    Source
	stream *gortsplib.ServerStream

	playing     chan struct{} // closed at the first PLAY
	playingOnce sync.Once
	done        chan struct{} // closed when a once clip has been served
	wake        chan struct{} // nudges the sender after a control change

	mu sync.Mutex // guards the fields below
	// sessions set up on this path; true once playing.
	sessions     map[*gortsplib.ServerSession]bool
	refuse       bool
	refuseUntil  time.Time
	stall        bool
	garbage      int
	switchClip   bool
	rate         float64
	ended        bool
	served       uint64
	plays        int
	lastServedAt time.Time
	transport    string
}

// Name is the path's name.
func (p *Path) Name() string { return p.name }

// Refuse makes DESCRIBE answer 503 Service Unavailable while on, as a
// camera that is up but will not serve.
func (p *Path) Refuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

// Stall stops sending frames while on, keeping every connection open.
func (p *Path) Stall(on bool) {
	p.mu.Lock()
	p.stall = on
	p.mu.Unlock()
	p.nudge()
}

// Drop closes every session on the path now and refuses new ones for d, as
// a camera that reboots.
func (p *Path) Drop(d time.Duration) {
	p.mu.Lock()
	p.refuseUntil = time.Now().Add(d)
	var ss []*gortsplib.ServerSession
	for s := range p.sessions {
		ss = append(ss, s)
	}
	p.mu.Unlock()
	for _, s := range ss {
		s.Close()
	}
}

// Garbage replaces the next n frames by garbage: random bytes behind a slice
// header, alternating with truncated real frames.
func (p *Path) Garbage(n int) {
	p.mu.Lock()
	p.garbage += n
	p.mu.Unlock()
}

// SwitchClip switches to the source's Alt clip (and back on the next call)
// at the next keyframe: a resolution change mid-stream, parameter sets sent
// in band.
func (p *Path) SwitchClip() {
	p.mu.Lock()
	p.switchClip = true
	p.mu.Unlock()
}

// SetRate paces frames at fps while the stream keeps announcing the clip's
// rate (timestamps still advance by one clip frame per frame): a camera that
// delivers fewer frames than it says.
func (p *Path) SetRate(fps float64) {
	p.mu.Lock()
	if fps <= 0 {
		fps = p.src.Clip.FPS
	}
	p.rate = fps
	p.mu.Unlock()
	p.nudge()
}

// Served is the number of frames sent so far.
func (p *Path) Served() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.served
}

// Readers is the number of sessions playing the path.
func (p *Path) Readers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, playing := range p.sessions {
		if playing {
			n++
		}
	}
	return n
}

// Plays counts PLAY requests answered on the path (connections made).
func (p *Path) Plays() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.plays
}

// Transport is the lower transport of the last SETUP on the path ("TCP",
// "UDP"), empty before any.
func (p *Path) Transport() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.transport
}

// Done is closed when a clip served once has ended.
func (p *Path) Done() <-chan struct{} { return p.done }

func (p *Path) nudge() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// refusing reports whether new readers are turned away and with what.
func (p *Path) refusing() (base.StatusCode, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.ended:
		return base.StatusNotFound, true
	case p.refuse, time.Now().Before(p.refuseUntil):
		return base.StatusServiceUnavailable, true
	}
	return 0, false
}

// send writes the clip's frames to the stream at the clip's pace (or the
// rate set by SetRate) until ctx is done or a once clip ends.
func (p *Path) send(ctx context.Context, log *slog.Logger) {
	if p.src.StartOnPlay {
		select {
		case <-ctx.Done():
			return
		case <-p.playing:
		}
		// The session becomes active just after OnPlay returns: wait
		// until it receives packets (an empty RTCP receiver report, which
		// readers ignore) so that the first keyframe reaches it.
		if !p.waitActive(ctx) {
			return
		}
	}
	medi := p.stream.Desc.Medias[0]
	enc := &rtph264.Encoder{PayloadType: 96, PacketizationMode: 1}
	if err := enc.Init(); err != nil {
		log.Error("initialising rtp encoder", "path", p.name, "error", err)
		return
	}
	var rb [4]byte
	_, _ = rand.Read(rb[:])
	tsBase := binary.BigEndian.Uint32(rb[:])
	clip := p.src.Clip
	announced := clip.FPS
	var seq uint64
	next := time.Now()
	loop, i := 0, 0
	for {
		// Wait while stalled.
		for {
			p.mu.Lock()
			stalled := p.stall
			p.mu.Unlock()
			if !stalled {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-p.wake:
			case <-time.After(50 * time.Millisecond):
			}
			next = time.Now()
		}
		if i == len(clip.AUs) {
			if !p.src.Loop {
				p.end()
				return
			}
			i = 0
			loop++
		}
		au := clip.AUs[i]
		p.mu.Lock()
		if p.switchClip && p.src.Alt != nil && isIDR(au) {
			p.switchClip = false
			if clip == p.src.Clip {
				clip = p.src.Alt
			} else {
				clip = p.src.Clip
			}
			i = 0
			au = clip.AUs[0]
		}
		garbage := false
		if p.garbage > 0 {
			p.garbage--
			garbage = true
			au = garble(au, seq)
		}
		rate := p.rate
		p.mu.Unlock()

		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			case <-p.wake:
				next = time.Now()
				continue
			}
		} else if d < -time.Second {
			next = time.Now() // far behind (a slow machine): do not burst
		}
		next = next.Add(time.Duration(float64(time.Second) / rate))

		pkts, err := enc.Encode(au)
		if err != nil {
			log.Error("encoding rtp", "path", p.name, "error", err)
			return
		}
		ts := tsBase + uint32(float64(seq)*90000/announced)
		now := time.Now()
		for _, pkt := range pkts {
			pkt.Timestamp = ts
			if err := p.stream.WritePacketRTPWithNTP(medi, pkt, now); err != nil {
				if ctx.Err() != nil {
					return
				}
				log.Debug("writing rtp", "path", p.name, "error", err)
			}
		}
		p.mu.Lock()
		p.served++
		p.lastServedAt = now
		p.mu.Unlock()
		if p.src.OnFrame != nil {
			p.src.OnFrame(FrameEvent{
				Path: p.name, Seq: seq, Loop: loop, Index: i,
				PTS:  time.Duration(float64(seq) / announced * float64(time.Second)),
				Sent: now, Garbage: garbage,
			})
		}
		seq++
		i++
	}
}

// waitActive waits until a playing session receives what the stream
// writes, or 2 s.
func (p *Path) waitActive(ctx context.Context) bool {
	medi := p.stream.Desc.Medias[0]
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		active := false
		for ss, playing := range p.sessions {
			if playing && ss.Stats().BytesSent > 0 {
				active = true
			}
		}
		p.mu.Unlock()
		if active {
			return true
		}
		_ = p.stream.WritePacketRTCP(medi, &rtcp.ReceiverReport{SSRC: 1})
		if !sleepCtx(ctx, 5*time.Millisecond) {
			return false
		}
	}
	return ctx.Err() == nil
}

// end marks a once clip finished: new readers get 404, current sessions
// are closed once the last packets have had time to leave.
func (p *Path) end() {
	time.Sleep(300 * time.Millisecond)
	p.mu.Lock()
	p.ended = true
	var ss []*gortsplib.ServerSession
	for s := range p.sessions {
		ss = append(ss, s)
	}
	p.mu.Unlock()
	for _, s := range ss {
		s.Close()
	}
	close(p.done)
}

// garble returns a broken replacement for au: even frames get a slice
// header followed by random bytes, odd ones the real frame cut in half.
func garble(au [][]byte, seq uint64) [][]byte {
	if seq%2 == 0 {
		b := make([]byte, 600)
		_, _ = rand.Read(b)
		b[0] = 0x41 // nal_ref_idc 2, type 1 (non-IDR slice)
		for j := 1; j < len(b); j++ {
			if b[j] == 0 { // avoid accidental start codes
				b[j] = 0xff
			}
		}
		return [][]byte{b}
	}
	out := make([][]byte, 0, len(au))
	for _, n := range au {
		if len(n) > 16 {
			out = append(out, n[:len(n)/2])
		} else {
			out = append(out, n)
		}
	}
	return out
}

// freeUDPPair finds two consecutive free loopback UDP ports, the first
// even, as RTP and RTCP need.
func freeUDPPair() (string, string, error) {
	for range 50 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", "", err
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		port &^= 1
		a, b := fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", port+1)
		ca, err := net.ListenPacket("udp", a)
		if err != nil {
			continue
		}
		cb, err := net.ListenPacket("udp", b)
		ca.Close()
		if err != nil {
			continue
		}
		cb.Close()
		return a, b, nil
	}
	return "", "", errors.New("no free pair of udp ports")
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// handler answers the RTSP requests for a Server.
type handler Server

func (h *handler) path(name string) *Path {
	return (*Server)(h).Path(name)
}

func (h *handler) check(ctx *gortsplib.ServerConn, req *base.Request, name string) (*Path, *base.Response, error) {
	p := h.path(name)
	if p == nil {
		return nil, &base.Response{StatusCode: base.StatusNotFound}, fmt.Errorf("path %q not found", name)
	}
	if p.src.User != "" && !ctx.VerifyCredentials(req, p.src.User, p.src.Pass) {
		return nil, &base.Response{StatusCode: base.StatusUnauthorized}, liberrors.ErrServerAuth{}
	}
	if code, ok := p.refusing(); ok {
		return nil, &base.Response{StatusCode: code}, fmt.Errorf("path %q refusing", name)
	}
	return p, nil, nil
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	p, res, err := h.check(ctx.Conn, ctx.Request, ctx.Path)
	if err != nil {
		return res, nil, err
	}
	return &base.Response{StatusCode: base.StatusOK}, p.stream, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	p, res, err := h.check(ctx.Conn, ctx.Request, ctx.Path)
	if err != nil {
		return res, nil, err
	}
	p.mu.Lock()
	p.sessions[ctx.Session] = false
	p.transport = ctx.Transport.String()
	p.mu.Unlock()
	return &base.Response{StatusCode: base.StatusOK}, p.stream, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (h *handler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	p := h.path(ctx.Path)
	if p == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, fmt.Errorf("path %q not found", ctx.Path)
	}
	p.mu.Lock()
	p.sessions[ctx.Session] = true
	p.plays++
	p.mu.Unlock()
	p.playingOnce.Do(func() { close(p.playing) })
	h.log.Debug("play", "path", p.name)
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose.
func (h *handler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	s := (*Server)(h)
	s.mu.Lock()
	paths := make([]*Path, 0, len(s.paths))
	for _, p := range s.paths {
		paths = append(paths, p)
	}
	s.mu.Unlock()
	for _, p := range paths {
		p.mu.Lock()
		delete(p.sessions, ctx.Session)
		p.mu.Unlock()
	}
}

// OnConnClose implements gortsplib.ServerHandlerOnConnClose.
func (h *handler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	if ctx.Error != nil && !errors.Is(ctx.Error, io.EOF) {
		h.log.Debug("connection closed", "error", ctx.Error)
	}
}
