//go:build facewatch_march

package dlib

// Built with `make build MARCH=...`: -march comes from CGO_CXXFLAGS (see
// march.go).

// marchSource says where the -march flag came from.
const marchSource = "CGO_CXXFLAGS"
