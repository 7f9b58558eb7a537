package main

import (
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/config"
)

// TestTrackConfig checks that the detect section's tracking settings reach
// the tracker, and that a slow camera lengthens the gap to 5 of its frame
// intervals.
func TestTrackConfig(t *testing.T) {
	tests := []struct {
		name    string
		gap     time.Duration
		quality float64
		side    int
		fps     float64
		wantGap time.Duration
	}{
		{"defaults", 2 * time.Second, 0.5, 50, 5, 2 * time.Second},
		{"short gap, fast camera", 500 * time.Millisecond, 0.7, 80, 25, 500 * time.Millisecond},
		{"slow camera", time.Second, 0, 0, 1, 5 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Defaults()
			cfg.Detect.TrackGap, cfg.Detect.EarlyQuality, cfg.Detect.EarlyFaceSize = tc.gap, tc.quality, tc.side
			cam := config.CameraDefaults()
			cam.ID, cam.URL, cam.MaxFPS = "a", "rtsp://h/s", tc.fps
			cfg.Cameras = []config.Camera{cam}
			got := trackConfig(cfg)
			if got.MaxGap != tc.wantGap || got.GoodQuality != tc.quality || got.GoodSide != tc.side {
				t.Errorf("trackConfig(gap %v, quality %v, side %d, %v fps) = gap %v, quality %v, side %d; want %v, %v, %d",
					tc.gap, tc.quality, tc.side, tc.fps, got.MaxGap, got.GoodQuality, got.GoodSide, tc.wantGap, tc.quality, tc.side)
			}
			if got.LinkGap != cfg.Detect.AppearanceGap || got.LinkGap != 5*time.Second {
				t.Errorf("trackConfig: LinkGap %v, want detect.appearance_gap %v (default 5s)", got.LinkGap, cfg.Detect.AppearanceGap)
			}
			if got.EarlyFaces < 1 || got.MaxEarly < 1 {
				t.Errorf("trackConfig: EarlyFaces %d, MaxEarly %d; want early reports on", got.EarlyFaces, got.MaxEarly)
			}
		})
	}
}
