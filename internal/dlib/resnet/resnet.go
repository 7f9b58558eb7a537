// Package resnet runs dlib's face recognition ResNet
// (dlib_face_recognition_resnet_model_v1) over aligned 150x150 RGB chips,
// batched, with its own convolution layer (fastcon.hpp) that gives dlib's
// floats bit for bit. It lives in its own cgo package so that dlib's DNN
// templates, which take minutes to compile, are rebuilt only when this
// package changes.
// Each Net is owned by one goroutine at a time; it shares no state with other
// Nets. C++ exceptions become Go errors. It knows nothing of detection,
// cameras or watchlists.
package resnet

/*
#cgo CXXFLAGS: -std=c++14 -O3 -DNDEBUG -DDLIB_NO_GUI_SUPPORT -Wno-deprecated-declarations
#cgo pkg-config: dlib-1
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "resnet.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// ChipSize is the side of the chips the network takes.
const ChipSize = 150

// Dim is the length of a descriptor.
const Dim = 128

// ChipBytes is the size of one RGB chip.
const ChipBytes = ChipSize * ChipSize * 3

// Net is one instance of the network.
type Net struct {
	p *C.fw_resnet
}

func cerr(e *C.char) error {
	if e == nil {
		return errors.New("unknown dlib error")
	}
	defer C.free(unsafe.Pointer(e))
	return errors.New(C.GoString(e))
}

// Load deserialises the network from path. Its convolutions run on
// fastcon.hpp's layer, which gives dlib's floats bit for bit with a faster
// column matrix (on a CUDA build of dlib they stay dlib's, on the GPU).
func Load(path string) (*Net, error) {
	return load(path, false)
}

// LoadStock deserialises the network from path built on dlib's own
// convolution layer, as dlib's dnn_face_recognition_ex.cpp declares it; it
// is there to check Load's network against, and is slower.
func LoadStock(path string) (*Net, error) {
	return load(path, true)
}

func load(path string, stock bool) (*Net, error) {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	var p *C.fw_resnet
	var e *C.char
	st := C.int(0)
	if stock {
		st = 1
	}
	if C.fw_resnet_new(cs, st, &p, &e) != 0 {
		return nil, fmt.Errorf("loading face recognition network %s: %w", path, cerr(e))
	}
	return &Net{p: p}, nil
}

// Embed computes one descriptor per chip (chips holds n*ChipBytes RGB
// bytes) into out (n*Dim floats), running batch chips per forward pass.
func (n *Net) Embed(chips []byte, batch, jitter int, out []float32) error {
	if n.p == nil {
		return errors.New("network is closed")
	}
	if len(chips)%ChipBytes != 0 {
		return fmt.Errorf("chips: %d bytes is not a multiple of %d", len(chips), ChipBytes)
	}
	count := len(chips) / ChipBytes
	if count == 0 {
		return nil
	}
	if len(out) < count*Dim {
		return fmt.Errorf("output: %d floats for %d chips", len(out), count)
	}
	var e *C.char
	if C.fw_resnet_embed(n.p, (*C.uint8_t)(unsafe.Pointer(&chips[0])), C.int(count), C.int(batch), C.int(jitter), (*C.float)(unsafe.Pointer(&out[0])), &e) != 0 {
		return cerr(e)
	}
	return nil
}

// FastConvs reports how many convolution layers of the network run on
// fastcon.hpp's layer (29 for Load's, 0 for LoadStock's or on a CUDA build)
// and how many forward passes they have made between them.
func (n *Net) FastConvs() (layers int, calls uint64) {
	if n.p == nil {
		return 0, 0
	}
	var l C.int
	c := C.fw_resnet_fast_convs(n.p, &l)
	return int(l), uint64(c)
}

// Close frees the network; it is safe to call twice.
func (n *Net) Close() {
	if n.p != nil {
		C.fw_resnet_free(n.p)
		n.p = nil
	}
}

// SetBLASThreads sets how many threads OpenBLAS (when it is the BLAS dlib
// runs on) uses inside one call. It is a process-wide setting of the
// library: facewatch runs one thread per network and gets parallelism from
// workers, each with its own network, which on a shared CPU is much faster
// than OpenBLAS's default of one thread per core for every call. It reports
// whether the BLAS in use has the setting.
func SetBLASThreads(n int) bool {
	return C.fw_blas_set_threads(C.int(n)) != 0
}
