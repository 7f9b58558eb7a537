package main

/*
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

// fw_photo_malloc runs when the binary is loaded, before any allocation of
// OpenCV's or dlib's: for the photo commands, C's malloc maps every block
// of 128 KiB or more on its own (returned to the system on free) instead of
// raising that threshold after each large free, and keeps one arena (the
// cgo calls of successive photos run on different threads, each of which
// would get an arena of its own). Set later with mallopt from Go, the same
// settings left a run 11 % above its largest photo; see
// docs/recognition.md, "Memory".
__attribute__((constructor)) static void fw_photo_malloc(int argc, char **argv) {
#ifdef __GLIBC__
	static const char *photo[] = {"faces", "enroll", "identify", "eval"};
	if (argc < 2 || argv == NULL || argv[1] == NULL) return;
	for (unsigned i = 0; i < sizeof photo / sizeof photo[0]; i++) {
		if (strcmp(argv[1], photo[i]) == 0) {
			mallopt(M_MMAP_THRESHOLD, 128 << 10);
			mallopt(M_ARENA_MAX, 1);
			return;
		}
	}
#endif
}
*/
import "C"
