#ifndef FW_TYPES_H
#define FW_TYPES_H
// Types shared by facewatch's dlib C++ units (this package, resnet, mmod).
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

// fw_image is a borrowed view of 8-bit pixels: channels 1 (gray), 3 (BGR)
// or 4 (BGRA), rows of stride bytes.
typedef struct {
	const uint8_t* pix;
	int rows, cols, stride, channels;
} fw_image;

// fw_rect is a detection: dlib's inclusive rectangle and its score.
typedef struct {
	long left, top, right, bottom;
	double score;
} fw_rect;

#ifdef __cplusplus
}
#endif
#endif
