package detect_test

import (
	"bytes"
	"errors"
	"image"
	"image/jpeg"
	"testing"

	"github.com/facewatch/facewatch/detect"
)

// TestImageHeader: the size comes from the header alone and agrees with
// the standard library's decoders; broken headers are ErrCorrupt and
// oversized ones ErrTooLarge, before anything is decoded.
func TestImageHeader(t *testing.T) {
	portrait := portraitBytes(t)
	cfg, _, err := image.DecodeConfig(bytes.NewReader(portrait))
	if err != nil {
		t.Fatal(err)
	}
	var goJPEG bytes.Buffer
	small := image.NewRGBA(image.Rect(0, 0, 33, 17))
	if err := jpeg.Encode(&goJPEG, small, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		data          []byte
		max           int64
		format        string
		width, height int
		err           error
	}{
		{"real jpeg", portrait, 0, "jpeg", cfg.Width, cfg.Height, nil},
		{"go-encoded jpeg", goJPEG.Bytes(), 0, "jpeg", 33, 17, nil},
		{"png", encodePNG(t, image.NewGray(image.Rect(0, 0, 7, 9))), 0, "png", 7, 9, nil},
		{"16384x16384 jpeg", hugeJPEG(t, portrait, 16384, 16384), 64 << 20, "", 0, 0, detect.ErrTooLarge},
		{"16384x16384 jpeg without a limit", hugeJPEG(t, portrait, 16384, 16384), 0, "jpeg", 16384, 16384, nil},
		{"65535x65535 jpeg without a limit", hugeJPEG(t, portrait, 65535, 65535), 0, "", 0, 0, detect.ErrTooLarge},
		{"20000x20000 png", hugePNG(t, 20000, 20000), 64 << 20, "", 0, 0, detect.ErrTooLarge},
		{"zero-height jpeg", hugeJPEG(t, portrait, 100, 0), 0, "", 0, 0, detect.ErrCorrupt},
		{"empty", nil, 0, "", 0, 0, detect.ErrCorrupt},
		{"soi only", []byte{0xFF, 0xD8}, 0, "", 0, 0, detect.ErrCorrupt},
		{"jpeg cut before its frame header", portrait[:bytes.Index(portrait, []byte{0xFF, 0xC0})], 0, "", 0, 0, detect.ErrCorrupt},
		{"segment overrunning the data", []byte{0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xFF, 0x00}, 0, "", 0, 0, detect.ErrCorrupt},
		{"scan before a frame header", []byte{0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02}, 0, "", 0, 0, detect.ErrCorrupt},
		{"png without ihdr", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIEND0000000000000"), 0, "", 0, 0, detect.ErrCorrupt},
		{"webp", []byte("RIFF\x00\x00\x00\x00WEBPVP8 "), 0, "", 0, 0, detect.ErrCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := detect.CheckHeader(tc.data, tc.max)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("CheckHeader(%s) = %+v, %v; want %v", tc.name, h, err, tc.err)
				}
				return
			}
			if err != nil || h.Format != tc.format || h.Width != tc.width || h.Height != tc.height {
				t.Fatalf("CheckHeader(%s) = %+v, %v; want %s %dx%d", tc.name, h, err, tc.format, tc.width, tc.height)
			}
		})
	}
}

// TestDecodeRefusesHugeFromHeader: a 16384x16384 JPEG (a small real one
// whose frame header is patched) is refused by Decode with ErrTooLarge
// and the process's peak memory does not move: nothing was allocated for
// its 805 MB of pixels.
func TestDecodeRefusesHugeFromHeader(t *testing.T) {
	huge := hugeJPEG(t, portraitBytes(t), 16384, 16384)
	before := peakRSS(t)
	for range 20 {
		m, err := detect.Decode(huge, 64<<20)
		if !errors.Is(err, detect.ErrTooLarge) {
			m.Close()
			t.Fatalf("Decode(16384x16384 jpeg) = %v, want ErrTooLarge", err)
		}
	}
	if grew := peakRSS(t) - before; grew > 64<<20 {
		t.Errorf("peak resident memory grew by %d MB refusing a 16384x16384 JPEG, want under 64 MB (decoding it takes 805 MB)", grew>>20)
	}
}
