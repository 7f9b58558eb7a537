package natsbus

import (
	"context"
	"errors"
	"fmt"
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

// TestDeadLetterIsKept stores dead letters in the bounded stream and reads
// them back as `facewatch deadletter list` does: the reason, stage and
// subject are kept; a hit's body is kept, a track report's is not (it may
// hold a stranger's descriptors, and the stream is on disk).
func TestDeadLetterIsKept(t *testing.T) {
	ctx := ctxT(t)
	b, err := Open(ctx, config.NATS{}, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := EnsureStreams(ctx, b.JS, Topology{}); err != nil {
		t.Fatal(err)
	}
	_, _, derr := wire.DecodeHit([]byte{1, 2})
	track := []byte("descriptor bytes of a stranger")
	letters := []Letter{
		{Stage: "match", Subject: "facewatch.tracks.cam1", Kind: wire.KindTrack, Data: track, Reason: derr},
		{Stage: "alert", Subject: "facewatch.hits.list1", MsgID: "cam1/7/42", Kind: wire.KindHit, Data: []byte{3}, KeepBody: true, Reason: errors.New("second")},
	}
	for _, l := range letters {
		if err := b.DeadLetter(ctx, l); err != nil {
			t.Fatalf("DeadLetter(%s) = %v", l.Subject, err)
		}
	}
	got, err := ListDeadLetters(ctx, b.JS, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("ListDeadLetters = %d letters, want 2", len(got))
	}
	if g := got[0]; !strings.Contains(g.Reason, "malformed") || g.Subject != "facewatch.tracks.cam1" || g.Stage != "match" ||
		g.Bytes != 0 || !strings.Contains(g.Body, fmt.Sprintf("not kept: %d bytes", len(track))) || g.Kind != "track" {
		t.Errorf("letter 1 = %+v, want the decoding error, subject facewatch.tracks.cam1, stage match, kind track, no body", g)
	}
	if g := got[1]; g.Reason != "second" || string(g.Data) != "\x03" || g.Body != "" || g.MsgID != "cam1/7/42" {
		t.Errorf("letter 2 = %+v (data %q), want reason second, the body kept, msg id cam1/7/42", g, g.Data)
	}
	if only, err := ListDeadLetters(ctx, b.JS, "alert", 0); err != nil || len(only) != 1 || only[0].Stage != "alert" {
		t.Errorf("ListDeadLetters(stage alert) = %+v, %v; want the alert letter only", only, err)
	}
	if last, err := ListDeadLetters(ctx, b.JS, "", 1); err != nil || len(last) != 1 || last[0].Stage != "alert" {
		t.Errorf("ListDeadLetters(limit 1) = %+v, %v; want the newest letter only", last, err)
	}
	if got := b.DeadLetters("match"); got != 1 {
		t.Errorf("DeadLetters(match) = %d, want 1", got)
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
