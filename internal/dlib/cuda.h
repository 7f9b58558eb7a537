#ifndef FW_CUDA_H
#define FW_CUDA_H
#ifdef __cplusplus
extern "C" {
#endif
int fw_cuda_compiled(void);
// fw_cuda_devices returns the number of CUDA devices dlib sees (0 when it was
// built without CUDA, or on error, with err set) and the current device's
// index and name.
int fw_cuda_devices(int* current, char* name, int name_len, char* err, int err_len);
#ifdef __cplusplus
}
#endif
#endif
