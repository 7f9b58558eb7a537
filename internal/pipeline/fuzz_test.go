package pipeline

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/wire"
)

// frameCases seed FuzzFrameMessage and pin the table: a frame message on a
// subject, and whether the detect stage may hand it on to the decoder.
func frameCases(t testing.TB) []struct {
	name, subject string
	data          []byte
	ok            bool
} {
	good := func(camera string) []byte {
		b, err := wire.EncodeFrame(wire.FrameMeta{Camera: camera, Seq: 7, Time: time.Unix(1700000000, 0).UTC(), Width: 640, Height: 480},
			[]byte{0xff, 0xd8, 0xff, 0xd9})
		if err != nil {
			t.Fatalf("EncodeFrame = %v", err)
		}
		return b
	}
	return []struct {
		name, subject string
		data          []byte
		ok            bool
	}{
		{"own subject", wire.FramesSubject("gate-1"), good("gate-1"), true},
		{"another camera's subject", wire.FramesSubject("gate-2"), good("gate-1"), false},
		{"wildcard-looking subject", wire.Prefix + ".frames.>", good("gate-1"), false},
		{"truncated", wire.FramesSubject("gate-1"), good("gate-1")[:10], false},
		{"empty", wire.FramesSubject("gate-1"), nil, false},
		{"length past the end", wire.FramesSubject("gate-1"), []byte{0xff, 0xff, 0xff, 0xff, '{'}, false},
	}
}

func TestFrameMessage(t *testing.T) {
	for _, tc := range frameCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := frameMessage(tc.subject, tc.data)
			if (err == nil) != tc.ok || err != nil && !errors.Is(err, wire.ErrMalformed) {
				t.Errorf("frameMessage(%s, %d bytes) = %v, want ok %v (or ErrMalformed)", tc.subject, len(tc.data), err, tc.ok)
			}
		})
	}
}

// FuzzFrameMessage: whatever arrives on whatever subject, the checks the
// detect stage runs before decoding an image never panic, refuse with
// ErrMalformed (so it goes to the dead-letter subject), and pass on only a
// frame of the subject's own camera, of a bounded size, whose metadata and
// JPEG encode back to the same message.
func FuzzFrameMessage(f *testing.F) {
	for _, tc := range frameCases(f) {
		f.Add(tc.subject, tc.data)
	}
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		meta, jpeg, err := frameMessage(subject, data)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("frameMessage(%q) = %v, want ErrMalformed", subject, err)
			}
			return
		}
		if subject != wire.FramesSubject(meta.Camera) {
			t.Fatalf("frameMessage(%q) passed a frame of camera %q", subject, meta.Camera)
		}
		if len(jpeg) < 4 || len(jpeg) > wire.MaxFrameJPEG || meta.Width < 1 || meta.Height < 1 || meta.Width > 16384 || meta.Height > 16384 {
			t.Fatalf("frameMessage passed %dx%d with %d bytes", meta.Width, meta.Height, len(jpeg))
		}
		again, err := wire.EncodeFrame(meta, jpeg)
		if err != nil {
			t.Fatalf("EncodeFrame(passed frame) = %v", err)
		}
		meta2, jpeg2, err := frameMessage(subject, again)
		if err != nil || !meta2.Time.Equal(meta.Time) || meta2.Camera != meta.Camera || meta2.Seq != meta.Seq ||
			meta2.Width != meta.Width || meta2.Height != meta.Height || !bytes.Equal(jpeg2, jpeg) {
			t.Fatalf("frame does not round-trip: %+v -> %+v, %v", meta, meta2, err)
		}
	})
}
