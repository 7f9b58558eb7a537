package camera

/*
#cgo pkg-config: libavutil
#cgo CXXFLAGS: -std=c++17 -O2
#include <stdlib.h>
#include "capture.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unsafe"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/config"
)

// capture is one opened source. Its methods block inside OpenCV for at most
// the timeouts it was opened with (FFmpeg's interrupt callback enforces
// them), but the worker never relies on that alone: see the package comment.
// A capture is used by one goroutine at a time.
type capture struct {
	p C.fw_capture
}

// openCapture opens src with the FFmpeg backend and the given timeouts,
// RTSP over UDP when transport is "udp" (see capture.cpp for how). The
// error carries FFmpeg's own message where it logged one, with credentials
// masked.
func openCapture(src, transport string, openTimeout, readTimeout time.Duration) (*capture, error) {
	cs := C.CString(src)
	defer C.free(unsafe.Pointer(cs))
	var cerr *C.char
	udp := C.int(0)
	if transport == "udp" && (strings.HasPrefix(src, "rtsp://") || strings.HasPrefix(src, "rtsps://")) {
		udp = 1
	}
	p := C.fw_capture_open(cs, udp, C.int(openTimeout/time.Millisecond), C.int(readTimeout/time.Millisecond), &cerr)
	msg := takeCString(cerr)
	if p == nil {
		if msg == "" {
			msg = "FFmpeg could not open the source"
		}
		return nil, errors.New(redactMessage(msg))
	}
	return &capture{p: p}, nil
}

// read decodes the next frame into m (allocated by the caller). It returns
// false with the reason at the end of the stream, on a read timeout or on an
// error.
func (c *capture) read(m *gocv.Mat) (bool, string) {
	var cerr *C.char
	ok := C.fw_capture_read(c.p, unsafe.Pointer(m.Ptr()), &cerr) != 0
	return ok, redactMessage(takeCString(cerr))
}

func (c *capture) get(prop gocv.VideoCaptureProperties) float64 {
	return float64(C.fw_capture_get(c.p, C.int(prop)))
}

// close releases the capture and its FFmpeg context.
func (c *capture) close() {
	if c.p != nil {
		C.fw_capture_close(c.p)
		c.p = nil
	}
}

// codec returns the stream's FourCC as text ("h264").
func (c *capture) codec() string {
	v := uint32(c.get(gocv.VideoCaptureFOURCC))
	b := []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
	return strings.TrimRight(strings.ToLower(string(b)), "\x00 ")
}

func takeCString(s *C.char) string {
	if s == nil {
		return ""
	}
	defer C.free(unsafe.Pointer(s))
	return strings.TrimSpace(C.GoString(s))
}

// redactMessage masks credentials in a message from FFmpeg or OpenCV.
func redactMessage(s string) string {
	if s == "" {
		return s
	}
	return config.RedactError(errors.New(s))
}

// sourceURL turns a configured URL into what FFmpeg opens: file:// URLs
// become plain paths.
func sourceURL(raw string) string {
	if rest, ok := strings.CutPrefix(raw, "file://"); ok {
		return rest
	}
	return raw
}

// explainOpenError adds what FFmpeg does not say when it cannot open a
// source: that a file is missing or is not a video, or what an HTTP server
// answered instead of a video stream.
func explainOpenError(src string, timeout time.Duration, err error) error {
	if !strings.Contains(src, "://") {
		if _, serr := os.Stat(src); serr != nil {
			return serr
		}
		return fmt.Errorf("%w: not a video FFmpeg can read", err)
	}
	u, perr := url.Parse(src)
	if perr != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, rerr := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if rerr != nil {
		return err
	}
	resp, herr := http.DefaultClient.Do(req)
	if herr != nil {
		return fmt.Errorf("%w: %s", err, redactMessage(herr.Error()))
	}
	resp.Body.Close()
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		ct = "none"
	}
	return fmt.Errorf("%w: the server answered %s with content type %s, not a video stream", err, resp.Status, ct)
}
