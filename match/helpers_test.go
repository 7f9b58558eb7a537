package match

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/facewatch/facewatch/internal/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// database/sql's connection opener lives until the DB is closed;
		// the NATS server's and client's helpers stop asynchronously.
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).Start.func1"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*stream).internalLoop"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*fileStore).flushLoop"),
	)
}

// testModel is the model identity the synthetic descriptors claim.
var testModel = ModelID{Name: "dlib_face_recognition_resnet_model_v1.dat", SHA256: strings.Repeat("ab", 32)}

func testConfig() config.Match { return config.Defaults().Match }

// openGallery opens a gallery in a fresh temporary directory and checks
// its integrity when the test ends.
func openGallery(t *testing.T, dir string) *Gallery {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	g, err := OpenGallery(context.Background(), dir, GalleryOptions{})
	if err != nil {
		t.Fatalf("OpenGallery(%s) = %v", dir, err)
	}
	t.Cleanup(func() {
		if err := g.IntegrityCheck(context.Background()); err != nil {
			t.Errorf("IntegrityCheck() = %v, want nil", err)
		}
		g.Close()
	})
	return g
}

// randVec returns a synthetic descriptor: Gaussian, scaled so that two
// independent ones are about as far apart (~0.9) as two dlib descriptors
// of different people.
func randVec(rng *rand.Rand) Vector {
	var v Vector
	for i := range v {
		v[i] = float32(rng.NormFloat64() * 0.9 / math.Sqrt(2*Dim))
	}
	return v
}

// near returns v moved by a random offset of length dist.
func near(rng *rand.Rand, v Vector, dist float64) Vector {
	off := randVec(rng)
	var n float64
	for _, x := range off {
		n += float64(x) * float64(x)
	}
	s := dist / math.Sqrt(n)
	for i := range v {
		v[i] += float32(float64(off[i]) * s)
	}
	return v
}

func mustList(t *testing.T, g *Gallery, name string) Watchlist {
	t.Helper()
	w, err := g.CreateWatchlist(context.Background(), WatchlistSpec{Name: name, Kind: KindMissing, Owner: "curator", LegalBasis: "test order 1"})
	if err != nil {
		t.Fatalf("CreateWatchlist(%q) = %v", name, err)
	}
	return w
}

func mustIdentity(t *testing.T, g *Gallery, list, name string) Identity {
	t.Helper()
	id, _, err := g.EnsureIdentity(context.Background(), list, IdentitySpec{Name: name})
	if err != nil {
		t.Fatalf("EnsureIdentity(%q, %q) = %v", list, name, err)
	}
	return id
}

// fakePhoto is distinct bytes standing in for a photo file in tests of the
// store alone (enrolment from real photos is tested in enroll_test.go).
func fakePhoto(seed string) []byte {
	s := sha256.Sum256([]byte(seed))
	return append([]byte("photo:"), s[:]...)
}

func mustEnrol(t *testing.T, g *Gallery, identityID int64, v Vector, seed string) Enrolment {
	t.Helper()
	e, _, err := g.AddEnrolment(context.Background(), NewEnrolment{IdentityID: identityID, Photo: fakePhoto(seed), PhotoExt: ".jpg",
		ChipPNG: []byte("chip"), Vector: v, Model: testModel, Quality: 0.9, EnrolledBy: "curator"})
	if err != nil {
		t.Fatalf("AddEnrolment(identity %d, %s) = %v", identityID, seed, err)
	}
	return e
}

// digest describes an index's searchable state, for comparing matchers.
func (x *Index) digest() string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var lines []string
	for _, w := range x.lists {
		lines = append(lines, fmt.Sprintf("list %d %s v%d exp=%d thr=%g", w.ID, w.Name, w.Version, w.Expires.UnixMilli(), w.Threshold))
	}
	for id, slot := range x.slotOf {
		s := x.slots[slot]
		lines = append(lines, fmt.Sprintf("identity %d %q known=%v list=%d v%d exp=%d rows=%d", id, s.id.Name, s.known, s.id.WatchlistID, s.id.Version, s.id.Expires.UnixMilli(), s.rows))
	}
	for r, id := range x.rowID {
		h := sha256.New()
		for _, f := range x.vecs[r*Dim : (r+1)*Dim] {
			binary.Write(h, binary.LittleEndian, f)
		}
		lines = append(lines, fmt.Sprintf("row enrolment %d identity %d %x", id, x.slots[x.rowSlot[r]].id.ID, h.Sum(nil)[:8]))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// startNATS runs a real nats-server with JetStream in-process on a random
// port and returns its URL.
func startNATS(t testing.TB) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("starting nats-server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s.ClientURL()
}

// connect opens a client connection as a separate process would.
func connect(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	return js
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed+1)) }
