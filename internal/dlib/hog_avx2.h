#ifndef FW_HOG_AVX2_H
#define FW_HOG_AVX2_H
// The AVX2 copy of HOG detection (hog_avx2.cc), called by face.cc only.
#include <stddef.h>
#include "types.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct fw_hog_avx2 fw_hog_avx2;

// fw_hog_avx2_supported reports whether this CPU (and OS) runs AVX2 code
// and this build has the AVX2 copy.
int fw_hog_avx2_supported(void);
// fw_hog_avx512_filter_supported reports whether the AVX2 copy filters its
// HOG features 16 floats at a time with AVX-512 (hog_avx512.hpp), and
// extracts them and steps down its image pyramid 16 pixels at a time
// (fhog_avx512.hpp).
int fw_hog_avx512_filter_supported(void);
// fw_hog_avx2_new loads a frontal_face_detector serialised by dlib.
int fw_hog_avx2_new(const char* model, size_t len, fw_hog_avx2** out, char** err);
int fw_hog_avx2_detect(fw_hog_avx2* h, fw_image img, int upsample, double adjust, int max_levels,
                       fw_rect** rects, int* n, char** err);
void fw_hog_avx2_free(fw_hog_avx2* h);
// fw_hog_avx2_filter runs the copy's separable filter (fw::filter_plane) on
// an nr x nc plane, for tests.
int fw_hog_avx2_filter(const float* in, long nr, long nc, const float* rf, long nrf, const float* cf, long ncf,
                       float* out, int add_to, char** err);
// fw_hog_avx2_features writes the copy's HOG feature planes of img after
// levels pyramid steps (fw::features), for tests.
int fw_hog_avx2_features(fw_image img, int levels, int cell_size, int pr, int pc, float** out, long* nr, long* nc,
                         char** err);
// fw_hog_avx2_pyramid writes the copy's pixels (red, green, blue) of img
// after levels steps down the detection pyramid (fw::pyramid), for tests.
int fw_hog_avx2_pyramid(fw_image img, int levels, uint8_t** out, long* nr, long* nc, char** err);

#ifdef __cplusplus
}
#endif
#endif
