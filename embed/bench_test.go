package embed_test

import (
	"context"
	"fmt"
	goface "github.com/Kagami/go-face"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/embed"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/dlib/resnet"
	"github.com/facewatch/facewatch/internal/face"
	"github.com/facewatch/facewatch/internal/testdata"
)

func newEmbedder(b *testing.B, batch int) *embed.Embedder {
	b.Helper()
	cfg := config.Defaults().Embed
	cfg.BatchSize = batch
	e, err := embed.New(testdata.ModelDir(b), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

// chips32 returns 32 aligned chips of dlib's johns.
func chips32(b *testing.B) []face.Chip {
	chips, _ := johnsChips(b)
	return chips[:32]
}

// BenchmarkEmbed: ms per face at batch sizes 1, 8 and 32 (32 faces per
// iteration).
func BenchmarkEmbed(b *testing.B) {
	chips := chips32(b)
	for _, bs := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("batch=%d", bs), func(b *testing.B) {
			e := newEmbedder(b, bs)
			cpu0 := cpuTime(b)
			for b.Loop() {
				if _, err := e.Embed(context.Background(), chips); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N*len(chips)), "ms/face")
			b.ReportMetric(float64((cpuTime(b)-cpu0).Milliseconds())/float64(b.N*len(chips)), "cpu-ms/face")
		})
	}
}

// BenchmarkEmbedWorkers: faces per second with 1 and 2 workers, each with
// its own network (batch 8), sharing no lock.
func BenchmarkEmbedWorkers(b *testing.B) {
	chips := chips32(b)
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			es := make([]*embed.Embedder, workers)
			for i := range es {
				es[i] = newEmbedder(b, 8)
			}
			cpu0 := cpuTime(b)
			for b.Loop() {
				var wg sync.WaitGroup
				for _, e := range es {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := e.Embed(context.Background(), chips); err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
			}
			b.ReportMetric(float64(b.N*workers*len(chips))/b.Elapsed().Seconds(), "faces/s")
			b.ReportMetric(float64((cpuTime(b)-cpu0).Milliseconds())/float64(b.N*workers*len(chips)), "cpu-ms/face")
		})
	}
}

// BenchmarkEndToEnd: JPEG bytes to descriptors, our path against go-face,
// on the same photos (the reference photos: 15 faces), with 1 and 2
// goroutines. Ours gives each goroutine its own detector and embedder;
// go-face's one Recognizer serialises its networks behind mutexes.
//
// The workers=N runs alternate the two paths inside every iteration (ours,
// then go-face, at the same BLAS setting), so that a machine whose load
// changes during the run disturbs both alike, and report each side's
// faces/s and CPU-ms per face (CPU time of the whole process, all threads,
// while that side ran) and their ratios: x-goface is our faces/s over
// go-face's, cpu-ratio our CPU per face over go-face's.
func BenchmarkEndToEnd(b *testing.B) {
	var photos [][]byte
	for _, name := range referencePhotos {
		data, err := os.ReadFile(idolPath(b, name))
		if err != nil {
			b.Fatal(err)
		}
		photos = append(photos, data)
	}
	rec := reference(b)
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			ws := newWorkers(b, workers, 0)
			var ours, theirs side
			for b.Loop() {
				ours.run(b, func() int { return runOurs(b, ws, photos) })
				theirs.run(b, func() int { return runGoFace(b, rec, photos, workers) })
			}
			b.ReportMetric(ours.facesPerSec(), "ours-faces/s")
			b.ReportMetric(theirs.facesPerSec(), "goface-faces/s")
			b.ReportMetric(ours.facesPerSec()/theirs.facesPerSec(), "x-goface")
			b.ReportMetric(ours.cpuPerFace(), "ours-cpu-ms/face")
			b.ReportMetric(theirs.cpuPerFace(), "goface-cpu-ms/face")
			b.ReportMetric(ours.cpuPerFace()/theirs.cpuPerFace(), "cpu-ratio")
		})
	}
	for _, run := range []struct {
		name     string
		workers  int
		maxWidth int
	}{
		// The product's camera default: detect on a copy at most 1280
		// pixels wide (faces then come from the full frame). Not identical
		// to go-face: faces under about 80*width/1280 pixels are not found.
		{"ours-maxwidth1280/workers=1", 1, 1280},
		// go-face as it runs in a process of its own: OpenBLAS with its
		// default of one thread per core for every call.
		{"goface-blasdefault/workers=1", 1, -1},
		{"goface-blasdefault/workers=2", 2, -1},
	} {
		b.Run(run.name, func(b *testing.B) {
			var ws []worker
			if run.maxWidth >= 0 {
				ws = newWorkers(b, run.workers, run.maxWidth)
			} else {
				resnet.SetBLASThreads(runtime.NumCPU())
				defer resnet.SetBLASThreads(config.Defaults().Embed.BLASThreads)
			}
			var s side
			for b.Loop() {
				s.run(b, func() int {
					if ws != nil {
						return runOurs(b, ws, photos)
					}
					return runGoFace(b, rec, photos, run.workers)
				})
			}
			b.ReportMetric(s.facesPerSec(), "faces/s")
			b.ReportMetric(s.cpuPerFace(), "cpu-ms/face")
			b.ReportMetric(float64(s.faces)/float64(b.N), "faces/op")
		})
	}
}

// side is what one path of BenchmarkEndToEnd did: faces, wall and CPU time.
type side struct {
	faces     int
	wall, cpu time.Duration
}

func (s *side) run(b *testing.B, f func() int) {
	start, cpu0 := time.Now(), cpuTime(b)
	s.faces += f()
	s.wall += time.Since(start)
	s.cpu += cpuTime(b) - cpu0
}

func (s *side) facesPerSec() float64 { return float64(s.faces) / s.wall.Seconds() }

func (s *side) cpuPerFace() float64 {
	return float64(s.cpu.Microseconds()) / 1000 / float64(max(1, s.faces))
}

// worker is one goroutine's detector and embedder on our path.
type worker struct {
	d *detect.Detector
	e *embed.Embedder
}

func newWorkers(b *testing.B, n, maxWidth int) []worker {
	ws := make([]worker, n)
	for i := range ws {
		cfg := refDetect()
		cfg.MaxWidth = maxWidth
		d, err := detect.New(testdata.ModelDir(b), cfg)
		if err != nil {
			b.Fatal(err)
		}
		ws[i] = worker{d, newEmbedder(b, 16)}
		b.Cleanup(func() { d.Close() })
	}
	return ws
}

// runOurs decodes, detects and embeds every photo, photo i on worker
// i%len(ws), and returns the number of faces.
func runOurs(b *testing.B, ws []worker, photos [][]byte) int {
	var mu sync.Mutex
	faces := 0
	var wg sync.WaitGroup
	for wi := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pi := wi; pi < len(photos); pi += len(ws) {
				m, err := detect.Decode(photos[pi], 0)
				if err != nil {
					b.Error(err)
					return
				}
				fs, err := ws[wi].d.Detect(context.Background(), m)
				m.Close()
				if err != nil {
					b.Error(err)
					return
				}
				chips := make([]face.Chip, len(fs))
				for i := range fs {
					chips[i] = fs[i].Chip
				}
				if _, err := ws[wi].e.Embed(context.Background(), chips); err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				faces += len(fs)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return faces
}

// runGoFace recognises every photo with go-face, photo i on goroutine
// i%workers, and returns the number of faces.
func runGoFace(b *testing.B, rec *goface.Recognizer, photos [][]byte, workers int) int {
	var mu sync.Mutex
	faces := 0
	var wg sync.WaitGroup
	for wi := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pi := wi; pi < len(photos); pi += workers {
				fs, err := rec.Recognize(photos[pi])
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				faces += len(fs)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return faces
}
