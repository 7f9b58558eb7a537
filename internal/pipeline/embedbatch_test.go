package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/embed"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/face"
	"github.com/facewatch/facewatch/internal/testdata"
)

// chipOf detects the one face of a photo and returns its aligned chip.
func (d *describer) chipOf(t *testing.T, path string) face.Chip {
	t.Helper()
	m, err := detect.DecodeFile(path, 1<<26)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fs, err := d.det.Detect(context.Background(), m)
	if err != nil || len(fs) != 1 {
		t.Fatalf("%s: %d faces, %v; want one", path, len(fs), err)
	}
	return fs[0].Chip
}

// TestEmbedBatcherJoinsCameras: requests of several cameras waiting for
// the embed worker are run through the real network in one call, each
// gets back the descriptors of its own chips in order (equal to embedding
// them alone), a request whose publisher gave up is answered with its
// error without holding up the others, and detection (waitDrained) is held
// while requests wait and let go once they are taken.
func TestEmbedBatcherJoinsCameras(t *testing.T) {
	d := newDescriber(t)
	var chips []face.Chip
	for _, who := range []string{"John_Salley", "John_Savage"} {
		for _, p := range photos(t, who)[:3] {
			chips = append(chips, d.chipOf(t, p))
		}
	}
	alone, err := d.emb.Embed(context.Background(), chips)
	if err != nil {
		t.Fatal(err)
	}

	cfg := config.Defaults().Embed
	e, err := embed.New(testdata.ModelDir(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	m, _ := NewMetrics(nil)
	b := newEmbedBatcher([]*embed.Embedder{e}, cfg.BatchSize, m)

	// Four cameras' requests (1, 2, 2 and 1 chips) and one given up, all
	// waiting before the worker starts: it must take them in one call.
	parts := [][]int{{0}, {1, 2}, {3, 4}, {5}}
	type answer struct {
		descs []embed.Descriptor
		err   error
	}
	answers := make([]answer, len(parts)+1)
	var wg sync.WaitGroup
	for i, p := range parts {
		var cs []face.Chip
		for _, j := range p {
			cs = append(cs, chips[j])
		}
		wg.Go(func() {
			ds, err := b.embed(context.Background(), fmt.Sprintf("cam%d", i), cs)
			answers[i] = answer{ds, err}
		})
	}
	gone, giveUp := context.WithCancel(context.Background())
	wg.Go(func() {
		ds, err := b.embed(gone, "cam-gone", chips[:1])
		answers[len(parts)] = answer{ds, err}
	})
	deadline := time.Now().Add(10 * time.Second)
	for len(b.reqs) < len(parts)+1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued after 10s, want %d", len(b.reqs), len(parts)+1)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The last request is still queued; its context ends before a worker
	// takes it. (Its embed call returns at once; the worker must still
	// answer the request without embedding it.)
	giveUp()

	// Detection holds off while chips wait for a worker: waitDrained
	// returns only when its context ends.
	held, cancelHeld := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelHeld()
	t0 := time.Now()
	b.waitDrained(held)
	if waited := time.Since(t0); waited < 200*time.Millisecond {
		t.Errorf("waitDrained with %d requests queued returned after %v, want it to wait for them (until its context ended, 200ms)", len(b.reqs), waited)
	}

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.run(ctx) }()
	wg.Wait()
	// Every request taken: detection may go on.
	free, cancelFree := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelFree()
	b.waitDrained(free)
	if free.Err() != nil {
		t.Errorf("waitDrained after every request was answered waited 10s, want it to return at once")
	}
	stop()
	<-done

	for i, p := range parts {
		t.Run(fmt.Sprintf("cam%d", i), func(t *testing.T) {
			a := answers[i]
			if a.err != nil || len(a.descs) != len(p) {
				t.Fatalf("embed(cam%d, %d chips) = %d descriptors, %v; want %d", i, len(p), len(a.descs), a.err, len(p))
			}
			for k, j := range p {
				if dist := embed.Distance(&a.descs[k].Vector, &alone[j].Vector); dist > 1e-4 {
					t.Errorf("descriptor %d of cam%d (chip %d) is %g from the chip embedded alone, want the same", k, i, j, dist)
				}
				if a.descs[k].Model != alone[j].Model {
					t.Errorf("descriptor %d model = %v, want %v", k, a.descs[k].Model, alone[j].Model)
				}
			}
		})
	}
	if err := answers[len(parts)].err; !errors.Is(err, context.Canceled) {
		t.Errorf("embed(given-up request) = %v, want context.Canceled", err)
	}
	// One network call for all four cameras' six chips.
	if got := histCount(t, m.EmbedBatch); got != 1 {
		t.Errorf("embedding calls = %d, want 1 (the waiting cameras batched together)", got)
	}
	if got := histSum(t, m.EmbedBatch); got != 6 {
		t.Errorf("chips embedded = %v, want 6 (the given-up request's not among them)", got)
	}
	if got := histSum(t, m.EmbedCameras); got != 4 {
		t.Errorf("cameras in the batch = %v, want 4", got)
	}
}

// histCount and histSum read a histogram's count of observations and
// their sum.
func histCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	return histOf(t, h).GetSampleCount()
}

func histSum(t *testing.T, h prometheus.Histogram) float64 {
	t.Helper()
	return histOf(t, h).GetSampleSum()
}

func histOf(t *testing.T, h prometheus.Histogram) *dto.Histogram {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram()
}
