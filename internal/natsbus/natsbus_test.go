package natsbus

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/wire"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestEmbeddedJetStreamPersistsAndDeduplicates starts the embedded server,
// publishes the same hit ID twice, restarts the server on the same data
// directory and checks the one stored message survived.
func TestEmbeddedJetStreamPersistsAndDeduplicates(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	b, err := Open(ctx, config.NATS{}, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !b.Embedded() || b.URL() != "in-process" {
		t.Fatalf("Open(embedded).URL() = %q, embedded %v; want in-process (no listener without nats.listen)", b.URL(), b.Embedded())
	}
	sc := jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage, Duplicates: time.Minute}
	if _, err := EnsureStream(ctx, b.JS, sc); err != nil {
		t.Fatal(err)
	}
	// Updating to the same config again is not an error.
	if _, err := EnsureStream(ctx, b.JS, sc); err != nil {
		t.Fatalf("EnsureStream twice: %v", err)
	}
	for i := 0; i < 2; i++ {
		ack, err := b.JS.Publish(ctx, "t.a", []byte("hello"), jetstream.WithMsgID("cam/1/alice"))
		if err != nil {
			t.Fatal(err)
		}
		if want := i == 1; ack.Duplicate != want {
			t.Errorf("publish #%d: Duplicate = %v, want %v", i, ack.Duplicate, want)
		}
	}
	b.Close()

	b2, err := Open(ctx, config.NATS{}, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	s, err := b2.JS.Stream(ctx, "T")
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("messages after restart = %d, want 1", info.State.Msgs)
	}
}

func TestDeadLetterCarriesReasonAndCounts(t *testing.T) {
	ctx := ctxT(t)
	b, err := Open(ctx, config.NATS{}, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sub, err := b.Conn.SubscribeSync(wire.DeadLetterSubject("match"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, derr := wire.DecodeHit([]byte{1, 2})
	b.DeadLetter("match", "facewatch.tracks.cam1", []byte{1, 2}, derr)
	b.DeadLetter("match", "facewatch.tracks.cam1", []byte{3}, errors.New("second"))
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get(wire.HeaderReason); !strings.Contains(got, "malformed") {
		t.Errorf("dead letter reason = %q, want the decoding error", got)
	}
	if got := m.Header.Get(HeaderSubject); got != "facewatch.tracks.cam1" {
		t.Errorf("dead letter subject header = %q, want facewatch.tracks.cam1", got)
	}
	if string(m.Data) != "\x01\x02" {
		t.Errorf("dead letter body = %q, want the original bytes", m.Data)
	}
	if got := b.DeadLetters("match"); got != 2 {
		t.Errorf("DeadLetters(match) = %d, want 2", got)
	}
	if got := b.DeadLetters("detect"); got != 0 {
		t.Errorf("DeadLetters(detect) = %d, want 0", got)
	}
}

// TestExternalURL connects a second Bus to the first one's server by URL,
// as a stage in its own process does, with the credentials the server
// wrote on first start, and checks messages cross.
func TestExternalURL(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	srvBus, err := Open(ctx, config.NATS{Listen: "127.0.0.1:0"}, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srvBus.Close()
	if strings.HasSuffix(srvBus.URL(), ":4222") {
		t.Errorf("listen 127.0.0.1:0 gave %s, want a free port rather than the default 4222", srvBus.URL())
	}
	client, err := Open(ctx, config.NATS{URL: srvBus.URL(), CredsDir: DefaultCredsDir(dir)}, t.TempDir(), Options{Name: "client", Role: RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if client.Embedded() {
		t.Fatal("Open(url) started its own server")
	}
	sub, err := srvBus.Conn.SubscribeSync("x")
	if err != nil {
		t.Fatal(err)
	}
	if err := srvBus.Conn.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := client.Conn.Publish("x", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(5 * time.Second); err != nil || string(m.Data) != "hi" {
		t.Fatalf("message across processes = %v, %v; want hi", m, err)
	}
}

// TestConnectWaitsAndRedacts: a URL with a password and no server waits
// until the context ends, and the error does not show the password.
func TestConnectWaitsAndRedacts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Open(ctx, config.NATS{URL: "nats://user:s3cret@127.0.0.1:1"}, t.TempDir(), Options{})
	if err == nil {
		t.Fatal("Open(unreachable) succeeded")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error shows the password: %v", err)
	}
	if el := time.Since(start); el < 500*time.Millisecond {
		t.Errorf("Open(unreachable) gave up after %v, want it to retry until the context ends", el)
	}
}

func TestListenParse(t *testing.T) {
	for _, bad := range []string{"nohost", "127.0.0.1:x", "127.0.0.1:70000"} {
		if _, err := StartServer(context.Background(), t.TempDir(), bad, nil); err == nil {
			t.Errorf("StartServer(listen %q) = nil error, want one", bad)
		}
	}
	_ = nats.ErrNoServers
}
