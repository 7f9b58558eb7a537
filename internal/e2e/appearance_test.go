package e2e

import (
	"database/sql"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/facewatch/facewatch/alert"
	"github.com/facewatch/facewatch/internal/synthcam"
	"github.com/facewatch/facewatch/internal/testdata"
)

// TestAppearances: one alert per appearance of the enrolled person at the
// default config, whatever the time between them. A leaves through the
// right edge and comes back through it 2.7 s later (the FrameToAlert
// scenario's loop does this; the alert service's time rule alone took
// the return for a broken piece of the first appearance and gave it no
// alert), leaves through the left edge, and 2.5 s later walks in again
// and is hidden mid-frame for 3.5 s (a track that breaks: its two pieces,
// whose first faces are 6.5 s apart, are one appearance and one alert).
func TestAppearances(t *testing.T) {
	sc, err := synthcam.Johns(testdata.SharedDir(), width, height, fps)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := filepath.Glob(filepath.Join(testdata.SharedDir(), "dlib_johns", sc.Enrolled, "*.jpg"))
	if err != nil || len(ps) < 4 {
		t.Fatalf("photos of %s: %d, %v; want at least 4", sc.Enrolled, len(ps), err)
	}
	sort.Strings(ps) // ps[0] is the enrolment photo, never shown
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	size := height / 3
	row := func(f float64) int { return int(f * float64(height-size)) }
	out := synthcam.Walk(sc.Enrolled, ps[2], sec(1), sec(1.8), width, row(0.4), size, false)
	back := synthcam.Walk(sc.Enrolled, ps[3], sec(5.5), sec(3), width, row(0.7), size, true)
	broken := synthcam.Walk(sc.Enrolled, ps[2], sec(11), sec(11), width, row(0.2), size, false)
	broken.Hidden = []synthcam.Span{{From: sec(14), To: sec(17.5)}}
	script := synthcam.Script{Width: width, Height: height, FPS: fps, Duration: sec(23), Background: testdata.OpenCV(t, "vtest.avi"),
		Appearances: []synthcam.Appearance{out, back, broken}}
	got := playScript(t, "appearances", script, sc.Enrolled, ps[0])
	tr, cam, data, alerts, run := got.truth, got.cam, got.data, got.alerts, got.run
	// The second piece of the broken track was matched, and its hit taken
	// for the appearance's alert: the check above is not passed by a piece
	// that went unmatched.
	logText, err := os.ReadFile(run.log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logText), "hit not stored: the same appearance") {
		t.Errorf("no hit was taken for an alert's appearance; want the broken track's second piece's")
	}

	names := []string{"out through the right edge", "back through it 2.7 s later", "hidden 3.5 s mid-frame"}
	seen := make([]int, len(tr.Appearances))
	for _, a := range alerts {
		which := -1
		for i, ap := range tr.Appearances {
			from, to := cam.window(ap)
			if !a.time.Before(from.Add(-frameInterval)) && !a.time.After(to) {
				which = i
			}
		}
		t.Logf("alert %s track %d at %s: appearance %d", a.hitID, a.track, a.time.Format("15:04:05.000"), which)
		if which < 0 {
			t.Errorf("alert %s at %s is outside every appearance", a.hitID, a.time.Format("15:04:05.000"))
			continue
		}
		seen[which]++
	}
	for i, n := range seen {
		if n != 1 {
			t.Errorf("appearance %d (%s, frames %d-%d) gave %d alerts, want 1", i, names[i], tr.Appearances[i].FirstFrame, tr.Appearances[i].LastFrame, n)
		}
	}
	// The alerts keep the appearance the detect stage named (a track of
	// the same tracker, no later than theirs): three appearances, one
	// tracker.
	db, err := sql.Open("sqlite3", "file:"+alert.DBPath(data)+"?_query_only=1&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT track, tracker, appearance FROM alerts`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	trackers, apps := map[int64]bool{}, map[int64]bool{}
	for rows.Next() {
		var track, tracker, appearance int64
		if err := rows.Scan(&track, &tracker, &appearance); err != nil {
			t.Fatal(err)
		}
		trackers[tracker], apps[appearance] = true, true
		if tracker == 0 || appearance < tracker || appearance > track {
			t.Errorf("alert of track %d: tracker %d, appearance %d; want tracker <= appearance <= track", track, tracker, appearance)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(trackers) != 1 || len(apps) != len(alerts) {
		t.Errorf("alerts come from %d trackers and %d appearances, want 1 and one each (%d)", len(trackers), len(apps), len(alerts))
	}
}
