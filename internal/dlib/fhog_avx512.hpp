// fw::fhog_extractor, the HOG feature extractor of the AVX2 copy
// (hog_avx2.cc): dlib's default_fhog_feature_extractor, whose
// extract_fhog_features (dlib 19.24, fhog.h, impl_extract_fhog_features)
// runs, on a CPU with AVX-512 and for images of RGB kind, with its
// per-pixel part 16 pixels at a time. Every output float is bit for bit
// what dlib's code gives (TestHOGFeaturesMatchPortable):
//
//   - the pixels' three channels are first copied into planes, a row at a
//     time, so that 16 pixels' neighbours are read with one load each
//     instead of dlib's 96 one-byte reads per 8 pixels; the gradients and
//     their squared lengths are integers, computed and compared as dlib
//     does (the channel with the longest gradient, red before green
//     before blue on ties);
//   - dlib snaps each gradient to one of 18 orientations by a chain of 18
//     strict comparisons against a running best (0 at first): o for dot_o
//     > best, then o+9 for -dot_o > best. That picks the first o whose
//     |dot_o| is the largest of the nine (o+9 where dot_o is negative), or
//     0 when all are 0; fhog_row16 computes exactly that, with the same
//     dot_o (two products and a sum, each product kept apart from the sum
//     so that GCC cannot fuse them into an FMA), without the chain;
//   - the bilinear weights are the same operations in the same order, and
//     they are added into the histograms one pixel after another in dlib's
//     order (a float sum depends on its order), by plain code outside the
//     AVX-512 function;
//   - the columns dlib leaves to its one-pixel-at-a-time loop (whose
//     weights are rounded in another order), the cell norms and the 31
//     features are dlib's code, copied.
//
// The buffers (planes, histograms, norms) are kept in the extractor and
// reused from one image (and pyramid level) to the next.
#ifndef FW_FHOG_AVX512_HPP
#define FW_FHOG_AVX512_HPP

#include <immintrin.h>
#include <cstdint>
#include <vector>

namespace fw {

#define FW_KEEP(v) __asm__("" : "+v"(v))

// fhog_directions are dlib's nine unit vectors, as dlib rounds them (a
// double constant assigned to a float).
struct fhog_directions {
	float x[9], y[9];
	fhog_directions() {
		const double d[9][2] = {{1.0000, 0.0000}, {0.9397, 0.3420},  {0.7660, 0.6428},
		                        {0.500, 0.8660},  {0.1736, 0.9848},  {-0.1736, 0.9848},
		                        {-0.5000, 0.8660}, {-0.7660, 0.6428}, {-0.9397, 0.3420}};
		for (int o = 0; o < 9; o++) {
			x[o] = (float)d[o][0];
			y[o] = (float)d[o][1];
		}
	}
};

// fhog_row16 does dlib's per-pixel work for the pixels of one row from
// column 1 up to (not including) end, 16 at a time: the planes hold the
// red, green and blue of the rows above (top), at (mid) and below (bot),
// each readable 16 bytes past end. For each pixel x it writes the
// orientation bin[x], the histogram column ixp[x] and the four bilinear
// weights dlib adds into the histograms (v11, v01, v10, v00); the arrays
// take 16 entries past end.
__attribute__((target("avx512f,avx2"))) inline void fhog_row16(const uint8_t* const top[3], const uint8_t* const mid[3],
                                                               const uint8_t* const bot[3], long end, int cell_size,
                                                               float vy0, float vy1, const fhog_directions& dir,
                                                               int32_t* bin, int32_t* ixp, float* v11, float* v01,
                                                               float* v10, float* v00) {
	const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
	const __m512 cell = _mm512_set1_ps((float)cell_size), half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
	const __m512 zero = _mm512_setzero_ps(), wy0 = _mm512_set1_ps(vy0), wy1 = _mm512_set1_ps(vy1);
	for (long x = 1; x < end; x += 16) {
		__m512i gx[3], gy[3], len[3];
		for (int ch = 0; ch < 3; ch++) {
			const __m512i left = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(mid[ch] + x - 1)));
			const __m512i right = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(mid[ch] + x + 1)));
			const __m512i up = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(top[ch] + x)));
			const __m512i down = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(bot[ch] + x)));
			gx[ch] = _mm512_sub_epi32(right, left);
			gy[ch] = _mm512_sub_epi32(down, up);
			len[ch] = _mm512_add_epi32(_mm512_mullo_epi32(gx[ch], gx[ch]), _mm512_mullo_epi32(gy[ch], gy[ch]));
		}
		// dlib: red where its length is greater than green's, else green;
		// that where its length is greater than blue's, else blue.
		__mmask16 k = _mm512_cmpgt_epi32_mask(len[0], len[1]);
		const __m512i tgx = _mm512_mask_blend_epi32(k, gx[1], gx[0]);
		const __m512i tgy = _mm512_mask_blend_epi32(k, gy[1], gy[0]);
		const __m512i tlen = _mm512_mask_blend_epi32(k, len[1], len[0]);
		k = _mm512_cmpgt_epi32_mask(tlen, len[2]);
		const __m512 fx = _mm512_cvtepi32_ps(_mm512_mask_blend_epi32(k, gx[2], tgx));
		const __m512 fy = _mm512_cvtepi32_ps(_mm512_mask_blend_epi32(k, gy[2], tgy));
		const __m512 v = _mm512_sqrt_ps(_mm512_cvtepi32_ps(_mm512_mask_blend_epi32(k, len[2], tlen)));

		// The orientation: the first o with the largest |dot_o|, o+9
		// where dot_o < 0 (see above).
		__m512 dot[9], mag[9];
		for (int o = 0; o < 9; o++) {
			__m512 p = _mm512_mul_ps(fx, _mm512_set1_ps(dir.x[o]));
			__m512 p2 = _mm512_mul_ps(fy, _mm512_set1_ps(dir.y[o]));
			FW_KEEP(p);
			FW_KEEP(p2);
			dot[o] = _mm512_add_ps(p, p2);
			mag[o] = _mm512_abs_ps(dot[o]);
		}
		const __m512 m01 = _mm512_max_ps(mag[0], mag[1]), m23 = _mm512_max_ps(mag[2], mag[3]);
		const __m512 m45 = _mm512_max_ps(mag[4], mag[5]), m67 = _mm512_max_ps(mag[6], mag[7]);
		const __m512 most = _mm512_max_ps(_mm512_max_ps(_mm512_max_ps(m01, m23), _mm512_max_ps(m45, m67)), mag[8]);
		__m512i best = _mm512_setzero_si512();
		for (int o = 8; o >= 0; o--) {
			const __mmask16 neg = _mm512_cmp_ps_mask(dot[o], zero, _CMP_LT_OQ);
			const __m512i b = _mm512_mask_blend_epi32(neg, _mm512_set1_epi32(o), _mm512_set1_epi32(o + 9));
			best = _mm512_mask_mov_epi32(best, _mm512_cmp_ps_mask(mag[o], most, _CMP_EQ_OQ), b);
		}

		// dlib's bilinear weights: xp = (x+0.5)/cell_size+0.5, its integer
		// part and fraction, times v, times the row's weights.
		const __m512 xx = _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_set1_epi32((int)x), iota));
		const __m512 xp = _mm512_add_ps(_mm512_div_ps(_mm512_add_ps(xx, half), cell), half);
		const __m512i ix = _mm512_cvttps_epi32(xp);
		const __m512 vx0 = _mm512_sub_ps(xp, _mm512_cvtepi32_ps(ix));
		const __m512 vx1 = _mm512_sub_ps(one, vx0);
		const __m512 wx1 = _mm512_mul_ps(vx1, v), wx0 = _mm512_mul_ps(vx0, v);
		_mm512_storeu_si512(bin + x, best);
		_mm512_storeu_si512(ixp + x, ix);
		_mm512_storeu_ps(v11 + x, _mm512_mul_ps(wy1, wx1));
		_mm512_storeu_ps(v01 + x, _mm512_mul_ps(wy0, wx1));
		_mm512_storeu_ps(v10 + x, _mm512_mul_ps(wy1, wx0));
		_mm512_storeu_ps(v00 + x, _mm512_mul_ps(wy0, wx0));
	}
}


// resize_row16 is the 4-pixel loop of dlib's bilinear resize_image for RGB
// kinds of pixel (dlib 19.24, interpolation.h) for one output row, 16
// output pixels at a time: top and bottom are the two input rows (3 bytes
// a pixel, the channel at byte offset off[0] red, off[1] green, off[2]
// blue); for output column c < n, left3[c] is 3 times dlib's left input
// column, lr[c] and ilr[c] dlib's lr_frac and 1-lr_frac; tb and itb are
// dlib's tb_frac and 1-tb_frac as floats. Each channel's value is dlib's
// tlf*tl + trf*tr + blf*bl + brf*br, summed left to right with each
// product kept apart from its sum, truncated to an int and then to a
// byte; out[c] gets the output pixel's 3 bytes (in memory order) in its
// low bytes. The gathers read 4 bytes at the left pixel and 4 ending with
// the right pixel, never outside the row (dlib's loop stops before a
// right column past the last).
__attribute__((target("avx512f,avx2"))) inline void resize_row16(const uint8_t* top, const uint8_t* bottom, long n,
                                                                 const int32_t* left3, const float* lr,
                                                                 const float* ilr, float tb, float itb,
                                                                 const int off[3], uint32_t* out) {
	const __m512 vtb = _mm512_set1_ps(tb), vitb = _mm512_set1_ps(itb);
	const __m512i byte = _mm512_set1_epi32(0xff), two = _mm512_set1_epi32(2);
	for (long c = 0; c < n; c += 16) {
		const __mmask16 k = n - c >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - c)) - 1);
		const __m512i il = _mm512_maskz_loadu_epi32(k, left3 + c);
		const __m512i ir = _mm512_add_epi32(il, two);
		const __m512i z = _mm512_setzero_si512();
		const __m512i tlv = _mm512_mask_i32gather_epi32(z, k, il, top, 1);
		const __m512i trv = _mm512_srli_epi32(_mm512_mask_i32gather_epi32(z, k, ir, top, 1), 8);
		const __m512i blv = _mm512_mask_i32gather_epi32(z, k, il, bottom, 1);
		const __m512i brv = _mm512_srli_epi32(_mm512_mask_i32gather_epi32(z, k, ir, bottom, 1), 8);
		const __m512 f = _mm512_maskz_loadu_ps(k, lr + c), fi = _mm512_maskz_loadu_ps(k, ilr + c);
		const __m512 tlf = _mm512_mul_ps(vitb, fi), trf = _mm512_mul_ps(vitb, f);
		const __m512 blf = _mm512_mul_ps(vtb, fi), brf = _mm512_mul_ps(vtb, f);
		__m512i px = _mm512_setzero_si512();
		for (int ch = 0; ch < 3; ch++) {
			const __m128i sh = _mm_cvtsi32_si128(8 * off[ch]);
			auto chan = [&](__m512i v) { return _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srl_epi32(v, sh), byte)); };
			__m512 p = _mm512_mul_ps(tlf, chan(tlv));
			__m512 p2 = _mm512_mul_ps(trf, chan(trv));
			__m512 p3 = _mm512_mul_ps(blf, chan(blv));
			__m512 p4 = _mm512_mul_ps(brf, chan(brv));
			FW_KEEP(p);
			FW_KEEP(p2);
			FW_KEEP(p3);
			FW_KEEP(p4);
			__m512 sum = _mm512_add_ps(p, p2);
			sum = _mm512_add_ps(sum, p3);
			sum = _mm512_add_ps(sum, p4);
			const __m512i v = _mm512_and_si512(_mm512_cvttps_epi32(sum), byte);
			px = _mm512_or_si512(px, _mm512_sll_epi32(v, sh));
		}
		_mm512_mask_storeu_epi32(out + c, k, px);
	}
}

#undef FW_KEEP

// fhog_buffers is what fhog_extract keeps from one call to the next.
struct fhog_buffers {
	std::vector<uint8_t> planes;                 // 3 rows x 3 channels of pixels
	std::vector<int32_t> bin, ixp;               // a row's orientations and histogram columns
	std::vector<float> v11, v01, v10, v00;       // a row's bilinear weights
	std::vector<float> hist, norm;               // dlib's hist and norm
};

// fhog_extract is dlib's impl_extract_fhog_features for cell_size > 1 and
// an image of RGB kind, with the per-pixel part done by fhog_row16 (see
// above).
template <typename image_type, typename T, typename mm1, typename mm2>
void fhog_extract(const image_type& img_, dlib::array<dlib::array2d<T, mm1>, mm2>& hog, int cell_size,
                  int filter_rows_padding, int filter_cols_padding, fhog_buffers& buf) {
	using namespace dlib;
	using namespace dlib::impl_fhog;
	const_image_view<image_type> img(img_);
	static const fhog_directions dir;
	matrix<float, 2, 1> directions[9];
	directions[0] = 1.0000, 0.0000;
	directions[1] = 0.9397, 0.3420;
	directions[2] = 0.7660, 0.6428;
	directions[3] = 0.500, 0.8660;
	directions[4] = 0.1736, 0.9848;
	directions[5] = -0.1736, 0.9848;
	directions[6] = -0.5000, 0.8660;
	directions[7] = -0.7660, 0.6428;
	directions[8] = -0.9397, 0.3420;

	const int cells_nr = (int)((float)img.nr() / (float)cell_size + 0.5);
	const int cells_nc = (int)((float)img.nc() / (float)cell_size + 0.5);
	if (cells_nr == 0 || cells_nc == 0) {
		hog.clear();
		return;
	}
	// hist: (cells_nr+2) x (cells_nc+2) cells of 18 floats, as dlib's.
	const long hist_nc = cells_nc + 2;
	buf.hist.assign((size_t)(cells_nr + 2) * hist_nc * 18, 0.0f);
	float* hist = buf.hist.data();
	buf.norm.assign((size_t)cells_nr * cells_nc, 0.0f);
	float* norm = buf.norm.data();
	auto h = [&](long r, long c) { return hist + (r * hist_nc + c) * 18; };

	const int hog_nr = std::max(cells_nr - 2, 0);
	const int hog_nc = std::max(cells_nc - 2, 0);
	if (hog_nr == 0 || hog_nc == 0) {
		hog.clear();
		return;
	}
	const int padding_rows_offset = (filter_rows_padding - 1) / 2;
	const int padding_cols_offset = (filter_cols_padding - 1) / 2;
	init_hog(hog, hog_nr, hog_nc, filter_rows_padding, filter_cols_padding);

	const int visible_nr = std::min((long)cells_nr * cell_size, img.nr()) - 1;
	const int visible_nc = std::min((long)cells_nc * cell_size, img.nc()) - 1;

	// dlib's 8-pixel loop does the columns from 1 to simd_end, its
	// one-pixel loop the rest.
	int simd_end = 1;
	while (simd_end < visible_nc - 7) simd_end += 8;
	const long pitch = img.nc() + 32;
	buf.planes.resize((size_t)9 * pitch);
	const size_t row_len = (size_t)img.nc() + 16;
	buf.bin.resize(row_len);
	buf.ixp.resize(row_len);
	buf.v11.resize(row_len);
	buf.v01.resize(row_len);
	buf.v10.resize(row_len);
	buf.v00.resize(row_len);
	// plane(r, ch): channel ch (red, green, blue) of image row r.
	auto plane = [&](long r, int ch) { return buf.planes.data() + ((r % 3) * 3 + ch) * pitch; };
	auto split = [&](long r) {
		uint8_t *red = plane(r, 0), *green = plane(r, 1), *blue = plane(r, 2);
		const auto* row = img[r];
		for (long c = 0; c < img.nc(); c++) {
			red[c] = row[c].red;
			green[c] = row[c].green;
			blue[c] = row[c].blue;
		}
	};
	if (visible_nr > 1 && simd_end > 1) {
		split(0);
		split(1);
	}

	for (int y = 1; y < visible_nr; y++) {
		const float yp = ((float)y + 0.5) / (float)cell_size - 0.5;
		const int iyp = (int)std::floor(yp);
		const float vy0 = yp - iyp;
		const float vy1 = 1.0 - vy0;
		int x = 1;
		if (simd_end > 1) {
			split(y + 1);
			const uint8_t* top[3] = {plane(y - 1, 0), plane(y - 1, 1), plane(y - 1, 2)};
			const uint8_t* mid[3] = {plane(y, 0), plane(y, 1), plane(y, 2)};
			const uint8_t* bot[3] = {plane(y + 1, 0), plane(y + 1, 1), plane(y + 1, 2)};
			fhog_row16(top, mid, bot, simd_end, cell_size, vy0, vy1, dir, buf.bin.data(), buf.ixp.data(),
			           buf.v11.data(), buf.v01.data(), buf.v10.data(), buf.v00.data());
			float* h1 = h(iyp + 1, 0);
			float* h2 = h(iyp + 2, 0);
			for (; x < simd_end; x++) {
				const long b = (long)buf.ixp[x] * 18 + buf.bin[x];
				h1[b] += buf.v11[x];
				h2[b] += buf.v01[x];
				h1[b + 18] += buf.v10[x];
				h2[b + 18] += buf.v00[x];
			}
		}
		// dlib's loop for the columns that don't fit its 8-wide loop.
		for (; x < visible_nc; x++) {
			matrix<float, 2, 1> grad;
			float v;
			get_gradient(y, x, img, grad, v);

			float best_dot = 0;
			int best_o = 0;
			for (int o = 0; o < 9; o++) {
				const float dot = dlib::dot(directions[o], grad);
				if (dot > best_dot) {
					best_dot = dot;
					best_o = o;
				} else if (-dot > best_dot) {
					best_dot = -dot;
					best_o = o + 9;
				}
			}

			v = std::sqrt(v);
			const float xp = ((double)x + 0.5) / (double)cell_size - 0.5;
			const int ixp = (int)std::floor(xp);
			const float vx0 = xp - ixp;
			const float vx1 = 1.0 - vx0;

			h(iyp + 1, ixp + 1)[best_o] += vy1 * vx1 * v;
			h(iyp + 1 + 1, ixp + 1)[best_o] += vy0 * vx1 * v;
			h(iyp + 1, ixp + 1 + 1)[best_o] += vy1 * vx0 * v;
			h(iyp + 1 + 1, ixp + 1 + 1)[best_o] += vy0 * vx0 * v;
		}
	}

	// dlib's code from here on.
	for (int r = 0; r < cells_nr; ++r) {
		for (int c = 0; c < cells_nc; ++c) {
			const float* hc = h(r + 1, c + 1);
			float& n = norm[r * cells_nc + c];
			for (int o = 0; o < 9; o++) {
				n += (hc[o] + hc[o + 9]) * (hc[o] + hc[o + 9]);
			}
		}
	}
	auto nm = [&](long r, long c) { return norm[r * cells_nc + c]; };

	const float eps = 0.0001;
	for (int y = 0; y < hog_nr; y++) {
		const int yy = y + padding_rows_offset;
		for (int x = 0; x < hog_nc; x++) {
			const simd4f z1(nm(y + 1, x + 1), nm(y, x + 1), nm(y + 1, x), nm(y, x));
			const simd4f z2(nm(y + 1, x + 2), nm(y, x + 2), nm(y + 1, x + 1), nm(y, x + 1));
			const simd4f z3(nm(y + 2, x + 1), nm(y + 1, x + 1), nm(y + 2, x), nm(y + 1, x));
			const simd4f z4(nm(y + 2, x + 2), nm(y + 1, x + 2), nm(y + 2, x + 1), nm(y + 1, x + 1));

			const simd4f nn = 0.2 * sqrt(z1 + z2 + z3 + z4 + eps);
			const simd4f n = 0.1 / nn;

			simd4f t = 0;

			const int xx = x + padding_cols_offset;
			const float* hc = h(y + 1 + 1, x + 1 + 1);

			// contrast-sensitive features
			for (int o = 0; o < 18; o += 3) {
				simd4f temp0(hc[o]);
				simd4f temp1(hc[o + 1]);
				simd4f temp2(hc[o + 2]);
				simd4f h0 = min(temp0, nn) * n;
				simd4f h1 = min(temp1, nn) * n;
				simd4f h2 = min(temp2, nn) * n;
				set_hog(hog, o, xx, yy, sum(h0));
				set_hog(hog, o + 1, xx, yy, sum(h1));
				set_hog(hog, o + 2, xx, yy, sum(h2));
				t += h0 + h1 + h2;
			}

			t *= 2 * 0.2357;

			// contrast-insensitive features
			for (int o = 0; o < 9; o += 3) {
				simd4f temp0 = hc[o] + hc[o + 9];
				simd4f temp1 = hc[o + 1] + hc[o + 9 + 1];
				simd4f temp2 = hc[o + 2] + hc[o + 9 + 2];
				simd4f h0 = min(temp0, nn) * n;
				simd4f h1 = min(temp1, nn) * n;
				simd4f h2 = min(temp2, nn) * n;
				set_hog(hog, o + 18, xx, yy, sum(h0));
				set_hog(hog, o + 18 + 1, xx, yy, sum(h1));
				set_hog(hog, o + 18 + 2, xx, yy, sum(h2));
			}

			float temp[4];
			t.store(temp);

			// texture features
			set_hog(hog, 27, xx, yy, temp[0]);
			set_hog(hog, 28, xx, yy, temp[1]);
			set_hog(hog, 29, xx, yy, temp[2]);
			set_hog(hog, 30, xx, yy, temp[3]);
		}
	}
}

// resize_rgb is dlib's bilinear resize_image for images of RGB kind (the
// pyramid's step down), with its 4-pixel loop done by resize_row16 on a
// CPU with AVX-512 (dlib's code otherwise). The columns, their weights and
// where dlib's 4-pixel loop stops are the same on every row: they are
// worked out once, with dlib's float operations in dlib's order.
template <typename image_type1, typename image_type2>
void resize_rgb(const image_type1& in_img_, image_type2& out_img_) {
	using namespace dlib;
	if (!fw_hog_avx512_filter_supported()) {
		resize_image(in_img_, out_img_, interpolate_bilinear());
		return;
	}
	const_image_view<image_type1> in_img(in_img_);
	image_view<image_type2> out_img(out_img_);
	if (out_img.size() == 0 || in_img.size() == 0) return;

	typedef typename image_traits<image_type1>::pixel_type T;
	typedef typename image_traits<image_type2>::pixel_type U;
	static_assert(sizeof(T) == 3 && sizeof(U) == 3, "3-byte pixels");
	T probe;
	const uint8_t* base = (const uint8_t*)&probe;
	const int off[3] = {int((const uint8_t*)&probe.red - base), int((const uint8_t*)&probe.green - base),
	                    int((const uint8_t*)&probe.blue - base)};
	U oprobe;
	const uint8_t* obase = (const uint8_t*)&oprobe;
	if (off[0] != (const uint8_t*)&oprobe.red - obase || off[1] != (const uint8_t*)&oprobe.green - obase ||
	    off[2] != (const uint8_t*)&oprobe.blue - obase) {
		resize_image(in_img_, out_img_, interpolate_bilinear());
		return;
	}

	const double x_scale = (in_img.nc() - 1) / (double)std::max<long>((out_img.nc() - 1), 1);
	const double y_scale = (in_img.nr() - 1) / (double)std::max<long>((out_img.nr() - 1), 1);

	// dlib's column loop, which is the same on every row.
	const size_t cap = (size_t)out_img.nc() + 4;
	std::vector<int32_t> left3(cap);
	std::vector<float> lr(cap), ilr(cap);
	std::vector<uint32_t> px(cap);
	long n = 0;
	{
		const double x = -4 * x_scale;
		const simd4f _x_scale = 4 * x_scale;
		simd4f _x(x, x + x_scale, x + 2 * x_scale, x + 3 * x_scale);
		for (;; n += 4) {
			_x += _x_scale;
			simd4i left = simd4i(_x);
			simd4f lr_frac = _x - left;
			simd4f _inv_lr_frac = 1 - lr_frac;
			simd4i right = left + 1;
			int32 fleft[4];
			int32 fright[4];
			left.store(fleft);
			right.store(fright);
			// (dlib's loop has no other end: its last columns' right
			// pixels are past the input's last.)
			if (fright[3] >= in_img.nc() || n + 4 > out_img.nc()) break;
			for (int i = 0; i < 4; i++) left3[n + i] = 3 * fleft[i];
			lr_frac.store(&lr[n]);
			_inv_lr_frac.store(&ilr[n]);
		}
	}

	double y = -y_scale;
	for (long r = 0; r < out_img.nr(); ++r) {
		y += y_scale;
		const long top = static_cast<long>(std::floor(y));
		const long bottom = std::min(top + 1, in_img.nr() - 1);
		const double tb_frac = y - top;
		const float _tb_frac = tb_frac;
		const float _inv_tb_frac = 1 - tb_frac;
		long c = 0;
		if (n > 0) {
			resize_row16((const uint8_t*)&in_img[top][0], (const uint8_t*)&in_img[bottom][0], n, left3.data(),
			             lr.data(), ilr.data(), _tb_frac, _inv_tb_frac, off, px.data());
			U* o = &out_img[r][0];
			for (; c < n; c++) std::memcpy(&o[c], &px[c], 3);
		}
		// dlib's loop for the last columns.
		double x = -x_scale + c * x_scale;
		for (; c < out_img.nc(); ++c) {
			x += x_scale;
			const long left = static_cast<long>(std::floor(x));
			const long right = std::min(left + 1, in_img.nc() - 1);
			const double lr_frac = x - left;

			const T tl = in_img[top][left];
			const T tr = in_img[top][right];
			const T bl = in_img[bottom][left];
			const T br = in_img[bottom][right];

			T temp;
			assign_pixel(temp, 0);
			vector_to_pixel(temp, (1 - tb_frac) * ((1 - lr_frac) * pixel_to_vector<double>(tl) +
			                                       lr_frac * pixel_to_vector<double>(tr)) +
			                          tb_frac * ((1 - lr_frac) * pixel_to_vector<double>(bl) +
			                                     lr_frac * pixel_to_vector<double>(br)));
			assign_pixel(out_img[r][c], temp);
		}
	}
}

// fhog_extractor is dlib's default_fhog_feature_extractor with
// extract_fhog_features done by fhog_extract where it applies (AVX-512,
// an image of RGB kind, cells of more than one pixel).
class fhog_extractor {
public:
	dlib::rectangle image_to_feats(const dlib::rectangle& rect, int cell_size, int filter_rows_padding,
	                               int filter_cols_padding) const {
		return dlib::image_to_fhog(rect, cell_size, filter_rows_padding, filter_cols_padding);
	}
	dlib::rectangle feats_to_image(const dlib::rectangle& rect, int cell_size, int filter_rows_padding,
	                               int filter_cols_padding) const {
		return dlib::fhog_to_image(rect, cell_size, filter_rows_padding, filter_cols_padding);
	}
	template <typename image_type>
	void operator()(const image_type& img, dlib::array<dlib::array2d<float>>& hog, int cell_size,
	                int filter_rows_padding, int filter_cols_padding) const {
		typedef typename dlib::image_traits<image_type>::pixel_type pixel_type;
		extract(img, hog, cell_size, filter_rows_padding, filter_cols_padding,
		        std::integral_constant<bool, dlib::pixel_traits<pixel_type>::rgb>());
	}
	unsigned long get_num_planes() const { return 31; }

private:
	template <typename image_type>
	void extract(const image_type& img, dlib::array<dlib::array2d<float>>& hog, int cell_size,
	             int filter_rows_padding, int filter_cols_padding, std::true_type) const {
		if (cell_size <= 1 || !fw_hog_avx512_filter_supported()) {
			dlib::extract_fhog_features(img, hog, cell_size, filter_rows_padding, filter_cols_padding);
			return;
		}
		fhog_extract(img, hog, cell_size, filter_rows_padding, filter_cols_padding, buf);
		if (hog.size() == 0) hog.resize(31);
	}
	template <typename image_type>
	void extract(const image_type& img, dlib::array<dlib::array2d<float>>& hog, int cell_size,
	             int filter_rows_padding, int filter_cols_padding, std::false_type) const {
		dlib::extract_fhog_features(img, hog, cell_size, filter_rows_padding, filter_cols_padding);
	}

	mutable fhog_buffers buf;
};

inline void serialize(const fhog_extractor&, std::ostream&) {}
inline void deserialize(fhog_extractor&, std::istream&) {}

} // namespace fw

// The pyramid's steps down (pyramid_down<6>, which calls resize_image)
// for the images HOG detection sees, done by fw::resize_rgb.
namespace dlib {
template <>
inline void resize_image<fw::bgr_view, array2d<bgr_pixel>>(const fw::bgr_view& in, array2d<bgr_pixel>& out) {
	fw::resize_rgb(in, out);
}
template <>
inline void resize_image<array2d<bgr_pixel>, array2d<bgr_pixel>>(const array2d<bgr_pixel>& in,
                                                                 array2d<bgr_pixel>& out) {
	fw::resize_rgb(in, out);
}
template <>
inline void resize_image<matrix<rgb_pixel>, array2d<rgb_pixel>>(const matrix<rgb_pixel>& in, array2d<rgb_pixel>& out) {
	fw::resize_rgb(in, out);
}
template <>
inline void resize_image<array2d<rgb_pixel>, array2d<rgb_pixel>>(const array2d<rgb_pixel>& in,
                                                                 array2d<rgb_pixel>& out) {
	fw::resize_rgb(in, out);
}
} // namespace dlib

#endif
