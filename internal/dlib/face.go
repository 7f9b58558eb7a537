package dlib

/*
#include <stdlib.h>
#include "face.h"
#include "hog_avx2.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"slices"
	"unsafe"
)

// Image is a borrowed view of 8-bit pixels: Channels is 1 (gray), 3 (BGR)
// or 4 (BGRA); each row starts Stride bytes after the previous one. The
// pixels are copied into dlib's RGB matrix inside each call and never kept.
type Image struct {
	Pix                          []byte
	Rows, Cols, Stride, Channels int
}

func (im Image) c() (C.fw_image, error) {
	if im.Rows <= 0 || im.Cols <= 0 {
		return C.fw_image{}, fmt.Errorf("image is empty (%dx%d)", im.Cols, im.Rows)
	}
	switch im.Channels {
	case 1, 3, 4:
	default:
		return C.fw_image{}, fmt.Errorf("image has %d channels, want 1, 3 or 4", im.Channels)
	}
	if im.Stride < im.Cols*im.Channels || len(im.Pix) < (im.Rows-1)*im.Stride+im.Cols*im.Channels {
		return C.fw_image{}, fmt.Errorf("image %dx%d: %d bytes with stride %d is too short", im.Cols, im.Rows, len(im.Pix), im.Stride)
	}
	return C.fw_image{
		pix:      (*C.uint8_t)(unsafe.Pointer(&im.Pix[0])),
		rows:     C.int(im.Rows),
		cols:     C.int(im.Cols),
		stride:   C.int(im.Stride),
		channels: C.int(im.Channels),
	}, nil
}

// Rect is a detection in image pixels (dlib's inclusive rectangle) with the
// detector's score.
type Rect struct {
	Left, Top, Right, Bottom int
	Score                    float64
}

func cerr(e *C.char) error {
	if e == nil {
		return errors.New("unknown dlib error")
	}
	defer C.free(unsafe.Pointer(e))
	return errors.New(C.GoString(e))
}

// HOG is dlib's frontal face detector (HOG features, linear SVMs). One
// goroutine at a time.
type HOG struct {
	p *C.fw_hog
}

// NewHOG builds the detector (its weights are compiled into dlib). On a
// CPU with AVX2 it runs a copy of dlib's HOG code compiled for AVX2
// (hog_avx2.cc), whose results are bit-identical to the portable build's
// and which takes 6-7 % less CPU (docs/recognition.md, "Speed").
func NewHOG() (*HOG, error) { return newHOG(true) }

func newHOG(allowAVX2 bool) (*HOG, error) {
	var p *C.fw_hog
	var e *C.char
	allow := C.int(0)
	if allowAVX2 {
		allow = 1
	}
	if C.fw_hog_new(allow, &p, &e) != 0 {
		return nil, fmt.Errorf("creating HOG face detector: %w", cerr(e))
	}
	return &HOG{p: p}, nil
}

// AVX2 reports whether detection runs the AVX2 copy of dlib's HOG code.
func (h *HOG) AVX2() bool { return h.p != nil && C.fw_hog_avx2_in_use(h.p) != 0 }

// AVX512 reports whether the AVX2 copy, on this CPU, filters the HOG
// features with AVX-512, 16 floats at a time (hog_avx512.hpp), and
// extracts them and steps down the image pyramid 16 pixels at a time
// (fhog_avx512.hpp), with results bit-identical to dlib's code.
func (h *HOG) AVX512() bool { return h.AVX2() && C.fw_hog_avx512_filter_supported() != 0 }

// Detect finds faces after upsample doublings of the image; boxes are in the
// input image's pixels. adjust is added to dlib's threshold (0 as go-face).
func (h *HOG) Detect(im Image, upsample int, adjust float64) ([]Rect, error) {
	return h.DetectUpTo(im, upsample, adjust, 0)
}

// HOGWindow is the side, in searched pixels, of the faces dlib's HOG
// detector finds at its first pyramid level; each further level finds
// faces 6/5 as large (dlib's pyramid_down<6>).
const HOGWindow = 80

// HOGLevels is how many levels of the HOG detector's pyramid reach faces
// of up to maxFace searched pixels: the level whose faces are at least
// that large, and one more for the slack of its boxes (a level finds faces
// a little larger than its own size). 0 for maxFace 0: all levels.
func HOGLevels(maxFace int) int {
	if maxFace <= 0 {
		return 0
	}
	k := 0
	for side := float64(HOGWindow); side < float64(maxFace); side *= 1.2 {
		k++
	}
	return k + 2
}

// DetectUpTo is Detect for faces of at most maxFace pixels of the image
// after its upsampling (0: any size): the levels of dlib's pyramid that
// only larger faces need, each 5/6 of the one before, are not built or
// scanned (HOGLevels). A larger face may still be found, from the levels
// scanned, but need not be.
func (h *HOG) DetectUpTo(im Image, upsample int, adjust float64, maxFace int) ([]Rect, error) {
	if h.p == nil {
		return nil, errors.New("HOG detector is closed")
	}
	ci, err := im.c()
	if err != nil {
		return nil, err
	}
	var rs *C.fw_rect
	var n C.int
	var e *C.char
	if C.fw_hog_detect(h.p, ci, C.int(upsample), C.double(adjust), C.int(HOGLevels(maxFace)), &rs, &n, &e) != 0 {
		return nil, cerr(e)
	}
	if n == 0 {
		return nil, nil
	}
	defer C.free(unsafe.Pointer(rs))
	return rectsFromC(unsafe.Slice(rs, int(n))), nil
}

func rectsFromC(src []C.fw_rect) []Rect {
	out := make([]Rect, len(src))
	for i, r := range src {
		out[i] = Rect{int(r.left), int(r.top), int(r.right), int(r.bottom), float64(r.score)}
	}
	return out
}

// filterPlane runs dlib's separable float filter, as HOG detection runs it,
// on an nr x nc plane (row-major) into out (which it adds to when addTo):
// the AVX2 copy's (AVX-512 where the CPU has it) when avx2, else the
// portable build's. For tests.
func filterPlane(avx2 bool, in []float32, nr, nc int, rowF, colF []float32, out []float32, addTo bool) error {
	if len(in) != nr*nc || len(out) != nr*nc || nr < 1 || nc < 1 || len(rowF) < 1 || len(colF) < 1 {
		return fmt.Errorf("filter plane: %d and %d floats for %dx%d, filters of %d and %d", len(in), len(out), nc, nr, len(rowF), len(colF))
	}
	add := C.int(0)
	if addTo {
		add = 1
	}
	pin, prow, pcol, pout := (*C.float)(&in[0]), (*C.float)(&rowF[0]), (*C.float)(&colF[0]), (*C.float)(&out[0])
	var e *C.char
	var rc C.int
	if avx2 {
		rc = C.fw_hog_avx2_filter(pin, C.long(nr), C.long(nc), prow, C.long(len(rowF)), pcol, C.long(len(colF)), pout, add, &e)
	} else {
		rc = C.fw_hog_filter(pin, C.long(nr), C.long(nc), prow, C.long(len(rowF)), pcol, C.long(len(colF)), pout, add, &e)
	}
	if rc != 0 {
		return cerr(e)
	}
	return nil
}

// hogFeatures returns the 31 HOG feature planes (each nr x nc floats, one
// after another) of im after levels steps down the detector's image
// pyramid, with cells of cellSize pixels and the filter paddings pr and pc:
// the AVX2 copy's extractor (AVX-512 where the CPU has it) when avx2, else
// the portable build's dlib code. For tests.
func hogFeatures(avx2 bool, im Image, levels, cellSize, pr, pc int) (planes []float32, nr, nc int, err error) {
	ci, err := im.c()
	if err != nil {
		return nil, 0, 0, err
	}
	var out *C.float
	var cnr, cnc C.long
	var e *C.char
	var rc C.int
	if avx2 {
		rc = C.fw_hog_avx2_features(ci, C.int(levels), C.int(cellSize), C.int(pr), C.int(pc), &out, &cnr, &cnc, &e)
	} else {
		rc = C.fw_hog_features(ci, C.int(levels), C.int(cellSize), C.int(pr), C.int(pc), &out, &cnr, &cnc, &e)
	}
	if rc != 0 {
		return nil, 0, 0, cerr(e)
	}
	defer C.free(unsafe.Pointer(out))
	nr, nc = int(cnr), int(cnc)
	return slices.Clone(unsafe.Slice((*float32)(unsafe.Pointer(out)), 31*nr*nc)), nr, nc, nil
}

// hogPyramid returns the pixels (red, green, blue; nr x nc) of im after
// levels (at least 1) steps down the detector's image pyramid: the AVX2
// copy's (AVX-512 where the CPU has it) when avx2, else the portable
// build's. For tests.
func hogPyramid(avx2 bool, im Image, levels int) (pix []byte, nr, nc int, err error) {
	ci, err := im.c()
	if err != nil {
		return nil, 0, 0, err
	}
	var out *C.uint8_t
	var cnr, cnc C.long
	var e *C.char
	var rc C.int
	if avx2 {
		rc = C.fw_hog_avx2_pyramid(ci, C.int(levels), &out, &cnr, &cnc, &e)
	} else {
		rc = C.fw_hog_pyramid(ci, C.int(levels), &out, &cnr, &cnc, &e)
	}
	if rc != 0 {
		return nil, 0, 0, cerr(e)
	}
	defer C.free(unsafe.Pointer(out))
	nr, nc = int(cnr), int(cnc)
	return C.GoBytes(unsafe.Pointer(out), C.int(nr*nc*3)), nr, nc, nil
}

// Close frees the detector; it is safe to call twice.
func (h *HOG) Close() {
	if h.p != nil {
		C.fw_hog_free(h.p)
		h.p = nil
	}
}

// ShapePredictor is dlib's 5-point landmark model. One goroutine at a time.
type ShapePredictor struct {
	p *C.fw_shape
}

// LoadShapePredictor deserialises shape_predictor_5_face_landmarks.dat.
func LoadShapePredictor(path string) (*ShapePredictor, error) {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	var p *C.fw_shape
	var e *C.char
	if C.fw_shape_new(cs, &p, &e) != 0 {
		return nil, fmt.Errorf("loading shape predictor %s: %w", path, cerr(e))
	}
	return &ShapePredictor{p: p}, nil
}

// Point is a landmark in image pixels.
type Point struct{ X, Y int }

// Align finds the 5 landmarks of each rect and cuts its aligned chip of
// size×size RGB pixels with dlib's get_face_chip_details(shape, size,
// padding). It returns 5 points per rect and the chips, size*size*3 bytes
// each, back to back.
func (s *ShapePredictor) Align(im Image, rects []Rect, size int, padding float64) ([][5]Point, []byte, error) {
	if s.p == nil {
		return nil, nil, errors.New("shape predictor is closed")
	}
	if len(rects) == 0 {
		return nil, nil, nil
	}
	if size < 1 || size > 1000 {
		return nil, nil, fmt.Errorf("chip size %d out of range", size)
	}
	ci, err := im.c()
	if err != nil {
		return nil, nil, err
	}
	crs := (*C.fw_rect)(C.malloc(C.size_t(len(rects)) * C.size_t(unsafe.Sizeof(C.fw_rect{}))))
	defer C.free(unsafe.Pointer(crs))
	cr := unsafe.Slice(crs, len(rects))
	for i := range cr {
		cr[i] = C.fw_rect{left: C.long(rects[i].Left), top: C.long(rects[i].Top), right: C.long(rects[i].Right), bottom: C.long(rects[i].Bottom), score: C.double(rects[i].Score)}
	}
	pts := make([]C.long, len(rects)*10)
	chips := make([]byte, len(rects)*size*size*3)
	var e *C.char
	if C.fw_shape_align(s.p, ci, crs, C.int(len(rects)), C.int(size), C.double(padding), &pts[0], (*C.uint8_t)(unsafe.Pointer(&chips[0])), &e) != 0 {
		return nil, nil, cerr(e)
	}
	out := make([][5]Point, len(rects))
	for i := range out {
		for j := 0; j < 5; j++ {
			out[i][j] = Point{int(pts[(i*5+j)*2]), int(pts[(i*5+j)*2+1])}
		}
	}
	return out, chips, nil
}

// Close frees the model; it is safe to call twice.
func (s *ShapePredictor) Close() {
	if s.p != nil {
		C.fw_shape_free(s.p)
		s.p = nil
	}
}

// Jitter returns count copies of an RGB size×size chip, each randomly
// zoomed, rotated, shifted and mirrored by dlib's jitter_image, from a
// generator seeded with seed.
func Jitter(chip []byte, size, count int, seed uint64) ([]byte, error) {
	if len(chip) != size*size*3 || count < 1 {
		return nil, fmt.Errorf("jitter: chip of %d bytes for size %d, count %d", len(chip), size, count)
	}
	out := make([]byte, count*len(chip))
	var e *C.char
	if C.fw_jitter((*C.uint8_t)(unsafe.Pointer(&chip[0])), C.int(size), C.int(count), C.ulong(seed), (*C.uint8_t)(unsafe.Pointer(&out[0])), &e) != 0 {
		return nil, cerr(e)
	}
	return out, nil
}
