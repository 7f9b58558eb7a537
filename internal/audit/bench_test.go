package audit

import (
	"context"
	"testing"
	"time"
)

// BenchmarkAppend is one audited request's cost: a transaction with one
// keyed entry, committed (SQLite WAL, synchronous as opened).
func BenchmarkAppend(b *testing.B) {
	f := newFixture(b, 0)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tx, err := f.db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := f.log.Append(ctx, tx, &Entry{Time: t0, Actor: "tok", ActorName: "Ana", Role: "operator", Action: "view", Target: "alert/1"}); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckpoint is one checkpoint: read the head, sign, append a
// line to the file and fsync it.
func BenchmarkCheckpoint(b *testing.B) {
	f := newFixture(b, 0)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.log.mu.Lock()
		f.log.last = Checkpoint{} // force a write each time
		f.log.mu.Unlock()
		if _, _, err := f.log.Checkpoint(ctx, f.db, t0.Add(time.Duration(i))); err != nil {
			b.Fatal(err)
		}
	}
}
