package synthcam

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/facewatch/facewatch/internal/rtsptest"
)

// Served is a rendered clip being served over RTSP.
type Served struct {
	Server *rtsptest.Server
	Path   *rtsptest.Path
	URL    string
	Truth  Truth
}

// ServeOptions say how to serve a clip.
type ServeOptions struct {
	// Addr is the RTSP listen address; empty means a random loopback port.
	Addr string
	// Name is the stream path ("cam1").
	Name string
	// Loop replays the clip forever; otherwise it plays once.
	Loop bool
	// StartOnPlay holds the clip until the first reader plays, so that the
	// reader sees it from frame 0 (what a test with ground truth wants).
	StartOnPlay bool
	// OnFrame is called for each frame served (see rtsptest.Source).
	OnFrame func(rtsptest.FrameEvent)
	Logger  *slog.Logger
}

// Serve renders s into dir and serves it over RTSP on loopback until ctx
// ends or Close is called on the returned server.
func Serve(ctx context.Context, s Script, dir string, opt ServeOptions) (*Served, error) {
	if opt.Name == "" {
		opt.Name = "cam1"
	}
	file := filepath.Join(dir, opt.Name+".h264")
	truth, err := Render(ctx, s, file)
	if err != nil {
		return nil, err
	}
	clip, err := rtsptest.LoadClip(file, float64(s.FPS))
	if err != nil {
		return nil, fmt.Errorf("serving synthetic clip: %w", err)
	}
	srv, err := rtsptest.Start(ctx, rtsptest.Options{Addr: opt.Addr, Logger: opt.Logger, Sources: []rtsptest.Source{{
		Name: opt.Name, Clip: clip, Loop: opt.Loop, StartOnPlay: opt.StartOnPlay, OnFrame: opt.OnFrame,
	}}})
	if err != nil {
		return nil, err
	}
	return &Served{Server: srv, Path: srv.Path(opt.Name), URL: srv.URL(opt.Name), Truth: truth}, nil
}
