package alert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/wire"
)

// TestHitsFloodRefusedAtByteCap: the hits stream, declared with a byte cap
// and DiscardNew, refuses a flood at its cap (keeping the hits it holds),
// and the alert database beside it stays writable: an audited query and a
// stored alert both succeed afterwards.
func TestHitsFloodRefusedAtByteCap(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, filepath.Join(dir, "js"))
	_, js := connectJS(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := natsbus.EnsureStreams(ctx, js, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	// The declared streams carry their caps. The on-disk streams refuse
	// new messages at the cap; the tracks stream lives in memory and drops
	// its oldest reports instead (docs/privacy.md).
	caps := map[string]int64{wire.TracksStream: natsbus.TracksMaxBytes, wire.HitsStream: natsbus.HitsMaxBytes, wire.GalleryStream: natsbus.GalleryMaxBytes}
	discard := map[string]jetstream.DiscardPolicy{wire.TracksStream: jetstream.DiscardOld, wire.HitsStream: jetstream.DiscardNew, wire.GalleryStream: jetstream.DiscardNew}
	for name, want := range caps {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.MaxBytes != want || info.Config.Discard != discard[name] {
			t.Errorf("stream %s: max_bytes %d, discard %v; want %d, %v", name, info.Config.MaxBytes, info.Config.Discard, want, discard[name])
		}
	}
	// Flood a copy of the declaration scaled down to 1 MiB (a flood of the
	// real 1 GiB would take the test minutes); everything else, the
	// discard policy included, is the declaration's.
	const testCap = 1 << 20
	var hitsCfg jetstream.StreamConfig
	for _, c := range natsbus.Streams(natsbus.Topology{}) {
		if c.Name == wire.HitsStream {
			hitsCfg = c
		}
	}
	hitsCfg.MaxBytes = testCap
	if _, err := js.CreateOrUpdateStream(ctx, hitsCfg); err != nil {
		t.Fatal(err)
	}
	base := time.Now().UTC()
	var refused error
	published := 0
	for i := 0; i < 1000 && refused == nil; i++ {
		h, _ := makeHit(i, base)
		crop := append(fakeJPEG(i), bytes.Repeat([]byte{0x55}, 16<<10)...) // 16 KiB, like a real crop
		h.CropLen = len(crop)
		if _, err := js.Publish(ctx, wire.HitsSubject(h.Watchlist), encodeHit(t, h, crop), jetstream.WithMsgID(h.ID)); err != nil {
			refused = err
			break
		}
		published++
	}
	var apiErr *jetstream.APIError
	if refused == nil || !errors.As(refused, &apiErr) {
		t.Fatalf("published %d hits of 16 KiB into a %d-byte stream without refusal (last error %v), want a JetStream refusal at the cap", published, testCap, refused)
	}
	st, _ := js.Stream(ctx, wire.HitsStream)
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Bytes > testCap || info.State.FirstSeq != 1 || int(info.State.Msgs) != published {
		t.Errorf("hits stream after the flood: %d bytes, first seq %d, %d messages; want <= %d bytes with all %d accepted hits kept from seq 1",
			info.State.Bytes, info.State.FirstSeq, info.State.Msgs, testCap, published)
	}
	t.Logf("hits stream refused the flood after %d hits (%d bytes): %v", published, info.State.Bytes, refused)

	// The databases beside the store are still writable.
	s := openService(t, filepath.Join(dir, "data"), Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	inv := mustToken(t, s, RoleInvestigator, "ines", time.Hour)
	if resp, body := do(t, srv, "GET", "/api/v1/alerts?case=CASE-1", inv, nil); resp.StatusCode != 200 {
		t.Errorf("audited history query after the flood = %d %s, want 200", resp.StatusCode, body)
	}
	h, crop := makeHit(5000, base)
	if created, err := s.Store(ctx, h, crop); err != nil || !created {
		t.Errorf("Store after the flood = %v, %v; want a new alert", created, err)
	}
	// And the consumer drains what the stream kept.
	runService(t, s, js)
	waitFor(t, time.Minute, fmt.Sprintf("%d flooded hits stored", published), func() bool { return countAlerts(t, s) == published+1 })
}
