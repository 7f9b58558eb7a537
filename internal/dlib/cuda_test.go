package dlib

import (
	"strings"
	"testing"

	"github.com/facewatch/facewatch/internal/testdata"
)

// TestCUDAMatchesHeader: the cgo detection agrees with dlib's own config
// header; on Debian's libdlib-dev (built without CUDA) it must say "no" with
// the reason, on one line — a detection that claims CUDA there fails.
func TestCUDAMatchesHeader(t *testing.T) {
	want := testdata.DlibBuiltWithCUDA(t)
	got := CUDA()
	if got.Compiled != want {
		t.Fatalf("CUDA().Compiled = %v, want %v (dlib's config.h)", got.Compiled, want)
	}
	s := got.String()
	if strings.ContainsAny(s, "\r\n") {
		t.Errorf("CUDA().String() = %q, want one line", s)
	}
	if !want {
		if s != "no (dlib built without CUDA)" {
			t.Errorf("CUDA().String() = %q, want %q", s, "no (dlib built without CUDA)")
		}
		if got.InUse() || got.Devices != 0 || got.Device != -1 || got.Name != "" {
			t.Errorf("CUDA() = %+v, want no devices on a build without CUDA", got)
		}
	}
}

// TestCUDAString: each state of a CUDA build reads as one line that says
// whether the GPU is used, and why not.
func TestCUDAString(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    CUDAInfo
		want  string
		inUse bool
	}{
		{"not compiled", CUDAInfo{Device: -1}, "no (dlib built without CUDA)", false},
		{"no driver", CUDAInfo{Compiled: true, Device: -1, Err: "cudaGetDeviceCount() failed\nreason: no CUDA-capable device"},
			"no (dlib built with CUDA, but its devices cannot be listed: cudaGetDeviceCount() failed reason: no CUDA-capable device)", false},
		{"no device", CUDAInfo{Compiled: true, Device: -1}, "no (dlib built with CUDA, but no CUDA device is visible)", false},
		{"one device", CUDAInfo{Compiled: true, Devices: 1, Device: 0, Name: "NVIDIA H200"}, "yes, device 0 of 1: NVIDIA H200", true},
		{"second of two", CUDAInfo{Compiled: true, Devices: 2, Device: 1, Name: "Tesla T4"}, "yes, device 1 of 2: Tesla T4", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.in.String(); got != tc.want {
				t.Errorf("%+v.String() = %q, want %q", tc.in, got, tc.want)
			}
			if got := tc.in.InUse(); got != tc.inUse {
				t.Errorf("%+v.InUse() = %v, want %v", tc.in, got, tc.inUse)
			}
		})
	}
}
