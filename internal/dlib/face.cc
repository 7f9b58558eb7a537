// HOG detection, 5-point landmarks and aligned chips, as dlib's
// dnn_face_recognition_ex.cpp and go-face do them.
#include "face.h"
#include "image.hpp"
#include "hog_avx2.h"
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_processing/shape_predictor.h>
#include <dlib/image_transforms.h>
#include <dlib/serialize.h>
#include <dlib/rand.h>
#include <map>
#include <sstream>
#include "hog.hpp"
#include "filter.hpp"

using namespace dlib;

struct fw_hog {
	frontal_face_detector det;
	std::map<int, frontal_face_detector> capped; // det with fewer pyramid levels, by count
	fw_hog_avx2* avx2 = nullptr; // the AVX2 copy, on CPUs that have it
	~fw_hog() {
		if (avx2) fw_hog_avx2_free(avx2);
	}
};

struct fw_shape {
	shape_predictor sp;
};

extern "C" int fw_hog_new(int allow_avx2, fw_hog** out, char** err) {
	FW_TRY
	fw_hog* h = new fw_hog{get_frontal_face_detector()};
	if (allow_avx2 && fw_hog_avx2_supported()) {
		std::ostringstream model;
		serialize(h->det, model);
		std::string m = model.str();
		if (fw_hog_avx2_new(m.data(), m.size(), &h->avx2, err) != 0) {
			delete h;
			return -1;
		}
	}
	*out = h;
	return 0;
	FW_CATCH(err)
}

extern "C" int fw_hog_avx2_in_use(fw_hog* h) { return h->avx2 != nullptr; }

extern "C" int fw_hog_detect(fw_hog* h, fw_image img, int upsample, double adjust, int max_levels,
                             fw_rect** rects, int* n, char** err) {
	*rects = nullptr;
	*n = 0;
	if (h->avx2) return fw_hog_avx2_detect(h->avx2, img, upsample, adjust, max_levels, rects, n, err);
	FW_TRY
	fw::hog_detect(h->det, h->capped, img, upsample, adjust, max_levels, rects, n);
	return 0;
	FW_CATCH(err)
}

extern "C" void fw_hog_free(fw_hog* h) { delete h; }

extern "C" int fw_hog_filter(const float* in, long nr, long nc, const float* rf, long nrf, const float* cf, long ncf,
                             float* out, int add_to, char** err) {
	FW_TRY
	fw::filter_plane(in, nr, nc, rf, nrf, cf, ncf, out, add_to);
	return 0;
	FW_CATCH(err)
}

extern "C" int fw_hog_features(fw_image img, int levels, int cell_size, int pr, int pc, float** out, long* nr,
                               long* nc, char** err) {
	FW_TRY
	fw::features(default_fhog_feature_extractor(), img, levels, cell_size, pr, pc, out, nr, nc);
	return 0;
	FW_CATCH(err)
}

extern "C" int fw_hog_pyramid(fw_image img, int levels, uint8_t** out, long* nr, long* nc, char** err) {
	FW_TRY
	fw::pyramid(img, levels, out, nr, nc);
	return 0;
	FW_CATCH(err)
}

extern "C" int fw_shape_new(const char* path, fw_shape** out, char** err) {
	FW_TRY
	fw_shape* s = new fw_shape;
	try {
		deserialize(path) >> s->sp;
	} catch (...) {
		delete s;
		throw;
	}
	if (s->sp.num_parts() != 5) {
		size_t parts = s->sp.num_parts();
		delete s;
		throw std::runtime_error("shape predictor has " + std::to_string(parts) + " parts, want 5");
	}
	*out = s;
	return 0;
	FW_CATCH(err)
}

// align finds the landmarks and cuts the chip of each rect in img, a dlib
// image of RGB kind (an rgb matrix or a bgr_view).
template <typename image_type>
static void align(fw_shape* s, const image_type& img, const fw_rect* rects, int n,
                  int size, double padding, long* points, uint8_t* chips) {
	matrix<rgb_pixel> chip;
	for (int i = 0; i < n; i++) {
		rectangle r(rects[i].left, rects[i].top, rects[i].right, rects[i].bottom);
		full_object_detection shape = s->sp(img, r);
		for (int j = 0; j < 5; j++) {
			points[(i * 5 + j) * 2] = shape.part(j).x();
			points[(i * 5 + j) * 2 + 1] = shape.part(j).y();
		}
		extract_image_chip(img, get_face_chip_details(shape, size, padding), chip);
		std::memcpy(chips + (size_t)i * size * size * 3, &chip(0, 0), (size_t)size * size * 3);
	}
}

extern "C" int fw_shape_align(fw_shape* s, fw_image img, const fw_rect* rects, int n,
                              int size, double padding, long* points, uint8_t* chips,
                              char** err) {
	FW_TRY
	if (img.channels == 3) {
		// Landmarks and chips read a few pixels around each face: the BGR
		// frame is read in place instead of copied whole into RGB.
		align(s, fw::bgr_view(img), rects, n, size, padding, points, chips);
		return 0;
	}
	matrix<rgb_pixel> m;
	fw::to_rgb(img, m);
	align(s, m, rects, n, size, padding, points, chips);
	return 0;
	FW_CATCH(err)
}

extern "C" void fw_shape_free(fw_shape* s) { delete s; }

extern "C" int fw_jitter(const uint8_t* chip, int size, int count, unsigned long seed,
                         uint8_t* out, char** err) {
	FW_TRY
	matrix<rgb_pixel> m(size, size);
	std::memcpy(&m(0, 0), chip, (size_t)size * size * 3);
	dlib::rand rnd(seed);
	for (int i = 0; i < count; i++) {
		matrix<rgb_pixel> j = jitter_image(m, rnd);
		std::memcpy(out + (size_t)i * size * size * 3, &j(0, 0), (size_t)size * size * 3);
	}
	return 0;
	FW_CATCH(err)
}
