package alert

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/facewatch/facewatch/internal/audit"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/wire"
)

// startNATS runs a real nats-server with JetStream in dir on a random
// port and returns its client URL.
func startNATS(t testing.TB, dir string) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatalf("starting nats-server: %v", err)
	}
	go ns.Start() // stopped by the cleanup below
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready after 10s")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

func connectJS(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
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
	return nc, js
}

// testConfig is the default alert configuration with the same-appearance
// check off: the fixtures store synthetic hits of one person on one camera
// seconds apart on different tracks, each meant as an alert
// (TestStoreSameAppearance tests the check).
func testConfig() config.Alert {
	c := config.Defaults().Alert
	c.SameAppearance = 0
	return c
}

// clock is a settable clock for tests, safe to read from handlers.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openService(t testing.TB, dir string, opts Options) *Service {
	t.Helper()
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	s, err := Open(context.Background(), dir, testConfig(), opts)
	if err != nil {
		t.Fatalf("Open(%s) = %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var testModel = wire.Model{Name: "dlib_face_recognition_resnet_model_v1", SHA256: strings.Repeat("ab", 32)}

// fakeJPEG is a small byte string with the JPEG magic; the service checks
// only the magic, and each i gives a distinct content hash.
func fakeJPEG(i int) []byte {
	return append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, []byte(fmt.Sprintf("probe crop %d", i))...)
}

// makeHit builds a valid hit number i; it alternates cameras and
// identities so that filters have something to select.
func makeHit(i int, base time.Time) (wire.Hit, []byte) {
	cam := fmt.Sprintf("cam-%d", i%3)
	id := fmt.Sprintf("person-%d", i%4)
	crop := fakeJPEG(i)
	h := wire.Hit{
		Version: wire.Version, Camera: cam, Track: uint64(i), Time: base.Add(time.Duration(i) * time.Second),
		Watchlist: []string{"missing", "wanted"}[i%2], WatchlistKind: "missing_persons", Priority: 1 + i%3,
		Identity: id, IdentityName: "Person " + id, Distance: 0.30 + float64(i%10)/100, Threshold: 0.5,
		Model: testModel, EnrolledPhoto: strings.Repeat("cd", 32), Box: wire.Box{X: 1, Y: 2, W: 80, H: 90},
		CropLen: len(crop),
	}
	h.ID = wire.HitID(cam, h.Track, id)
	return h, crop
}

func encodeHit(t testing.TB, h wire.Hit, crop []byte) []byte {
	t.Helper()
	b, err := wire.EncodeHit(h, crop)
	if err != nil {
		t.Fatalf("EncodeHit(%s) = %v", h.ID, err)
	}
	return b
}

func publishHit(t testing.TB, js jetstream.JetStream, h wire.Hit, crop []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, wire.HitsSubject(h.Watchlist), encodeHit(t, h, crop), jetstream.WithMsgID(h.ID)); err != nil {
		t.Fatalf("publishing hit %s: %v", h.ID, err)
	}
}

// testAdmin is who issues the tests' tokens.
var testAdmin = audit.Actor{ID: "os:test", Name: "test", Role: "local"}

// mustToken issues a token for the person name.
func mustToken(t testing.TB, s *Service, role Role, name string, ttl time.Duration) string {
	t.Helper()
	return mustPersonToken(t, s, role, name, name, ttl)
}

// mustPersonToken issues a token labelled name for person.
func mustPersonToken(t testing.TB, s *Service, role Role, person, name string, ttl time.Duration) string {
	t.Helper()
	tok, _, err := s.CreateToken(context.Background(), testAdmin, TokenSpec{Role: role, Person: person, Name: name, TTL: ttl})
	if err != nil {
		t.Fatalf("CreateToken(%s, %s) = %v", role, person, err)
	}
	return tok
}

// local is the CLI's access to the alert database under dir.
func local(dir string) Local { return Local{DataDir: dir, Actor: testAdmin} }

// do sends a request with a bearer token (none when tok is "").
func do(t testing.TB, srv *httptest.Server, method, path, tok string, body []byte, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatalf("NewRequest(%s %s) = %v", method, path, err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// countAlerts reads the number of stored alerts.
func countAlerts(t testing.TB, s *Service) int {
	t.Helper()
	var n int
	if err := s.db.r.QueryRow(`SELECT COUNT(*) FROM alerts`).Scan(&n); err != nil {
		t.Fatalf("counting alerts: %v", err)
	}
	return n
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// testJPEG is a real w×h JPEG (a gradient, so that sizes differ).
func testJPEG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
