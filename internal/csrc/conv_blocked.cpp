#include "conv_blocked.h"

#include "winograd.h"

#include <cstring>
#include <string>
#include <tuple>

static char *lwr_conv_err(const std::string &s) { return strdup(s.c_str()); }

#ifdef LWR_DNNL
#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#if DNNL_VERSION_MAJOR != 2
#error "lwr's blocked convolutions are written for oneDNN 2.x"
#endif

namespace {

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

dnnl::engine &engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

tag blockTag(int64_t b) { return b == 16 ? tag::nChw16c : tag::nChw8c; }

// One convolution's shape: N, C, H, W, O, kh, kw, stride, pad, b, plain
// input (1) or blocked (0), libtorch's thread count (some
// implementations size their buffers for the threads OpenMP offers), and
// its algorithm (a Try).
using Key = std::array<int64_t, 13>;

// The algorithms of lwr_conv_blocked, as conv_blocked.h numbers them.
enum { algAuto = 0, algDirect = 1, algWinograd = 2 };

// What a convolution runs: oneDNN's direct convolutions, oneDNN's
// Winograd (AVX-512, 16-channel blocks; oneDNN may still decline, prims),
// or lwr's own Winograd (AVX2, 8-channel blocks: winograd.h).
enum Try { tryDirect = 0, tryDNNL = 1, tryOwn = 2 };

// Whether lwr's own Winograd runs here: a CPU with AVX2 and FMA, and
// oneDNN allowed AVX2 (DNNL_MAX_CPU_ISA may cap it below).
bool ownWinograd() {
  static const bool ok = lwr_wino::available() &&
                         (static_cast<int>(dnnl::get_effective_cpu_isa()) & dnnl_cpu_isa_avx2) == dnnl_cpu_isa_avx2;
  return ok;
}

// What a convolution of key k (its last entry aside) asked for alg runs.
// winograd: oneDNN's wherever the shape is 3×3, stride 1, from a blocked
// input in blocks of 16; lwr's in blocks of 8 with pad 1. auto: only where
// it measured faster than direct (BENCHMARKS.md): in blocks of 16,
// oneDNN's at pad 1 with at least 32 channels in and out (twelfth
// session); in blocks of 8, lwr's at pad 1 with 16 to 256 channels in and
// out (thirteenth session: at 512, ResNet-50's last stage, it was slower).
Try tryOf(const Key &k, int64_t alg) {
  bool fits = k[5] == 3 && k[6] == 3 && k[7] == 1 && k[10] == 0;
  if (!fits || alg == algDirect) return tryDirect;
  if (k[9] == 8) {
    bool measured = k[1] >= 16 && k[4] >= 16 && k[1] <= 256 && k[4] <= 256;
    return k[8] == 1 && ownWinograd() && (alg == algWinograd || measured) ? tryOwn : tryDirect;
  }
  if (alg == algWinograd || (k[8] == 1 && k[1] >= 32 && k[4] >= 32)) return tryDNNL;
  return tryDirect;
}

// Whether oneDNN fell back to its reference implementation, which is
// correct but can be a thousand times slower (a first convolution's weight
// gradient from one input channel, or backward below AVX2).
bool reference(const char *impl) { return std::strncmp(impl, "ref", 3) == 0; }

// The primitives of one shape, each built when first needed. Scratchpads
// are the caller's (per call), so a primitive may run on any thread. A
// part whose primitive is oneDNN's reference implementation runs as
// libtorch's convolution instead (the *Ref flags). own: lwr's Winograd
// runs all three passes, and none of oneDNN's primitives is built.
struct Prims {
  bool own = false;
  dnnl::convolution_forward::primitive_desc fwd;
  dnnl::convolution_forward fwdP;
  bool fwdRef = false, dataRef = false, weightsRef = false;
  std::unique_ptr<dnnl::convolution_backward_data::primitive_desc> data;
  dnnl::convolution_backward_data dataP;
  std::unique_ptr<dnnl::convolution_backward_weights::primitive_desc> weights;
  dnnl::convolution_backward_weights weightsP;
  dnnl::memory::desc src, dst, wany;
  dnnl::memory::dims strides, pads;
  dnnl::algorithm alg = dnnl::algorithm::convolution_direct;
};

std::mutex mu;
std::map<Key, std::unique_ptr<Prims>> cache;

dnnl::primitive_attr userScratchpad() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

// winograd sets p (its descs filled in) to oneDNN's Winograd primitives,
// all three passes built now; false, p's primitives unset, where oneDNN
// has no Winograd implementation of them on this CPU (below AVX-512, or
// capped by DNNL_MAX_CPU_ISA) or only its reference one.
bool winograd(Prims &p) {
  auto w = dnnl::algorithm::convolution_winograd;
  try {
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training, w, p.src, p.wany, p.dst, p.strides, p.pads,
                                      p.pads);
    dnnl::convolution_forward::primitive_desc f(d, userScratchpad(), engine());
    auto data = std::make_unique<dnnl::convolution_backward_data::primitive_desc>(
        dnnl::convolution_backward_data::desc(w, p.src, p.wany, p.dst, p.strides, p.pads, p.pads), userScratchpad(),
        engine(), f);
    auto weights = std::make_unique<dnnl::convolution_backward_weights::primitive_desc>(
        dnnl::convolution_backward_weights::desc(w, p.src, p.wany, p.dst, p.strides, p.pads, p.pads), userScratchpad(),
        engine(), f);
    if (reference(f.impl_info_str()) || reference(data->impl_info_str()) || reference(weights->impl_info_str()))
      return false;
    p.fwd = f;
    p.fwdP = dnnl::convolution_forward(p.fwd);
    p.data = std::move(data);
    p.dataP = dnnl::convolution_backward_data(*p.data);
    p.weights = std::move(weights);
    p.weightsP = dnnl::convolution_backward_weights(*p.weights);
    p.alg = w;
    return true;
  } catch (const dnnl::error &) {
    return false;
  }
}

Prims &prims(const Key &k) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(k);
  if (it != cache.end()) return *it->second;
  int64_t n = k[0], c = k[1], h = k[2], w = k[3], o = k[4], kh = k[5], kw = k[6], s = k[7], p = k[8], b = k[9];
  int64_t ho = (h + 2 * p - kh) / s + 1, wo = (w + 2 * p - kw) / s + 1;
  auto pr = std::make_unique<Prims>();
  pr->src = dnnl::memory::desc({n, c, h, w}, dt::f32, k[10] ? tag::nchw : blockTag(b));
  pr->dst = dnnl::memory::desc({n, o, ho, wo}, dt::f32, blockTag(b));
  pr->wany = dnnl::memory::desc({o, c, kh, kw}, dt::f32, tag::any);
  pr->strides = {s, s};
  pr->pads = {p, p};
  if (k[12] == tryOwn) {
    pr->own = true;
  } else if (k[12] != tryDNNL || !winograd(*pr)) {
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training, pr->alg, pr->src, pr->wany, pr->dst,
                                      pr->strides, pr->pads, pr->pads);
    pr->fwd = dnnl::convolution_forward::primitive_desc(d, userScratchpad(), engine());
    pr->fwdP = dnnl::convolution_forward(pr->fwd);
    pr->fwdRef = reference(pr->fwd.impl_info_str());
  }
  return *cache.emplace(k, std::move(pr)).first->second;
}

dnnl::convolution_backward_data::primitive_desc &dataPrim(Prims &p) {
  std::lock_guard<std::mutex> lock(mu);
  if (!p.data) {
    dnnl::convolution_backward_data::desc d(p.alg, p.src, p.wany, p.dst, p.strides, p.pads, p.pads);
    p.data.reset(new dnnl::convolution_backward_data::primitive_desc(d, userScratchpad(), engine(), p.fwd));
    p.dataP = dnnl::convolution_backward_data(*p.data);
    p.dataRef = reference(p.data->impl_info_str());
  }
  return *p.data;
}

dnnl::convolution_backward_weights::primitive_desc &weightsPrim(Prims &p) {
  std::lock_guard<std::mutex> lock(mu);
  if (!p.weights) {
    dnnl::convolution_backward_weights::desc d(p.alg, p.src, p.wany, p.dst, p.strides, p.pads, p.pads);
    p.weights.reset(new dnnl::convolution_backward_weights::primitive_desc(d, userScratchpad(), engine(), p.fwd));
    p.weightsP = dnnl::convolution_backward_weights(*p.weights);
    p.weightsRef = reference(p.weights->impl_info_str());
  }
  return *p.weights;
}

// The memory of a float32 tensor of dims, as its strides lay it out.
dnnl::memory strided(const torch::Tensor &t, const dnnl::memory::dims &dims) {
  dnnl::memory::dims st(t.strides().begin(), t.strides().end());
  return dnnl::memory(dnnl::memory::desc(dims, dt::f32, st), engine(), t.data_ptr());
}

// m in the layout want: m itself, or a reordered copy.
dnnl::memory as(dnnl::memory m, const dnnl::memory::desc &want, dnnl::stream &s) {
  if (m.get_desc() == want) return m;
  dnnl::memory r(want, engine());
  dnnl::reorder(m, r).execute(s, m, r);
  return r;
}

// A scratchpad of d's size: this thread's, kept from one call to the next
// and grown as needed. Winograd's are large (up to 134 MiB for ResNet-50's
// 512-channel weight gradient at batch 32), and glibc maps blocks over
// 32 MiB afresh on each allocation (libtorch.KeepHeap), whose page faults
// cost what Winograd saves. Each call uses it only while it runs, and a
// primitive runs on the thread that called it.
torch::Tensor scratchpad(const dnnl::memory::desc &d) {
  thread_local torch::Tensor buf;
  int64_t n = std::max<int64_t>(1, d.get_size());
  if (!buf.defined() || buf.numel() < n) {
    buf = torch::Tensor();
    buf = torch::empty({n}, torch::TensorOptions().dtype(torch::kUInt8));
  }
  return buf;
}

dnnl::memory onto(const torch::Tensor &t, const dnnl::memory::desc &d) {
  return dnnl::memory(d, engine(), t.data_ptr());
}

// Blocked x [N,C/b,H,W,b] as [N,C,H,W], and back.
torch::Tensor unblocked(const torch::Tensor &x) {
  return x.permute({0, 1, 4, 2, 3}).reshape({x.size(0), x.size(1) * x.size(4), x.size(2), x.size(3)});
}
torch::Tensor blocked(const torch::Tensor &x, int64_t b) {
  return x.reshape({x.size(0), x.size(1) / b, b, x.size(2), x.size(3)}).permute({0, 1, 3, 4, 2}).contiguous();
}

// libtorch's gradients of the convolution (the parts in mask) from plain
// x and g, where oneDNN offers only its reference implementation.
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> libtorchGrads(const torch::Tensor &g, const torch::Tensor &x,
                                                                      const torch::Tensor &w, int64_t stride,
                                                                      int64_t pad, std::array<bool, 3> mask) {
  return at::convolution_backward(g, x, w, c10::nullopt, {stride, stride}, {pad, pad}, {1, 1}, false, {0, 0}, 1, mask);
}

Key keyOf(const torch::Tensor &x, const torch::Tensor &w, int64_t b, int64_t stride, int64_t pad, int64_t alg) {
  bool plain = x.dim() == 4;
  int64_t c = plain ? x.size(1) : x.size(1) * b;
  Key k{x.size(0), c,      x.size(2), x.size(3), w.size(0),     w.size(2),
        w.size(3), stride, pad,       b,         plain ? 1 : 0, (int64_t)at::get_num_threads(),
        0};
  k[12] = tryOf(k, alg);
  return k;
}

struct ConvBlocked : public torch::autograd::Function<ConvBlocked> {
  static torch::Tensor forward(torch::autograd::AutogradContext *ctx, torch::Tensor x, torch::Tensor w, int64_t b,
                               int64_t stride, int64_t pad, int64_t alg) {
    torch::Tensor xc = x.dim() == 4 ? x.contiguous() : x;
    Key k = keyOf(xc, w, b, stride, pad, alg);
    Prims &p = prims(k);
    ctx->save_for_backward({xc, w});
    ctx->saved_data["b"] = b;
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["pad"] = pad;
    ctx->saved_data["alg"] = alg;
    if (p.own) {
      torch::Tensor wc = w.contiguous(), y = torch::empty({k[0], k[4] / b, k[2], k[3], b}, xc.options());
      lwr_wino::forward(xc.data_ptr<float>(), wc.data_ptr<float>(), y.data_ptr<float>(), k[0], k[1], k[2], k[3], k[4]);
      return y;
    }
    if (p.fwdRef) {
      torch::NoGradGuard no_grad;
      return blocked(at::conv2d(xc.dim() == 5 ? unblocked(xc) : xc, w, {}, {stride, stride}, {pad, pad}), b);
    }
    dnnl::stream s(engine());
    dnnl::memory wm = as(strided(w, {k[4], k[1], k[5], k[6]}), p.fwd.weights_desc(), s);
    auto dims = p.dst.dims();
    torch::Tensor y = torch::empty({dims[0], dims[1] / b, dims[2], dims[3], b}, xc.options());
    torch::Tensor sp = scratchpad(p.fwd.scratchpad_desc());
    p.fwdP.execute(s, {{DNNL_ARG_SRC, onto(xc, p.src)},
                       {DNNL_ARG_WEIGHTS, wm},
                       {DNNL_ARG_DST, onto(y, p.dst)},
                       {DNNL_ARG_SCRATCHPAD, onto(sp, p.fwd.scratchpad_desc())}});
    s.wait();
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext *ctx,
                                               torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    torch::Tensor x = saved[0], w = saved[1];
    int64_t b = ctx->saved_data["b"].toInt(), stride = ctx->saved_data["stride"].toInt(),
            pad = ctx->saved_data["pad"].toInt(), alg = ctx->saved_data["alg"].toInt();
    Key k = keyOf(x, w, b, stride, pad, alg);
    Prims &p = prims(k);
    torch::Tensor g = grads[0].contiguous(), dx, dw;
    if (p.own) {
      torch::Tensor wc = w.contiguous();
      if (ctx->needs_input_grad(0)) {
        dx = torch::empty_like(x);
        lwr_wino::backwardData(g.data_ptr<float>(), wc.data_ptr<float>(), dx.data_ptr<float>(), k[0], k[1], k[2], k[3],
                               k[4]);
      }
      if (ctx->needs_input_grad(1)) {
        torch::Tensor d = torch::empty_like(wc);
        lwr_wino::backwardWeights(x.data_ptr<float>(), g.data_ptr<float>(), d.data_ptr<float>(), k[0], k[1], k[2], k[3],
                                  k[4]);
        dw = w.is_contiguous() ? d : torch::empty_strided(w.sizes(), w.strides(), w.options()).copy_(d);
      }
      torch::Tensor none;
      return {dx, dw, none, none, none, none};
    }
    dnnl::stream s(engine());
    if (ctx->needs_input_grad(0)) dataPrim(p);
    if (ctx->needs_input_grad(1)) weightsPrim(p);
    if ((ctx->needs_input_grad(0) && p.dataRef) || (ctx->needs_input_grad(1) && p.weightsRef)) {
      torch::NoGradGuard no_grad;
      bool bx = x.dim() == 5;
      auto r = libtorchGrads(unblocked(g), bx ? unblocked(x) : x, w, stride, pad,
                             {ctx->needs_input_grad(0) && p.dataRef, ctx->needs_input_grad(1) && p.weightsRef, false});
      if (std::get<0>(r).defined()) dx = bx ? blocked(std::get<0>(r), b) : std::get<0>(r).contiguous();
      if (std::get<1>(r).defined())
        dw = torch::empty_strided(w.sizes(), w.strides(), w.options()).copy_(std::get<1>(r));
    }
    if (ctx->needs_input_grad(0) && !p.dataRef) {
      auto &pd = dataPrim(p);
      dnnl::memory wm = as(strided(w, {k[4], k[1], k[5], k[6]}), pd.weights_desc(), s);
      dx = torch::empty_like(x);
      torch::Tensor sp = scratchpad(pd.scratchpad_desc());
      p.dataP.execute(s, {{DNNL_ARG_DIFF_DST, onto(g, p.dst)},
                          {DNNL_ARG_WEIGHTS, wm},
                          {DNNL_ARG_DIFF_SRC, onto(dx, p.src)},
                          {DNNL_ARG_SCRATCHPAD, onto(sp, pd.scratchpad_desc())}});
    }
    if (ctx->needs_input_grad(1) && !p.weightsRef) {
      auto &pd = weightsPrim(p);
      dnnl::memory dwm(pd.diff_weights_desc(), engine());
      torch::Tensor sp = scratchpad(pd.scratchpad_desc());
      p.weightsP.execute(s, {{DNNL_ARG_SRC, onto(x, p.src)},
                             {DNNL_ARG_DIFF_DST, onto(g, p.dst)},
                             {DNNL_ARG_DIFF_WEIGHTS, dwm},
                             {DNNL_ARG_SCRATCHPAD, onto(sp, pd.scratchpad_desc())}});
      dw = torch::empty_strided(w.sizes(), w.strides(), w.options());
      dnnl::memory out = strided(dw, {k[4], k[1], k[5], k[6]});
      dnnl::reorder(dwm, out).execute(s, dwm, out);
    }
    s.wait();
    torch::Tensor none;
    return {dx, dw, none, none, none, none};
  }
};

}  // namespace

int64_t lwr_conv_block(void) {
  try {
    const dnnl_version_t *v = dnnl_version();
    if (v->major != DNNL_VERSION_MAJOR || v->minor != DNNL_VERSION_MINOR) return 0;
    // ResNet-32's middle convolution in training, every layout left to oneDNN.
    dnnl::memory::desc any({128, 32, 16, 16}, dt::f32, tag::any), wany({32, 32, 3, 3}, dt::f32, tag::any);
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, any, wany,
                                      any, {1, 1}, {1, 1}, {1, 1});
    dnnl::convolution_forward::primitive_desc pd(d, engine());
    const dnnl_memory_desc_t &m = pd.src_desc().data;
    if (m.format_kind != dnnl_blocked) return 0;
    const auto &bl = m.format_desc.blocking;
    if (bl.inner_nblks != 1 || bl.inner_idxs[0] != 1) return 0;
    int64_t b = bl.inner_blks[0];
    if (b != 8 && b != 16) return 0;
    // Training also needs both backward passes in that layout, not as
    // oneDNN's reference code (below AVX2 they are).
    auto blk = dnnl::memory::desc({128, 32, 16, 16}, dt::f32, blockTag(b));
    dnnl::convolution_forward::desc fd(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, blk,
                                       wany, blk, {1, 1}, {1, 1}, {1, 1});
    dnnl::convolution_forward::primitive_desc fpd(fd, engine());
    dnnl::convolution_backward_data::primitive_desc dpd(
        dnnl::convolution_backward_data::desc(dnnl::algorithm::convolution_direct, blk, wany, blk, {1, 1}, {1, 1},
                                              {1, 1}),
        engine(), fpd);
    dnnl::convolution_backward_weights::primitive_desc wpd(
        dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, blk, wany, blk, {1, 1}, {1, 1},
                                                 {1, 1}),
        engine(), fpd);
    if (reference(fpd.impl_info_str()) || reference(dpd.impl_info_str()) || reference(wpd.impl_info_str())) return 0;
    return b;
  } catch (const std::exception &) {
    return 0;
  }
}

namespace {

// check returns why lwr_conv_blocked does not take these arguments, or "".
std::string check(tensor x, tensor w, int64_t b, int64_t stride, int64_t pad, int64_t alg) {
  const dnnl_version_t *v = dnnl_version();
  if (v->major != DNNL_VERSION_MAJOR || v->minor != DNNL_VERSION_MINOR)
    return "blocked convolution: oneDNN's headers and library differ in version";
  if (b != 8 && b != 16) return "blocked convolution: block " + std::to_string(b) + ": want 8 or 16";
  if (alg < algAuto || alg > algWinograd)
    return "blocked convolution: algorithm " + std::to_string(alg) + ": want 0 (auto), 1 (direct) or 2 (winograd)";
  if (!x->device().is_cpu() || x->scalar_type() != torch::kFloat32 || !w->device().is_cpu() ||
      w->scalar_type() != torch::kFloat32)
    return "blocked convolution: want float32 tensors on the CPU";
  if (w->dim() != 4 || w->size(0) % b != 0)
    return "blocked convolution: want a weight [O, C, kh, kw] with O a multiple of " + std::to_string(b);
  int64_t c;
  if (x->dim() == 5) {
    if (x->size(4) != b || !x->is_contiguous())
      return "blocked convolution: a 5-d input must be contiguous [N, C/b, H, W, b], b = " + std::to_string(b);
    c = x->size(1) * b;
  } else if (x->dim() == 4) {
    c = x->size(1);
  } else {
    return "blocked convolution: want an input [N, C, H, W] or [N, C/b, H, W, b]";
  }
  if (c != w->size(1))
    return "blocked convolution: input has " + std::to_string(c) + " channels, weight wants " +
           std::to_string(w->size(1));
  if (stride < 1 || pad < 0 || x->size(2) + 2 * pad < w->size(2) || x->size(3) + 2 * pad < w->size(3))
    return "blocked convolution: input smaller than the kernel, or stride < 1 or pad < 0";
  return "";
}

}  // namespace

char *lwr_conv_blocked_algorithm(tensor x, tensor w, int64_t b, int64_t stride, int64_t pad, int64_t alg,
                                 int64_t *used) {
  try {
    std::string e = check(x, w, b, stride, pad, alg);
    if (!e.empty()) return lwr_conv_err(e);
    Prims &p = prims(keyOf(*x, *w, b, stride, pad, alg));  // the shapes only
    *used = p.own || p.alg == dnnl::algorithm::convolution_winograd ? algWinograd : algDirect;
    return nullptr;
  } catch (const std::exception &e) {
    return lwr_conv_err(std::string("blocked convolution: ") + e.what());
  }
}

char *lwr_conv_blocked(tensor x, tensor w, int64_t b, int64_t stride, int64_t pad, int64_t alg, tensor *out) {
  try {
    std::string e = check(x, w, b, stride, pad, alg);
    if (!e.empty()) return lwr_conv_err(e);
    *out = new torch::Tensor(ConvBlocked::apply(*x, *w, b, stride, pad, alg));
    return nullptr;
  } catch (const std::exception &e) {
    return lwr_conv_err(std::string("blocked convolution: ") + e.what());
  }
}

#else

static const char *lwr_conv_missing =
    "blocked convolutions need oneDNN's headers for the oneDNN this libtorch links (Debian: apt-get install "
    "libdnnl-dev, then make setup); PyPI's torch carries its own oneDNN, which lwr cannot call";

int64_t lwr_conv_block(void) { return 0; }

char *lwr_conv_blocked(tensor, tensor, int64_t, int64_t, int64_t, int64_t, tensor *out) {
  *out = nullptr;
  return lwr_conv_err(lwr_conv_missing);
}

char *lwr_conv_blocked_algorithm(tensor, tensor, int64_t, int64_t, int64_t, int64_t, int64_t *used) {
  *used = 0;
  return lwr_conv_err(lwr_conv_missing);
}

#endif
