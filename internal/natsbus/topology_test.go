package natsbus

import (
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
		if err := EnsureStreams(ctx, b.JS, 0); err != nil {
			t.Fatalf("EnsureStreams #%d = %v", i, err)
		}
	}
	want := map[string]struct {
		subject   string
		retention jetstream.RetentionPolicy
		maxAge    time.Duration
	}{
		wire.TracksStream:  {wire.TracksWildcard, jetstream.WorkQueuePolicy, 24 * time.Hour},
		wire.HitsStream:    {wire.HitsWildcard, jetstream.LimitsPolicy, 7 * 24 * time.Hour},
		wire.GalleryStream: {wire.GalleryEvents, jetstream.LimitsPolicy, 7 * 24 * time.Hour},
	}
	if got := len(Streams(1)); got != len(want) {
		t.Fatalf("len(Streams(1)) = %d, want %d", got, len(want))
	}
	for name, w := range want {
		s, err := b.JS.Stream(ctx, name)
		if err != nil {
			t.Fatalf("Stream(%s) = %v", name, err)
		}
		c := s.CachedInfo().Config
		if len(c.Subjects) != 1 || c.Subjects[0] != w.subject || c.Retention != w.retention || c.MaxAge != w.maxAge ||
			c.Storage != jetstream.FileStorage || c.Replicas != 1 || c.Duplicates != 10*time.Minute {
			t.Errorf("stream %s = subjects %v, retention %v, max age %v, storage %v, replicas %d, duplicates %v; want [%s], %v, %v, file, 1, 10m",
				name, c.Subjects, c.Retention, c.MaxAge, c.Storage, c.Replicas, c.Duplicates, w.subject, w.retention, w.maxAge)
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
	for _, s := range Streams(1) {
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
	for _, name := range []string{MatchDurable, AlertDurable, DetectQueue, CameraLeaseBucket, wire.FramesWildcard, wire.StatusWildcard, wire.DeadLetterRoot + ".*"} {
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
