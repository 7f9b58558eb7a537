// Whether the linked dlib was built with CUDA. dlib's config.h (generated
// when libdlib was built) defines DLIB_USE_CUDA only for a CUDA build;
// Debian's libdlib-dev is built without, and then nothing here names a CUDA
// symbol, so the default build never needs CUDA's libraries.
#include "cuda.h"
#include <dlib/config.h>
#include <cstring>
#include <exception>
#include <string>
#ifdef DLIB_USE_CUDA
#include <dlib/cuda/cuda_dlib.h>
#endif

static void fw_copy(char* dst, int n, const std::string& s) {
    if (n <= 0) return;
    std::strncpy(dst, s.c_str(), n - 1);
    dst[n - 1] = '\0';
}

extern "C" int fw_cuda_compiled(void) {
#ifdef DLIB_USE_CUDA
    return 1;
#else
    return 0;
#endif
}

extern "C" int fw_cuda_devices(int* current, char* name, int name_len, char* err, int err_len) {
    *current = -1;
    fw_copy(name, name_len, "");
    fw_copy(err, err_len, "");
#ifdef DLIB_USE_CUDA
    try {
        int n = dlib::cuda::get_num_devices();
        if (n > 0) {
            int d = dlib::cuda::get_device();
            *current = d;
            fw_copy(name, name_len, dlib::cuda::get_device_name(d));
        }
        return n;
    } catch (const std::exception& e) {
        fw_copy(err, err_len, e.what());
        return 0;
    } catch (...) {
        fw_copy(err, err_len, "unknown error");
        return 0;
    }
#else
    return 0;
#endif
}
