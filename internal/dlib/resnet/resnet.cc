// dlib_face_recognition_resnet_model_v1: the network definition of dlib's
// dnn_face_recognition_ex.cpp, with batched inference, on fastcon.hpp's
// convolution layer (the same floats as dlib's con_, faster), and the stock
// definition on dlib's con_ to compare it with.
#include "resnet.h"
#include <cstdlib>
#include <memory>
#include <dlfcn.h>
#include <cstring>
#include <dlib/dnn.h>
#include <dlib/rand.h>
#include <dlib/image_transforms.h>
#include "fastcon.hpp"

using namespace dlib;

// The network is written once over its convolution layer: CON is dlib's con
// (the stock network, kept for comparison) or fw::fast_con (the one in use;
// see fastcon.hpp).
template <template <long,long,long,int,int,typename> class CON>
struct resnet_def {
	template <template <int,template<typename>class,int,typename> class block, int N, template<typename>class BN, typename SUBNET>
	using residual = add_prev1<block<N,BN,1,tag1<SUBNET>>>;

	template <template <int,template<typename>class,int,typename> class block, int N, template<typename>class BN, typename SUBNET>
	using residual_down = add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,BN,2,tag1<SUBNET>>>>>>;

	template <int N, template <typename> class BN, int stride, typename SUBNET>
	using block  = BN<CON<N,3,3,1,1,relu<BN<CON<N,3,3,stride,stride,SUBNET>>>>>;

	template <int N, typename SUBNET> using ares      = relu<residual<block,N,affine,SUBNET>>;
	template <int N, typename SUBNET> using ares_down = relu<residual_down<block,N,affine,SUBNET>>;

	template <typename SUBNET> using alevel0 = ares_down<256,SUBNET>;
	template <typename SUBNET> using alevel1 = ares<256,ares<256,ares_down<256,SUBNET>>>;
	template <typename SUBNET> using alevel2 = ares<128,ares<128,ares_down<128,SUBNET>>>;
	template <typename SUBNET> using alevel3 = ares<64,ares<64,ares<64,ares_down<64,SUBNET>>>>;
	template <typename SUBNET> using alevel4 = ares<32,ares<32,ares<32,SUBNET>>>;

	using net_type = loss_metric<fc_no_bias<128,avg_pool_everything<
	                            alevel0<
	                            alevel1<
	                            alevel2<
	                            alevel3<
	                            alevel4<
	                            max_pool<3,3,2,2,relu<affine<CON<32,7,7,2,2,
	                            input_rgb_image_sized<150>
	                            >>>>>>>>>>>>;
};

using stock_net_type = resnet_def<dlib::con>::net_type;
using fast_net_type = resnet_def<fw::fast_con>::net_type;

struct fw_resnet {
	// Exactly one of the two is set.
	std::unique_ptr<fast_net_type> fast;
	std::unique_ptr<stock_net_type> stock;
	// The column matrix buffer fast's convolution layers share.
	std::vector<float> scratch;
	dlib::rand rnd;
};

static char* dup_err(const char* what) {
	size_t n = std::strlen(what);
	char* s = (char*)std::malloc(n + 1);
	if (s) std::memcpy(s, what, n + 1);
	return s;
}

#define FW_TRY try {
#define FW_CATCH(err)                                                          \
	}                                                                          \
	catch (const std::bad_alloc&) { if (err) *err = dup_err("out of memory"); return -1; } \
	catch (const std::exception& e) { if (err) *err = dup_err(e.what()); return -1; }      \
	catch (...) { if (err) *err = dup_err("unknown C++ exception"); return -1; }

static const int chip_size = 150;

namespace {
// Gives fast_con_ layers the network's shared buffer, and ignores other
// layers.
struct share_scratch {
	std::vector<float>* buf;
	template <long F, long NR, long NC, int SY, int SX>
	void operator()(fw::fast_con_<F,NR,NC,SY,SX>& l) const { l.set_scratch(buf); }
	template <typename T>
	void operator()(T&) const {}
};

// Counts the forward passes of fast_con_ layers, and ignores other layers.
struct count_fast {
	uint64_t* calls;
	int* layers;
	template <long F, long NR, long NC, int SY, int SX>
	void operator()(const fw::fast_con_<F,NR,NC,SY,SX>& l) const { *calls += l.fast_calls(); ++*layers; }
	template <typename T>
	void operator()(const T&) const {}
};
}

extern "C" int fw_resnet_new(const char* path, int stock, fw_resnet** out, char** err) {
	FW_TRY
	std::unique_ptr<fw_resnet> r(new fw_resnet);
	if (stock) {
		r->stock.reset(new stock_net_type);
		deserialize(path) >> *r->stock;
	} else {
		r->fast.reset(new fast_net_type);
		deserialize(path) >> *r->fast;
		visit_computational_layers(*r->fast, share_scratch{&r->scratch});
	}
	*out = r.release();
	return 0;
	FW_CATCH(err)
}

template <typename NET>
static void embed(NET& net, dlib::rand& rnd, const uint8_t* chips, int n, int batch, int jitter, float* out) {
	if (batch < 1) batch = 1;
	const size_t chip_bytes = (size_t)chip_size * chip_size * 3;
	std::vector<matrix<rgb_pixel>> imgs;
	if (jitter <= 0) {
		imgs.resize(n);
		for (int i = 0; i < n; i++) {
			imgs[i].set_size(chip_size, chip_size);
			std::memcpy(&imgs[i](0, 0), chips + i * chip_bytes, chip_bytes);
		}
		std::vector<matrix<float,0,1>> descrs = net(imgs, (size_t)batch);
		for (int i = 0; i < n; i++)
			std::memcpy(out + (size_t)i * 128, &descrs[i](0, 0), 128 * sizeof(float));
		return;
	}
	// Jittered: dlib's example averages the descriptors of jitter copies.
	// The generator is reseeded per call so the same chips give the same
	// descriptors.
	rnd = dlib::rand(0);
	for (int i = 0; i < n; i++) {
		matrix<rgb_pixel> m(chip_size, chip_size);
		std::memcpy(&m(0, 0), chips + i * chip_bytes, chip_bytes);
		imgs.clear();
		for (int j = 0; j < jitter; j++)
			imgs.push_back(jitter_image(m, rnd));
		std::vector<matrix<float,0,1>> descrs = net(imgs, (size_t)batch);
		matrix<float,0,1> avg = mean(mat(descrs));
		std::memcpy(out + (size_t)i * 128, &avg(0, 0), 128 * sizeof(float));
	}
}

extern "C" int fw_resnet_embed(fw_resnet* r, const uint8_t* chips, int n, int batch,
                               int jitter, float* out, char** err) {
	FW_TRY
	if (r->fast)
		embed(*r->fast, r->rnd, chips, n, batch, jitter, out);
	else
		embed(*r->stock, r->rnd, chips, n, batch, jitter, out);
	return 0;
	FW_CATCH(err)
}

extern "C" uint64_t fw_resnet_fast_convs(fw_resnet* r, int* layers) {
	uint64_t calls = 0;
	*layers = 0;
	if (r->fast)
		visit_computational_layers(*r->fast, count_fast{&calls, layers});
	return calls;
}

extern "C" void fw_resnet_free(fw_resnet* r) { delete r; }

extern "C" int fw_blas_set_threads(int n) {
	typedef void (*set_fn)(int);
	set_fn f = (set_fn)dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
	if (f == nullptr) return 0;
	f(n);
	return 1;
}
