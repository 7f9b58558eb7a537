package detect

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"

	"gocv.io/x/gocv"
)

// Sentinel errors of decoding, for errors.Is.
var (
	// ErrTooLarge: the image has more pixels than allowed; it was refused
	// from its header, before decoding.
	ErrTooLarge = errors.New("image too large")
	// ErrCorrupt: the bytes are empty, truncated, not a JPEG or PNG, or do
	// not decode.
	ErrCorrupt = errors.New("corrupt or unsupported image")
	// ErrUnsupported: the bytes are an image of a format Decode does not
	// read (WebP, GIF, BMP, TIFF, HEIF); it is also ErrCorrupt.
	ErrUnsupported = fmt.Errorf("%w: unsupported format", ErrCorrupt)
)

// AcceptedFormats names the image formats Decode reads, for messages.
const AcceptedFormats = "JPEG and PNG"

// sniffFormat names a format Decode does not read, from its magic bytes,
// so that the refusal says what the file is.
func sniffFormat(data []byte) string {
	switch {
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return "WebP is not supported"
	case bytes.HasPrefix(data, []byte("GIF8")):
		return "GIF is not supported"
	case bytes.HasPrefix(data, []byte("BM")):
		return "BMP is not supported"
	case bytes.HasPrefix(data, []byte("II*\x00")), bytes.HasPrefix(data, []byte("MM\x00*")):
		return "TIFF is not supported"
	case len(data) >= 12 && string(data[4:8]) == "ftyp":
		return "HEIF/AVIF is not supported"
	}
	return unknownFormat
}

// unknownFormat is sniffFormat's answer for bytes of no image format it
// knows.
const unknownFormat = "unknown format"

// DecodeFile reads and decodes a JPEG or PNG file (see Decode).
func DecodeFile(path string, maxPixels int64) (gocv.Mat, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("reading image: %w", err)
	}
	m, err := Decode(data, maxPixels)
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Decode decodes JPEG or PNG bytes into an 8-bit BGR Mat the caller closes,
// turned as the EXIF orientation says. Grayscale, CMYK and 16-bit images are
// converted to 8-bit BGR. Images with more than maxPixels pixels are refused
// from their header (ImageHeader), before any pixel is decoded or any
// buffer allocated (maxPixels <= 0 means MaxImagePixels).
func Decode(data []byte, maxPixels int64) (gocv.Mat, error) {
	hdr, err := CheckHeader(data, maxPixels)
	if err != nil {
		return gocv.Mat{}, err
	}
	format := hdr.Format
	if format == "jpeg" && truncatedJPEG(data) {
		return gocv.Mat{}, fmt.Errorf("decoding image: %w: JPEG is truncated (no end marker after the last scan)", ErrCorrupt)
	}
	if format == "png" && !bytes.Contains(data[max(0, len(data)-64):], []byte("IEND")) {
		return gocv.Mat{}, fmt.Errorf("decoding image: %w: PNG is truncated (no IEND chunk)", ErrCorrupt)
	}
	if format == "jpeg" {
		if m, ok := decodeJPEGBGR(data, hdr); ok {
			return m, nil
		}
	}
	m, err := gocv.IMDecode(data, gocv.IMReadColor)
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("decoding %s image: %w: %v", format, ErrCorrupt, err)
	}
	if m.Empty() {
		m.Close()
		return gocv.Mat{}, fmt.Errorf("decoding %s image: %w", format, ErrCorrupt)
	}
	return m, nil
}

// Header is what an image's header says, read without decoding it.
type Header struct {
	// Format is "jpeg" or "png".
	Format        string
	Width, Height int
}

// Pixels is Width*Height.
func (h Header) Pixels() int64 { return int64(h.Width) * int64(h.Height) }

// CheckHeader reads data's header (ImageHeader) and refuses an image of
// more than maxPixels pixels (maxPixels <= 0 means MaxImagePixels) with
// ErrTooLarge. Every decode goes through it before allocating anything.
func CheckHeader(data []byte, maxPixels int64) (Header, error) {
	h, err := ImageHeader(data)
	if err != nil {
		return Header{}, err
	}
	if maxPixels <= 0 || maxPixels > MaxImagePixels {
		maxPixels = MaxImagePixels
	}
	if px := h.Pixels(); px > maxPixels {
		return Header{}, fmt.Errorf("decoding image: %w: %dx%d is %d pixels, limit %d", ErrTooLarge, h.Width, h.Height, px, maxPixels)
	}
	return h, nil
}

// ImageHeader reads a JPEG's or PNG's format and size from its header (a
// JPEG's start-of-frame segment, a PNG's IHDR chunk) without decoding or
// allocating: a few bytes decide whether a frame may be decoded at all.
func ImageHeader(data []byte) (Header, error) {
	var h Header
	switch {
	case len(data) == 0:
		return Header{}, fmt.Errorf("decoding image: %w: no bytes", ErrCorrupt)
	case bytes.HasPrefix(data, pngMagic):
		// Signature, then the IHDR chunk: length (13), "IHDR", width,
		// height (big-endian, 1..2^31-1).
		if len(data) < 24 || string(data[12:16]) != "IHDR" || binary.BigEndian.Uint32(data[8:12]) != 13 {
			return Header{}, fmt.Errorf("decoding image header: %w: PNG without an IHDR chunk first", ErrCorrupt)
		}
		w, ht := binary.BigEndian.Uint32(data[16:20]), binary.BigEndian.Uint32(data[20:24])
		if w > math.MaxInt32 || ht > math.MaxInt32 {
			return Header{}, fmt.Errorf("decoding image header: %w: PNG size %dx%d out of range", ErrCorrupt, w, ht)
		}
		h = Header{Format: "png", Width: int(w), Height: int(ht)}
	case len(data) >= 2 && data[0] == 0xFF && data[1] == 0xD8:
		var err error
		if h, err = jpegHeader(data); err != nil {
			return Header{}, err
		}
	default:
		what, sentinel := sniffFormat(data), ErrCorrupt
		if what != unknownFormat {
			sentinel = ErrUnsupported
		}
		return Header{}, fmt.Errorf("decoding image header: %w: %s; the formats accepted are %s", sentinel, what, AcceptedFormats)
	}
	if h.Width <= 0 || h.Height <= 0 {
		return Header{}, fmt.Errorf("decoding image: %w: %dx%d pixels", ErrCorrupt, h.Width, h.Height)
	}
	return h, nil
}

var pngMagic = []byte("\x89PNG\r\n\x1a\n")

// jpegHeader walks a JPEG's marker segments up to its first start-of-frame
// (SOF0-SOF15 but DHT, JPG and DAC) and reads the frame's size there.
func jpegHeader(data []byte) (Header, error) {
	bad := func(why string) (Header, error) {
		return Header{}, fmt.Errorf("decoding image header: %w: JPEG %s", ErrCorrupt, why)
	}
	i := 2
	for {
		// Markers may be preceded by fill bytes 0xFF.
		for i < len(data) && data[i] == 0xFF && i+1 < len(data) && data[i+1] == 0xFF {
			i++
		}
		if i+4 > len(data) {
			return bad("ends before its start-of-frame segment")
		}
		if data[i] != 0xFF {
			return bad(fmt.Sprintf("has no marker at byte %d", i))
		}
		marker := data[i+1]
		switch {
		case marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7):
			i += 2 // markers without a length
			continue
		case marker == 0xD9 || marker == 0xDA:
			return bad("has no start-of-frame segment before its scan")
		}
		n := int(binary.BigEndian.Uint16(data[i+2 : i+4]))
		if n < 2 || i+2+n > len(data) {
			return bad(fmt.Sprintf("segment 0x%02X at byte %d overruns the data", marker, i))
		}
		if marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC {
			// SOF: length, precision, height, width, components.
			if n < 8 {
				return bad("start-of-frame segment is too short")
			}
			seg := data[i+4:]
			return Header{Format: "jpeg", Height: int(binary.BigEndian.Uint16(seg[1:3])), Width: int(binary.BigEndian.Uint16(seg[3:5]))}, nil
		}
		i += 2 + n
	}
}

// truncatedJPEG reports whether the last start-of-scan marker has no
// end-of-image marker after it. (0xFF 0xDA cannot occur inside
// entropy-coded data, where 0xFF is stuffed; an EXIF thumbnail comes before
// the main image's scans.) libjpeg would fill a truncated image with gray
// and only warn.
//
// The end marker is searched from the end and the scans around it, so that
// a whole multi-megabyte file is not read backwards for the last scan: a
// scan after the last end marker (the two markers cannot overlap) or none
// at all before it is the same test.
func truncatedJPEG(data []byte) bool {
	eoi := bytes.LastIndex(data, []byte{0xFF, 0xD9})
	if eoi < 0 {
		return true
	}
	return bytes.Contains(data[eoi+2:], []byte{0xFF, 0xDA}) || !bytes.Contains(data[:eoi], []byte{0xFF, 0xDA})
}

// MaxImagePixels bounds MatFromImage whatever the caller's limit: OpenCV
// aborts the process (an uncaught C++ exception) on an allocation it cannot
// make, so sizes are checked in Go first.
const MaxImagePixels = 1 << 30

// MatFromImage converts a Go image into a new 8-bit BGR Mat the caller
// closes. Images of more than maxPixels pixels (or MaxImagePixels when
// maxPixels <= 0) are refused with ErrTooLarge before any allocation.
func MatFromImage(img image.Image, maxPixels int64) (gocv.Mat, error) {
	if img == nil {
		return gocv.Mat{}, fmt.Errorf("converting image: %w: nil image", ErrCorrupt)
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return gocv.Mat{}, fmt.Errorf("converting image: %w: empty (%dx%d)", ErrCorrupt, w, h)
	}
	if maxPixels <= 0 || maxPixels > MaxImagePixels {
		maxPixels = MaxImagePixels
	}
	if px := int64(w) * int64(h); px > maxPixels || w > math.MaxInt32/3 || h > math.MaxInt32/3 {
		return gocv.Mat{}, fmt.Errorf("converting image: %w: %dx%d, limit %d pixels", ErrTooLarge, w, h, maxPixels)
	}
	m := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	pix, err := m.DataPtrUint8()
	if err != nil {
		m.Close()
		return gocv.Mat{}, fmt.Errorf("converting image: %w", err)
	}
	switch src := img.(type) {
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):]
			dst := pix[y*w*3:]
			for x := 0; x < w; x++ {
				dst[x*3], dst[x*3+1], dst[x*3+2] = row[x*4+2], row[x*4+1], row[x*4]
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):]
			dst := pix[y*w*3:]
			for x := 0; x < w; x++ {
				dst[x*3], dst[x*3+1], dst[x*3+2] = row[x*4+2], row[x*4+1], row[x*4]
			}
		}
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):]
			dst := pix[y*w*3:]
			for x := 0; x < w; x++ {
				g := row[x]
				dst[x*3], dst[x*3+1], dst[x*3+2] = g, g, g
			}
		}
	case *image.YCbCr:
		for y := 0; y < h; y++ {
			dst := pix[y*w*3:]
			for x := 0; x < w; x++ {
				yi := src.YOffset(b.Min.X+x, b.Min.Y+y)
				ci := src.COffset(b.Min.X+x, b.Min.Y+y)
				r, g, bb := color.YCbCrToRGB(src.Y[yi], src.Cb[ci], src.Cr[ci])
				dst[x*3], dst[x*3+1], dst[x*3+2] = bb, g, r
			}
		}
	default:
		for y := 0; y < h; y++ {
			dst := pix[y*w*3:]
			for x := 0; x < w; x++ {
				c := color.RGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.RGBA)
				dst[x*3], dst[x*3+1], dst[x*3+2] = c.B, c.G, c.R
			}
		}
	}
	return m, nil
}
