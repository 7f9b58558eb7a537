package wire

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func validStatus() CameraStatus {
	now := time.Unix(1700000000, 0).UTC()
	return CameraStatus{Camera: "cam-1", URL: "rtsp://***@cam/stream", State: "streaming", Since: now, Codec: "h264",
		Width: 1280, Height: 720, SourceFPS: 25, FPSIn: 24.5, FPSOut: 5, FramesIn: 1000, FramesOut: 200,
		Drops: map[string]uint64{"fps_cap": 800}, Reconnects: 1, Captures: 1, LastError: "timeout", LastErrorAt: now, LastFrame: now}
}

func TestCameraStatusRoundTrip(t *testing.T) {
	in := validStatus()
	data, err := EncodeCameraStatus(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeCameraStatus(data)
	if err != nil {
		t.Fatal(err)
	}
	in.Version = Version
	if !reflect.DeepEqual(got, in) {
		t.Errorf("DecodeCameraStatus(EncodeCameraStatus(s)) = %+v, want %+v", got, in)
	}
}

func TestCameraStatusRefused(t *testing.T) {
	mutate := func(f func(*CameraStatus)) []byte {
		s := validStatus()
		s.Version = Version
		f(&s)
		b, err := Encode(s, nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good, _ := EncodeCameraStatus(validStatus())
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"newer version", mutate(func(s *CameraStatus) { s.Version = Version + 1 }), "schema version"},
		{"bad camera", mutate(func(s *CameraStatus) { s.Camera = "a.b" }), "not a valid ID"},
		{"unknown state", mutate(func(s *CameraStatus) { s.State = "dancing" }), "unknown"},
		{"no since", mutate(func(s *CameraStatus) { s.Since = time.Time{} }), "since"},
		{"negative rate", mutate(func(s *CameraStatus) { s.FPSOut = -1 }), "fps_out"},
		{"huge frame", mutate(func(s *CameraStatus) { s.Width = 1 << 20 }), "out of range"},
		{"long error", mutate(func(s *CameraStatus) { s.LastError = strings.Repeat("x", 5000) }), "too long"},
		{"payload", append(good, 1), "payload"},
		{"unknown field", []byte("\x00\x00\x00\x11{\"v\":2,\"extra\":1}"), "unknown field"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeCameraStatus(tc.data)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("DecodeCameraStatus = %v, want ErrMalformed mentioning %q", err, tc.want)
			}
		})
	}
	// JSON cannot carry NaN, so it can only come from a bad encoder: refused
	// there.
	bad := validStatus()
	bad.FPSIn = math.NaN()
	if _, err := EncodeCameraStatus(bad); err == nil {
		t.Error("EncodeCameraStatus(NaN fps_in) = nil error, want one")
	}
}
