#ifndef FW_FACE_H
#define FW_FACE_H
#include "types.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct fw_hog fw_hog;
typedef struct fw_shape fw_shape;

// Every call returns 0 on success; on failure it returns -1 and sets *err to
// a malloc'd message the caller frees.
// fw_hog_new builds dlib's frontal face detector; with allow_avx2, on a
// CPU with AVX2, detection runs the AVX2 copy (hog_avx2.cc).
int fw_hog_new(int allow_avx2, fw_hog** out, char** err);
int fw_hog_avx2_in_use(fw_hog* h);
// fw_hog_detect scans at most max_levels levels of the detector's image
// pyramid (0: all of them).
int fw_hog_detect(fw_hog* h, fw_image img, int upsample, double adjust, int max_levels,
                  fw_rect** rects, int* n, char** err);
void fw_hog_free(fw_hog* h);
// fw_hog_filter is fw_hog_avx2_filter in the portable build, for tests.
int fw_hog_filter(const float* in, long nr, long nc, const float* rf, long nrf, const float* cf, long ncf,
                  float* out, int add_to, char** err);
// fw_hog_features is fw_hog_avx2_features in the portable build, for
// tests.
int fw_hog_features(fw_image img, int levels, int cell_size, int pr, int pc, float** out, long* nr, long* nc,
                    char** err);
// fw_hog_pyramid is fw_hog_avx2_pyramid in the portable build, for tests.
int fw_hog_pyramid(fw_image img, int levels, uint8_t** out, long* nr, long* nc, char** err);

int fw_shape_new(const char* path, fw_shape** out, char** err);
// fw_shape_align finds 5 landmarks for each of the n rects and cuts the
// aligned chip (get_face_chip_details(shape, size, padding)): points gets
// n*5*2 longs (x, y), chips gets n*size*size*3 RGB bytes.
int fw_shape_align(fw_shape* s, fw_image img, const fw_rect* rects, int n,
                   int size, double padding, long* points, uint8_t* chips,
                   char** err);
void fw_shape_free(fw_shape* s);

// fw_jitter writes count jittered copies (dlib's jitter_image) of an RGB
// chip of size*size pixels, using a generator seeded with seed.
int fw_jitter(const uint8_t* chip, int size, int count, unsigned long seed,
              uint8_t* out, char** err);

#ifdef __cplusplus
}
#endif
#endif
