#include "buildinfo.h"
#include <dlib/revision.h>

#define FW_STR2(x) #x
#define FW_STR(x) FW_STR2(x)

extern "C" const char* fw_dlib_version(void) {
    return FW_STR(DLIB_MAJOR_VERSION) "." FW_STR(DLIB_MINOR_VERSION) "." FW_STR(DLIB_PATCH_VERSION);
}

extern "C" const char* fw_simd_flags(void) {
    return ""
#ifdef __SSE2__
        " sse2"
#endif
#ifdef __SSSE3__
        " ssse3"
#endif
#ifdef __SSE4_1__
        " sse4.1"
#endif
#ifdef __SSE4_2__
        " sse4.2"
#endif
#ifdef __POPCNT__
        " popcnt"
#endif
#ifdef __AVX__
        " avx"
#endif
#ifdef __AVX2__
        " avx2"
#endif
#ifdef __FMA__
        " fma"
#endif
#ifdef __BMI2__
        " bmi2"
#endif
#ifdef __AVX512F__
        " avx512f"
#endif
#ifdef __AVX512BW__
        " avx512bw"
#endif
#ifdef __AVX512DQ__
        " avx512dq"
#endif
#ifdef __AVX512VL__
        " avx512vl"
#endif
#ifdef __ARM_NEON
        " neon"
#endif
        ;
}

extern "C" const char* fw_compiler(void) {
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "g++ " __VERSION__;
#else
    return "unknown";
#endif
}
