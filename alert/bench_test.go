package alert

import (
	"context"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/wire"
)

// BenchmarkStore stores alerts one call at a time: each is its own
// transaction and fsync (synchronous=FULL), plus its crop file's fsync.
func BenchmarkStore(b *testing.B) {
	s := openService(b, b.TempDir(), Options{})
	base := time.Now()
	hits := make([]wire.Hit, b.N)
	crops := make([][]byte, b.N)
	for i := range b.N {
		hits[i], crops[i] = makeHit(i, base)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Store(context.Background(), hits[i], crops[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "alerts/s")
}

// BenchmarkConsume measures what the service sustains from JetStream: hits
// are published first, then the timer covers consuming, storing durably
// (group commit) and acknowledging all of them.
func BenchmarkConsume(b *testing.B) {
	for _, batch := range []int{1, 128} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			dir := b.TempDir()
			ns := startNATS(b, filepath.Join(dir, "js"))
			_, js := connectJS(b, ns.ClientURL())
			ctx := context.Background()
			if err := natsbus.EnsureStreams(ctx, js, natsbus.Topology{}); err != nil {
				b.Fatal(err)
			}
			base := time.Now()
			var futures []jetstream.PubAckFuture
			for i := range b.N {
				h, crop := makeHit(i, base)
				f, err := js.PublishAsync(wire.HitsSubject(h.Watchlist), encodeHit(b, h, crop), jetstream.WithMsgID(h.ID))
				if err != nil {
					b.Fatal(err)
				}
				futures = append(futures, f)
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				b.Fatal("publishing timed out")
			}
			for _, f := range futures {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					b.Fatal(err)
				}
			}
			s, err := Open(ctx, filepath.Join(dir, "data"), testConfig(), Options{Registry: prometheus.NewRegistry(), BatchSize: batch})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.ResetTimer()
			rctx, cancel := context.WithCancel(ctx)
			var wg sync.WaitGroup
			wg.Go(func() { s.Run(rctx, js) })
			for countAlerts(b, s) < b.N {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "alerts/s")
			cancel()
			wg.Wait()
		})
	}
}
