package match

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/config"
)

// Benchmarks (not run by `go test` without -bench):
//
//	go test -run '^$' -bench 'Search|MemoryBandwidth' -benchtime 2s ./match/ (Enrol: ./internal/enroll/)
//
// Search reports queries/s, the gallery bytes compared per second, and that
// rate as a fraction of a plain single-thread memory read measured in the
// same process ("of-bandwidth"). A batch reads each gallery row once for
// all its probes, so its rate may exceed the bandwidth bound.

// syntheticIndex builds an in-memory index of n synthetic descriptors, four
// per identity on one list, straight from events (no SQLite: a million
// enrolments would be half a gigabyte of descriptors on disk).
func syntheticIndex(tb testing.TB, n int) *Index {
	tb.Helper()
	x := NewIndex(config.Defaults().Match, IndexOptions{})
	rng := newRand(uint64(n))
	seq := int64(1)
	next := func() int64 { seq++; return seq }
	if err := x.Apply(Event{Seq: next(), Type: EventWatchlistPut, Watchlist: &Watchlist{ID: 1, Name: "bench", Kind: KindOther, Version: 1}}); err != nil {
		tb.Fatal(err)
	}
	x.vecs = make([]float32, 0, n*Dim)
	for i := 0; i < n; i++ {
		id := int64(i/4 + 1)
		if i%4 == 0 {
			x.Apply(Event{Seq: next(), Type: EventIdentityPut, Identity: &Identity{ID: id, WatchlistID: 1, Name: fmt.Sprint("p", id), Version: seq}})
		}
		v := randVec(rng)
		x.mu.Lock()
		x.addRowLocked(int64(i+1), id, &v)
		x.mu.Unlock()
	}
	x.model = testModel
	x.loaded = true
	return x
}

// memoryBandwidth is a plain streaming read of 512 MiB of float32 by
// threads goroutines (best of eight passes), measured once per process for
// each thread count: the bound an exact search cannot beat when it reads
// the gallery with the same number of CPUs.
var (
	bwMu  sync.Mutex
	bwGBs = map[int]float64{}
	bwBuf []float32
)

func memoryBandwidth(threads int) float64 {
	bwMu.Lock()
	defer bwMu.Unlock()
	if v, ok := bwGBs[threads]; ok {
		return v
	}
	if bwBuf == nil {
		bwBuf = make([]float32, 128<<20) // 512 MiB
		for i := range bwBuf {
			bwBuf[i] = float32(i & 7)
		}
	}
	best := time.Duration(1 << 62)
	per := len(bwBuf) / threads
	for range 8 {
		start := time.Now()
		var wg sync.WaitGroup
		for t := range threads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := sumFloats(bwBuf[t*per : (t+1)*per])
				bwMu2.Lock()
				sink += s
				bwMu2.Unlock()
			}()
		}
		wg.Wait()
		best = min(best, time.Since(start))
	}
	bwGBs[threads] = float64(len(bwBuf)*4) / best.Seconds() / 1e9
	return bwGBs[threads]
}

var bwMu2 sync.Mutex

var sink float32

// sumFloats reads every element with four independent sums: as little
// compute per byte as Go allows, so its speed is the memory's.
func sumFloats(b []float32) float32 {
	var s0, s1, s2, s3 float32
	for i := 0; i+3 < len(b); i += 4 {
		s0 += b[i]
		s1 += b[i+1]
		s2 += b[i+2]
		s3 += b[i+3]
	}
	return s0 + s1 + s2 + s3
}

func BenchmarkMemoryBandwidth(b *testing.B) {
	buf := make([]float32, 128<<20)
	b.SetBytes(int64(len(buf) * 4))
	for b.Loop() {
		sink = sumFloats(buf)
	}
}

func BenchmarkSearch(b *testing.B) {
	for _, n := range []int{1000, 100_000, 1_000_000} {
		x := syntheticIndex(b, n)
		threads := 1
		if n >= parallelMinRows {
			threads = min(runtime.GOMAXPROCS(0), n/(parallelMinRows/2))
		}
		bw := memoryBandwidth(threads)
		rng := newRand(99)
		for _, batch := range []int{1, 16} {
			probes := make([]Probe, batch)
			for i := range probes {
				probes[i] = Probe{Vector: randVec(rng), Model: testModel, Quality: 1}
			}
			b.Run(fmt.Sprintf("n=%d/batch=%d", n, batch), func(b *testing.B) {
				for b.Loop() {
					if _, err := x.SearchBatch(probes, SearchOptions{}); err != nil {
						b.Fatal(err)
					}
				}
				perQuery := b.Elapsed().Seconds() / float64(b.N*batch)
				gbs := float64(n*Dim*4) / perQuery / 1e9
				b.ReportMetric(1/perQuery, "queries/s")
				b.ReportMetric(perQuery*1e3, "ms/query")
				b.ReportMetric(gbs, "gallery-GB/s")
				b.ReportMetric(gbs/bw, "of-bandwidth")
				b.ReportMetric(bw, "bandwidth-GB/s")
				b.ReportMetric(float64(threads), "threads")
			})
		}
		x = nil
	}
}

// BenchmarkDecideTrack is the per-track decision on a 10k gallery with a
// track of five faces.
func BenchmarkDecideTrack(b *testing.B) {
	x := syntheticIndex(b, 10_000)
	rng := newRand(7)
	faces := make([]Probe, 5)
	for i := range faces {
		faces[i] = Probe{Vector: randVec(rng), Model: testModel, Quality: 0.8}
	}
	for b.Loop() {
		if _, err := x.DecideTrack(faces, SearchOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
