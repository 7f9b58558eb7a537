// Package mmod runs dlib's MMOD CNN face detector
// (mmod_human_face_detector.dat). It lives in its own cgo package so that
// dlib's DNN templates, which take minutes to compile, are rebuilt only when
// this file changes. A Net is used by one goroutine at a time and shares no
// state with other Nets; C++ exceptions become Go errors. It does not align,
// embed or decode images.
package mmod

/*
#cgo CXXFLAGS: -std=c++14 -O3 -DNDEBUG -DDLIB_NO_GUI_SUPPORT -Wno-deprecated-declarations
#cgo pkg-config: dlib-1
#include <stdlib.h>
#include "mmod.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// Rect is a detection in the input image's pixels (dlib's inclusive
// rectangle) with the network's confidence.
type Rect struct {
	Left, Top, Right, Bottom int
	Score                    float64
}

// Net is one instance of the detector network.
type Net struct {
	p *C.fw_mmod
}

func cerr(e *C.char) error {
	if e == nil {
		return errors.New("unknown dlib error")
	}
	defer C.free(unsafe.Pointer(e))
	return errors.New(C.GoString(e))
}

// Load deserialises the network from path.
func Load(path string) (*Net, error) {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	var p *C.fw_mmod
	var e *C.char
	if C.fw_mmod_new(cs, &p, &e) != 0 {
		return nil, fmt.Errorf("loading MMOD face detector %s: %w", path, cerr(e))
	}
	return &Net{p: p}, nil
}

// Detect finds faces in an 8-bit image of 1 (gray), 3 (BGR) or 4 (BGRA)
// channels, rows of stride bytes, after upsample doublings. Detections with a
// confidence below adjust are dropped (dlib's threshold is 0).
func (n *Net) Detect(pix []byte, rows, cols, stride, channels, upsample int, adjust float64) ([]Rect, error) {
	if n.p == nil {
		return nil, errors.New("MMOD detector is closed")
	}
	if rows <= 0 || cols <= 0 || len(pix) < (rows-1)*stride+cols*channels {
		return nil, fmt.Errorf("image %dx%d with %d channels: %d bytes is too short", cols, rows, channels, len(pix))
	}
	img := C.fw_image{pix: (*C.uint8_t)(unsafe.Pointer(&pix[0])), rows: C.int(rows), cols: C.int(cols), stride: C.int(stride), channels: C.int(channels)}
	var rs *C.fw_rect
	var cnt C.int
	var e *C.char
	if C.fw_mmod_detect(n.p, img, C.int(upsample), C.double(adjust), &rs, &cnt, &e) != 0 {
		return nil, cerr(e)
	}
	if cnt == 0 {
		return nil, nil
	}
	defer C.free(unsafe.Pointer(rs))
	src := unsafe.Slice(rs, int(cnt))
	out := make([]Rect, len(src))
	for i, r := range src {
		out[i] = Rect{int(r.left), int(r.top), int(r.right), int(r.bottom), float64(r.score)}
	}
	return out, nil
}

// Close frees the network; it is safe to call twice.
func (n *Net) Close() {
	if n.p != nil {
		C.fw_mmod_free(n.p)
		n.p = nil
	}
}
