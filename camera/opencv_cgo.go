//go:build !customenv

package camera

// OpenCV's flags come from pkg-config, as gocv's do, except in builds
// with the customenv tag (make build), where CGO_CPPFLAGS and CGO_LDFLAGS
// name only the modules facewatch uses (see the Makefile).

// #cgo pkg-config: opencv4
import "C"
