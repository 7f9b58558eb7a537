#ifndef FW_RESNET_H
#define FW_RESNET_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
typedef struct fw_resnet fw_resnet;
// All return 0 on success, -1 with a malloc'd *err on failure.
int fw_resnet_new(const char* path, fw_resnet** out, char** err);
// fw_resnet_embed runs n RGB 150x150 chips through the network, batch at a
// time, writing n*128 floats to out. With jitter > 0 each chip is replaced
// by the mean descriptor of jitter jittered copies (dlib's example).
int fw_resnet_embed(fw_resnet* r, const uint8_t* chips, int n, int batch,
                    int jitter, float* out, char** err);
void fw_resnet_free(fw_resnet* r);
// fw_blas_set_threads asks OpenBLAS, when it is the BLAS in use, to run n
// threads per call; it returns 0 when the BLAS has no such setting.
int fw_blas_set_threads(int n);
#ifdef __cplusplus
}
#endif
#endif
