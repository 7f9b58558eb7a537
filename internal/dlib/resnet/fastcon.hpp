// fast_con_: an inference-only stand-in for dlib's con_ layer whose forward
// pass gives the same floats, bit for bit, at a fraction of the cost of the
// column matrix.
//
// dlib's CPU convolution (dlib::cpu::tensor_conv in Debian's libdlib.so)
// does, for each sample: build the "im2col" matrix T (one row per output
// pixel, one column per filter tap in (channel, filter row, filter column)
// order, zero where the tap falls in the padding) with a generic loop that
// checks the bounds of every element; multiply filters * trans(T) with one
// row-major cblas_sgemm (NoTrans, Trans, alpha 1, beta 0) straight into the
// output sample; then add the biases per channel. This layer builds the same
// T with loops specialised at compile time for the filter size, stride and
// padding (whole filter rows copied, the bounds checked once per row and
// pixel, not per element), into a buffer kept across calls (one the network
// shares among its layers, see set_scratch), and then makes
// the same sgemm call with the same arguments and adds the biases in the same
// order, so every output float is the same as dlib's.
//
// Everything else (parameters, serialisation, training) is dlib's con_: the
// layer derives from it, so it reads and writes the same model files.
#ifndef FW_FASTCON_HPP
#define FW_FASTCON_HPP

#include <cstdint>
#include <cstring>
#include <vector>
#include <dlib/dnn.h>

namespace fw {

// copy_row copies one filter row of FNC floats from row to t. For FNC 3 it
// copies 4, so row[3] must be readable and t[3] is overwritten (by the next
// row, or by the next channel or pixel; the buffer has 4 floats to spare
// after the last row); 7 goes as two overlapping copies of 4. memcpy of 16
// bytes is one vector move on x86-64 (SSE) and arm64 alike.
template <long FNC>
inline void copy_row(float* t, const float* row) {
	if (FNC == 3) {
		std::memcpy(t, row, 4 * sizeof(float));
	} else if (FNC == 7) {
		std::memcpy(t, row, 4 * sizeof(float));
		std::memcpy(t + 3, row + 3, 4 * sizeof(float));
	} else {
		for (long x = 0; x < FNC; ++x) t[x] = row[x];
	}
}

// copy_spare is how many floats copy_row may read or write past the FNC it
// is asked for.
template <long FNC>
constexpr long copy_spare() { return FNC == 3 ? 1 : 0; }

// build_cols writes sample d's (k x h x w floats) column matrix, out_nr *
// out_nc rows of k*FNR*FNC floats, to t: row (r, c) holds, for each channel,
// the FNR x FNC window whose top left corner is (r*SY-PY, c*SX-PX), zero
// outside the image, as dlib's img2col does. t must have copy_spare<FNC>()
// floats to spare after the matrix.
template <long FNR, long FNC, long SY, long SX, long PY, long PX>
void build_cols(float* t, const float* d, long k, long h, long w, long out_nr, long out_nc) {
	const long plane = h * w;
	for (long r = 0; r < out_nr; ++r) {
		const long y0 = r * SY - PY;
		// Filter rows [ylo, yhi) fall inside the image.
		const long ylo = y0 < 0 ? -y0 : 0;
		const long yhi = y0 + FNR > h ? h - y0 : FNR;
		for (long c = 0; c < out_nc; ++c) {
			const long x0 = c * SX - PX;
			const bool inside_x = x0 >= 0 && x0 + FNC <= w;
			if (ylo == 0 && yhi == FNR && x0 >= 0 && x0 + FNC + copy_spare<FNC>() <= w) {
				// The whole window, and what copy_row reads past it, is
				// inside the image: the common case.
				const float* src = d + y0 * w + x0;
				for (long ch = 0; ch < k; ++ch, src += plane) {
					for (long y = 0; y < FNR; ++y) copy_row<FNC>(t + y * FNC, src + y * w);
					t += FNR * FNC;
				}
				continue;
			}
			const float* chan = d;
			for (long ch = 0; ch < k; ++ch, chan += plane) {
				long y = 0;
				for (; y < ylo; ++y)
					for (long x = 0; x < FNC; ++x) *t++ = 0;
				if (inside_x) {
					for (; y < yhi; ++y) {
						const float* row = chan + (y0 + y) * w + x0;
						for (long x = 0; x < FNC; ++x) t[x] = row[x];
						t += FNC;
					}
				} else {
					for (; y < yhi; ++y) {
						const float* row = chan + (y0 + y) * w;
						for (long x = 0; x < FNC; ++x) {
							const long xx = x0 + x;
							t[x] = (xx >= 0 && xx < w) ? row[xx] : 0;
						}
						t += FNC;
					}
				}
				for (; y < FNR; ++y)
					for (long x = 0; x < FNC; ++x) *t++ = 0;
			}
		}
	}
}

template <long NUM_FILTERS, long NR, long NC, int SY, int SX>
class fast_con_ : public dlib::con_<NUM_FILTERS, NR, NC, SY, SX> {
	using base = dlib::con_<NUM_FILTERS, NR, NC, SY, SX>;
	// con_'s default padding for these template arguments.
	static constexpr long PY = SY != 1 ? 0 : NR / 2;
	static constexpr long PX = SX != 1 ? 0 : NC / 2;
	static_assert(NR > 0 && NC > 0, "fast_con_ needs the filter size at compile time");

public:
	fast_con_() = default;
	// The column buffer is scratch: copies start without one, and without
	// the shared one (a copy may run on another thread).
	fast_con_(const fast_con_& o) : base(o), fast_calls_(o.fast_calls_) {}
	fast_con_& operator=(const fast_con_& o) {
		base::operator=(o);
		fast_calls_ = o.fast_calls_;
		scratch_ = nullptr;
		return *this;
	}

	// set_scratch makes the layer build its column matrix in *buf, which
	// the caller keeps alive and gives only to layers that never run at the
	// same time (the layers of one network), instead of a buffer of its own:
	// the 29 layers' matrices add up to about 19 MB, the largest is 3 MB.
	void set_scratch(std::vector<float>* buf) { scratch_ = buf; }

	// fast_calls is how many forward passes took this layer's own path.
	uint64_t fast_calls() const { return fast_calls_; }

	template <typename SUBNET>
	void forward(const SUBNET& sub, dlib::resizable_tensor& output) {
		const dlib::tensor& data = sub.get_output();
		const dlib::tensor& params = this->get_layer_params();
		const long k = data.k();
		const long kdim = k * NR * NC;
		const long nf = this->num_filters();
		const bool bias = !this->bias_is_disabled();
		if (this->padding_y() != PY || this->padding_x() != PX ||
		    (size_t)params.size() != (size_t)(nf * kdim + (bias ? nf : 0)) ||
		    data.nr() + 2 * PY < NR || data.nc() + 2 * PX < NC) {
			// Not a shape this layer was written for: dlib's own path.
			base::forward(sub, output);
			return;
		}
		const long out_nr = 1 + (data.nr() + 2 * PY - NR) / SY;
		const long out_nc = 1 + (data.nc() + 2 * PX - NC) / SX;
		const long npix = out_nr * out_nc;
		output.set_size(data.num_samples(), nf, out_nr, out_nc);
		std::vector<float>& cols = scratch_ ? *scratch_ : own_;
		const size_t need = (size_t)npix * kdim + copy_spare<NC>();
		if (cols.size() < need) cols.resize(need);
		const float* filters = params.host();
		const float* in = data.host();
		float* out = output.host();
		for (long n = 0; n < data.num_samples(); ++n) {
			build_cols<NR, NC, SY, SX, PY, PX>(cols.data(), in + n * k * data.nr() * data.nc(),
			                                   k, data.nr(), data.nc(), out_nr, out_nc);
			// dlib's binding for set_ptrm(out) = mat(filters)*trans(cols).
			dlib::blas_bindings::cblas_gemm(dlib::blas_bindings::CblasRowMajor,
			                                dlib::blas_bindings::CblasNoTrans,
			                                dlib::blas_bindings::CblasTrans,
			                                (int)nf, (int)npix, (int)kdim, 1.0f,
			                                filters, (int)kdim, cols.data(), (int)kdim,
			                                0.0f, out + n * nf * npix, (int)npix);
		}
		if (bias) {
			// dlib's tt::add(1, output, 1, biases): d = 1*d + 1*b, which is d + b.
			const float* b = filters + nf * kdim;
			float* d = out;
			for (long n = 0; n < data.num_samples(); ++n)
				for (long f = 0; f < nf; ++f) {
					const float bf = b[f];
					for (long i = 0; i < npix; ++i) d[i] = d[i] + bf;
					d += npix;
				}
		}
		++fast_calls_;
	}

	friend void serialize(const fast_con_& item, std::ostream& out) {
		serialize(static_cast<const base&>(item), out);
	}
	friend void deserialize(fast_con_& item, std::istream& in) {
		deserialize(static_cast<base&>(item), in);
	}
	friend std::ostream& operator<<(std::ostream& out, const fast_con_& item) {
		return out << static_cast<const base&>(item);
	}
	friend void to_xml(const fast_con_& item, std::ostream& out) {
		to_xml(static_cast<const base&>(item), out);
	}

private:
	std::vector<float>* scratch_ = nullptr;
	std::vector<float> own_;
	uint64_t fast_calls_ = 0;
};

#ifdef DLIB_USE_CUDA
// A CUDA build of dlib runs con_ on the GPU (cuDNN); this layer would bring
// the convolutions back to the CPU, so there the network keeps dlib's.
template <long num_filters, long nr, long nc, int stride_y, int stride_x, typename SUBNET>
using fast_con = dlib::con<num_filters, nr, nc, stride_y, stride_x, SUBNET>;
#else
template <long num_filters, long nr, long nc, int stride_y, int stride_x, typename SUBNET>
using fast_con = dlib::add_layer<fast_con_<num_filters, nr, nc, stride_y, stride_x>, SUBNET>;
#endif

} // namespace fw

#endif
