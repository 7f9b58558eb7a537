package alert

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/testcert"
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

// BenchmarkHitPathTLS measures the hit path across a real TCP connection
// to NATS, as between a central match host and the alert host: the match
// identity publishes b.N hits to JetStream while the alert service (its
// own identity, its own connection) consumes, stores durably and
// acknowledges them; the timer runs from the first publish to the last
// alert stored. "plain" is NATS on loopback without TLS; "tls" is the
// same with mutual TLS (a test CA, server and client certificates) on
// both connections. Compare their hits/s for the cost of TLS (on a shared
// machine, BenchmarkHitPathTLSAlternated gives the steadier ratio).
func BenchmarkHitPathTLS(b *testing.B) {
	for _, mode := range []string{"plain", "tls"} {
		b.Run(mode, func(b *testing.B) {
			rig := newHitRig(b, mode)
			b.ResetTimer()
			rate := rig.run(b, 0, b.N)
			b.StopTimer()
			b.ReportMetric(rate, "hits/s")
		})
	}
}

// BenchmarkIncidents measures the operator's incident list over a history
// of 20,000 alerts (5,000 people, four sightings each, most decided).
func BenchmarkIncidents(b *testing.B) {
	s := openService(b, b.TempDir(), Options{})
	base := time.Now().Add(-time.Hour)
	var batch []pendingHit
	for i := range 20000 {
		h, crop := makeHit(i, base)
		h.Identity = fmt.Sprintf("p-%d", i/4)
		h.ID = wire.HitID(h.Camera, h.Track, h.Identity)
		batch = append(batch, pendingHit{hit: h, crop: crop})
		if len(batch) == 500 {
			if _, err := s.storeBatch(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if _, err := s.db.w.Exec(`UPDATE alerts SET status = 'confirmed' WHERE id % 50 != 0`); err != nil {
		b.Fatal(err)
	}
	v := s.incidentViewOf(principal{Role: RoleOperator})
	b.ResetTimer()
	for b.Loop() {
		incs, err := s.listIncidents(context.Background(), v, true, benchIncidentLimit)
		if err != nil || len(incs) != benchIncidentLimit {
			b.Fatalf("listIncidents = %d, %v; want %d", len(incs), err, benchIncidentLimit)
		}
	}
}

// benchIncidentLimit is the page the console asks for.
const benchIncidentLimit = 100

// BenchmarkHitPathTLSAlternated is BenchmarkHitPathTLS with both modes in
// one process, set up side by side and measured in alternation: each of
// tlsRounds rounds sends b.N hits through the plain path and b.N through
// the mutual-TLS path, the mode that goes first alternating, so that the
// load of a shared machine falls on both alike. It reports the median
// hits/s of each mode and the TLS/plain ratio of each round: median, min
// and max. go test -run XXX -bench HitPathTLSAlternated -benchtime 2000x ./alert/
func BenchmarkHitPathTLSAlternated(b *testing.B) {
	rigs := map[string]*hitRig{"plain": newHitRig(b, "plain"), "tls": newHitRig(b, "tls")}
	var plain, tls, ratio []float64
	var rounds []string
	b.ResetTimer()
	for r := range tlsRounds {
		order := []string{"plain", "tls"}
		if r%2 == 1 {
			order = []string{"tls", "plain"}
		}
		rate := map[string]float64{}
		for _, m := range order {
			rate[m] = rigs[m].run(b, r*b.N, b.N)
		}
		plain, tls = append(plain, rate["plain"]), append(tls, rate["tls"])
		ratio = append(ratio, rate["tls"]/rate["plain"])
		rounds = append(rounds, fmt.Sprintf("%d (%s first) %.0f/%.0f=%.2f", r+1, order[0], rate["tls"], rate["plain"], ratio[r]))
	}
	b.StopTimer()
	// One line: the testing package keeps only the first lines of a
	// benchmark's log.
	b.Logf("b.N=%d, round (first) tls/plain hits/s: %s", b.N, strings.Join(rounds, "; "))
	b.ReportMetric(median(plain), "plain-hits/s")
	b.ReportMetric(median(tls), "tls-hits/s")
	b.ReportMetric(median(ratio), "tls/plain")
	b.ReportMetric(slices.Min(ratio), "tls/plain-min")
	b.ReportMetric(slices.Max(ratio), "tls/plain-max")
}

// tlsRounds is how many alternating rounds BenchmarkHitPathTLSAlternated
// runs.
const tlsRounds = 8

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// hitRig is one hit path: an embedded NATS server listening on loopback
// (with mutual TLS in mode "tls"), the match identity's connection that
// publishes and an alert service consuming over the alert identity's own
// connection.
type hitRig struct {
	match *natsbus.Bus
	svc   *Service
	base  time.Time
}

func newHitRig(b *testing.B, mode string) *hitRig {
	b.Helper()
	dir := b.TempDir()
	ctx := context.Background()
	ncfg := config.NATS{Listen: "127.0.0.1:0"}
	var clientTLS config.TLSFiles
	if mode == "tls" {
		ca := testcert.NewCA(b, dir)
		cert, key := ca.Issue(b, testcert.Leaf{Name: "nats"})
		ccert, ckey := ca.Issue(b, testcert.Leaf{Name: "client", Client: true})
		ncfg.TLS = config.TLSFiles{CAFile: ca.File, CertFile: cert, KeyFile: key}
		clientTLS = config.TLSFiles{CAFile: ca.File, CertFile: ccert, KeyFile: ckey}
	}
	srvBus, err := natsbus.Open(ctx, ncfg, filepath.Join(dir, "nats"), natsbus.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srvBus.Close)
	if err := natsbus.EnsureStreams(ctx, srvBus.JS, natsbus.Topology{}); err != nil {
		b.Fatal(err)
	}
	url := srvBus.URL()
	if !strings.HasPrefix(url, "tls://") && mode == "tls" || !strings.HasPrefix(url, "nats://") && mode == "plain" {
		b.Fatalf("server URL %s for mode %s", url, mode)
	}
	remote := config.NATS{URL: url, CredsDir: natsbus.DefaultCredsDir(filepath.Join(dir, "nats")), TLS: clientTLS}
	matchBus, err := natsbus.Open(ctx, remote, dir, natsbus.Options{Role: natsbus.RoleMatch})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(matchBus.Close)
	alertBus, err := natsbus.Open(ctx, remote, dir, natsbus.Options{Role: natsbus.RoleAlert})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(alertBus.Close)
	if (mode == "tls") != alertBus.Conn.TLSRequired() || (mode == "tls") != matchBus.Conn.TLSRequired() {
		b.Fatalf("connections' TLS = %v, %v in mode %s", matchBus.Conn.TLSRequired(), alertBus.Conn.TLSRequired(), mode)
	}
	s, err := Open(ctx, filepath.Join(dir, "data"), testConfig(), Options{Registry: prometheus.NewRegistry(), BatchSize: 128})
	if err != nil {
		b.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.Run(rctx, alertBus.JS) })
	b.Cleanup(func() { cancel(); wg.Wait(); s.Close() })
	return &hitRig{match: matchBus, svc: s, base: time.Now()}
}

// run publishes hits from..from+n-1 (encoded before the clock starts) and
// returns hits/s from the first publish to the last alert stored.
func (r *hitRig) run(b *testing.B, from, n int) float64 {
	b.Helper()
	msgs := make([][]byte, n)
	hits := make([]wire.Hit, n)
	for i := range n {
		h, crop := makeHit(from+i, r.base)
		hits[i], msgs[i] = h, encodeHit(b, h, crop)
	}
	want := countAlerts(b, r.svc) + n
	start := time.Now()
	for i := range n {
		if _, err := r.match.JS.PublishAsync(wire.HitsSubject(hits[i].Watchlist), msgs[i], jetstream.WithMsgID(hits[i].ID)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-r.match.JS.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		b.Fatal("publishing timed out")
	}
	deadline := time.Now().Add(2 * time.Minute)
	for countAlerts(b, r.svc) < want {
		if time.Now().After(deadline) {
			b.Fatalf("%d alerts stored within 2 minutes, want %d", countAlerts(b, r.svc), want)
		}
		time.Sleep(time.Millisecond)
	}
	return float64(n) / time.Since(start).Seconds()
}
