package pipeline

import (
	"runtime"
	"syscall"
	"testing"
)

// niceOf is a thread's (or with the process ID, the main thread's) nice
// level; the raw syscall returns 20 - nice.
func niceOf(t *testing.T, tid int) int {
	t.Helper()
	p, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	if err != nil {
		t.Fatal(err)
	}
	return 20 - p
}

// TestLowerThreadPriority: a detection thread's nice level goes up by
// detectNice, and only that thread's: another thread, running meanwhile,
// keeps its own.
func TestLowerThreadPriority(t *testing.T) {
	type levels struct{ before, after int }
	lowered, other := make(chan levels), make(chan levels)
	hold := make(chan struct{})
	go func() {
		runtime.LockOSThread() // the thread is never handed to another goroutine
		tid := syscall.Gettid()
		before := niceOf(t, tid)
		lowerThreadPriority(detectNice)
		lowered <- levels{before, niceOf(t, tid)}
		<-hold // both threads exist at once
	}()
	l := <-lowered
	go func() {
		runtime.LockOSThread()
		tid := syscall.Gettid()
		other <- levels{l.before, niceOf(t, tid)}
	}()
	o := <-other
	close(hold)
	if want := min(19, l.before+detectNice); l.after != want {
		t.Errorf("nice after lowerThreadPriority(%d) = %d (was %d), want %d", detectNice, l.after, l.before, want)
	}
	if o.after != l.before {
		t.Errorf("another thread's nice = %d while one was lowered, want %d unchanged", o.after, l.before)
	}
}
