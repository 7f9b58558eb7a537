#ifndef FW_RESNET_H
#define FW_RESNET_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
typedef struct fw_resnet fw_resnet;
// All return 0 on success, -1 with a malloc'd *err on failure.
// With stock != 0 the network is built on dlib's own convolution layer
// (con_) instead of fastcon.hpp's, for comparison.
int fw_resnet_new(const char* path, int stock, fw_resnet** out, char** err);
// fw_resnet_embed runs n RGB 150x150 chips through the network, batch at a
// time, writing n*128 floats to out. With jitter > 0 each chip is replaced
// by the mean descriptor of jitter jittered copies (dlib's example).
int fw_resnet_embed(fw_resnet* r, const uint8_t* chips, int n, int batch,
                    int jitter, float* out, char** err);
void fw_resnet_free(fw_resnet* r);
// fw_resnet_fast_convs returns how many forward passes fastcon.hpp's layers
// have made, and sets *layers to how many such layers the network has (0 for
// the stock network).
uint64_t fw_resnet_fast_convs(fw_resnet* r, int* layers);
// fw_blas_set_threads asks OpenBLAS, when it is the BLAS in use, to run n
// threads per call; it returns 0 when the BLAS has no such setting.
int fw_blas_set_threads(int n);
#ifdef __cplusplus
}
#endif
#endif
