package dlib

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// TestMissingCPUFeatures: a CPU lacking what the build needs is named
// feature by feature; unknown names are not held against it.
func TestMissingCPUFeatures(t *testing.T) {
	cpu := func(have ...string) func(string) (bool, bool) {
		return func(f string) (bool, bool) {
			if f == "mystery" {
				return false, false
			}
			for _, h := range have {
				if h == f {
					return true, true
				}
			}
			return false, true
		}
	}
	v2 := []string{"sse2", "ssse3", "sse4.1", "sse4.2", "popcnt"}
	v3 := append(append([]string(nil), v2...), "avx", "avx2", "fma", "bmi2")
	for _, tc := range []struct {
		name     string
		required []string
		has      func(string) (bool, bool)
		want     string
	}{
		{"v2 build on a v2 CPU", v2, cpu(v2...), "[]"},
		{"v3 build on a v2 CPU", v3, cpu(v2...), "[avx avx2 fma bmi2]"},
		{"v3 build on a v3 CPU", v3, cpu(v3...), "[]"},
		{"v2 build on an old CPU", v2, cpu("sse2", "ssse3"), "[sse4.1 sse4.2 popcnt]"},
		{"unknown feature", []string{"mystery"}, cpu(), "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fmt.Sprint(missing(tc.required, tc.has)); got != tc.want {
				t.Errorf("missing(%v) = %s, want %s", tc.required, got, tc.want)
			}
		})
	}
}

// TestDefaultBuildIsPortable: without MARCH the C++ code is compiled for
// x86-64-v2 exactly (no AVX, whatever this machine has), and this machine
// passes the start-up check.
func TestDefaultBuildIsPortable(t *testing.T) {
	if err := CheckCPU(); err != nil {
		t.Errorf("CheckCPU() = %v on the machine that runs the tests", err)
	}
	if runtime.GOARCH != "amd64" || marchSource != "default" {
		t.Skipf("not a default amd64 build (%s, -march from %s)", runtime.GOARCH, marchSource)
	}
	if got, want := strings.Join(SIMD(), " "), "sse2 ssse3 sse4.1 sse4.2 popcnt"; got != want {
		t.Errorf("SIMD() = %q, want %q (x86-64-v2 and nothing above it)", got, want)
	}
	if got := March(); got != DefaultMarch {
		t.Errorf("March() = %q, want %q", got, DefaultMarch)
	}
}
