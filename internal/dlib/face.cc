// HOG detection, 5-point landmarks and aligned chips, as dlib's
// dnn_face_recognition_ex.cpp and go-face do them.
#include "face.h"
#include "image.hpp"
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_processing/shape_predictor.h>
#include <dlib/image_transforms.h>
#include <dlib/serialize.h>
#include <dlib/rand.h>

using namespace dlib;

struct fw_hog {
	frontal_face_detector det;
};

struct fw_shape {
	shape_predictor sp;
};

extern "C" int fw_hog_new(fw_hog** out, char** err) {
	FW_TRY
	*out = new fw_hog{get_frontal_face_detector()};
	return 0;
	FW_CATCH(err)
}

extern "C" int fw_hog_detect(fw_hog* h, fw_image img, int upsample, double adjust,
                             fw_rect** rects, int* n, char** err) {
	*rects = nullptr;
	*n = 0;
	FW_TRY
	std::vector<rect_detection> dets;
	pyramid_down<2> pyr;
	if (img.channels == 3 && upsample == 0) {
		// The common case reads the BGR pixels in place: no RGB copy.
		h->det(fw::bgr_view(img), dets, adjust);
	} else {
		matrix<rgb_pixel> m;
		fw::to_rgb(img, m);
		for (int i = 0; i < upsample; i++)
			pyramid_up(m, pyr);
		h->det(m, dets, adjust);
	}
	if (dets.empty()) return 0;
	fw_rect* out = (fw_rect*)std::malloc(dets.size() * sizeof(fw_rect));
	if (!out) throw std::bad_alloc();
	for (size_t i = 0; i < dets.size(); i++) {
		rectangle r = dets[i].rect;
		for (int j = 0; j < upsample; j++)
			r = pyr.rect_down(r);
		out[i] = fw_rect{r.left(), r.top(), r.right(), r.bottom(), dets[i].detection_confidence};
	}
	*rects = out;
	*n = (int)dets.size();
	return 0;
	FW_CATCH(err)
}

extern "C" void fw_hog_free(fw_hog* h) { delete h; }

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
