#ifndef FW_JPEGBGR_H
#define FW_JPEGBGR_H
#include <stddef.h>
#include <stdint.h>

enum {
	FW_JPEG_OK = 0,
	FW_JPEG_ERROR = 1,  // libjpeg refused the data
	FW_JPEG_WARNED = 2, // decoded, but libjpeg found corrupt data
	FW_JPEG_OTHER = 3,  // not an 8-bit 3-component YCbCr JPEG of the given size
};

// fw_jpeg_decode_bgr decodes a width x height JPEG into out (height rows of
// width*3 bytes, B G R).
int fw_jpeg_decode_bgr(const uint8_t* data, size_t len, uint8_t* out, int width, int height);
#endif
