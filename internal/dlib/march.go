//go:build !facewatch_march

package dlib

// The default build runs on any x86-64-v2 CPU (SSE4.2, POPCNT): see
// docs/deploy.md for why not v3. `make build MARCH=...` builds with the tag
// facewatch_march, which drops this file, and passes -march in
// CGO_CXXFLAGS instead. Other architectures get the compiler's default
// (armv8-a with NEON on arm64). Keep the three packages' march.go in step.

/*
#cgo amd64 CXXFLAGS: -march=x86-64-v2 -mtune=generic
*/
import "C"

// marchSource says where the -march flag came from: this file's default.
const marchSource = "default"
