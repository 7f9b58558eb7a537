package embed_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/embed"
	"github.com/facewatch/facewatch/internal/config"
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
func chips32(b *testing.B) []detect.Chip {
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
			for b.Loop() {
				if _, err := e.Embed(context.Background(), chips); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N*len(chips)), "ms/face")
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
		})
	}
}

// BenchmarkEndToEnd: JPEG bytes to descriptors, our path against go-face,
// on the same photos in the same run (the reference photos: 15 faces), with
// 1 and 2 goroutines. Ours gives each goroutine its own detector and
// embedder; go-face's one Recognizer serialises its networks behind mutexes.
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
	dir := testdata.ModelDir(b)
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("ours/workers=%d", workers), func(b *testing.B) {
			type worker struct {
				d *detect.Detector
				e *embed.Embedder
			}
			ws := make([]worker, workers)
			for i := range ws {
				d, err := detect.New(dir, refDetect())
				if err != nil {
					b.Fatal(err)
				}
				ws[i] = worker{d, newEmbedder(b, 16)}
				b.Cleanup(func() { d.Close() })
			}
			var mu sync.Mutex
			faces := 0
			for b.Loop() {
				var wg sync.WaitGroup
				for wi := range ws {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for pi := wi; pi < len(photos); pi += workers {
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
							chips := make([]detect.Chip, len(fs))
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
			}
			b.ReportMetric(float64(faces)/b.Elapsed().Seconds(), "faces/s")
		})
		b.Run(fmt.Sprintf("goface/workers=%d", workers), func(b *testing.B) {
			var mu sync.Mutex
			faces := 0
			for b.Loop() {
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
			}
			b.ReportMetric(float64(faces)/b.Elapsed().Seconds(), "faces/s")
		})
	}
}
