// Package dlib is facewatch's own thin cgo layer over dlib 19.24 (Debian's
// libdlib-dev). dlib's header-only code is compiled inside this package's
// C++ units, optimised for the build host's SIMD (-march=native). C++
// exceptions never cross into Go: every entry point catches them and
// returns an error string. It knows nothing of cameras, NATS or watchlists.
package dlib

/*
#cgo CXXFLAGS: -std=c++14 -O3 -march=native -DNDEBUG -DDLIB_NO_GUI_SUPPORT -Wno-deprecated-declarations
#cgo pkg-config: dlib-1
#include "buildinfo.h"
*/
import "C"

import "strings"

// CXXFlags are the compiler flags dlib's header code is built with, here and
// in the mmod and resnet packages (keep their #cgo lines in step).
// `facewatch version` prints them.
const CXXFlags = "-std=c++14 -O3 -march=native -DNDEBUG"

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
