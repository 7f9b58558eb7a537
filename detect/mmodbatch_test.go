package detect_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/face"
	"github.com/facewatch/facewatch/internal/testdata"
)

// batchCfg is the cnn detector on whole frames, at their own size.
func batchCfg(frames int) config.Detect {
	cfg := config.Defaults().Detect
	cfg.Detector, cfg.MaxWidth, cfg.MinFaceSize, cfg.Upsample, cfg.BatchFrames = "cnn", 0, 0, 0, frames
	return cfg
}

func decodeDlibFaces(t *testing.T, names ...string) []gocv.Mat {
	t.Helper()
	var out []gocv.Mat
	for _, n := range names {
		m, err := detect.DecodeFile(testdata.DlibFace(t, n), 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		out = append(out, m)
	}
	return out
}

type batchStats struct {
	mu      sync.Mutex
	batches []int
}

func (s *batchStats) observe(n int) {
	s.mu.Lock()
	s.batches = append(s.batches, n)
	s.mu.Unlock()
}

func sameFaces(a, b []face.Face) bool {
	return slices.EqualFunc(a, b, func(x, y face.Face) bool {
		return x.Box == y.Box && x.Confidence == y.Confidence && x.Landmarks == y.Landmarks && slices.Equal(x.Chip.Pix, y.Chip.Pix)
	})
}

// TestPoolBatchesMMOD: four workers' detectors sharing one batching MMOD
// network, driven by four goroutines (cameras) at once, find exactly the
// faces (boxes, scores, landmarks, chips) an unbatched cnn Detector finds
// in each frame, and the network runs fewer forward passes than frames:
// searches that wait while a pass is under way go in the next one. Frames
// are of two sizes (500x375 and 360x480), which never share a pass.
func TestPoolBatchesMMOD(t *testing.T) {
	frames := decodeDlibFaces(t, "2007_007763.jpg", "2008_001322.jpg", "2008_002079.jpg", "2008_001009.jpg")
	ctx := context.Background()

	alone := newDetector(t, func(c *config.Detect) { *c = batchCfg(1) })
	want := make([][]face.Face, len(frames))
	total := 0
	for i, m := range frames {
		fs, err := alone.Detect(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = fs
		total += len(fs)
	}
	if total < 3 {
		t.Fatalf("the unbatched detector found %d faces in the 4 frames, want at least 3 for the comparison to mean something", total)
	}

	var stats batchStats
	const workers, rounds = 4, 2
	ds, err := detect.NewPool(testdata.ModelDir(t), batchCfg(8), workers, stats.observe)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, d := range ds {
			if err := d.Close(); err != nil {
				t.Error(err)
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	start := make(chan struct{})
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for r := range rounds {
				i := (w + r) % len(frames)
				got, err := ds[w].Detect(ctx, frames[i])
				if err != nil {
					errs <- err
					return
				}
				if !sameFaces(got, want[i]) {
					t.Errorf("worker %d frame %d: batched %d faces %v, unbatched %d %v", w, i, len(got), boxes(got), len(want[i]), boxes(want[i]))
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	stats.mu.Lock()
	defer stats.mu.Unlock()
	images := 0
	for _, n := range stats.batches {
		images += n
		if n < 1 || n > 8 {
			t.Errorf("a forward pass carried %d images, want 1..8", n)
		}
	}
	t.Logf("forward passes: %v", stats.batches)
	if images != workers*rounds {
		t.Errorf("forward passes carried %d images, want %d (one per search)", images, workers*rounds)
	}
	if len(stats.batches) >= images {
		t.Errorf("%d forward passes for %d images: no batch formed", len(stats.batches), images)
	}
}

func boxes(fs []face.Face) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Box.String())
	}
	return out
}

// TestPoolUnbatched: batch_frames 1, and any batch_frames with hog, give
// each worker its own backend: no shared network reports a pass.
func TestPoolUnbatched(t *testing.T) {
	frames := decodeDlibFaces(t, "2008_001322.jpg")
	for _, cfg := range []config.Detect{batchCfg(1), func() config.Detect { c := batchCfg(8); c.Detector = "hog"; return c }()} {
		var stats batchStats
		ds, err := detect.NewPool(testdata.ModelDir(t), cfg, 2, stats.observe)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if _, err := d.Detect(context.Background(), frames[0]); err != nil {
				t.Error(err)
			}
			d.Close()
		}
		if len(stats.batches) != 0 {
			t.Errorf("%s batch_frames %d: shared network ran %v", cfg.Detector, cfg.BatchFrames, stats.batches)
		}
	}
}

// TestPoolBatchCancelAndClose: a search whose context ends while another
// detector's search holds the shared network (or while its own pass runs)
// returns the context's error, not faces; once every detector of the pool
// is closed, searches fail with ErrClosed (the network is freed with the
// last one, not the first: the others still work until then).
func TestPoolBatchCancelAndClose(t *testing.T) {
	frames := decodeDlibFaces(t, "2008_001322.jpg")
	ds, err := detect.NewPool(testdata.ModelDir(t), batchCfg(4), 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	busy := make(chan error, 1)
	go func() {
		_, err := ds[1].Detect(context.Background(), frames[0])
		busy <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if fs, err := ds[0].Detect(ctx, frames[0]); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Detect past its deadline = %d faces, %v; want context.DeadlineExceeded", len(fs), err)
	}
	if err := <-busy; err != nil {
		t.Errorf("the other detector's search: %v", err)
	}
	ds[0].Close()
	if _, err := ds[1].Detect(context.Background(), frames[0]); err != nil {
		t.Errorf("Detect on the pool's other detector after closing one: %v", err)
	}
	ds[1].Close()
	ds[1].Close()
	for _, d := range ds {
		if _, err := d.Detect(context.Background(), frames[0]); !errors.Is(err, detect.ErrClosed) {
			t.Errorf("Detect after Close = %v, want ErrClosed", err)
		}
	}
}
