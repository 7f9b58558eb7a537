package natsbus

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/wire"
)

// TestEnsureStreamsCreatesTheTopology creates the topology on a real
// embedded server twice (the second is an update to the same declaration)
// and checks each stream as the server reports it, then creates both
// durable consumers on them.
func TestEnsureStreamsCreatesTheTopology(t *testing.T) {
	ctx := ctxT(t)
	b, err := Open(ctx, config.NATS{}, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i := range 2 {
		if err := EnsureStreams(ctx, b.JS, Topology{}); err != nil {
			t.Fatalf("EnsureStreams #%d = %v", i, err)
		}
	}
	want := map[string]struct {
		subject   string
		retention jetstream.RetentionPolicy
		storage   jetstream.StorageType
		maxAge    time.Duration
		dups      time.Duration
	}{
		// Memory: track reports hold descriptors of strangers too.
		wire.TracksStream:     {wire.TracksWildcard, jetstream.WorkQueuePolicy, jetstream.MemoryStorage, 5 * time.Minute, 2 * time.Minute},
		wire.HitsStream:       {wire.HitsWildcard, jetstream.LimitsPolicy, jetstream.FileStorage, 7 * 24 * time.Hour, 10 * time.Minute},
		wire.GalleryStream:    {wire.GalleryEvents, jetstream.LimitsPolicy, jetstream.FileStorage, 7 * 24 * time.Hour, 10 * time.Minute},
		wire.DeadLetterStream: {wire.DeadLetterWildcard, jetstream.LimitsPolicy, jetstream.FileStorage, 7 * 24 * time.Hour, 2 * time.Minute},
		wire.AuditStream:      {wire.AuditWildcard, jetstream.LimitsPolicy, jetstream.FileStorage, 400 * 24 * time.Hour, 10 * time.Minute},
	}
	if got := len(Streams(Topology{})); got != len(want) {
		t.Fatalf("len(Streams) = %d, want %d", got, len(want))
	}
	for name, w := range want {
		s, err := b.JS.Stream(ctx, name)
		if err != nil {
			t.Fatalf("Stream(%s) = %v", name, err)
		}
		c := s.CachedInfo().Config
		if len(c.Subjects) != 1 || c.Subjects[0] != w.subject || c.Retention != w.retention || c.MaxAge != w.maxAge ||
			c.Storage != w.storage || c.Replicas != 1 || c.Duplicates != w.dups {
			t.Errorf("stream %s = subjects %v, retention %v, max age %v, storage %v, replicas %d, duplicates %v; want [%s], %v, %v, %v, 1, %v",
				name, c.Subjects, c.Retention, c.MaxAge, c.Storage, c.Replicas, c.Duplicates, w.subject, w.retention, w.maxAge, w.storage, w.dups)
		}
	}
	for _, name := range []string{wire.TracksStream, wire.DeadLetterStream} {
		s, _ := b.JS.Stream(ctx, name)
		if c := s.CachedInfo().Config; c.MaxBytes <= 0 || c.Discard != jetstream.DiscardOld {
			t.Errorf("stream %s = max bytes %d, discard %v; want bounded, discarding the oldest", name, c.MaxBytes, c.Discard)
		}
	}
	// The audit checkpoints are written where the databases' writers
	// cannot alter them: the stream refuses deletes and purges.
	if s, err := b.JS.Stream(ctx, wire.AuditStream); err == nil {
		if c := s.CachedInfo().Config; !c.DenyDelete || !c.DenyPurge {
			t.Errorf("stream %s deny delete %v, deny purge %v; want both", wire.AuditStream, c.DenyDelete, c.DenyPurge)
		}
		if err := s.Purge(ctx); err == nil {
			t.Errorf("Purge(%s) = nil, want refused", wire.AuditStream)
		}
	}
	for _, c := range []Consumer{MatchConsumer(time.Second), AlertConsumer(AlertDurable, time.Second, 8)} {
		cons, err := EnsureConsumer(ctx, b.JS, c)
		if err != nil {
			t.Fatalf("EnsureConsumer(%s) = %v", c.Durable, err)
		}
		if got := cons.CachedInfo(); got.Stream != c.Stream || got.Config.FilterSubject != c.FilterSubject || got.Config.AckWait != time.Second {
			t.Errorf("consumer %s = stream %s, filter %s, ack wait %v; want %s, %s, 1s", c.Durable, got.Stream, got.Config.FilterSubject, got.Config.AckWait, c.Stream, c.FilterSubject)
		}
	}
	// The camera lease bucket: created twice (idempotent), TTL = lease
	// period, one value per key.
	for i := range 2 {
		kv, err := EnsureCameraLeases(ctx, b.JS, 1)
		if err != nil {
			t.Fatalf("EnsureCameraLeases #%d = %v", i, err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Bucket() != CameraLeaseBucket || st.TTL() != CameraLeasePeriod || st.History() != 1 {
			t.Errorf("lease bucket = %s, TTL %v, history %d; want %s, %v, 1", st.Bucket(), st.TTL(), st.History(), CameraLeaseBucket, CameraLeasePeriod)
		}
	}
	// A consumer on a stream that is not declared is refused with its name.
	if _, err := EnsureConsumer(ctx, b.JS, Consumer{Stream: "NOPE", ConsumerConfig: jetstream.ConsumerConfig{Durable: "x"}}); err == nil {
		t.Error("EnsureConsumer on an undeclared stream = nil, want an error")
	}
}

// TestRetentionShapesTheStreams: the hits and dead-letter streams keep
// nothing longer than alert.retention, the tracks stream nothing longer
// than alert.unmatched_retention; a changed setting updates the existing
// streams, and a process that does not know the settings (zero) leaves
// them as they are.
func TestRetentionShapesTheStreams(t *testing.T) {
	ctx := ctxT(t)
	b, err := Open(ctx, config.NATS{}, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	maxAge := func(name string) time.Duration {
		s, err := b.JS.Stream(ctx, name)
		if err != nil {
			t.Fatalf("Stream(%s) = %v", name, err)
		}
		return s.CachedInfo().Config.MaxAge
	}
	steps := []struct {
		name               string
		topo               Topology
		hits, dead, tracks time.Duration
	}{
		{"retention of a day", Topology{Retention: 24 * time.Hour, Unmatched: time.Minute}, 24 * time.Hour, 24 * time.Hour, time.Minute},
		{"shortened to an hour", Topology{Retention: time.Hour, Unmatched: 30 * time.Second}, time.Hour, time.Hour, 30 * time.Second},
		{"a process without the settings", Topology{Replicas: 1}, time.Hour, time.Hour, 30 * time.Second},
		{"longer than the stream default", Topology{Retention: 90 * 24 * time.Hour, Unmatched: 5 * time.Minute}, HitsMaxAge, DeadLetterMaxAge, 5 * time.Minute},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := EnsureStreams(ctx, b.JS, st.topo); err != nil {
				t.Fatal(err)
			}
			for name, want := range map[string]time.Duration{wire.HitsStream: st.hits, wire.DeadLetterStream: st.dead, wire.TracksStream: st.tracks} {
				if got := maxAge(name); got != want {
					t.Errorf("after EnsureStreams(%+v): stream %s max age = %v, want %v", st.topo, name, got, want)
				}
			}
		})
	}
}

// TestTracksStreamLeavesTheDisk upgrades a store whose tracks stream was
// declared on file (as before version 2) holding a report: the stream is
// recreated in memory, and the report is gone from the disk.
func TestTracksStreamLeavesTheDisk(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	b, err := Open(ctx, config.NATS{}, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	old := Streams(Topology{})[0]
	old.Storage = jetstream.FileStorage
	if _, err := EnsureStream(ctx, b.JS, old); err != nil {
		t.Fatal(err)
	}
	marker := []byte("STRANGER-DESCRIPTOR-MARKER-0123456789")
	if _, err := b.JS.Publish(ctx, wire.TracksSubject("cam1"), marker); err != nil {
		t.Fatal(err)
	}
	if n := countInTree(t, dir, marker); n == 0 {
		t.Fatal("the file stream did not write the report to disk; the test proves nothing")
	}
	got, err := Ensure(ctx, b.JS, Topology{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Recreated[wire.TracksStream] != 1 {
		t.Errorf("Ensure recreated %v, want %s with 1 message", got.Recreated, wire.TracksStream)
	}
	s, err := b.JS.Stream(ctx, wire.TracksStream)
	if err != nil || s.CachedInfo().Config.Storage != jetstream.MemoryStorage {
		t.Fatalf("tracks stream after Ensure: %v, storage %v; want memory", err, s.CachedInfo().Config.Storage)
	}
	if n := countInTree(t, dir, marker); n != 0 {
		t.Errorf("%d files under the store still hold the report after the tracks stream moved to memory", n)
	}
}

// countInTree counts the files under dir that contain b.
func countInTree(t *testing.T, dir string, b []byte) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err == nil && bytes.Contains(data, b) {
			n++
		}
		return nil
	})
	return n
}

// TestAlertDurableIsTheConfigDefault keeps config's default alert.consumer
// (which cannot import this package) equal to the declared name.
func TestAlertDurableIsTheConfigDefault(t *testing.T) {
	if got := config.Defaults().Alert.Consumer; got != AlertDurable {
		t.Errorf("config.Defaults().Alert.Consumer = %q, want %q", got, AlertDurable)
	}
}

// TestTopologyDocumented keeps docs/pipeline.md's topology table and the
// declarations in step: every declared stream has a row naming its
// subjects, every durable consumer and queue group is named in the table,
// and the page names no stream that is not declared.
func TestTopologyDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "pipeline.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Topology\n")
	if !ok {
		t.Fatal("docs/pipeline.md has no \"## Topology\" section")
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	var rows []string
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "| `") {
			rows = append(rows, line)
		}
	}
	declared := map[string]bool{}
	for _, s := range Streams(Topology{}) {
		declared[s.Name] = true
		found := false
		for _, row := range rows {
			first, _, _ := strings.Cut(strings.TrimPrefix(row, "|"), "|")
			if !strings.Contains(first, "`"+s.Name+"`") {
				continue
			}
			found = true
			for _, subj := range s.Subjects {
				if !strings.Contains(first, "`"+subj+"`") {
					t.Errorf("topology table row of %s does not name its subject `%s`: %s", s.Name, subj, first)
				}
			}
		}
		if !found {
			t.Errorf("topology table has no row for stream %s", s.Name)
		}
	}
	table := strings.Join(rows, "\n")
	for _, name := range []string{MatchDurable, AlertDurable, DetectQueue, CameraLeaseBucket, wire.FramesWildcard, wire.StatusWildcard, wire.DeadLetterWildcard, wire.CropsWildcard} {
		if !strings.Contains(table, "`"+name+"`") {
			t.Errorf("topology table does not name `%s`", name)
		}
	}
	for _, name := range regexp.MustCompile(`\bFACEWATCH_[A-Z]+\b`).FindAllString(string(doc), -1) {
		if !declared[name] {
			t.Errorf("docs/pipeline.md names stream %s, which natsbus.Streams does not declare", name)
		}
	}
}
