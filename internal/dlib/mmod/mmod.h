#ifndef FW_MMOD_H
#define FW_MMOD_H
#include "../types.h"
#ifdef __cplusplus
extern "C" {
#endif
typedef struct fw_mmod fw_mmod;
// All return 0 on success, -1 with a malloc'd *err on failure.
int fw_mmod_new(const char* path, fw_mmod** out, char** err);
// fw_mmod_detect finds faces with the MMOD CNN after upsample doublings of
// the image; rects are in the input image's pixels, malloc'd for the caller.
int fw_mmod_detect(fw_mmod* m, fw_image img, int upsample, double adjust,
                   fw_rect** rects, int* n, char** err);
// fw_mmod_detect_batch is fw_mmod_detect for count images of one size in
// one forward pass of the network: counts[i] is image i's number of rects,
// which come in image order in one malloc'd *rects.
int fw_mmod_detect_batch(fw_mmod* m, const fw_image* imgs, int count, int upsample,
                         double adjust, fw_rect** rects, int* counts, char** err);
void fw_mmod_free(fw_mmod* m);
#ifdef __cplusplus
}
#endif
#endif
