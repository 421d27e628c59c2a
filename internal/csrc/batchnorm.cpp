#include "batchnorm.h"

#include "parallel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

// The loops come in an AVX2 and a baseline version picked at load time,
// both without fused multiply-adds (cgo does not pass -ffp-contract=off),
// so that both give the same bits.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LWR_LOOP __attribute__((target_clones("avx2", "default"), optimize("fp-contract=off")))
#elif defined(__GNUC__) && !defined(__clang__)
#define LWR_LOOP __attribute__((optimize("fp-contract=off")))
#else
#define LWR_LOOP
#endif

namespace {

// Partial sums run in float over groups of this many rows, which the
// compiler vectorises, and are added into double between groups.
constexpr int64_t kGroup = 16;

// Rows [r0,r1) of x [m,c]: s += x - k, ss += (x - k)^2 per column.
// Shifting by k (one row of x) keeps the variance exact when the mean is
// large against the spread.
LWR_LOOP void moments(const float *__restrict x, int64_t r0, int64_t r1, int64_t c, const float *__restrict k,
                      double *__restrict s, double *__restrict ss) {
  std::vector<float> buf(2 * c);
  float *__restrict fs = buf.data();
  float *__restrict fss = fs + c;
  for (int64_t r = r0; r < r1;) {
    int64_t e = std::min(r1, r + kGroup);
    std::fill(fs, fs + 2 * c, 0.f);
    for (; r < e; r++) {
      const float *__restrict xr = x + r * c;
      for (int64_t j = 0; j < c; j++) {
        float v = xr[j] - k[j];
        fs[j] += v;
        fss[j] += v * v;
      }
    }
    for (int64_t j = 0; j < c; j++) {
      s[j] += fs[j];
      ss[j] += fss[j];
    }
  }
}

// y = relu(x*a + sh [+ res]) over rows [r0,r1), or without relu
// x*a + sh [+ res]. NaN passes through, as in torch.relu.
LWR_LOOP void normalize(const float *__restrict x, const float *__restrict res, float *__restrict y, int64_t r0,
                        int64_t r1, int64_t c, const float *__restrict a, const float *__restrict sh, bool relu) {
  for (int64_t r = r0; r < r1; r++) {
    const float *xr = x + r * c;
    float *yr = y + r * c;
    if (!relu) {
      const float *rr = res ? res + r * c : nullptr;
      if (rr)
        for (int64_t j = 0; j < c; j++) yr[j] = (xr[j] * a[j] + sh[j]) + rr[j];
      else
        for (int64_t j = 0; j < c; j++) yr[j] = xr[j] * a[j] + sh[j];
    } else if (res) {
      const float *rr = res + r * c;
      for (int64_t j = 0; j < c; j++) {
        float v = (xr[j] * a[j] + sh[j]) + rr[j];
        yr[j] = v <= 0.f ? 0.f : v;
      }
    } else {
      for (int64_t j = 0; j < c; j++) {
        float v = xr[j] * a[j] + sh[j];
        yr[j] = v <= 0.f ? 0.f : v;
      }
    }
  }
}

// Backward sums over rows [r0,r1) of gm, ReLU's gradient, and of
// gm*(x - mean): sg += gm, sgx += gm*(x - mean). Without a shortcut, gm is
// g where x*a + sh > 0 (the forward's ReLU input, recomputed to the bit);
// with one, g where y > 0, and gm is written to ds (the shortcut's
// gradient), which gradInput then reads in place of g and y. Without
// relu, gm is g (and y is not read).
LWR_LOOP void gradSums(const float *__restrict g, const float *__restrict y, const float *__restrict x,
                       float *__restrict ds, int64_t r0, int64_t r1, int64_t c, const float *__restrict a,
                       const float *__restrict sh, const float *__restrict mean, double *__restrict sg,
                       double *__restrict sgx, bool relu) {
  std::vector<float> buf(2 * c);
  float *__restrict fg = buf.data();
  float *__restrict fgx = fg + c;
  for (int64_t r = r0; r < r1;) {
    int64_t e = std::min(r1, r + kGroup);
    std::fill(fg, fg + 2 * c, 0.f);
    for (; r < e; r++) {
      const float *__restrict gr = g + r * c;
      const float *__restrict xr = x + r * c;
      if (!relu) {
        if (ds) std::copy(gr, gr + c, ds + r * c);
        for (int64_t j = 0; j < c; j++) {
          fg[j] += gr[j];
          fgx[j] += gr[j] * (xr[j] - mean[j]);
        }
      } else if (ds) {
        const float *__restrict yr = y + r * c;
        float *__restrict dr = ds + r * c;
        for (int64_t j = 0; j < c; j++) {
          float gm = yr[j] > 0.f ? gr[j] : 0.f;
          dr[j] = gm;
          fg[j] += gm;
          fgx[j] += gm * (xr[j] - mean[j]);
        }
      } else {
        for (int64_t j = 0; j < c; j++) {
          float gm = xr[j] * a[j] + sh[j] > 0.f ? gr[j] : 0.f;
          fg[j] += gm;
          fgx[j] += gm * (xr[j] - mean[j]);
        }
      }
    }
    for (int64_t j = 0; j < c; j++) {
      sg[j] += fg[j];
      sgx[j] += fgx[j];
    }
  }
}

// dx = gm*k1 + x*k2 + k3 over rows [r0,r1), gm as in gradSums: read from
// ds when it is not NULL, else from g and x (g itself without relu).
LWR_LOOP void gradInput(const float *__restrict g, const float *__restrict ds, const float *__restrict x,
                        float *__restrict dx, int64_t r0, int64_t r1, int64_t c, const float *__restrict a,
                        const float *__restrict sh, const float *__restrict k1, const float *__restrict k2,
                        const float *__restrict k3, bool relu) {
  for (int64_t r = r0; r < r1; r++) {
    const float *__restrict xr = x + r * c;
    float *__restrict dr = dx + r * c;
    if (ds || !relu) {
      const float *__restrict gm = ds ? ds + r * c : g + r * c;
      for (int64_t j = 0; j < c; j++) dr[j] = (gm[j] * k1[j] + xr[j] * k2[j]) + k3[j];
    } else {
      const float *__restrict gr = g + r * c;
      for (int64_t j = 0; j < c; j++) {
        float gm = xr[j] * a[j] + sh[j] > 0.f ? gr[j] : 0.f;
        dr[j] = (gm * k1[j] + xr[j] * k2[j]) + k3[j];
      }
    }
  }
}

// Rows per block: about 32k values, whatever the width. Blocks are the
// unit of work, and the reductions add their partial sums in block order,
// so the sums do not depend on the number of threads.
int64_t blockRows(int64_t c) { return std::max<int64_t>(1, 32768 / c); }

// Layout is the activations as rows of values, cut into units of work.
// Channels-last x [N,C,H,W] is N*H*W rows of C values, in units of
// blockRows(C) rows. oneDNN's blocked x [N,C/b,H,W,b] (contiguous) is
// N*(C/b) planes of H*W*b values; plane n*(C/b) + g holds channels
// [g*b, g*b + b) of image n. A plane is read as rows of t*b values (t
// pixels a row, t the largest of 8, 4, 2, 1 that divides H*W), so that
// the loops run over more than one vector of b = 8 floats, and a unit is
// the planes of one channel group for about 32k values' worth of
// consecutive images. Column i of a row is channel channel(i).
struct Layout {
  int64_t m;       // rows
  int64_t width;   // values per row
  int64_t groups;  // channel groups: 1 channels-last, C/b blocked
  int64_t block;   // channels per group: C channels-last, b blocked
  int64_t rows;    // rows per unit (channels-last) or per plane (blocked)
  int64_t images;  // N
  int64_t per;     // blocked: images per unit
  bool blocked;

  static Layout of(const torch::Tensor &x) {
    if (x.dim() == 5) {
      int64_t b = x.size(4), hw = x.size(2) * x.size(3), t = 8;
      while (hw % t != 0) t /= 2;
      return Layout{
          x.numel() / (b * t), b * t, x.size(1), b, hw / t, x.size(0), std::max<int64_t>(1, 32768 / (hw * b)), true};
    }
    int64_t c = x.size(1);
    return Layout{x.numel() / c, c, 1, c, blockRows(c), 0, 0, false};
  }
  int64_t channels() const { return block * groups; }
  int64_t columns() const { return width * groups; }        // per-column arrays' length
  int64_t count() const { return m * width / channels(); }  // values per channel
  int64_t units() const { return blocked ? (images + per - 1) / per * groups : (m + rows - 1) / rows; }
  int64_t offset(int64_t k) const { return (k % groups) * width; }  // unit k's first column
  int64_t channel(int64_t i) const { return i / width * block + i % width % block; }
  at::MemoryFormat format() const { return blocked ? at::MemoryFormat::Contiguous : at::MemoryFormat::ChannelsLast; }
  // f(r0, r1, off) for each run of rows [r0,r1) of unit k, off their first column.
  template <typename F>
  void unitRows(int64_t k, const F &f) const {
    if (!blocked) {
      f(k * rows, std::min(m, (k + 1) * rows), int64_t(0));
      return;
    }
    int64_t g = k % groups, n0 = k / groups * per, n1 = std::min(images, n0 + per);
    for (int64_t n = n0; n < n1; n++) {
      int64_t p = n * groups + g;
      f(p * rows, (p + 1) * rows, g * width);
    }
  }
  // Per-channel values v [channels] as per-column ones [columns].
  template <typename T>
  std::vector<float> columnsOf(const T *v) const {
    std::vector<float> out(columns());
    for (int64_t i = 0; i < columns(); i++) out[i] = (float)v[channel(i)];
    return out;
  }
  // The first value of each channel, in channel order.
  std::vector<float> firsts(const float *x) const {
    std::vector<float> k(channels());
    for (int64_t g = 0; g < groups; g++)
      std::copy(x + g * rows * width, x + g * rows * width + block, k.begin() + g * block);
    return k;
  }
};

// Per-channel sums in double, two kinds at once: f(r0, r1, off, a, b) adds
// rows [r0,r1), whose first column is off, into a and b [width]; the
// totals land in a and b [channels]. Units' sums are added in unit order,
// then columns into their channels.
template <typename F>
void columnSums(const Layout &l, double *a, double *b, const F &f) {
  int64_t units = l.units(), w = l.width, c = l.channels(), cols = l.columns();
  std::vector<double> part(units * 2 * w, 0.0);
  lwr_parallel::eachUnit(units, [&](int64_t k) {
    double *pa = &part[2 * k * w], *pb = &part[(2 * k + 1) * w];
    l.unitRows(k, [&](int64_t r0, int64_t r1, int64_t off) { f(r0, r1, off, pa, pb); });
  });
  std::vector<double> ca(cols, 0.0), cb(cols, 0.0);
  for (int64_t k = 0; k < units; k++) {
    int64_t off = l.offset(k);
    for (int64_t j = 0; j < w; j++) {
      ca[off + j] += part[2 * k * w + j];
      cb[off + j] += part[(2 * k + 1) * w + j];
    }
  }
  std::fill(a, a + c, 0.0);
  std::fill(b, b + c, 0.0);
  for (int64_t i = 0; i < cols; i++) {
    a[l.channel(i)] += ca[i];
    b[l.channel(i)] += cb[i];
  }
}

// f(r0, r1, off) over the units' rows, off the first column of rows [r0,r1).
template <typename F>
void eachRows(const Layout &l, const F &f) {
  lwr_parallel::eachUnit(l.units(), [&](int64_t k) { l.unitRows(k, f); });
}

bool fits(const torch::Tensor &t, int64_t c) {
  return t.defined() && t.device().is_cpu() && t.scalar_type() == at::kFloat && t.dim() == 1 && t.size(0) == c;
}

struct BNReLU : public torch::autograd::Function<BNReLU> {
  // res is a 0-element tensor when there is no shortcut (autograd's apply
  // takes no undefined inputs).
  static torch::Tensor forward(torch::autograd::AutogradContext *ctx, torch::Tensor x, torch::Tensor res,
                               torch::Tensor w, torch::Tensor b, torch::Tensor rmean, torch::Tensor rvar,
                               double momentum, double eps, bool relu) {
    Layout l = Layout::of(x);
    int64_t c = l.channels(), rw = l.width, m = l.count();
    const float *xp = x.data_ptr<float>();
    std::vector<float> k = l.firsts(xp), kc = l.columnsOf(k.data());
    std::vector<double> s(c), ss(c);
    columnSums(l, s.data(), ss.data(), [&](int64_t r0, int64_t r1, int64_t off, double *a, double *bb) {
      moments(xp, r0, r1, rw, &kc[off], a, bb);
    });
    auto opts = torch::TensorOptions().dtype(at::kDouble);
    auto mean = torch::empty({c}, opts), invstd = torch::empty({c}, opts);
    auto fopts = torch::TensorOptions().dtype(at::kFloat);
    auto a = torch::empty({c}, fopts), sh = torch::empty({c}, fopts), bmean = torch::empty({c}, fopts),
         bvar = torch::empty({c}, fopts);
    double *mp = mean.data_ptr<double>(), *ip = invstd.data_ptr<double>();
    float *ap = a.data_ptr<float>(), *shp = sh.data_ptr<float>(), *bmp = bmean.data_ptr<float>(),
          *bvp = bvar.data_ptr<float>();
    auto wc = w.contiguous(), bc = b.contiguous();
    const float *wp = wc.data_ptr<float>(), *bp = bc.data_ptr<float>();
    for (int64_t j = 0; j < c; j++) {
      double d = s[j] / m, var = std::max(0.0, ss[j] / m - d * d), mu = (double)k[j] + d;
      double is = 1.0 / std::sqrt(var + eps);
      mp[j] = mu;
      ip[j] = is;
      ap[j] = (float)(wp[j] * is);
      shp[j] = (float)(bp[j] - mu * wp[j] * is);
      bmp[j] = (float)mu;
      bvp[j] = (float)(var * m / (m - 1));
    }
    {
      torch::NoGradGuard no_grad;
      rmean.mul_(1 - momentum).add_(bmean, momentum);
      rvar.mul_(1 - momentum).add_(bvar, momentum);
    }
    bool shortcut = res.numel() > 0;
    torch::Tensor rc;
    const float *rp = nullptr;
    if (shortcut) {
      rc = res.contiguous(l.format());
      rp = rc.data_ptr<float>();
    }
    auto y = torch::empty_like(x, l.format());
    float *yp = y.data_ptr<float>();
    std::vector<float> ac = l.columnsOf(ap), shc = l.columnsOf(shp);
    eachRows(
        l, [&](int64_t r0, int64_t r1, int64_t off) { normalize(xp, rp, yp, r0, r1, rw, &ac[off], &shc[off], relu); });
    // y only with a shortcut and ReLU: without a shortcut, backward
    // recomputes ReLU's mask from x; without ReLU there is none.
    ctx->save_for_backward({x, shortcut && relu ? y : torch::Tensor(), wc, mean, invstd, a, sh});
    ctx->saved_data["shortcut"] = shortcut;
    ctx->saved_data["relu"] = relu;
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext *ctx,
                                               torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    auto x = saved[0], y = saved[1], w = saved[2], mean = saved[3], invstd = saved[4], a = saved[5], sh = saved[6];
    bool shortcut = ctx->saved_data["shortcut"].toBool(), relu = ctx->saved_data["relu"].toBool();
    Layout l = Layout::of(x);
    auto g = grads[0].contiguous(l.format());
    int64_t c = l.channels(), rw = l.width, m = l.count();
    torch::Tensor ds;
    float *dsp = nullptr;
    if (shortcut) {
      ds = torch::empty_like(x, l.format());
      dsp = ds.data_ptr<float>();
    }
    const float *gp = g.data_ptr<float>(), *yp = shortcut && relu ? y.data_ptr<float>() : nullptr,
                *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>(), *ap = a.data_ptr<float>(),
                *shp = sh.data_ptr<float>();
    const double *mp = mean.data_ptr<double>(), *ip = invstd.data_ptr<double>();
    std::vector<float> mc = l.columnsOf(mp), ac = l.columnsOf(ap), shc = l.columnsOf(shp);
    std::vector<double> sg(c), sgx(c);
    columnSums(l, sg.data(), sgx.data(), [&](int64_t r0, int64_t r1, int64_t off, double *a, double *b) {
      gradSums(gp, yp, xp, dsp, r0, r1, rw, &ac[off], &shc[off], &mc[off], a, b, relu);
    });
    auto fopts = torch::TensorOptions().dtype(at::kFloat);
    auto dw = torch::empty({c}, fopts), db = torch::empty({c}, fopts);
    float *dwp = dw.data_ptr<float>(), *dbp = db.data_ptr<float>();
    std::vector<float> k1(c), k2(c), k3(c);
    for (int64_t j = 0; j < c; j++) {
      double is = ip[j], a = wp[j] * is, q = a * is * is * sgx[j] / m;
      dbp[j] = (float)sg[j];
      dwp[j] = (float)(sgx[j] * is);
      k1[j] = (float)a;
      k2[j] = (float)(-q);
      k3[j] = (float)(-a * sg[j] / m + mp[j] * q);
    }
    std::vector<float> k1c = l.columnsOf(k1.data()), k2c = l.columnsOf(k2.data()), k3c = l.columnsOf(k3.data());
    auto dx = torch::empty_like(x, l.format());
    float *dxp = dx.data_ptr<float>();
    eachRows(l, [&](int64_t r0, int64_t r1, int64_t off) {
      gradInput(gp, dsp, xp, dxp, r0, r1, rw, &ac[off], &shc[off], &k1c[off], &k2c[off], &k3c[off], relu);
    });
    torch::Tensor none;
    return {dx, shortcut ? ds : none, dw, db, none, none, none, none, none};
  }
};

}  // namespace

char *lwr_bn_relu(tensor x, tensor res, tensor w, tensor b, tensor mean, tensor var, double momentum, double eps,
                  int relu, tensor *out) {
  *out = nullptr;
  try {
    if (!x->device().is_cpu() || x->scalar_type() != at::kFloat || x->numel() < 1) return nullptr;
    bool cl = x->dim() == 4 && x->is_contiguous(at::MemoryFormat::ChannelsLast),
         blocked = x->dim() == 5 && x->is_contiguous();
    if (!cl && !blocked) return nullptr;
    int64_t c = cl ? x->size(1) : x->size(1) * x->size(4), m = x->numel() / c;
    if (m < 2 || !fits(*w, c) || !fits(*b, c) || !fits(*mean, c) || !fits(*var, c) || !mean->is_contiguous() ||
        !var->is_contiguous())
      return nullptr;
    if (res && (!res->device().is_cpu() || res->scalar_type() != at::kFloat || res->sizes() != x->sizes()))
      return nullptr;
    torch::Tensor r = res ? *res : torch::empty({0}, x->options());
    *out = new torch::Tensor(BNReLU::apply(*x, r, *w, *b, *mean, *var, momentum, eps, relu != 0));
    return nullptr;
  } catch (const std::exception &e) {
    return strdup(e.what());
  }
}
