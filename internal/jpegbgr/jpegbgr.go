// Package jpegbgr decodes the common kind of JPEG (8-bit, three YCbCr
// components) with libjpeg-turbo straight into BGR pixels, the layout
// OpenCV's Mats and facewatch's frames use. OpenCV 4.6's decoder has
// libjpeg write RGB and then swaps every pixel to BGR in a scalar loop,
// about a third of the cost of decoding a photo; libjpeg-turbo's own BGR
// output writes the same bytes in its colour conversion. Anything else
// (gray, CMYK, 12-bit, corrupt data, even when libjpeg would decode it with
// a warning) is refused with an error that says so, for the caller to
// decode another way. It knows nothing of EXIF orientation.
package jpegbgr

/*
#cgo CFLAGS: -O2
#cgo LDFLAGS: -ljpeg
#include "jpegbgr.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// Sentinel errors of Decode, for errors.Is.
var (
	// ErrOther: the JPEG is not 8-bit, three-component YCbCr, or not of
	// the size the caller gave.
	ErrOther = errors.New("not an 8-bit YCbCr JPEG of that size")
	// ErrCorrupt: libjpeg refused the data, or decoded it with warnings
	// (corrupt data).
	ErrCorrupt = errors.New("libjpeg found the data corrupt")
)

// Decode decodes data, a JPEG of width x height pixels (from its header),
// into pix: height rows of width*3 bytes, blue, green, red. pix is
// overwritten, in part, even when Decode fails.
func Decode(data []byte, width, height int, pix []byte) error {
	if width <= 0 || height <= 0 || len(data) == 0 {
		return fmt.Errorf("decoding JPEG: %w: %dx%d, %d bytes", ErrOther, width, height, len(data))
	}
	if len(pix) < width*height*3 {
		return fmt.Errorf("decoding JPEG: %d bytes of pixels for %dx%d", len(pix), width, height)
	}
	switch rc := C.fw_jpeg_decode_bgr((*C.uint8_t)(unsafe.Pointer(&data[0])), C.size_t(len(data)),
		(*C.uint8_t)(unsafe.Pointer(&pix[0])), C.int(width), C.int(height)); rc {
	case C.FW_JPEG_OK:
		return nil
	case C.FW_JPEG_OTHER:
		return fmt.Errorf("decoding JPEG: %w", ErrOther)
	case C.FW_JPEG_WARNED:
		return fmt.Errorf("decoding JPEG: %w (warnings)", ErrCorrupt)
	default:
		return fmt.Errorf("decoding JPEG: %w", ErrCorrupt)
	}
}
