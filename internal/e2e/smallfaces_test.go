package e2e

import (
	"context"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/rtsptest"
	"github.com/facewatch/facewatch/internal/synthcam"
	"github.com/facewatch/facewatch/internal/testdata"
)

// smallSizes are the composited photo sides of the small-face clip's eight
// appearances, in the order of synthcam.Johns: the faces' boxes are 40-60
// pixels (about three quarters of the photo), under HOG's 80-pixel window,
// so they are found only in regions the camera path enlarges. A's two
// appearances (the third and the seventh) are among the smallest.
var smallSizes = []int{64, 72, 58, 80, 68, 76, 56, 70}

// TestSmallFaces is the standard scenario with faces of 40-60 pixels
// entering and leaving a 640x360 camera, through `facewatch run` at the
// product's detection defaults (region search, min_face from
// detect.min_face_size): one alert per appearance of the enrolled person,
// none for the strangers.
func TestSmallFaces(t *testing.T) {
	sc, err := synthcam.Johns(testdata.SharedDir(), width, height, fps)
	if err != nil {
		t.Fatal(err)
	}
	sc = sc.Resized(smallSizes...)
	sc.Script.Background = testdata.OpenCV(t, "vtest.avi")
	got := playScript(t, "small", sc.Script, sc.Enrolled, sc.EnrolPhoto)
	tr, cam, alerts := got.truth, got.cam, got.alerts

	var apps []synthcam.Appearance
	for _, a := range tr.Appearances {
		if a.Identity == sc.Enrolled {
			apps = append(apps, a)
		}
	}
	for _, a := range alerts {
		t.Logf("alert %s %s track %d at %s", a.identity, a.camera, a.track, a.time.Format("15:04:05.000"))
	}
	if len(alerts) != len(apps) {
		t.Errorf("alerts = %d, want %d (one per appearance of %s, none for strangers)", len(alerts), len(apps), sc.Enrolled)
	}
	seen := map[int]int{}
	tracks := map[int64]bool{}
	for _, a := range alerts {
		if a.identity != sc.Enrolled {
			t.Errorf("alert %s names %q, want only %q (strangers get no alert)", a.hitID, a.identity, sc.Enrolled)
			continue
		}
		tracks[a.track] = true
		which := -1
		for i, ap := range apps {
			from, to := cam.window(ap)
			if !a.time.Before(from.Add(-frameInterval)) && !a.time.After(to) {
				which = i
			}
		}
		if which < 0 {
			t.Errorf("alert %s at %s is outside every appearance of %s", a.hitID, a.time.Format("15:04:05.000"), sc.Enrolled)
			continue
		}
		seen[which]++
	}
	for i, ap := range apps {
		if seen[i] != 1 {
			t.Errorf("appearance %d of %s (photo %d px, frames %d-%d) gave %d alerts, want 1", i, sc.Enrolled, ap.Size, ap.FirstFrame, ap.LastFrame, seen[i])
		}
	}
	if len(tracks) != len(alerts) {
		t.Errorf("alerts are on %d tracks, want one track each (%d)", len(tracks), len(alerts))
	}
}

// played is what playScript saw: the clip's truth, the camera that served
// it, the data directory and alerts of the `facewatch run` that watched it,
// and that process (stopped; its log stays readable).
type played struct {
	truth  synthcam.Truth
	cam    *camServer
	data   string
	alerts []storedAlert
	run    *proc
}

// playScript renders script, serves it as one RTSP camera, enrols
// enrolled from photo, runs `facewatch run` (config name) at the defaults
// until the camera's frames are all decided, and stops it.
func playScript(t *testing.T, name string, script synthcam.Script, enrolled, photo string) played {
	t.Helper()
	file := filepath.Join(t.TempDir(), name+".h264")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr, err := synthcam.Render(ctx, script, file)
	if err != nil {
		t.Fatal(err)
	}
	clp, err := rtsptest.LoadClip(file, fps)
	if err != nil {
		t.Fatal(err)
	}
	cam := serveClipOf(t, clp)
	data := t.TempDir()
	enrol(t, data, map[string]string{enrolled: photo})
	cfg := writeConfig(t, name, data, natsSite{}, cam.url)
	run := start(t, "run", "run", "--config", cfg)
	m := run.waitLine(t, regexp.MustCompile(`nats (nats://\S+)`), 60*time.Second)
	nc := adminConn(t, m[1], natsbus.DefaultCredsDir(data))
	defer nc.Close()
	settle(t, cam, nc)
	alerts := readAlerts(t, data)
	run.stop(t)
	return played{truth: tr, cam: cam, data: data, alerts: alerts, run: run}
}
