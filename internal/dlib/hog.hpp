// fw::hog_detect, the body of HOG detection, shared by face.cc (the
// portable build) and hog_avx2.cc (the same code compiled for AVX2 CPUs).
// Include it after image.hpp and dlib's frontal_face_detector.h.
#ifndef FW_HOG_HPP
#define FW_HOG_HPP

namespace fw {

// capped returns det with its scanner's pyramid cut to max_levels levels
// (max_levels <= 0: det itself), built once per level count into cache: the
// same weights and box-overlap test, only the levels scanned differ.
template <typename detector_type>
detector_type& capped(detector_type& det, std::map<int, detector_type>& cache, int max_levels) {
	if (max_levels <= 0 || (unsigned long)max_levels >= det.get_scanner().get_max_pyramid_levels())
		return det;
	auto it = cache.find(max_levels);
	if (it != cache.end()) return it->second;
	typename detector_type::image_scanner_type scanner;
	scanner.copy_configuration(det.get_scanner());
	scanner.set_max_pyramid_levels(max_levels);
	std::vector<typename detector_type::feature_vector_type> w;
	for (unsigned long i = 0; i < det.num_detectors(); i++)
		w.push_back(det.get_w(i));
	return cache.emplace(std::piecewise_construct, std::forward_as_tuple(max_levels),
	                     std::forward_as_tuple(scanner, det.get_overlap_tester(), w)).first->second;
}

// hog_detect runs det on img after upsample doublings, scanning at most
// max_levels levels of its pyramid (0: all), and returns the boxes in
// img's pixels in a malloc'd array the caller frees.
template <typename detector_type>
void hog_detect(detector_type& full, std::map<int, detector_type>& cache, const fw_image& img, int upsample,
                double adjust, int max_levels, fw_rect** rects, int* n) {
	detector_type& det = capped(full, cache, max_levels);
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

// pyramid_level sets out to img after levels (at least 1) steps down
// dlib's detection pyramid (pyramid_down<6>), as the detector builds it.
template <typename image_type, typename pixel_type>
void pyramid_level(const image_type& img, int levels, dlib::array2d<pixel_type>& out) {
	dlib::pyramid_down<6> pyr;
	dlib::array2d<pixel_type> b;
	pyr(img, out);
	for (int i = 1; i < levels; i++) {
		pyr(out, b);
		dlib::swap(out, b);
	}
}

// features_at writes into a malloc'd *out the 31 HOG planes (each nr x
// nc floats, one after another) that the extractor fe computes for img
// after levels steps down dlib's detection pyramid (pyramid_down<6>), as
// the detector computes them for that level; for tests.
template <typename image_type, typename extractor>
void features_at(const extractor& fe, const image_type& img, int levels, int cell_size, int pr, int pc,
                 float** out, long* nr, long* nc) {
	typedef typename dlib::image_traits<image_type>::pixel_type pixel_type;
	dlib::array<dlib::array2d<float>> hog;
	if (levels == 0) {
		fe(img, hog, cell_size, pr, pc);
	} else {
		dlib::array2d<pixel_type> a;
		pyramid_level(img, levels, a);
		fe(a, hog, cell_size, pr, pc);
	}
	*nr = hog.size() == 31 ? hog[0].nr() : 0;
	*nc = hog.size() == 31 ? hog[0].nc() : 0;
	size_t plane = (size_t)(*nr) * (*nc);
	*out = (float*)std::malloc(31 * plane * sizeof(float) + 1);
	if (!*out) throw std::bad_alloc();
	for (size_t i = 0; i < 31 && plane > 0; i++)
		for (long r = 0; r < *nr; r++)
			std::memcpy(*out + i * plane + (size_t)r * (*nc), &hog[i][r][0], (size_t)(*nc) * sizeof(float));
}

// pyramid_at writes into a malloc'd *out the pixels (red, green, blue) of
// img after levels (at least 1) steps down dlib's detection pyramid
// (pyramid_down<6>); for tests.
template <typename image_type>
void pyramid_at(const image_type& img, int levels, uint8_t** out, long* nr, long* nc) {
	typedef typename dlib::image_traits<image_type>::pixel_type pixel_type;
	dlib::array2d<pixel_type> a;
	pyramid_level(img, levels, a);
	*nr = a.nr();
	*nc = a.nc();
	*out = (uint8_t*)std::malloc((size_t)a.nr() * a.nc() * 3 + 1);
	if (!*out) throw std::bad_alloc();
	uint8_t* o = *out;
	for (long r = 0; r < a.nr(); r++)
		for (long c = 0; c < a.nc(); c++, o += 3) {
			o[0] = a[r][c].red;
			o[1] = a[r][c].green;
			o[2] = a[r][c].blue;
		}
}

// pyramid runs pyramid_at on img read in place (3 channels) or copied into
// RGB.
inline void pyramid(const fw_image& img, int levels, uint8_t** out, long* nr, long* nc) {
	if (levels < 1) throw std::invalid_argument("pyramid wants at least 1 level");
	if (img.channels == 3) {
		pyramid_at(bgr_view(img), levels, out, nr, nc);
		return;
	}
	dlib::matrix<dlib::rgb_pixel> m;
	to_rgb(img, m);
	pyramid_at(m, levels, out, nr, nc);
}

// features runs features_at on img read in place (3 channels) or copied
// into RGB.
template <typename extractor>
void features(const extractor& fe, const fw_image& img, int levels, int cell_size, int pr, int pc, float** out,
              long* nr, long* nc) {
	if (img.channels == 3) {
		features_at(fe, bgr_view(img), levels, cell_size, pr, pc, out, nr, nc);
		return;
	}
	dlib::matrix<dlib::rgb_pixel> m;
	to_rgb(img, m);
	features_at(fe, m, levels, cell_size, pr, pc, out, nr, nc);
}

} // namespace fw

#endif
