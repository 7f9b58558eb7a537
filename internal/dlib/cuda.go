package dlib

/*
#include <stdlib.h>
#include "cuda.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// CUDAInfo says whether the linked dlib runs its CNNs (MMOD, ResNet) on a
// GPU: whether it was built with CUDA (DLIB_USE_CUDA in its config.h, read
// at build time) and, only then, the devices its CUDA runtime sees.
type CUDAInfo struct {
	Compiled bool   // dlib was built with CUDA
	Devices  int    // devices seen at run time (0 when not compiled)
	Device   int    // index of the device in use, -1 for none
	Name     string // that device's name
	Err      string // why the devices could not be listed, if they could not
}

// CUDA reports the linked dlib's CUDA state. On a build against Debian's
// libdlib-dev it is Compiled false and touches no CUDA symbol.
func CUDA() CUDAInfo {
	info := CUDAInfo{Compiled: C.fw_cuda_compiled() != 0, Device: -1}
	if !info.Compiled {
		return info
	}
	const n = 256
	name := (*C.char)(C.malloc(n))
	errb := (*C.char)(C.malloc(n))
	defer C.free(unsafe.Pointer(name))
	defer C.free(unsafe.Pointer(errb))
	var cur C.int
	info.Devices = int(C.fw_cuda_devices(&cur, name, n, errb, n))
	info.Device = int(cur)
	info.Name = C.GoString(name)
	info.Err = C.GoString(errb)
	return info
}

// InUse reports whether dlib's CNNs run on a GPU.
func (c CUDAInfo) InUse() bool { return c.Compiled && c.Devices > 0 && c.Device >= 0 }

// String is one line for `facewatch version` and `doctor`: "no" or "yes"
// and why, or which device.
func (c CUDAInfo) String() string {
	switch {
	case !c.Compiled:
		return "no (dlib built without CUDA)"
	case c.Err != "":
		return fmt.Sprintf("no (dlib built with CUDA, but its devices cannot be listed: %s)", oneLine(c.Err))
	case c.Devices == 0:
		return "no (dlib built with CUDA, but no CUDA device is visible)"
	case c.Device < 0:
		return fmt.Sprintf("no (dlib built with CUDA, %d devices visible, none current)", c.Devices)
	default:
		return fmt.Sprintf("yes, device %d of %d: %s", c.Device, c.Devices, oneLine(c.Name))
	}
}

// oneLine keeps a message from the CUDA runtime on one line.
func oneLine(s string) string {
	out := []rune(s)
	for i, r := range out {
		if r == '\n' || r == '\r' {
			out[i] = ' '
		}
	}
	return string(out)
}
