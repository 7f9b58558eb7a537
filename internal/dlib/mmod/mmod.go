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
	"runtime"
	"sync/atomic"
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
	// forwards counts the network's forward passes (Detect: one per call,
	// DetectBatch: one per image size).
	forwards atomic.Uint64
}

// Image is an 8-bit image for DetectBatch, with Detect's conventions:
// Channels 1 (gray), 3 (BGR) or 4 (BGRA), rows of Stride bytes.
type Image struct {
	Pix                          []byte
	Rows, Cols, Stride, Channels int
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
	if err := checkImage(pix, rows, cols, stride, channels); err != nil {
		return nil, err
	}
	img := C.fw_image{pix: (*C.uint8_t)(unsafe.Pointer(&pix[0])), rows: C.int(rows), cols: C.int(cols), stride: C.int(stride), channels: C.int(channels)}
	var rs *C.fw_rect
	var cnt C.int
	var e *C.char
	n.forwards.Add(1)
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

func checkImage(pix []byte, rows, cols, stride, channels int) error {
	if channels != 1 && channels != 3 && channels != 4 {
		return fmt.Errorf("image with %d channels (want 1, 3 or 4)", channels)
	}
	if rows <= 0 || cols <= 0 || stride < cols*channels || len(pix) < (rows-1)*stride+cols*channels {
		return fmt.Errorf("image %dx%d with %d channels, stride %d: %d bytes is too short", cols, rows, channels, stride, len(pix))
	}
	return nil
}

// DetectBatch is Detect for several images, out[i] being images[i]'s
// detections. The network's input layer needs every image of one forward
// pass to be the same size, so images are grouped by size (Rows×Cols) and
// each group runs in one forward pass; a batch of one size is one pass.
// Results are those Detect gives each image alone (see mmod_test.go).
func (n *Net) DetectBatch(images []Image, upsample int, adjust float64) ([][]Rect, error) {
	if n.p == nil {
		return nil, errors.New("MMOD detector is closed")
	}
	for i, im := range images {
		if err := checkImage(im.Pix, im.Rows, im.Cols, im.Stride, im.Channels); err != nil {
			return nil, fmt.Errorf("batch image %d: %w", i, err)
		}
	}
	out := make([][]Rect, len(images))
	type size struct{ rows, cols int }
	var order []size
	groups := map[size][]int{}
	for i, im := range images {
		k := size{im.Rows, im.Cols}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	for _, k := range order {
		if err := n.forward(images, groups[k], upsample, adjust, out); err != nil {
			return nil, fmt.Errorf("MMOD batch of %d %dx%d images: %w", len(groups[k]), k.cols, k.rows, err)
		}
	}
	return out, nil
}

// forward runs images[idx], all of one size, in one forward pass, into
// out[idx[j]].
func (n *Net) forward(images []Image, idx []int, upsample int, adjust float64, out [][]Rect) error {
	// The C array holds pointers to the pixels, which may be Go memory:
	// cgo allows that only for pinned pointers.
	var pin runtime.Pinner
	defer pin.Unpin()
	cims := make([]C.fw_image, len(idx))
	for j, i := range idx {
		im := images[i]
		pin.Pin(&im.Pix[0])
		cims[j] = C.fw_image{pix: (*C.uint8_t)(unsafe.Pointer(&im.Pix[0])), rows: C.int(im.Rows), cols: C.int(im.Cols), stride: C.int(im.Stride), channels: C.int(im.Channels)}
	}
	counts := make([]C.int, len(idx))
	var rs *C.fw_rect
	var e *C.char
	n.forwards.Add(1)
	if C.fw_mmod_detect_batch(n.p, &cims[0], C.int(len(idx)), C.int(upsample), C.double(adjust), &rs, &counts[0], &e) != 0 {
		return cerr(e)
	}
	if rs == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(rs))
	total := 0
	for _, c := range counts {
		total += int(c)
	}
	src := unsafe.Slice(rs, total)
	for j, i := range idx {
		c := int(counts[j])
		if c == 0 {
			continue
		}
		rects := make([]Rect, c)
		for k, r := range src[:c] {
			rects[k] = Rect{int(r.left), int(r.top), int(r.right), int(r.bottom), float64(r.score)}
		}
		out[i] = rects
		src = src[c:]
	}
	return nil
}

// Forwards returns how many forward passes the network has run: one per
// Detect, one per image size per DetectBatch.
func (n *Net) Forwards() uint64 { return n.forwards.Load() }

// Close frees the network; it is safe to call twice.
func (n *Net) Close() {
	if n.p != nil {
		C.fw_mmod_free(n.p)
		n.p = nil
	}
}
