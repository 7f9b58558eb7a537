// libjpeg-turbo straight into BGR: see jpegbgr.go.
#include "jpegbgr.h"
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <jpeglib.h>

struct fw_jpeg_err {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
};

static void fw_jpeg_error_exit(j_common_ptr cinfo) {
	struct fw_jpeg_err* e = (struct fw_jpeg_err*)cinfo->err;
	longjmp(e->jump, 1);
}

// Warnings (corrupt data that libjpeg decodes anyway) are counted by
// libjpeg in num_warnings; the caller then decodes with OpenCV instead, so
// nothing is printed here.
static void fw_jpeg_output_message(j_common_ptr cinfo) { (void)cinfo; }

int fw_jpeg_decode_bgr(const uint8_t* data, size_t len, uint8_t* out, int width, int height) {
	struct jpeg_decompress_struct cinfo;
	struct fw_jpeg_err jerr;
	// volatile: read after a longjmp.
	volatile int rc = FW_JPEG_ERROR;
	// Zeroed and the jump set before jpeg_create_decompress, so that an
	// error there too lands here (destroying a zeroed struct is a no-op).
	memset(&cinfo, 0, sizeof cinfo);
	cinfo.err = jpeg_std_error(&jerr.pub);
	jerr.pub.error_exit = fw_jpeg_error_exit;
	jerr.pub.output_message = fw_jpeg_output_message;
	if (setjmp(jerr.jump)) {
		jpeg_destroy_decompress(&cinfo);
		return rc;
	}
	jpeg_create_decompress(&cinfo);
	jpeg_mem_src(&cinfo, data, (unsigned long)len);
	if (jpeg_read_header(&cinfo, TRUE) != JPEG_HEADER_OK) {
		jpeg_destroy_decompress(&cinfo);
		return FW_JPEG_ERROR;
	}
	if (cinfo.jpeg_color_space != JCS_YCbCr || cinfo.num_components != 3 ||
	    cinfo.data_precision != 8 || (int)cinfo.image_width != width ||
	    (int)cinfo.image_height != height) {
		jpeg_destroy_decompress(&cinfo);
		return FW_JPEG_OTHER;
	}
	cinfo.out_color_space = JCS_EXT_BGR;
	jpeg_start_decompress(&cinfo);
	if ((int)cinfo.output_width != width || (int)cinfo.output_height != height ||
	    cinfo.output_components != 3) {
		jpeg_destroy_decompress(&cinfo);
		return FW_JPEG_OTHER;
	}
	const size_t stride = (size_t)width * 3;
	while (cinfo.output_scanline < cinfo.output_height) {
		JSAMPROW row = out + (size_t)cinfo.output_scanline * stride;
		if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) {
			jpeg_destroy_decompress(&cinfo);
			return FW_JPEG_ERROR;
		}
	}
	jpeg_finish_decompress(&cinfo);
	rc = jerr.pub.num_warnings > 0 ? FW_JPEG_WARNED : FW_JPEG_OK;
	jpeg_destroy_decompress(&cinfo);
	return rc;
}
