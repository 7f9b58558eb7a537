package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/internal/wire"
)

// DefaultDir is the audit directory when the config names none: beside
// the databases, not in a database's own directory. Deployments that
// want the keys out of reach of whoever can write the data directory set
// audit.dir elsewhere (docs/alerts.md).
func DefaultDir(dataDir string) string { return filepath.Join(dataDir, "audit") }

// Publish sends c to the audit stream (wire.AuditStream, declared in
// internal/natsbus), a copy that refuses deletes and purges.
func Publish(ctx context.Context, js jetstream.JetStream, c Checkpoint) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encoding checkpoint: %w", err)
	}
	id := fmt.Sprintf("%s-%d-%s", c.Log, c.Seq, c.Head[:min(16, len(c.Head))])
	if _, err := js.Publish(ctx, wire.AuditCheckpointSubject(c.Log), b, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("publishing checkpoint of %s at %d: %w", c.Log, c.Seq, err)
	}
	return nil
}

// Fetch reads every checkpoint of log name kept in the audit stream. A
// message that does not parse is an error: the stream holds only what
// facewatch wrote.
func Fetch(ctx context.Context, js jetstream.JetStream, name string) ([]Checkpoint, error) {
	s, err := js.Stream(ctx, wire.AuditStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading audit checkpoints: %w", err)
	}
	subj := wire.AuditCheckpointSubject(name)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return nil, fmt.Errorf("reading audit checkpoints: %w", err)
	}
	total := info.State.Subjects[subj]
	if total == 0 {
		return nil, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}})
	if err != nil {
		return nil, fmt.Errorf("reading audit checkpoints: %w", err)
	}
	var out []Checkpoint
	for uint64(len(out)) < total {
		batch, err := cons.Fetch(int(min(total-uint64(len(out)), 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("reading audit checkpoints: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var c Checkpoint
			if err := json.Unmarshal(m.Data(), &c); err != nil {
				return nil, fmt.Errorf("reading audit checkpoint %s: %w", m.Subject(), err)
			}
			out = append(out, c)
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("reading audit checkpoints: %w", err)
		}
		if n == 0 {
			return nil, fmt.Errorf("reading audit checkpoints: %d of %d read before the stream stopped answering", len(out), total)
		}
	}
	return out, nil
}
