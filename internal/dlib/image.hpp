// Shared by facewatch's dlib C++ units: turning a borrowed fw_image into a
// dlib matrix<rgb_pixel>, and reporting exceptions as C strings.
#ifndef FW_IMAGE_HPP
#define FW_IMAGE_HPP
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <dlib/matrix.h>
#include <dlib/pixel.h>
#include <dlib/image_processing/generic_image.h>
#include <stdexcept>

namespace fw {

inline char* dup_err(const char* what) {
	size_t n = std::strlen(what);
	char* s = (char*)std::malloc(n + 1);
	if (s) std::memcpy(s, what, n + 1);
	return s;
}

// to_rgb copies img into an rgb matrix, the pixel type go-face and dlib's
// examples feed the detector, shape predictor and chip extractor.
inline void to_rgb(const fw_image& img, dlib::matrix<dlib::rgb_pixel>& out) {
	if (img.rows <= 0 || img.cols <= 0 || img.pix == nullptr)
		throw std::invalid_argument("empty image");
	if (img.channels != 1 && img.channels != 3 && img.channels != 4)
		throw std::invalid_argument("unsupported channel count " + std::to_string(img.channels));
	if (img.stride < img.cols * img.channels)
		throw std::invalid_argument("stride smaller than a row");
	out.set_size(img.rows, img.cols);
	for (long r = 0; r < img.rows; r++) {
		const uint8_t* src = img.pix + (size_t)r * img.stride;
		dlib::rgb_pixel* dst = &out(r, 0);
		switch (img.channels) {
		case 3:
			for (long c = 0; c < img.cols; c++, src += 3)
				dst[c] = dlib::rgb_pixel(src[2], src[1], src[0]);
			break;
		case 4:
			for (long c = 0; c < img.cols; c++, src += 4)
				dst[c] = dlib::rgb_pixel(src[2], src[1], src[0]);
			break;
		default:
			for (long c = 0; c < img.cols; c++)
				dst[c] = dlib::rgb_pixel(src[c], src[c], src[c]);
		}
	}
}

// bgr_view lets dlib read a 3-channel fw_image in place, as bgr_pixel,
// without the copy into an RGB matrix (dlib's generic image interface:
// image_traits, num_rows, num_columns, image_data, width_step). dlib's
// code reads a pixel's channels by name (red, green, blue) wherever the
// pixel type is an RGB kind, bgr_pixel included, so the detector, the
// shape predictor and the chip extractor compute exactly what they compute
// on the RGB copy; TestViewMatchesCopy checks it.
struct bgr_view {
	const uint8_t* pix;
	long rows, cols, stride;
	explicit bgr_view(const fw_image& img) : pix(img.pix), rows(img.rows), cols(img.cols), stride(img.stride) {
		if (img.channels != 3 || img.rows <= 0 || img.cols <= 0 || img.pix == nullptr || img.stride < img.cols * 3)
			throw std::invalid_argument("bgr_view wants a non-empty 3-channel image");
	}
};
inline long num_rows(const bgr_view& v) { return v.rows; }
inline long num_columns(const bgr_view& v) { return v.cols; }
inline const void* image_data(const bgr_view& v) { return v.pix; }
inline long width_step(const bgr_view& v) { return v.stride; }

} // namespace fw

namespace dlib {
template <> struct image_traits<fw::bgr_view> {
	typedef bgr_pixel pixel_type;
};
} // namespace dlib

#define FW_TRY try {
#define FW_CATCH(err)                                                   \
	}                                                                   \
	catch (const std::bad_alloc&) {                                     \
		if (err) *err = fw::dup_err("out of memory");                   \
		return -1;                                                      \
	}                                                                   \
	catch (const std::exception& e) {                                   \
		if (err) *err = fw::dup_err(e.what());                          \
		return -1;                                                      \
	}                                                                   \
	catch (...) {                                                       \
		if (err) *err = fw::dup_err("unknown C++ exception");           \
		return -1;                                                      \
	}

#endif
