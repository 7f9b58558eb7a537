package camera

/*
#cgo pkg-config: opencv4 libavutil
#cgo CXXFLAGS: -std=c++17 -O2
#include <stdlib.h>
#include "capture.h"
*/
import "C"

import (
	"errors"
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

// openCapture opens src with the FFmpeg backend and the given timeouts. The
// error carries FFmpeg's own message where it logged one, with credentials
// masked.
func openCapture(src string, openTimeout, readTimeout time.Duration) (*capture, error) {
	cs := C.CString(src)
	defer C.free(unsafe.Pointer(cs))
	var cerr *C.char
	p := C.fw_capture_open(cs, C.int(openTimeout/time.Millisecond), C.int(readTimeout/time.Millisecond), &cerr)
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
