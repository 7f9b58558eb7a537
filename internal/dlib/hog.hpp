// fw::hog_detect, the body of HOG detection, shared by face.cc (the
// portable build) and hog_avx2.cc (the same code compiled for AVX2 CPUs).
// Include it after image.hpp and dlib's frontal_face_detector.h.
#ifndef FW_HOG_HPP
#define FW_HOG_HPP

namespace fw {

// hog_detect runs det on img after upsample doublings and returns the
// boxes in img's pixels in a malloc'd array the caller frees.
template <typename detector_type>
void hog_detect(detector_type& det, const fw_image& img, int upsample, double adjust,
                fw_rect** rects, int* n) {
	std::vector<dlib::rect_detection> dets;
	dlib::pyramid_down<2> pyr;
	if (img.channels == 3 && upsample == 0) {
		// The common case reads the BGR pixels in place: no RGB copy.
		det(bgr_view(img), dets, adjust);
	} else {
		dlib::matrix<dlib::rgb_pixel> m;
		to_rgb(img, m);
		for (int i = 0; i < upsample; i++)
			dlib::pyramid_up(m, pyr);
		det(m, dets, adjust);
	}
	if (dets.empty()) return;
	fw_rect* out = (fw_rect*)std::malloc(dets.size() * sizeof(fw_rect));
	if (!out) throw std::bad_alloc();
	for (size_t i = 0; i < dets.size(); i++) {
		dlib::rectangle r = dets[i].rect;
		for (int j = 0; j < upsample; j++)
			r = pyr.rect_down(r);
		out[i] = fw_rect{r.left(), r.top(), r.right(), r.bottom(), dets[i].detection_confidence};
	}
	*rects = out;
	*n = (int)dets.size();
}

} // namespace fw

#endif
