package wire

import (
	"fmt"
	"math"
	"time"
)

// CameraStatus is a camera's health, published by the camera stage on
// StatusSubject(Camera) every few seconds (core NATS: a lost one is
// replaced by the next). It mirrors camera.Status field for field; the
// camera stage converts one to the other, so that package camera owns the
// worker and this package the wire form.
type CameraStatus struct {
	Version int    `json:"v"`
	Camera  string `json:"camera"`
	// URL is the configured URL with credentials masked.
	URL   string `json:"url"`
	State string `json:"state"`
	// Since is when State was entered.
	Since     time.Time `json:"since"`
	Codec     string    `json:"codec"`
	Width     int       `json:"width"`
	Height    int       `json:"height"`
	SourceFPS float64   `json:"source_fps"`
	FPSIn     float64   `json:"fps_in"`
	FPSOut    float64   `json:"fps_out"`
	FramesIn  uint64    `json:"frames_in"`
	FramesOut uint64    `json:"frames_out"`
	// Drops counts frames not handed on, by reason.
	Drops       map[string]uint64 `json:"drops"`
	Reconnects  uint64            `json:"reconnects"`
	Stalls      uint64            `json:"stalls"`
	Captures    int               `json:"captures"`
	LastError   string            `json:"last_error,omitempty"`
	LastErrorAt time.Time         `json:"last_error_at,omitzero"`
	LastFrame   time.Time         `json:"last_frame,omitzero"`
}

// Camera states a CameraStatus may carry (camera.State's values).
var cameraStates = map[string]bool{
	"connecting": true, "streaming": true, "stalled": true,
	"backing_off": true, "failed": true, "stopped": true,
}

// Bounds on a camera status's free-text fields.
const (
	maxStatusURL   = 2048
	maxStatusError = 4096
	maxStatusDrops = 16
)

func (s *CameraStatus) validate() error {
	if err := checkVersion(s.Version); err != nil {
		return err
	}
	if !ValidToken(s.Camera) {
		return malformed("camera %q is not a valid ID", s.Camera)
	}
	if !cameraStates[s.State] {
		return malformed("camera state %q is unknown", s.State)
	}
	if s.Since.IsZero() {
		return malformed("since is missing")
	}
	if len(s.URL) > maxStatusURL || len(s.LastError) > maxStatusError || len(s.Codec) > 64 {
		return malformed("url, codec or last_error is too long")
	}
	if s.Width < 0 || s.Height < 0 || s.Width > MaxFrameSide || s.Height > MaxFrameSide {
		return malformed("frame size %dx%d is out of range", s.Width, s.Height)
	}
	for name, v := range map[string]float64{"source_fps": s.SourceFPS, "fps_in": s.FPSIn, "fps_out": s.FPSOut} {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return malformed("%s %g is not a rate", name, v)
		}
	}
	if s.Captures < 0 {
		return malformed("captures %d is negative", s.Captures)
	}
	if len(s.Drops) > maxStatusDrops {
		return malformed("%d drop reasons, want at most %d", len(s.Drops), maxStatusDrops)
	}
	return nil
}

// EncodeCameraStatus encodes s (metadata only, no payload).
func EncodeCameraStatus(s CameraStatus) ([]byte, error) {
	s.Version = Version
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("encoding camera status: %w", err)
	}
	return Encode(s, nil)
}

// DecodeCameraStatus decodes and validates a camera status message; one
// with a payload after the metadata is refused.
func DecodeCameraStatus(data []byte) (CameraStatus, error) {
	var s CameraStatus
	p, err := Decode(data, &s)
	if err != nil {
		return CameraStatus{}, err
	}
	if len(p) != 0 {
		return CameraStatus{}, malformed("camera status carries a %d-byte payload, want none", len(p))
	}
	if err := s.validate(); err != nil {
		return CameraStatus{}, err
	}
	return s, nil
}
