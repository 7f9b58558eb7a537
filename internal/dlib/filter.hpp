// fw::filter_planes runs dlib's float_spatially_filter_image_separable, as
// HOG detection calls it, on one plane given as plain arrays; face.cc (the
// portable build) and hog_avx2.cc (the AVX2 copy, whose filtering runs
// with AVX-512 where the CPU has it) each compile it, for the test that
// compares the two column by column (TestHOGFilterMatchesPortable).
#ifndef FW_FILTER_HPP
#define FW_FILTER_HPP

namespace fw {

inline void filter_plane(const float* in, long nr, long nc, const float* rf, long nrf, const float* cf, long ncf,
                         float* out, int add_to) {
	dlib::array2d<float> a(nr, nc), o(nr, nc), scratch;
	for (long r = 0; r < nr; r++)
		for (long c = 0; c < nc; c++) {
			a[r][c] = in[r * nc + c];
			o[r][c] = out[r * nc + c];
		}
	dlib::matrix<float, 0, 1> row(nrf), col(ncf);
	for (long i = 0; i < nrf; i++) row(i) = rf[i];
	for (long i = 0; i < ncf; i++) col(i) = cf[i];
	dlib::float_spatially_filter_image_separable(a, o, row, col, scratch, add_to != 0);
	for (long r = 0; r < nr; r++)
		for (long c = 0; c < nc; c++) out[r * nc + c] = o[r][c];
}

} // namespace fw

#endif
