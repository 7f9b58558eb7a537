package detect_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/facewatch/facewatch/detect"
)

// TestDecodeNamesAcceptedFormats: a file in a format Decode does not read
// is refused with what it is and which formats are accepted, not a bare
// "unknown format".
func TestDecodeNamesAcceptedFormats(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"webp", []byte("RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00"), "WebP is not supported"},
		{"gif", []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"), "GIF is not supported"},
		{"bmp", []byte("BM\x3a\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00"), "BMP is not supported"},
		{"heic", []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00"), "HEIF/AVIF is not supported"},
		{"text", []byte("this is not an image at all"), "unknown format"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := detect.Decode(tc.data, 0)
			if !errors.Is(err, detect.ErrCorrupt) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "accepted are "+detect.AcceptedFormats) {
				t.Errorf("Decode(%s) = %v, want ErrCorrupt saying %q and the accepted formats", tc.name, err, tc.want)
			}
			// A known format is ErrUnsupported (enrolment says "unsupported
			// format"); bytes of no known format are not.
			if known := tc.name != "text"; errors.Is(err, detect.ErrUnsupported) != known {
				t.Errorf("errors.Is(Decode(%s), ErrUnsupported) = %v, want %v", tc.name, !known, known)
			}
		})
	}
}
