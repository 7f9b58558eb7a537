package match

import (
	"context"
	"encoding/base64"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/wire"
)

// matcher is one matcher "process": its own gallery handle on the shared
// file, its own NATS connection and its own Index, run until stopped.
type matcher struct {
	x    *Index
	stop func()
}

func startMatcher(t *testing.T, dir, url string) *matcher {
	t.Helper()
	g := openGallery(t, dir)
	x := NewIndex(testConfig(), IndexOptions{Gallery: g, JetStream: connect(t, url)})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := x.Run(ctx); err != nil {
			t.Errorf("Index.Run() = %v", err)
		}
	}()
	m := &matcher{x: x, stop: func() { cancel(); wg.Wait() }}
	t.Cleanup(m.stop)
	select {
	case <-x.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("matcher not ready within 10s")
	}
	return m
}

func (m *matcher) name(t *testing.T, v Vector) string {
	t.Helper()
	d, err := m.x.DecideTrack([]Probe{{Vector: v, Model: testModel, Quality: 1}}, SearchOptions{})
	if err != nil {
		t.Fatalf("DecideTrack() = %v", err)
	}
	return d.Identity
}

// TestMatchersConverge: two matchers converge within a second after an
// enrolment, a deletion and an expiry, and a restarted matcher rebuilds
// the same gallery from SQLite plus the stream.
func TestMatchersConverge(t *testing.T) {
	ctx := context.Background()
	url := startNATS(t)
	dir := t.TempDir()
	curator := openGallery(t, dir)
	pub := connect(t, url)
	publish := func() {
		t.Helper()
		if _, err := curator.PublishPending(ctx, pub); err != nil {
			t.Fatalf("PublishPending() = %v", err)
		}
	}
	rng := rand.New(rand.NewPCG(21, 22))
	mustList(t, curator, "missing")
	mustList(t, curator, "wanted")
	early := mustIdentity(t, curator, "missing", "early")
	vEarly := randVec(rng)
	mustEnrol(t, curator, early.ID, vEarly, "early")
	// The stream does not exist before the first matcher: this outbox is
	// published after both started and is also in their snapshots.
	m1 := startMatcher(t, dir, url)
	m2 := startMatcher(t, dir, url)
	publish()
	for i, m := range []*matcher{m1, m2} {
		if got := m.name(t, vEarly); got != "early" {
			t.Errorf("matcher %d: name(early) = %q, want early", i+1, got)
		}
	}

	const within = time.Second
	// Enrolment.
	alice := mustIdentity(t, curator, "wanted", "alice")
	vAlice := randVec(rng)
	mustEnrol(t, curator, alice.ID, vAlice, "alice")
	publish()
	for i, m := range []*matcher{m1, m2} {
		eventually(t, within, "matcher sees alice", func() bool { return m.name(t, near(rng, vAlice, 0.1)) == "alice" })
		_ = i
	}
	// Deletion.
	if err := curator.DeleteIdentity(ctx, alice.ID); err != nil {
		t.Fatal(err)
	}
	publish()
	for _, m := range []*matcher{m1, m2} {
		eventually(t, within, "matcher forgets alice", func() bool { return m.name(t, vAlice) == "" })
	}
	// Expiry, half a second ahead: both stop matching at that time
	// without a further event.
	at := time.Now().Add(500 * time.Millisecond)
	if _, err := curator.ExpireWatchlist(ctx, "missing", at); err != nil {
		t.Fatal(err)
	}
	publish()
	for _, m := range []*matcher{m1, m2} {
		eventually(t, within, "matcher learns the expiry", func() bool {
			m.x.mu.RLock()
			defer m.x.mu.RUnlock()
			for _, w := range m.x.lists {
				if w.Name == "missing" {
					return w.Expires.Equal(at.UTC().Truncate(time.Millisecond))
				}
			}
			return false
		})
	}
	// Before the expiry it still matches (checked only when the search
	// surely ran before it, on a slow machine it may not have).
	if got := m1.name(t, vEarly); got != "early" && time.Now().Before(at) {
		t.Errorf("before expiry: name(early) = %q, want early", got)
	}
	time.Sleep(time.Until(at) + 10*time.Millisecond)
	for i, m := range []*matcher{m1, m2} {
		if got := m.name(t, vEarly); got != "" {
			t.Errorf("matcher %d after expiry: name(early) = %q, want no name", i+1, got)
		}
	}

	// Restart: m1 stops, the gallery changes meanwhile, a new m1 starts.
	m1.stop()
	bob := mustIdentity(t, curator, "wanted", "bob")
	vBob := randVec(rng)
	mustEnrol(t, curator, bob.ID, vBob, "bob")
	publish()
	carol := mustIdentity(t, curator, "wanted", "carol")
	mustEnrol(t, curator, carol.ID, randVec(rng), "carol")
	// carol's events stay in the outbox until after the restart.
	m1 = startMatcher(t, dir, url)
	publish()
	eventually(t, within, "restarted matcher equals the running one", func() bool { return m1.x.digest() == m2.x.digest() })
	fresh := NewIndex(testConfig(), IndexOptions{Gallery: curator})
	if err := fresh.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if m1.x.digest() != fresh.digest() {
		t.Errorf("restarted matcher =\n%s\nwant the gallery's\n%s", m1.x.digest(), fresh.digest())
	}
	if got := m1.name(t, vBob); got != "bob" {
		t.Errorf("restarted matcher: name(bob) = %q, want bob", got)
	}
}

// TestBadEventsRefused publishes malformed events straight to the stream:
// each is refused with a counted, logged error and the index is unchanged;
// a good event after them still applies.
func TestBadEventsRefused(t *testing.T) {
	ctx := context.Background()
	url := startNATS(t)
	dir := t.TempDir()
	curator := openGallery(t, dir)
	js := connect(t, url)
	rng := rand.New(rand.NewPCG(23, 24))
	mustList(t, curator, "l")
	id := mustIdentity(t, curator, "l", "x")
	mustEnrol(t, curator, id.ID, randVec(rng), "x")
	m := startMatcher(t, dir, url)
	before := m.x.digest()

	good := EncodeVector(func() *Vector { v := randVec(rng); return &v }())
	nan := append([]byte(nil), good...)
	copy(nan[8:12], []byte{0, 0, 0xc0, 0x7f}) // float32 NaN
	inf := append([]byte(nil), good...)
	copy(inf[0:4], []byte{0, 0, 0x80, 0x7f}) // float32 +Inf
	enrol := func(desc []byte, model ModelID) string {
		return `{"seq":1000,"type":"enrolment.add","enrolment":{"id":1000,"identity_id":` + itoa(id.ID) + `,"watchlist_id":` + itoa(id.WatchlistID) +
			`,"descriptor":"` + base64.StdEncoding.EncodeToString(desc) + `","model":{"name":"` + model.Name + `","sha256":"` + model.SHA256 + `"},"quality":1}}`
	}
	other := ModelID{Name: "other-net", SHA256: strings.Repeat("ef", 32)}
	tests := []struct {
		name    string
		payload string
		wantErr error
	}{
		{"not json", "\x00\x01garbage", ErrInvalid},
		{"unknown type", `{"seq":7,"type":"identity.rename"}`, ErrInvalid},
		{"no sequence", `{"type":"identity.delete","deleted_id":1}`, ErrInvalid},
		{"short descriptor", enrol(good[:500], testModel), ErrInvalid},
		{"long descriptor", enrol(append(good, 0, 0, 0, 0), testModel), ErrInvalid},
		{"NaN descriptor", enrol(nan, testModel), ErrInvalid},
		{"Inf descriptor", enrol(inf, testModel), ErrInvalid},
		{"no model", enrol(good, ModelID{}), ErrInvalid},
		{"other model", enrol(good, other), ErrModelMismatch},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := ParseEvent([]byte(tc.payload))
			if err == nil {
				err = m.x.Apply(ev)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("ParseEvent+Apply(%s) = %v, want %v", tc.name, err, tc.wantErr)
			}
			if _, err := js.Publish(ctx, wire.GalleryEvents, []byte(tc.payload)); err != nil {
				t.Fatal(err)
			}
			eventually(t, time.Second, "event refused", func() bool { return m.x.Stats().Rejected == int64(i+1) })
		})
	}
	if got := m.x.digest(); got != before {
		t.Errorf("index after bad events =\n%s\nwant unchanged\n%s", got, before)
	}
	y := mustIdentity(t, curator, "l", "y")
	vy := randVec(rng)
	mustEnrol(t, curator, y.ID, vy, "y")
	if _, err := curator.PublishPending(ctx, js); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "good event after bad ones applies", func() bool { return m.name(t, vy) == "y" })
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestRunPublisherDeliversOutbox: a writer without NATS (like `facewatch
// enroll` against the data directory of a running `facewatch run`) leaves
// its events in the outbox; the running process's publisher loop sends
// them and the matcher picks them up; the loop stops with its context.
func TestRunPublisherDeliversOutbox(t *testing.T) {
	url := startNATS(t)
	dir := t.TempDir()
	writer := openGallery(t, dir)
	running := openGallery(t, dir)
	m := startMatcher(t, dir, url)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- running.RunPublisher(ctx, connect(t, url), 50*time.Millisecond) }()

	rng := newRand(61)
	mustList(t, writer, "l")
	id := mustIdentity(t, writer, "l", "offline")
	v := randVec(rng)
	mustEnrol(t, writer, id.ID, v, "offline")
	eventually(t, 2*time.Second, "matcher sees the offline enrolment", func() bool { return m.name(t, v) == "offline" })
	// The publisher marks a row published after the stream acknowledged
	// it, which may be after the matcher already applied it.
	eventually(t, 2*time.Second, "outbox emptied", func() bool {
		n, err := writer.Pending(context.Background())
		return err == nil && n == 0
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunPublisher() = %v, want nil after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RunPublisher did not stop after cancel")
	}
}
