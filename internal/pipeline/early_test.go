package pipeline

import (
	"context"
	"image"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/internal/track"
	"github.com/facewatch/facewatch/internal/wire"
	"github.com/facewatch/facewatch/match"
)

// walkFrames composites photo (200 px square) onto a grey 640×360 frame at
// x = xs[i] for frame i, as JPEG; a negative x leaves the frame empty (the
// person hidden).
func walkFrames(t *testing.T, photo string, xs []int) [][]byte {
	t.Helper()
	face := gocv.IMRead(photo, gocv.IMReadColor)
	defer face.Close()
	big := gocv.NewMat()
	defer big.Close()
	const side = 200
	gocv.Resize(face, &big, image.Pt(side, side), 0, 0, gocv.InterpolationCubic)
	var out [][]byte
	for _, x := range xs {
		frame := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(100, 110, 120, 0), 360, 640, gocv.MatTypeCV8UC3)
		if x >= 0 {
			roi := frame.Region(image.Rect(x, 80, x+side, 80+side))
			big.CopyTo(&roi)
			roi.Close()
		}
		buf, err := gocv.IMEncode(gocv.JPEGFileExt, frame)
		frame.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]byte(nil), buf.GetBytes()...))
		buf.Close()
	}
	return out
}

// TestEarlyDecision runs the detect and match stages with the real models
// over a real NATS server, the tracker at its defaults: a clear face gives
// its hit from its first sighting alone (the old path needed three), a
// person hidden for four frames mid-walk gives one hit on one track, and a
// stranger none.
func TestEarlyDecision(t *testing.T) {
	ctx := context.Background()
	d := newDescriber(t)
	salley, savage := photos(t, "John_Salley"), photos(t, "John_Savage")
	enrolled, _ := d.describe(t, salley[0])

	dataDir := t.TempDir()
	g, err := match.OpenGallery(ctx, dataDir, match.GalleryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.CreateWatchlist(ctx, match.WatchlistSpec{Name: "missing", Kind: match.KindMissing, Owner: "t", LegalBasis: "test"}); err != nil {
		t.Fatal(err)
	}
	id, _, err := g.EnsureIdentity(ctx, "missing", match.IdentitySpec{Name: "John Salley"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := g.AddEnrolment(ctx, match.NewEnrolment{IdentityID: id.ID, Photo: []byte("photo-bytes"), PhotoExt: ".jpg", ChipPNG: []byte("\x89PNG"),
		Vector: enrolled.Vector, Model: match.ModelID(enrolled.Model), Quality: 0.9, EnrolledBy: "t"}); err != nil {
		t.Fatal(err)
	}

	bus := openBus(t)
	if err := natsbus.EnsureStreams(ctx, bus.JS, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	idx := match.NewIndex(config.Defaults().Match, match.IndexOptions{Gallery: g, JetStream: bus.JS})
	_, stopIdx := runStage(t, idx.Run)
	defer stopIdx()
	var mu sync.Mutex
	var hits []wire.Hit // new hits only (not JetStream duplicates)
	ms, err := NewMatchStage(MatchOptions{Bus: bus, Decider: idx, Ready: idx.Ready(), Photos: g, AckWait: 5 * time.Second,
		OnHit: func(h wire.Hit, dup bool) {
			if !dup {
				mu.Lock()
				hits = append(hits, h)
				mu.Unlock()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	_, stopMatch := runStage(t, ms.Run)
	defer stopMatch()

	cfg := config.Defaults()
	tc := track.DefaultConfig() // the product's early-report and gap settings
	// The frames are published in a burst, not at a camera's pace: none
	// may be shed for having waited behind the others.
	cfg.Detect.MaxWait = 0
	ds, err := NewDetectStage(DetectOptions{Bus: bus, Models: testdata.ModelDir(t), Detect: cfg.Detect, Embed: cfg.Embed, Track: tc, QueueSize: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	_, stopDetect := runStage(t, ds.Run)
	defer stopDetect()
	time.Sleep(300 * time.Millisecond) // the frames subscription in place

	t0 := time.Now().UTC().Truncate(time.Millisecond)
	frameTime := func(i int) time.Time { return t0.Add(time.Duration(i) * 200 * time.Millisecond) }
	send := func(camera string, first int, frames [][]byte) {
		t.Helper()
		for i, j := range frames {
			b, err := wire.EncodeFrame(wire.FrameMeta{Camera: camera, Seq: uint64(first + i), Time: frameTime(first + i), Width: 640, Height: 360}, j)
			if err != nil {
				t.Fatal(err)
			}
			if err := bus.Conn.Publish(wire.FramesSubject(camera), b); err != nil {
				t.Fatal(err)
			}
		}
	}
	hitsOf := func(camera string) []wire.Hit {
		mu.Lock()
		defer mu.Unlock()
		var out []wire.Hit
		for _, h := range hits {
			if h.Camera == camera {
				out = append(out, h)
			}
		}
		return out
	}
	waitHits := func(camera string, n int, within time.Duration) []wire.Hit {
		t.Helper()
		deadline := time.Now().Add(within)
		for len(hitsOf(camera)) < n && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		return hitsOf(camera)
	}
	// walk is x positions walking 40 px a frame from x0, with the frames
	// in hidden left empty.
	walk := func(n, x0 int, hidden ...int) []int {
		xs := make([]int, n)
		for i := range xs {
			xs[i] = x0 + 40*i
		}
		for _, h := range hidden {
			xs[h] = -1
		}
		return xs
	}

	// The stranger walks on cam-s meanwhile; it is checked at the end.
	send("cam-s", 0, walkFrames(t, savage[1], walk(10, 0)))

	t.Run("first good face decides", func(t *testing.T) {
		frames := walkFrames(t, salley[1], walk(10, 0))
		// One frame only: the old path (three sightings before an early
		// report, a one-frame track dropped) never decides on it.
		send("cam-a", 0, frames[:1])
		got := waitHits("cam-a", 1, 30*time.Second)
		if len(got) != 1 {
			t.Fatalf("hits after one sighting = %d, want 1 from the first good face", len(got))
		}
		if !got[0].Time.Equal(frameTime(0)) {
			t.Errorf("hit source time = %s, want the first sighting's %s", got[0].Time.Format(time.RFC3339Nano), frameTime(0).Format(time.RFC3339Nano))
		}
		// The rest of the walk (better faces may be reported again, and
		// the final report follows the gap): still the one hit.
		send("cam-a", 1, frames[1:])
		time.Sleep(tc.MaxGap + 3*time.Second)
		if got := waitHits("cam-a", 2, time.Second); len(got) != 1 {
			t.Errorf("hits for one walk = %d (%v), want 1", len(got), got)
		}
	})

	t.Run("hidden mid-walk is one appearance", func(t *testing.T) {
		// Hidden for frames 4-7 (0.8 s): it reappears 200 px on, a box
		// side past where it was last seen.
		send("cam-b", 0, walkFrames(t, salley[2], walk(11, 0, 4, 5, 6, 7)))
		time.Sleep(tc.MaxGap + 3*time.Second)
		got := waitHits("cam-b", 2, 2*time.Second)
		if len(got) != 1 {
			t.Fatalf("hits for one occluded walk = %d (%+v), want 1", len(got), got)
		}
	})

	t.Run("stranger gives none", func(t *testing.T) {
		tracks, err := bus.JS.Stream(ctx, wire.TracksStream)
		if err != nil {
			t.Fatal(err)
		}
		// Every report taken by the matcher.
		deadline := time.Now().Add(20 * time.Second)
		for {
			info, err := tracks.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.State.Msgs == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d track reports left unmatched after 20s", info.State.Msgs)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if got := hitsOf("cam-s"); len(got) != 0 {
			t.Errorf("hits for a stranger = %+v, want none", got)
		}
	})

	// Exactly one hit per appearance is stored for the alert service.
	hs, err := bus.JS.Stream(ctx, wire.HitsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := hs.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("hits stored = %d, want 2 (one per appearance of the enrolled person)", info.State.Msgs)
	}
}
