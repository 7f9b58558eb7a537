// dlib's float_spatially_filter_image_separable for the one set of types
// HOG detection filters with (a float feature plane, float row and column
// filters), included by hog_avx2.cc only, before dlib's HOG code, which then
// calls it in place of dlib's template. It is dlib's code (dlib 19.24,
// spatial_filtering.h) with one change: on a CPU with AVX-512 the columns
// dlib's loops take 8 at a time are taken 16 at a time, with the same
// operations in the same order on every lane, so that each output float is
// bit for bit what dlib's 8-wide loop gives (TestHOGAVX2MatchesPortable);
// the last few columns of a row, which dlib takes one at a time (one sum in
// filter order each), are taken together under a mask, again with each
// lane's operations in dlib's order, four rows at a time (each of those
// sums is a chain of dependent additions: four chains overlap). The 8-wide loop that remains is
// dlib's, for the columns it took before. The AVX-512 loops keep each product and sum
// apart (an empty asm between them), so that GCC, which may contract a
// multiply and an add into an FMA on AVX-512, cannot.
#ifndef FW_HOG_AVX512_HPP
#define FW_HOG_AVX512_HPP

#include <immintrin.h>

namespace fw {

// keep stops GCC from fusing v's computation into the next operation.
#define FW_KEEP(v) __asm__("" : "+v"(v))

// dot16 is 16 lanes of dlib's filter sum: sum over n < nf of
// base[n*step + lane] * f[n], done as dlib does it (three running sums
// over taps n, n+1, n+2, joined as t + (t2 + t3)), each product kept
// apart from its sum.
__attribute__((target("avx512f,avx2"))) inline __m512 dot16(const float* base, long step, const float* f, long nf) {
	__m512 t = _mm512_setzero_ps(), t2 = _mm512_setzero_ps(), t3 = _mm512_setzero_ps();
	long n = 0;
	for (; n < nf - 2; n += 3) {
		__m512 p = _mm512_mul_ps(_mm512_loadu_ps(base + n * step), _mm512_set1_ps(f[n]));
		__m512 p2 = _mm512_mul_ps(_mm512_loadu_ps(base + (n + 1) * step), _mm512_set1_ps(f[n + 1]));
		__m512 p3 = _mm512_mul_ps(_mm512_loadu_ps(base + (n + 2) * step), _mm512_set1_ps(f[n + 2]));
		FW_KEEP(p);
		FW_KEEP(p2);
		FW_KEEP(p3);
		t = _mm512_add_ps(t, p);
		t2 = _mm512_add_ps(t2, p2);
		t3 = _mm512_add_ps(t3, p3);
	}
	for (; n < nf; ++n) {
		__m512 p = _mm512_mul_ps(_mm512_loadu_ps(base + n * step), _mm512_set1_ps(f[n]));
		FW_KEEP(p);
		t = _mm512_add_ps(t, p);
	}
	__m512 s = _mm512_add_ps(t2, t3);
	FW_KEEP(s);
	return _mm512_add_ps(t, s);
}

// row16 filters row in (of the plane) into out, 16 columns at a time from
// c while c < last_col-15, and returns the first column it did not do.
__attribute__((target("avx512f,avx2"))) inline long row16(const float* in, float* out, long c, long first_col,
                                                          long last_col, const float* f, long nf) {
	for (; c < last_col - 15; c += 16) _mm512_storeu_ps(out + c, dot16(in + c - first_col, 1, f, nf));
	return c;
}

// col16 filters the rows of scratch (stride floats apart) starting at top
// into the output row out, 16 columns at a time from c while c <
// last_col-15 (adding to what out holds when add_to), and returns the first
// column it did not do.
__attribute__((target("avx512f,avx2"))) inline long col16(const float* top, long stride, float* out, long c,
                                                          long last_col, const float* f, long nf, bool add_to) {
	for (; c < last_col - 15; c += 16) {
		__m512 t = dot16(top + c, stride, f, nf);
		if (add_to) t = _mm512_add_ps(t, _mm512_loadu_ps(out + c));
		_mm512_storeu_ps(out + c, t);
	}
	return c;
}

// row_tail filters columns c to last_col-1 (fewer than 16) of row in into
// out as dlib's one-column-at-a-time loop does (one sum per column, taken
// in filter order), all columns at once under a mask.
__attribute__((target("avx512f,avx2"))) inline void row_tail(const float* in, float* out, long c, long first_col,
                                                             long last_col, const float* f, long nf) {
	const __mmask16 k = (__mmask16)((1u << (last_col - c)) - 1);
	__m512 t = _mm512_setzero_ps();
	for (long n = 0; n < nf; ++n) {
		__m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, in + c - first_col + n), _mm512_set1_ps(f[n]));
		FW_KEEP(p);
		t = _mm512_add_ps(t, p);
	}
	_mm512_mask_storeu_ps(out + c, k, t);
}

// col_tail is row_tail for the column filter (see col16).
__attribute__((target("avx512f,avx2"))) inline void col_tail(const float* top, long stride, float* out, long c,
                                                             long last_col, const float* f, long nf, bool add_to) {
	const __mmask16 k = (__mmask16)((1u << (last_col - c)) - 1);
	__m512 t = _mm512_setzero_ps();
	for (long m = 0; m < nf; ++m) {
		__m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, top + m * stride + c), _mm512_set1_ps(f[m]));
		FW_KEEP(p);
		t = _mm512_add_ps(t, p);
	}
	if (add_to) t = _mm512_add_ps(_mm512_maskz_loadu_ps(k, out + c), t);
	_mm512_mask_storeu_ps(out + c, k, t);
}

// row_tail4 is row_tail for four rows at once (in[i] into out[i]): the
// same operations on every lane, with the four rows' sums interleaved, so
// that each row's chain of dependent additions overlaps the others'.
__attribute__((target("avx512f,avx2"))) inline void row_tail4(const float* const in[4], float* const out[4], long c,
                                                              long first_col, long last_col, const float* f, long nf) {
	const __mmask16 k = (__mmask16)((1u << (last_col - c)) - 1);
	__m512 t0 = _mm512_setzero_ps(), t1 = _mm512_setzero_ps(), t2 = _mm512_setzero_ps(), t3 = _mm512_setzero_ps();
	for (long n = 0; n < nf; ++n) {
		const __m512 fn = _mm512_set1_ps(f[n]);
		const long o = c - first_col + n;
		__m512 p0 = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, in[0] + o), fn);
		__m512 p1 = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, in[1] + o), fn);
		__m512 p2 = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, in[2] + o), fn);
		__m512 p3 = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, in[3] + o), fn);
		FW_KEEP(p0);
		FW_KEEP(p1);
		FW_KEEP(p2);
		FW_KEEP(p3);
		t0 = _mm512_add_ps(t0, p0);
		t1 = _mm512_add_ps(t1, p1);
		t2 = _mm512_add_ps(t2, p2);
		t3 = _mm512_add_ps(t3, p3);
	}
	_mm512_mask_storeu_ps(out[0] + c, k, t0);
	_mm512_mask_storeu_ps(out[1] + c, k, t1);
	_mm512_mask_storeu_ps(out[2] + c, k, t2);
	_mm512_mask_storeu_ps(out[3] + c, k, t3);
}

// col_tail4 is col_tail for the four output rows out[i], whose filter
// windows start at scratch rows top[i].
__attribute__((target("avx512f,avx2"))) inline void col_tail4(const float* const top[4], long stride,
                                                              float* const out[4], long c, long last_col,
                                                              const float* f, long nf, bool add_to) {
	const __mmask16 k = (__mmask16)((1u << (last_col - c)) - 1);
	__m512 t[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
	for (long m = 0; m < nf; ++m) {
		const __m512 fm = _mm512_set1_ps(f[m]);
		__m512 p0 = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, top[0] + m * stride + c), fm);
		__m512 p1 = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, top[1] + m * stride + c), fm);
		__m512 p2 = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, top[2] + m * stride + c), fm);
		__m512 p3 = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, top[3] + m * stride + c), fm);
		FW_KEEP(p0);
		FW_KEEP(p1);
		FW_KEEP(p2);
		FW_KEEP(p3);
		t[0] = _mm512_add_ps(t[0], p0);
		t[1] = _mm512_add_ps(t[1], p1);
		t[2] = _mm512_add_ps(t[2], p2);
		t[3] = _mm512_add_ps(t[3], p3);
	}
	for (int i = 0; i < 4; i++) {
		if (add_to) t[i] = _mm512_add_ps(_mm512_maskz_loadu_ps(k, out[i] + c), t[i]);
		_mm512_mask_storeu_ps(out[i] + c, k, t[i]);
	}
}

#undef FW_KEEP

} // namespace fw

namespace dlib {

template <>
inline rectangle float_spatially_filter_image_separable<array2d<float>, array2d<float>, matrix<float, 0, 1>, matrix<float, 0, 1>>(
    const array2d<float>& in_img_, array2d<float>& out_img_, const matrix_exp<matrix<float, 0, 1>>& _row_filter,
    const matrix_exp<matrix<float, 0, 1>>& _col_filter, array2d<float>& scratch_, bool add_to) {
	const matrix<float, 0, 1>& row_filter = _row_filter.ref();
	const matrix<float, 0, 1>& col_filter = _col_filter.ref();
	const bool wide = fw_hog_avx512_filter_supported();

	const_image_view<array2d<float>> in_img(in_img_);
	image_view<array2d<float>> out_img(out_img_);
	if (in_img.size() == 0) {
		out_img.clear();
		return rectangle();
	}
	out_img.set_size(in_img.nr(), in_img.nc());

	const long first_row = col_filter.size() / 2;
	const long first_col = row_filter.size() / 2;
	const long last_row = in_img.nr() - ((col_filter.size() - 1) / 2);
	const long last_col = in_img.nc() - ((row_filter.size() - 1) / 2);

	const rectangle non_border = rectangle(first_col, first_row, last_col - 1, last_row - 1);
	if (!add_to) zero_border_pixels(out_img, non_border);

	image_view<array2d<float>> scratch(scratch_);
	scratch.set_size(in_img.nr(), in_img.nc());

	// Where the AVX-512 code's masked last columns start (the same on every
	// row); last_col when there are none.
	long row_tail_c = last_col, col_tail_c = last_col;
	for (long r = 0; r < in_img.nr(); ++r) {
		long c = first_col;
		if (wide) c = fw::row16(&in_img[r][0], &scratch[r][0], c, first_col, last_col, &row_filter(0), row_filter.size());
		for (; c < last_col - 7; c += 8) {
			simd8f p, p2, p3, temp = 0, temp2 = 0, temp3 = 0;
			long n = 0;
			for (; n < row_filter.size() - 2; n += 3) {
				p.load(&in_img[r][c - first_col + n]);
				p2.load(&in_img[r][c - first_col + n + 1]);
				p3.load(&in_img[r][c - first_col + n + 2]);
				temp += p * row_filter(n);
				temp2 += p2 * row_filter(n + 1);
				temp3 += p3 * row_filter(n + 2);
			}
			for (; n < row_filter.size(); ++n) {
				p.load(&in_img[r][c - first_col + n]);
				temp += p * row_filter(n);
			}
			temp += temp2 + temp3;
			temp.store(&scratch[r][c]);
		}
		if (wide && c < last_col) {
			// (done for all rows below)
			row_tail_c = c;
			c = last_col;
		}
		for (; c < last_col; ++c) {
			float p;
			float temp = 0;
			for (long n = 0; n < row_filter.size(); ++n) {
				p = in_img[r][c - first_col + n];
				temp += p * row_filter(n);
			}
			scratch[r][c] = temp;
		}
	}

	if (row_tail_c < last_col) {
		// The rows' last columns, four rows at a time.
		long r = 0;
		for (; r + 4 <= in_img.nr(); r += 4) {
			const float* in4[4] = {&in_img[r][0], &in_img[r + 1][0], &in_img[r + 2][0], &in_img[r + 3][0]};
			float* out4[4] = {&scratch[r][0], &scratch[r + 1][0], &scratch[r + 2][0], &scratch[r + 3][0]};
			fw::row_tail4(in4, out4, row_tail_c, first_col, last_col, &row_filter(0), row_filter.size());
		}
		for (; r < in_img.nr(); ++r)
			fw::row_tail(&in_img[r][0], &scratch[r][0], row_tail_c, first_col, last_col, &row_filter(0),
			             row_filter.size());
	}

	const long stride = scratch.nc();
	for (long r = first_row; r < last_row; ++r) {
		long c = first_col;
		if (wide)
			c = fw::col16(&scratch[r - first_row][0], stride, &out_img[r][0], c, last_col, &col_filter(0),
			              col_filter.size(), add_to);
		for (; c < last_col - 7; c += 8) {
			simd8f p, p2, p3, temp = 0, temp2 = 0, temp3 = 0;
			long m = 0;
			for (; m < col_filter.size() - 2; m += 3) {
				p.load(&scratch[r - first_row + m][c]);
				p2.load(&scratch[r - first_row + m + 1][c]);
				p3.load(&scratch[r - first_row + m + 2][c]);
				temp += p * col_filter(m);
				temp2 += p2 * col_filter(m + 1);
				temp3 += p3 * col_filter(m + 2);
			}
			for (; m < col_filter.size(); ++m) {
				p.load(&scratch[r - first_row + m][c]);
				temp += p * col_filter(m);
			}
			temp += temp2 + temp3;
			if (add_to == false) {
				temp.store(&out_img[r][c]);
			} else {
				p.load(&out_img[r][c]);
				temp += p;
				temp.store(&out_img[r][c]);
			}
		}
		if (wide && c < last_col) {
			// (done for all rows below)
			col_tail_c = c;
			c = last_col;
		}
		for (; c < last_col; ++c) {
			float temp = 0;
			for (long m = 0; m < col_filter.size(); ++m) {
				temp += scratch[r - first_row + m][c] * col_filter(m);
			}
			if (add_to == false) {
				out_img[r][c] = temp;
			} else {
				out_img[r][c] += temp;
			}
		}
	}
	if (col_tail_c < last_col) {
		// The output rows' last columns, four rows at a time.
		long r = first_row;
		for (; r + 4 <= last_row; r += 4) {
			const float* top4[4] = {&scratch[r - first_row][0], &scratch[r + 1 - first_row][0],
			                        &scratch[r + 2 - first_row][0], &scratch[r + 3 - first_row][0]};
			float* out4[4] = {&out_img[r][0], &out_img[r + 1][0], &out_img[r + 2][0], &out_img[r + 3][0]};
			fw::col_tail4(top4, stride, out4, col_tail_c, last_col, &col_filter(0), col_filter.size(), add_to);
		}
		for (; r < last_row; ++r)
			fw::col_tail(&scratch[r - first_row][0], stride, &out_img[r][0], col_tail_c, last_col, &col_filter(0),
			             col_filter.size(), add_to);
	}
	return non_border;
}

} // namespace dlib

#endif
