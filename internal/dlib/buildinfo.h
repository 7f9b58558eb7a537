#ifndef FW_BUILDINFO_H
#define FW_BUILDINFO_H
#ifdef __cplusplus
extern "C" {
#endif
const char* fw_dlib_version(void);
const char* fw_simd_flags(void);
const char* fw_compiler(void);
#ifdef __cplusplus
}
#endif
#endif
