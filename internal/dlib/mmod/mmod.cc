// The MMOD CNN face detector (mmod_human_face_detector.dat), with the network
// definition of dlib's dnn_mmod_face_detection_ex.cpp.
#include "mmod.h"
#include "../image.hpp"
#include <dlib/dnn.h>
#include <dlib/image_transforms.h>

using namespace dlib;

template <long num_filters, typename SUBNET> using con5d = con<num_filters,5,5,2,2,SUBNET>;
template <long num_filters, typename SUBNET> using con5  = con<num_filters,5,5,1,1,SUBNET>;

template <typename SUBNET> using downsampler  = relu<affine<con5d<32, relu<affine<con5d<32, relu<affine<con5d<16,SUBNET>>>>>>>>>;
template <typename SUBNET> using rcon5  = relu<affine<con5<45,SUBNET>>>;

using net_type = loss_mmod<con<1,9,9,1,1,rcon5<rcon5<rcon5<downsampler<input_rgb_image_pyramid<pyramid_down<6>>>>>>>>;

struct fw_mmod {
	net_type net;
};

extern "C" int fw_mmod_new(const char* path, fw_mmod** out, char** err) {
	FW_TRY
	fw_mmod* m = new fw_mmod;
	try {
		deserialize(path) >> m->net;
	} catch (...) {
		delete m;
		throw;
	}
	*out = m;
	return 0;
	FW_CATCH(err)
}

extern "C" int fw_mmod_detect(fw_mmod* m, fw_image img, int upsample, double adjust,
                              fw_rect** rects, int* n, char** err) {
	*rects = nullptr;
	*n = 0;
	FW_TRY
	matrix<rgb_pixel> im;
	fw::to_rgb(img, im);
	pyramid_down<2> pyr;
	for (int i = 0; i < upsample; i++)
		pyramid_up(im, pyr);
	std::vector<mmod_rect> dets = m->net(im);
	std::vector<mmod_rect> keep;
	for (auto& d : dets)
		if (d.detection_confidence >= adjust) keep.push_back(d);
	if (keep.empty()) return 0;
	fw_rect* out = (fw_rect*)std::malloc(keep.size() * sizeof(fw_rect));
	if (!out) throw std::bad_alloc();
	for (size_t i = 0; i < keep.size(); i++) {
		rectangle r = keep[i].rect;
		for (int j = 0; j < upsample; j++)
			r = pyr.rect_down(r);
		out[i] = fw_rect{r.left(), r.top(), r.right(), r.bottom(), keep[i].detection_confidence};
	}
	*rects = out;
	*n = (int)keep.size();
	return 0;
	FW_CATCH(err)
}

extern "C" int fw_mmod_detect_batch(fw_mmod* m, const fw_image* imgs, int count, int upsample,
                                    double adjust, fw_rect** rects, int* counts, char** err) {
	*rects = nullptr;
	FW_TRY
	for (int i = 0; i < count; i++) counts[i] = 0;
	if (count <= 0) return 0;
	std::vector<matrix<rgb_pixel>> ims(count);
	pyramid_down<2> pyr;
	for (int i = 0; i < count; i++) {
		if (imgs[i].rows != imgs[0].rows || imgs[i].cols != imgs[0].cols)
			throw std::invalid_argument("MMOD batch: images are not all the same size");
		fw::to_rgb(imgs[i], ims[i]);
		for (int j = 0; j < upsample; j++)
			pyramid_up(ims[i], pyr);
	}
	// One forward pass over the whole batch: the input layer tiles every
	// image's pyramid into one tensor sample each.
	std::vector<std::vector<mmod_rect>> dets = m->net(ims, ims.size());
	size_t total = 0;
	for (auto& ds : dets)
		for (auto& d : ds)
			if (d.detection_confidence >= adjust) total++;
	if (total == 0) return 0;
	fw_rect* out = (fw_rect*)std::malloc(total * sizeof(fw_rect));
	if (!out) throw std::bad_alloc();
	size_t k = 0;
	for (int i = 0; i < count; i++) {
		for (auto& d : dets[i]) {
			if (d.detection_confidence < adjust) continue;
			rectangle r = d.rect;
			for (int j = 0; j < upsample; j++)
				r = pyr.rect_down(r);
			out[k++] = fw_rect{r.left(), r.top(), r.right(), r.bottom(), d.detection_confidence};
			counts[i]++;
		}
	}
	*rects = out;
	return 0;
	FW_CATCH(err)
}

extern "C" void fw_mmod_free(fw_mmod* m) { delete m; }
