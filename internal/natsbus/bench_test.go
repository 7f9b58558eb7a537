package natsbus

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/wire"
)

// BenchmarkHitTransport is the NATS part of the hit path alone, without
// the alert service's SQLite commit: the match identity publishes b.N
// hits (a 20 KB crop each, like a real one) to JetStream over TCP on
// loopback, and the alert identity's durable consumer fetches and
// acknowledges them. "tls" adds mutual TLS to both connections; the
// ratio of the two hits/s is TLS's cost on the wire.
func BenchmarkHitTransport(b *testing.B) {
	for _, mode := range []string{"plain", "tls"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			ncfg := config.NATS{Listen: "127.0.0.1:0"}
			var clientTLS config.TLSFiles
			if mode == "tls" {
				pki := makePKI(b, dir)
				ncfg.TLS, clientTLS = pki.serverTLSFiles(), pki.clientTLSFiles()
			}
			srv, err := Open(ctx, ncfg, filepath.Join(dir, "nats"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			if err := EnsureStreams(ctx, srv.JS, Topology{}); err != nil {
				b.Fatal(err)
			}
			remote := config.NATS{URL: srv.URL(), CredsDir: DefaultCredsDir(filepath.Join(dir, "nats")), TLS: clientTLS}
			match, err := Open(ctx, remote, dir, Options{Role: RoleMatch})
			if err != nil {
				b.Fatal(err)
			}
			defer match.Close()
			alert, err := Open(ctx, remote, dir, Options{Role: RoleAlert})
			if err != nil {
				b.Fatal(err)
			}
			defer alert.Close()
			if alert.Conn.TLSRequired() != (mode == "tls") {
				b.Fatalf("alert connection TLS = %v in mode %s", alert.Conn.TLSRequired(), mode)
			}
			cons, err := EnsureConsumer(ctx, alert.JS, AlertConsumer(AlertDurable, 30*time.Second, 512))
			if err != nil {
				b.Fatal(err)
			}
			payload := make([]byte, 20<<10)
			subj := wire.HitsSubject("wanted")
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			done := make(chan int)
			go func() { // ends after b.N messages or when ctx ends
				n := 0
				for n < b.N && ctx.Err() == nil {
					batch, err := cons.FetchNoWait(256)
					if err != nil {
						continue
					}
					got := 0
					for m := range batch.Messages() {
						m.Ack()
						got++
					}
					if got == 0 {
						time.Sleep(time.Millisecond)
					}
					n += got
				}
				done <- n
			}()
			for i := range b.N {
				if _, err := match.JS.PublishAsync(subj, payload, jetstream.WithMsgID("h"+strconv.Itoa(i))); err != nil {
					b.Fatal(err)
				}
				// At most 1024 unacknowledged publishes, as the matcher's
				// retrying publisher has far fewer: the client library
				// refuses more than 4000 when the machine is slow.
				if i%1024 == 1023 {
					<-match.JS.PublishAsyncComplete()
				}
			}
			<-match.JS.PublishAsyncComplete()
			if n := <-done; n < b.N {
				b.Fatalf("alert consumed %d of %d hits", n, b.N)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hits/s")
		})
	}
}
