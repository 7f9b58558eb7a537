package pipeline

import "syscall"

// lowerThreadPriority raises the calling OS thread's nice level by n (on
// Linux, nice is per thread). Failure leaves the priority as it was:
// lowering one's own priority needs no privilege, and the stage works
// either way.
func lowerThreadPriority(n int) {
	tid := syscall.Gettid()
	cur, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	if err != nil {
		return
	}
	// The raw syscall returns 20 - nice.
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, tid, min(19, 20-cur+n))
}
