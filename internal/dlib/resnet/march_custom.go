//go:build facewatch_march

package resnet

// Built with `make build MARCH=...`: -march comes from CGO_CXXFLAGS (see
// march.go).
