package dlib

/*
#ifdef __GLIBC__
#include <malloc.h>
static int fw_trim(void) { return malloc_trim(0); }
#else
static int fw_trim(void) { return 0; }
#endif
*/
import "C"

// Trim returns the C heap's free memory to the system (glibc's
// malloc_trim); it reports whether any was returned. The photo commands
// call it after each photo (see detect.Still), whose buffers the next
// photo, of another size, would reuse badly.
func Trim() bool { return C.fw_trim() == 1 }
