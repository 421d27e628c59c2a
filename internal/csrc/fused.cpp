#include "fused.h"

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

static char *lwr_fused_err(const std::string &s) { return strdup(s.c_str()); }

#ifdef LWR_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#if DNNL_VERSION_MAJOR != 2
#error "lwr's fused convolutions are written for oneDNN 2.x"
#endif

namespace {

dnnl::engine &cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// One primitive per input shape, post-ops and thread count, with the
// weights reordered into the layout it asks for and its own scratchpad.
// A handle may be used from several OS threads: oneDNN 2.x's default
// scratchpad is thread-local to the thread that created the primitive (on
// another, the gemm-based convolution it picks without AVX2 read a null
// buffer), and some implementations size their buffers for the threads
// OpenMP offers the creating thread, a per-thread setting.
struct Prim {
  int64_t n, c, h, w;
  int threads;
  bool relu, sum;
  dnnl::convolution_forward conv;
  dnnl::memory weights, scratchpad;
};

struct Fused {
  torch::Tensor w;  // folded, float32, contiguous [O, I/g, kh, kw]
  torch::Tensor b;  // folded bias, float32 [O]
  int64_t sh, sw, ph, pw, groups;
  std::mutex mu;
  std::vector<Prim> prims;

  Prim &prim(int64_t n, int64_t c, int64_t h, int64_t wd, bool relu, bool sum) {
    int threads = at::get_num_threads();
    for (auto &p : prims)
      if (p.n == n && p.c == c && p.h == h && p.w == wd && p.threads == threads && p.relu == relu && p.sum == sum)
        return p;
    using tag = dnnl::memory::format_tag;
    using dt = dnnl::memory::data_type;
    int64_t o = w.size(0), kh = w.size(2), kw = w.size(3);
    int64_t ho = (h + 2 * ph - kh) / sh + 1, wo = (wd + 2 * pw - kw) / sw + 1;
    dnnl::memory::desc src({n, c, h, wd}, dt::f32, tag::nhwc), dst({n, o, ho, wo}, dt::f32, tag::nhwc);
    dnnl::memory::dims wdims =
        groups == 1 ? dnnl::memory::dims{o, c, kh, kw} : dnnl::memory::dims{groups, o / groups, c / groups, kh, kw};
    dnnl::memory::desc wany(wdims, dt::f32, tag::any), bias({o}, dt::f32, tag::x);
    dnnl::post_ops ops;
    if (sum) ops.append_sum(1.f);
    if (relu) ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src,
                                      wany, bias, dst, {sh, sw}, {ph, pw}, {ph, pw});
    dnnl::convolution_forward::primitive_desc pd(d, attr, cpu_engine());
    dnnl::memory plain({wdims, dt::f32, groups == 1 ? tag::oihw : tag::goihw}, cpu_engine(), w.data_ptr());
    dnnl::memory weights = plain;
    if (pd.weights_desc() != plain.get_desc()) {
      weights = dnnl::memory(pd.weights_desc(), cpu_engine());
      dnnl::stream s(cpu_engine());
      dnnl::reorder(plain, weights).execute(s, plain, weights);
      s.wait();
    }
    prims.push_back(Prim{n, c, h, wd, threads, relu, sum, dnnl::convolution_forward(pd), weights,
                         dnnl::memory(pd.scratchpad_desc(), cpu_engine())});
    return prims.back();
  }
};

}  // namespace

int lwr_fused_available(void) {
  const dnnl_version_t *v = dnnl_version();
  return v->major == DNNL_VERSION_MAJOR && v->minor == DNNL_VERSION_MINOR ? 1 : 0;
}

char *lwr_fused_new(tensor w, tensor gamma, tensor beta, tensor mean, tensor var, double eps, int64_t stride_h,
                    int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t groups, void **out) {
  try {
    if (!lwr_fused_available())
      return lwr_fused_err("fused convolution: oneDNN's headers and library differ in version");
    if (w->dim() != 4 || groups < 1 || w->size(0) % groups != 0)
      return lwr_fused_err("fused convolution: want a weight [O, I/groups, kh, kw] with O divisible by groups");
    if (!w->device().is_cpu()) return lwr_fused_err("fused convolution: the weight is not on the CPU");
    torch::NoGradGuard no_grad;
    auto d = torch::TensorOptions().dtype(torch::kFloat64);
    torch::Tensor s = gamma->to(d) / (var->to(d) + eps).sqrt();
    auto *f = new Fused;
    f->w = (w->to(d) * s.view({-1, 1, 1, 1})).to(torch::kFloat32).contiguous();
    f->b = (beta->to(d) - mean->to(d) * s).to(torch::kFloat32).contiguous();
    f->sh = stride_h, f->sw = stride_w, f->ph = pad_h, f->pw = pad_w, f->groups = groups;
    *out = f;
    return nullptr;
  } catch (const std::exception &e) {
    return lwr_fused_err(std::string("fused convolution: ") + e.what());
  }
}

char *lwr_fused_run(void *h, tensor x, tensor add, int relu, tensor *out) {
  try {
    auto *f = static_cast<Fused *>(h);
    if (x->dim() != 4 || x->scalar_type() != torch::kFloat32 || !x->device().is_cpu())
      return lwr_fused_err("fused convolution: want a float32 input [N, C, H, W] on the CPU");
    int64_t n = x->size(0), c = x->size(1), hh = x->size(2), ww = x->size(3);
    if (c != f->w.size(1) * f->groups)
      return lwr_fused_err("fused convolution: input has " + std::to_string(c) + " channels, weight wants " +
                           std::to_string(f->w.size(1) * f->groups));
    int64_t o = f->w.size(0);
    int64_t ho = (hh + 2 * f->ph - f->w.size(2)) / f->sh + 1, wo = (ww + 2 * f->pw - f->w.size(3)) / f->sw + 1;
    if (ho < 1 || wo < 1) return lwr_fused_err("fused convolution: input smaller than the kernel");
    torch::NoGradGuard no_grad;
    torch::Tensor xc = x->contiguous(at::MemoryFormat::ChannelsLast);
    torch::Tensor y;
    bool sum = add != nullptr;
    if (sum) {
      if (add->sizes() != torch::IntArrayRef({n, o, ho, wo}) || add->scalar_type() != torch::kFloat32 ||
          !add->device().is_cpu())
        return lwr_fused_err("fused convolution: the tensor to add is not float32 [N, O, H', W'] on the CPU");
      y = add->contiguous(at::MemoryFormat::ChannelsLast);
    } else {
      y = torch::empty({n, o, ho, wo},
                       torch::TensorOptions().dtype(torch::kFloat32).memory_format(at::MemoryFormat::ChannelsLast));
    }
    std::lock_guard<std::mutex> lock(f->mu);
    Prim &p = f->prim(n, c, hh, ww, relu != 0, sum);
    dnnl::memory src({{n, c, hh, ww}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::nhwc}, cpu_engine(),
                     xc.data_ptr());
    dnnl::memory dst({{n, o, ho, wo}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::nhwc}, cpu_engine(),
                     y.data_ptr());
    dnnl::memory bias({{o}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::x}, cpu_engine(), f->b.data_ptr());
    dnnl::stream s(cpu_engine());
    p.conv.execute(s, {{DNNL_ARG_SRC, src},
                       {DNNL_ARG_WEIGHTS, p.weights},
                       {DNNL_ARG_BIAS, bias},
                       {DNNL_ARG_DST, dst},
                       {DNNL_ARG_SCRATCHPAD, p.scratchpad}});
    s.wait();
    *out = new torch::Tensor(y);
    return nullptr;
  } catch (const std::exception &e) {
    return lwr_fused_err(std::string("fused convolution: ") + e.what());
  }
}

void lwr_fused_free(void *h) { delete static_cast<Fused *>(h); }

#else

static const char *lwr_fused_missing =
    "fused evaluation needs oneDNN's headers for the oneDNN this libtorch links (Debian: apt-get install "
    "libdnnl-dev, then make setup); PyPI's torch carries its own oneDNN, which lwr cannot call";

int lwr_fused_available(void) { return 0; }

char *lwr_fused_new(tensor, tensor, tensor, tensor, tensor, double, int64_t, int64_t, int64_t, int64_t, int64_t,
                    void **out) {
  *out = nullptr;
  return lwr_fused_err(lwr_fused_missing);
}

char *lwr_fused_run(void *, tensor, tensor, int, tensor *out) {
  *out = nullptr;
  return lwr_fused_err(lwr_fused_missing);
}

void lwr_fused_free(void *) {}

#endif
