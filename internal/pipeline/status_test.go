package pipeline

import (
	"testing"
	"time"

	"github.com/facewatch/facewatch/camera"
	"github.com/facewatch/facewatch/internal/wire"
)

// TestStatusMessageCarriesEveryCameraState checks that every state a
// camera worker reports survives the wire form (wire keeps its own list).
func TestStatusMessageCarriesEveryCameraState(t *testing.T) {
	for _, state := range []camera.State{camera.StateConnecting, camera.StateStreaming, camera.StateStalled,
		camera.StateBackingOff, camera.StateFailed, camera.StateStopped} {
		st := camera.Status{CameraID: "c1", URL: "rtsp://cam", State: state, Since: time.Unix(1700000000, 0).UTC(),
			Width: 640, Height: 360, FPSIn: 5, Drops: map[string]uint64{camera.DropFPSCap: 3}}
		data, err := wire.EncodeCameraStatus(statusMessage(st))
		if err != nil {
			t.Fatalf("EncodeCameraStatus(state %s) = %v", state, err)
		}
		got, err := wire.DecodeCameraStatus(data)
		if err != nil || got.State != string(state) || got.Camera != "c1" || got.Drops[camera.DropFPSCap] != 3 {
			t.Errorf("DecodeCameraStatus(state %s) = %+v, %v; want the same status back", state, got, err)
		}
	}
}
