package dlib_test

import (
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/dlib"
)

// threadCPU is the CPU time of the calling OS thread (the caller locks
// it): another process's load changes it far less than wall time.
func threadCPU(t *testing.T) time.Duration {
	const rusageThread = 1 // RUSAGE_THREAD
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestHOGLevelCap: DetectUpTo(maxFace) scans only the levels of dlib's
// pyramid that faces up to maxFace need. On a real group photo, capped at
// its largest face, it finds every face the full pyramid finds, with the
// same box and score, in less CPU; capped at half a face's size, that face
// is not found (the levels were not scanned), on a portrait. Both the portable and the
// AVX2 code.
func TestHOGLevelCap(t *testing.T) {
	group := toImage(loadRGBA(t, filepath.Join("go-face-testdata", "images", "pristin.jpg")), 3)
	portrait := toImage(loadRGBA(t, filepath.Join("go-face-testdata", "images", "tzuyu.jpg")), 3)
	for _, tc := range []struct {
		name string
		open func() (*dlib.HOG, error)
	}{{"default", dlib.NewHOG}, {"portable", dlib.NewPortableHOG}} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := tc.open()
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			all, err := h.Detect(group, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(all) < 10 {
				t.Fatalf("Detect(pristin.jpg) found %d faces, want at least 10", len(all))
			}
			portraitAll, err := h.Detect(portrait, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			largest, smallest := 0, 1<<30
			for _, r := range all {
				largest = max(largest, r.Right-r.Left+1)
				smallest = min(smallest, r.Right-r.Left+1)
			}
			capped, err := h.DetectUpTo(group, 0, 0, largest)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range all {
				found := false
				for _, got := range capped {
					found = found || got == want
				}
				if !found {
					t.Errorf("DetectUpTo(largest face %d) misses %+v, found by the full pyramid", largest, want)
				}
			}
			// A portrait's face, capped at half its size, is not found: the
			// levels it needs were not scanned.
			big := 0
			for _, r := range portraitAll {
				big = max(big, r.Right-r.Left+1)
			}
			if big < 140 {
				t.Fatalf("portrait's largest face is %d px, want one of at least 140 for this test", big)
			}
			half, err := h.DetectUpTo(portrait, 0, 0, big/2)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range half {
				if w := r.Right - r.Left + 1; w > big*3/4 {
					t.Errorf("DetectUpTo(portrait, %d) found a face %d wide, want none over %d (%d levels)", big/2, w, big*3/4, dlib.HOGLevels(big/2))
				}
			}

			// CPU: the least of a few runs of each, on this goroutine's
			// thread only.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			least := func(maxFace int) time.Duration {
				best := time.Duration(1 << 62)
				for range 5 {
					c0 := threadCPU(t)
					if _, err := h.DetectUpTo(group, 0, 0, maxFace); err != nil {
						t.Fatal(err)
					}
					best = min(best, threadCPU(t)-c0)
				}
				return best
			}
			full, cut := least(0), least(largest)
			t.Logf("%s: %d faces %d-%d px in %dx%d; full pyramid %v CPU, %d levels (to %d px) %v CPU (%.0f%% less)", tc.name,
				len(all), smallest, largest, group.Cols, group.Rows, full, dlib.HOGLevels(largest), largest, cut, 100*(1-float64(cut)/float64(full)))
			if cut >= full {
				t.Errorf("capped at %d px: %v CPU, want less than the full pyramid's %v", largest, cut, full)
			}
		})
	}
}
