// HOG face detection compiled a second time, for CPUs with AVX2. The
// default build targets x86-64-v2 (SSE4.2) so that it runs on any edge box;
// dlib's HOG filters then run 4 floats at a time. On a CPU with AVX2,
// fw_hog_detect calls this copy instead, whose dlib code uses 8-wide AVX
// (dlib's simd8f and simd8i in their AVX forms). Without FMA, and with
// dlib's arithmetic done lane by lane in the same order, the results are
// bit-identical to the portable code's (TestHOGAVX2MatchesPortable). On a
// CPU with AVX-512 the copy's three costliest parts run 16 lanes at a
// time, each with dlib's operations in dlib's order: the feature filtering
// (hog_avx512.hpp), the feature extraction and the pyramid's steps down
// (fhog_avx512.hpp).
//
// Keeping the two copies apart: every standard header dlib uses is
// included first, under the build's own target, so the standard library
// code both units instantiate (std::vector<float>, ...) is the same
// portable code whichever copy the linker keeps. Only then does the AVX2
// target start, and dlib's and facewatch's namespaces are renamed, so that
// none of the AVX2 code shares a symbol name with the portable code.
#include "types.h"
#include "hog_avx2.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <climits>
#include <clocale>
#include <cmath>
#include <complex>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <cwchar>
#include <cwctype>
#include <deque>
#include <exception>
#include <forward_list>
#include <fstream>
#include <functional>
#include <future>
#include <initializer_list>
#include <iomanip>
#include <ios>
#include <iosfwd>
#include <iostream>
#include <istream>
#include <iterator>
#include <limits>
#include <list>
#include <locale>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <numeric>
#include <ostream>
#include <queue>
#include <ratio>
#include <set>
#include <sstream>
#include <stack>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>
#include <cpuid.h>
#include <pthread.h>
#include <math.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>

#define dlib fw_dlib_avx2
#define fw fw_avx2
// The one object of dlib's headers that is constructed at program start
// (OBJECT_PART_NOT_PRESENT, a point) comes from this header: it is read
// before the AVX2 target starts, so that start-up code, which runs on any
// CPU, never calls AVX2 code. (dlib's SIMD types are not included by it:
// they are defined below, in their AVX form.)
#include <dlib/image_processing/full_object_detection.h>
#pragma GCC push_options
#pragma GCC target("avx2")
// In C++, GCC's target pragma does not define __AVX__ and __AVX2__, from
// which dlib's simd_check.h picks its SIMD types: say it directly.
#define DLIB_HAVE_AVX
#define DLIB_HAVE_AVX2
#include <dlib/array2d.h>
#include <dlib/matrix.h>
#include <dlib/image_transforms/spatial_filtering.h>
#include "hog_avx512.hpp"
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/serialize.h>
#include "image.hpp"
#include "fhog_avx512.hpp"
#include "hog.hpp"
#include "filter.hpp"

// dlib's headers refer to these (its check that every unit of a program
// was built with the same configuration); in the renamed namespace they
// are this unit's own.
namespace dlib {
int USER_ERROR__inconsistent_build_configuration__see_dlib_faq_1_;
int DLIB_VERSION_MISMATCH_CHECK__EXPECTED_VERSION_19_24_0;
}

// hog_detector is dlib's frontal_face_detector with fw::fhog_extractor for
// its feature extractor: the same model, the same results.
typedef dlib::object_detector<dlib::scan_fhog_pyramid<dlib::pyramid_down<6>, fw::fhog_extractor>> hog_detector;

struct fw_hog_avx2 {
	hog_detector det;
	std::map<int, hog_detector> capped;
};

extern "C" int fw_hog_avx2_new(const char* model, size_t len, fw_hog_avx2** out, char** err) {
	FW_TRY
	std::istringstream in(std::string(model, len));
	fw_hog_avx2* h = new fw_hog_avx2;
	try {
		dlib::deserialize(h->det, in);
	} catch (...) {
		delete h;
		throw;
	}
	*out = h;
	return 0;
	FW_CATCH(err)
}

extern "C" int fw_hog_avx2_detect(fw_hog_avx2* h, fw_image img, int upsample, double adjust, int max_levels,
                                  fw_rect** rects, int* n, char** err) {
	FW_TRY
	fw::hog_detect(h->det, h->capped, img, upsample, adjust, max_levels, rects, n);
	return 0;
	FW_CATCH(err)
}

extern "C" void fw_hog_avx2_free(fw_hog_avx2* h) { delete h; }

extern "C" int fw_hog_avx2_filter(const float* in, long nr, long nc, const float* rf, long nrf, const float* cf,
                                  long ncf, float* out, int add_to, char** err) {
	FW_TRY
	fw::filter_plane(in, nr, nc, rf, nrf, cf, ncf, out, add_to);
	return 0;
	FW_CATCH(err)
}

extern "C" int fw_hog_avx2_features(fw_image img, int levels, int cell_size, int pr, int pc, float** out,
                                    long* nr, long* nc, char** err) {
	FW_TRY
	fw::features(fw::fhog_extractor(), img, levels, cell_size, pr, pc, out, nr, nc);
	return 0;
	FW_CATCH(err)
}

extern "C" int fw_hog_avx2_pyramid(fw_image img, int levels, uint8_t** out, long* nr, long* nc, char** err) {
	FW_TRY
	fw::pyramid(img, levels, out, nr, nc);
	return 0;
	FW_CATCH(err)
}

#undef fw
#undef dlib
#pragma GCC pop_options

extern "C" int fw_hog_avx2_supported(void) {
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2");
}

extern "C" int fw_hog_avx512_filter_supported(void) {
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f");
}

#else

extern "C" int fw_hog_avx2_supported(void) { return 0; }
extern "C" int fw_hog_avx512_filter_supported(void) { return 0; }
extern "C" int fw_hog_avx2_new(const char*, size_t, fw_hog_avx2**, char** err) {
	*err = nullptr;
	return -1;
}
extern "C" int fw_hog_avx2_detect(fw_hog_avx2*, fw_image, int, double, int, fw_rect**, int*, char**) { return -1; }
extern "C" void fw_hog_avx2_free(fw_hog_avx2*) {}
extern "C" int fw_hog_avx2_features(fw_image, int, int, int, int, float**, long*, long*, char** err) {
	*err = nullptr;
	return -1;
}
extern "C" int fw_hog_avx2_pyramid(fw_image, int, uint8_t**, long*, long*, char** err) {
	*err = nullptr;
	return -1;
}
extern "C" int fw_hog_avx2_filter(const float*, long, long, const float*, long, const float*, long, float*, int,
                                  char** err) {
	*err = nullptr;
	return -1;
}

#endif
