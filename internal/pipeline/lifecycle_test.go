package pipeline

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/embed"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/wire"
	"github.com/facewatch/facewatch/match"
)

// TestMatchStageFound runs the match stage over real NATS with real dlib
// descriptors: John Salley's track gives a hit; he is marked found (the
// gallery publishes the delete as the running service's publisher does);
// within a second the matcher has dropped him, and his next track gives
// no hit while another enrolled person's track still does.
func TestMatchStageFound(t *testing.T) {
	ctx := context.Background()
	d := newDescriber(t)
	salley, savage := photos(t, "John_Salley"), photos(t, "John_Savage")

	g, err := match.OpenGallery(ctx, t.TempDir(), match.GalleryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.CreateWatchlist(ctx, match.WatchlistSpec{Name: "missing", Kind: match.KindMissing, Owner: "t", LegalBasis: "test"}); err != nil {
		t.Fatal(err)
	}
	enrol := func(name, photo string) match.Identity {
		id, _, err := g.EnsureIdentity(ctx, "missing", match.IdentitySpec{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		de, _ := d.describe(t, photo)
		if _, _, err := g.AddEnrolment(ctx, match.NewEnrolment{IdentityID: id.ID, Photo: []byte("photo of " + name), PhotoExt: ".jpg",
			ChipPNG: []byte("\x89PNG"), Vector: de.Vector, Model: match.ModelID(de.Model), Quality: 0.9, EnrolledBy: "t"}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	salleyID := enrol("John Salley", salley[0])
	enrol("John Savage", savage[0])

	bus := openBus(t)
	idx := match.NewIndex(config.Defaults().Match, match.IndexOptions{Gallery: g, JetStream: bus.JS})
	_, stopIdx := runStage(t, idx.Run)
	defer stopIdx()
	var mu sync.Mutex
	hits := map[string]wire.Hit{}
	ms, err := NewMatchStage(MatchOptions{Bus: bus, Decider: idx, Ready: idx.Ready(), Photos: g, AckWait: 2 * time.Second,
		OnHit: func(h wire.Hit, _ bool) { mu.Lock(); hits[h.ID] = h; mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	_, stop := runStage(t, ms.Run)
	<-idx.Ready()

	track := func(id uint64, ps []string) wire.Track {
		var ds []embed.Descriptor
		var qs []float64
		for _, p := range ps {
			de, q := d.describe(t, p)
			ds, qs = append(ds, de), append(qs, q)
		}
		return trackOf(t, "cam1", id, true, ds, qs)
	}
	send := func(tr wire.Track) {
		t.Helper()
		b, err := wire.EncodeTrack(tr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bus.JS.Publish(ctx, wire.TracksSubject("cam1"), b, jetstream.WithMsgID(tr.MsgID())); err != nil {
			t.Fatal(err)
		}
	}
	tracks, err := bus.JS.Stream(ctx, wire.TracksStream)
	if err != nil {
		t.Fatal(err)
	}
	// drained waits until the work queue is empty and want hits are in.
	drained := func(want int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			info, err := tracks.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			n := len(hits)
			mu.Unlock()
			if info.State.Msgs == 0 && n >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 20s: %d tracks queued, %d hits; want 0 and %d", info.State.Msgs, n, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	send(track(10, salley[1:4]))
	drained(1)
	salleyHit := func(id uint64) bool {
		mu.Lock()
		defer mu.Unlock()
		_, ok := hits[wire.HitID("cam1", id, "1")]
		return ok
	}
	if !salleyHit(10) {
		t.Fatalf("hits before found = %v, want John Salley's track 10", hits)
	}

	if _, err := g.Found(ctx, salleyID.ID, "curator", "found alive"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := g.PublishPending(ctx, bus.JS); err != nil {
		t.Fatal(err)
	}
	for idx.Stats().Identities != 1 {
		if time.Since(start) > time.Second {
			t.Fatalf("matcher still holds %d identities 1s after the found was published, want 1", idx.Stats().Identities)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("found published -> matcher dropped him in %v", time.Since(start))
	send(track(11, salley[4:7]))
	send(track(12, savage[1:4]))
	drained(2)
	if err := stop(); err != nil {
		t.Fatalf("match stage: %v", err)
	}
	if salleyHit(11) {
		t.Errorf("John Salley's track after found gave a hit, want none")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hits) != 2 {
		t.Errorf("hits = %d, want 2: John Salley's before found and John Savage's after", len(hits))
	}
	for _, h := range hits {
		if h.Track == 12 && h.IdentityName != "John Savage" {
			t.Errorf("track 12 hit names %q, want John Savage", h.IdentityName)
		}
	}
}
