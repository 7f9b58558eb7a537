package pipeline

import (
	"context"
	"runtime"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/internal/face"
)

// detectNice is how much lower than the rest of the process the detection
// threads run (Linux nice levels, where the OS allows it). Finding faces
// in one more frame is throughput work; embedding, matching and storing
// the faces already found is what an alert waits for. When the box is
// short of CPU the scheduler gives the decision path about three times a
// detection thread's share (CFS weights 1024 against 335), so a face
// found is decided promptly and frames are shed (counted) instead; an
// idle core is still used by detection in full.
const detectNice = 5

// detectWorker runs one detector on an OS thread of its own, at lower
// priority (detectNice). A camera's goroutine takes a free worker from the
// stage's pool and hands it one frame at a time.
type detectWorker struct {
	d    *detect.Detector
	jobs chan detectJob
}

type detectJob struct {
	ctx   context.Context
	mat   gocv.Mat
	reply chan detectResult
}

type detectResult struct {
	faces []face.Face
	err   error
}

// run serves jobs until ctx ends. Its goroutine keeps its OS thread to
// itself to the end (the thread exits with it, so its lowered priority is
// never passed on to other goroutines).
func (w *detectWorker) run(ctx context.Context) {
	runtime.LockOSThread()
	lowerThreadPriority(detectNice)
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-w.jobs:
			faces, err := w.d.Detect(j.ctx, j.mat)
			j.reply <- detectResult{faces, err}
		}
	}
}

// detect runs the detector on mat on the worker's thread and waits for it
// (also when ctx ends: the thread may be reading mat until it returns).
// The worker must be running.
func (w *detectWorker) detect(ctx context.Context, mat gocv.Mat) ([]face.Face, error) {
	reply := make(chan detectResult, 1)
	w.jobs <- detectJob{ctx: ctx, mat: mat, reply: reply}
	r := <-reply
	return r.faces, r.err
}
