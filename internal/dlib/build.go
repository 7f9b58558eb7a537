// Package dlib is facewatch's own thin cgo layer over dlib 19.24 (Debian's
// libdlib-dev). dlib's header-only code is compiled inside this package's
// C++ units, by default for any x86-64-v2 CPU (march.go; `make build
// MARCH=native` opts into the build host's SIMD), and CheckCPU refuses to
// run on a CPU that lacks what the build assumed. C++
// exceptions never cross into Go: every entry point catches them and
// returns an error string. It knows nothing of cameras, NATS or watchlists.
package dlib

/*
#cgo CXXFLAGS: -std=c++14 -O3 -DNDEBUG -DDLIB_NO_GUI_SUPPORT -Wno-deprecated-declarations
#cgo pkg-config: dlib-1
#include "buildinfo.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"golang.org/x/sys/cpu"
)

// CXXFlags are the compiler flags dlib's header code is built with, here and
// in the mmod and resnet packages (keep their #cgo lines in step), besides
// -march (see March). `facewatch version` prints them.
const CXXFlags = "-std=c++14 -O3 -DNDEBUG"

// DefaultMarch is the amd64 target of a build without MARCH.
const DefaultMarch = "x86-64-v2"

// March is the -march the C++ code was built for: DefaultMarch on amd64
// unless the build set its own in CGO_CXXFLAGS (`make build MARCH=...`).
func March() string {
	if marchSource == "default" {
		if runtime.GOARCH == "amd64" {
			return DefaultMarch
		}
		return "compiler default for " + runtime.GOARCH
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "CGO_CXXFLAGS" {
				for _, f := range strings.Fields(s.Value) {
					if m, ok := strings.CutPrefix(f, "-march="); ok {
						return m
					}
				}
			}
		}
	}
	return "from CGO_CXXFLAGS"
}

// cpuHas maps SIMD's names to what this CPU offers; ok is false for a name
// the check does not know.
func cpuHas(name string) (has, ok bool) {
	switch name {
	case "sse2":
		return cpu.X86.HasSSE2, true
	case "ssse3":
		return cpu.X86.HasSSSE3, true
	case "sse4.1":
		return cpu.X86.HasSSE41, true
	case "sse4.2":
		return cpu.X86.HasSSE42, true
	case "popcnt":
		return cpu.X86.HasPOPCNT, true
	case "avx":
		return cpu.X86.HasAVX, true
	case "avx2":
		return cpu.X86.HasAVX2, true
	case "fma":
		return cpu.X86.HasFMA, true
	case "bmi2":
		return cpu.X86.HasBMI2, true
	case "avx512f":
		return cpu.X86.HasAVX512F, true
	case "avx512bw":
		return cpu.X86.HasAVX512BW, true
	case "avx512dq":
		return cpu.X86.HasAVX512DQ, true
	case "avx512vl":
		return cpu.X86.HasAVX512VL, true
	case "neon":
		return runtime.GOARCH != "arm64" || cpu.ARM64.HasASIMD, true
	}
	return false, false
}

// missing returns the features of required that has says are absent
// (unknown names are not held against the CPU).
func missing(required []string, has func(string) (bool, bool)) []string {
	var out []string
	for _, f := range required {
		if h, known := has(f); known && !h {
			out = append(out, f)
		}
	}
	return out
}

// CheckCPU returns an error naming the instruction-set extensions the C++
// code was compiled to use and this CPU lacks, so that the binary refuses
// with one line instead of dying of SIGILL in the middle of a detection.
func CheckCPU() error {
	if lack := missing(SIMD(), cpuHas); len(lack) > 0 {
		return fmt.Errorf("this binary was built for %s and this CPU lacks %s; rebuild it for this CPU (make build MARCH=%s, or MARCH=native on this machine)",
			March(), strings.Join(lack, " "), DefaultMarch)
	}
	return nil
}

// Version returns the dlib version the package was compiled against.
func Version() string { return C.GoString(C.fw_dlib_version()) }

// SIMD lists the instruction-set extensions the C++ compiler was allowed to
// use for dlib's code (from the predefined macros of this build).
func SIMD() []string {
	s := strings.TrimSpace(C.GoString(C.fw_simd_flags()))
	if s == "" {
		return nil
	}
	return strings.Fields(s)
}

// Compiler names the C++ compiler and its version.
func Compiler() string { return C.GoString(C.fw_compiler()) }
