package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/synthcam"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/internal/wire"
)

// TestCameraStageLeases runs two camera stages with leases on one real
// RTSP camera: exactly one of them reads it (the RTSP server counts one
// reader, only one stage reports its status), and when that one stops the
// other takes the camera over and frames flow again.
func TestCameraStageLeases(t *testing.T) {
	ctx := context.Background()
	sc, err := synthcam.Johns(testdata.SharedDir(), 320, 180, 25)
	if err != nil {
		t.Fatal(err)
	}
	sc.Script.Duration = 6 * time.Second
	sc.Script.Appearances = sc.Script.Appearances[:1]
	served, err := synthcam.Serve(ctx, sc.Script, t.TempDir(), synthcam.ServeOptions{Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	defer served.Server.Close()
	bus := openBus(t)
	kv, err := natsbus.EnsureCameraLeases(ctx, bus.JS, 1)
	if err != nil {
		t.Fatal(err)
	}
	frames, err := bus.Conn.SubscribeSync(wire.FramesSubject("c1"))
	if err != nil {
		t.Fatal(err)
	}
	cam := config.CameraDefaults()
	cam.ID, cam.URL, cam.MaxFPS = "c1", served.URL, 5
	stage := func(worker string) (*CameraStage, func() error) {
		cs, err := NewCameraStage(CameraOptions{Bus: bus, Cameras: []config.Camera{cam}, StatusInterval: 500 * time.Millisecond,
			Leases: &Leases{KV: kv, Worker: worker, Cameras: []string{"c1"}}})
		if err != nil {
			t.Fatal(err)
		}
		_, stop := runStage(t, cs.Run)
		return cs, stop
	}
	a, stopA := stage("a")
	b, stopB := stage("b")
	stages, stops := []*CameraStage{a, b}, []func() error{stopA, stopB}
	if _, err := frames.NextMsg(20 * time.Second); err != nil {
		t.Fatalf("no frame from the leased camera: %v", err)
	}
	// Hold for a few renewals: one reader, one stage reporting it.
	for range 10 {
		if n := served.Path.Readers(); n != 1 {
			t.Fatalf("RTSP readers = %d, want 1 (one stage owns the camera)", n)
		}
		if na, nb := len(a.Statuses()), len(b.Statuses()); na+nb != 1 {
			t.Fatalf("stages report %d and %d cameras, want 1 between them", na, nb)
		}
		time.Sleep(300 * time.Millisecond)
	}
	o := 0 // the owner
	if len(a.Statuses()) == 0 {
		o = 1
	}
	other := stages[1-o]
	defer func() {
		if err := stops[1-o](); err != nil {
			t.Errorf("stopping the other stage: %v", err)
		}
	}()
	// The owner stops cleanly: its lease is released and the other
	// takes the camera within a renewal interval (plus the RTSP open).
	if err := stops[o](); err != nil {
		t.Fatalf("stopping the owner: %v", err)
	}
	stopped := time.Now()
	for len(other.Statuses()) != 1 {
		if time.Since(stopped) > natsbus.CameraLeasePeriod {
			t.Fatalf("the other stage did not take the camera within %v of the owner's stop", natsbus.CameraLeasePeriod)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		m, err := frames.NextMsg(20 * time.Second)
		if err != nil {
			t.Fatalf("no frame after the takeover: %v", err)
		}
		if meta, _, err := wire.DecodeFrame(m.Data); err == nil && meta.Time.After(stopped) {
			break
		}
	}
	t.Logf("camera taken over %v after the owner stopped", time.Since(stopped).Round(time.Millisecond))
	if n := served.Path.Readers(); n != 1 {
		t.Errorf("RTSP readers after the takeover = %d, want 1", n)
	}
}
