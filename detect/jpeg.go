package detect

import (
	"encoding/binary"
	"fmt"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/jpegbgr"
)

// decodeJPEGBGR decodes the common JPEG (8-bit YCbCr, no EXIF rotation)
// with libjpeg-turbo straight into a BGR Mat, the same pixels OpenCV's
// decoder gives (TestJPEGBGRMatchesOpenCV) without the RGB-to-BGR swap
// OpenCV 4.6 does afterwards. ok is false for any other JPEG, for corrupt
// data and for a rotation to apply: OpenCV decodes those as before.
func decodeJPEGBGR(data []byte, h Header) (gocv.Mat, bool) {
	if o, sure := exifOrientation(data); !sure || o > 1 {
		return gocv.Mat{}, false
	}
	// NewMatWithSizes leaves the pixels as they are (NewMatWithSize would
	// zero them all first, only for the decoder to overwrite them).
	m := gocv.NewMatWithSizes([]int{h.Height, h.Width}, gocv.MatTypeCV8UC3)
	pix, err := m.DataPtrUint8()
	if err == nil && (m.Rows() != h.Height || m.Cols() != h.Width || m.Channels() != 3 || !m.IsContinuous()) {
		err = fmt.Errorf("new Mat is %dx%dx%d, want %dx%dx3", m.Cols(), m.Rows(), m.Channels(), h.Width, h.Height)
	}
	if err == nil {
		err = jpegbgr.Decode(data, h.Width, h.Height, pix)
	}
	if err != nil {
		m.Close()
		return gocv.Mat{}, false
	}
	return m, true
}

// exifOrientation reads the orientation tag (0x0112) of the EXIF block in
// a JPEG's APP1 segment: 0 when there is none. sure is false when the
// segments or the EXIF block are not what it can read with certainty
// (several EXIF blocks, offsets out of range, an odd tag type); the caller
// then leaves orientation to OpenCV.
func exifOrientation(data []byte) (orient int, sure bool) {
	i, seen := 2, false
	for {
		for i+1 < len(data) && data[i] == 0xFF && data[i+1] == 0xFF {
			i++
		}
		if i+4 > len(data) || data[i] != 0xFF {
			return 0, false
		}
		marker := data[i+1]
		switch {
		case marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7):
			i += 2
			continue
		case marker == 0xDA || marker == 0xD9:
			return orient, true
		}
		n := int(binary.BigEndian.Uint16(data[i+2 : i+4]))
		if n < 2 || i+2+n > len(data) {
			return 0, false
		}
		seg := data[i+4 : i+2+n]
		if marker == 0xE1 && len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00" {
			if seen {
				return 0, false
			}
			seen = true
			o, ok := tiffOrientation(seg[6:])
			if !ok {
				return 0, false
			}
			orient = o
		}
		i += 2 + n
	}
}

// tiffOrientation finds the orientation tag in IFD0 of a TIFF block.
func tiffOrientation(t []byte) (int, bool) {
	if len(t) < 8 {
		return 0, false
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0, false
	}
	if bo.Uint16(t[2:4]) != 42 {
		return 0, false
	}
	off := int(bo.Uint32(t[4:8]))
	if off < 8 || off+2 > len(t) {
		return 0, false
	}
	count := int(bo.Uint16(t[off : off+2]))
	if off+2+count*12 > len(t) {
		return 0, false
	}
	for k := 0; k < count; k++ {
		e := t[off+2+k*12 : off+2+(k+1)*12]
		if bo.Uint16(e[0:2]) != 0x0112 {
			continue
		}
		// SHORT, one value, stored in the entry itself.
		if bo.Uint16(e[2:4]) != 3 || bo.Uint32(e[4:8]) != 1 {
			return 0, false
		}
		return int(bo.Uint16(e[8:10])), true
	}
	return 0, true
}
