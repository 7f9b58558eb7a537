package embed_test

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time the process has used, all threads (OpenBLAS's
// included). Benchmarks report it beside wall time because the machines
// they run on are shared: CPU time per face is what another process's load
// disturbs least.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
