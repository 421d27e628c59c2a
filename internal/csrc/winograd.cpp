#include "winograd.h"

#include "parallel.h"

#include <algorithm>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

// The AVX2 + FMA code; the rest of lwr is built for baseline x86-64.
#define LWR_AVX2 __attribute__((target("avx2,fma")))

namespace lwr_wino {

namespace {

// Tiles transformed and multiplied together: 48 of them at 64 channels
// keep one chunk's transformed inputs and outputs (192 KiB each) in a
// core's L2 beside the weights' share in use.
constexpr int64_t kTiles = 48;

// A tile's 16 transformed values are positions p = 4r + s of a 4×4 grid.
constexpr int kPos = 16;

// gemm's register block: kRows rows of C by 16 columns (two ymm vectors),
// 12 of the 16 ymm registers as accumulators.
constexpr int kRows = 6;

// kernel: C[i][j] = (add ? C[i][j] : 0) + Σ_k A[i·ai + k·ak] B[k·ldb + j]
// for i < R, j < 8·V, k < K: one register block, R rows and V vectors.
template <int R, int V>
LWR_AVX2 inline void kernel(int64_t K, const float *A, int64_t ai, int64_t ak, const float *B, int64_t ldb, float *C,
                            int64_t ldc, bool add) {
  __m256 acc[R][V];
#pragma GCC unroll 8
  for (int i = 0; i < R; i++)
#pragma GCC unroll 2
    for (int j = 0; j < V; j++) acc[i][j] = add ? _mm256_loadu_ps(C + i * ldc + 8 * j) : _mm256_setzero_ps();
  for (int64_t k = 0; k < K; k++) {
    __m256 b[V];
#pragma GCC unroll 2
    for (int j = 0; j < V; j++) b[j] = _mm256_loadu_ps(B + k * ldb + 8 * j);
    const float *a = A + k * ak;
#pragma GCC unroll 8
    for (int i = 0; i < R; i++) {
      __m256 ai_ = _mm256_broadcast_ss(a + i * ai);
#pragma GCC unroll 2
      for (int j = 0; j < V; j++) acc[i][j] = _mm256_fmadd_ps(ai_, b[j], acc[i][j]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; i++)
#pragma GCC unroll 2
    for (int j = 0; j < V; j++) _mm256_storeu_ps(C + i * ldc + 8 * j, acc[i][j]);
}

template <int V>
LWR_AVX2 void rows(int r, int64_t K, const float *A, int64_t ai, int64_t ak, const float *B, int64_t ldb, float *C,
                   int64_t ldc, bool add) {
  switch (r) {
    case 1:
      return kernel<1, V>(K, A, ai, ak, B, ldb, C, ldc, add);
    case 2:
      return kernel<2, V>(K, A, ai, ak, B, ldb, C, ldc, add);
    case 3:
      return kernel<3, V>(K, A, ai, ak, B, ldb, C, ldc, add);
    case 4:
      return kernel<4, V>(K, A, ai, ak, B, ldb, C, ldc, add);
    case 5:
      return kernel<5, V>(K, A, ai, ak, B, ldb, C, ldc, add);
    default:
      return kernel<kRows, V>(K, A, ai, ak, B, ldb, C, ldc, add);
  }
}

// gemm: C [M, N] (row stride ldc) = (add ? C : 0) + A B, with A [M, K]
// read at A[i·ai + k·ak] (so either A or its transpose in memory) and B
// [K, N] (row stride ldb). N is a multiple of 8.
LWR_AVX2 void gemm(int64_t M, int64_t N, int64_t K, const float *A, int64_t ai, int64_t ak, const float *B, int64_t ldb,
                   float *C, int64_t ldc, bool add) {
  for (int64_t i = 0; i < M; i += kRows) {
    int r = (int)std::min<int64_t>(kRows, M - i);
    for (int64_t j = 0; j < N; j += 16) {
      if (N - j >= 16)
        rows<2>(r, K, A + i * ai, ai, ak, B + j, ldb, C + i * ldc + j, ldc, add);
      else
        rows<1>(r, K, A + i * ai, ai, ak, B + j, ldb, C + i * ldc + j, ldc, add);
    }
  }
}

// One image's geometry in tiles of 2×2 outputs; a batch's tiles are
// numbered image by image, row by row.
struct Tiles {
  int64_t h, w, th, tw;
  Tiles(int64_t h_, int64_t w_) : h(h_), w(w_), th((h_ + 1) / 2), tw((w_ + 1) / 2) {}
  int64_t count() const { return th * tw; }
  // at: the image of tile t, and the tile's row and column in it.
  void at(int64_t t, int64_t &img, int64_t &ty, int64_t &tx) const {
    img = t / count();
    ty = t % count() / tw;
    tx = t % tw;
  }
};

// inputs: V[p][i][c] (p's rows kTiles·cs apart, rows cs apart) = (Bᵀ d B)[p]
// for tiles t0 + i, i < nt, of the batch x [n, cs/8, h, w, 8], where d is
// the tile's 4×4 input patch from row 2ty - 1, column 2tx - 1 of its
// image, zero outside.
LWR_AVX2 void inputs(const float *x, const Tiles &g, int64_t cs, int64_t t0, int64_t nt, float *V) {
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t i = 0; i < nt; i++) {
    int64_t img, ty, tx;
    g.at(t0 + i, img, ty, tx);
    int64_t y0 = 2 * ty - 1, x0 = 2 * tx - 1;
    bool in = y0 >= 0 && x0 >= 0 && y0 + 4 <= g.h && x0 + 4 <= g.w;
    for (int64_t cb = 0; cb < cs / 8; cb++) {
      const float *xb = x + ((img * cs / 8) + cb) * g.h * g.w * 8;
      __m256 d[4][4], t[4][4];
      for (int r = 0; r < 4; r++)
        for (int s = 0; s < 4; s++) {
          int64_t yy = y0 + r, xx = x0 + s;
          d[r][s] =
              (in || (yy >= 0 && yy < g.h && xx >= 0 && xx < g.w)) ? _mm256_loadu_ps(xb + (yy * g.w + xx) * 8) : zero;
        }
      for (int s = 0; s < 4; s++) {
        t[0][s] = _mm256_sub_ps(d[0][s], d[2][s]);
        t[1][s] = _mm256_add_ps(d[1][s], d[2][s]);
        t[2][s] = _mm256_sub_ps(d[2][s], d[1][s]);
        t[3][s] = _mm256_sub_ps(d[1][s], d[3][s]);
      }
      float *v = V + i * cs + cb * 8;
      for (int r = 0; r < 4; r++) {
        _mm256_storeu_ps(v + (4 * r + 0) * kTiles * cs, _mm256_sub_ps(t[r][0], t[r][2]));
        _mm256_storeu_ps(v + (4 * r + 1) * kTiles * cs, _mm256_add_ps(t[r][1], t[r][2]));
        _mm256_storeu_ps(v + (4 * r + 2) * kTiles * cs, _mm256_sub_ps(t[r][2], t[r][1]));
        _mm256_storeu_ps(v + (4 * r + 3) * kTiles * cs, _mm256_sub_ps(t[r][1], t[r][3]));
      }
    }
  }
}

// outputs: the 2×2 outputs (Aᵀ m A) of tiles t0 + i, i < nt, into the
// batch y [n, os/8, h, w, 8], from M[p][i][o] laid out as inputs' V;
// outputs past an image's edge are dropped.
LWR_AVX2 void outputs(const float *M, const Tiles &g, int64_t os, int64_t t0, int64_t nt, float *y) {
  for (int64_t i = 0; i < nt; i++) {
    int64_t img, ty, tx;
    g.at(t0 + i, img, ty, tx);
    for (int64_t ob = 0; ob < os / 8; ob++) {
      const float *m = M + i * os + ob * 8;
      __m256 q[2][4];
      for (int s = 0; s < 4; s++) {
        __m256 m0 = _mm256_loadu_ps(m + (0 + s) * kTiles * os), m1 = _mm256_loadu_ps(m + (4 + s) * kTiles * os),
               m2 = _mm256_loadu_ps(m + (8 + s) * kTiles * os), m3 = _mm256_loadu_ps(m + (12 + s) * kTiles * os);
        q[0][s] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
        q[1][s] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
      }
      float *yb = y + (img * os / 8 + ob) * g.h * g.w * 8;
      for (int r = 0; r < 2; r++) {
        int64_t yy = 2 * ty + r;
        if (yy >= g.h) break;
        __m256 o0 = _mm256_add_ps(_mm256_add_ps(q[r][0], q[r][1]), q[r][2]);
        __m256 o1 = _mm256_sub_ps(_mm256_sub_ps(q[r][1], q[r][2]), q[r][3]);
        _mm256_storeu_ps(yb + (yy * g.w + 2 * tx) * 8, o0);
        if (2 * tx + 1 < g.w) _mm256_storeu_ps(yb + (yy * g.w + 2 * tx + 1) * 8, o1);
      }
    }
  }
}

// gradOutputs: dM[p][i][o] = (A e Aᵀ)[p] for tiles t0 + i, i < nt, where e
// is the tile's 2×2 patch of dy [n, os/8, h, w, 8], zero past its image's
// edge: the transpose of outputs.
LWR_AVX2 void gradOutputs(const float *dy, const Tiles &g, int64_t os, int64_t t0, int64_t nt, float *dM) {
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t i = 0; i < nt; i++) {
    int64_t img, ty, tx;
    g.at(t0 + i, img, ty, tx);
    for (int64_t ob = 0; ob < os / 8; ob++) {
      const float *e = dy + (img * os / 8 + ob) * g.h * g.w * 8;
      __m256 d[2][2], t[4][2];
      for (int r = 0; r < 2; r++)
        for (int s = 0; s < 2; s++) {
          int64_t yy = 2 * ty + r, xx = 2 * tx + s;
          d[r][s] = (yy < g.h && xx < g.w) ? _mm256_loadu_ps(e + (yy * g.w + xx) * 8) : zero;
        }
      for (int s = 0; s < 2; s++) {
        t[0][s] = d[0][s];
        t[1][s] = _mm256_add_ps(d[0][s], d[1][s]);
        t[2][s] = _mm256_sub_ps(d[0][s], d[1][s]);
        t[3][s] = _mm256_sub_ps(zero, d[1][s]);
      }
      float *m = dM + i * os + ob * 8;
      for (int r = 0; r < 4; r++) {
        _mm256_storeu_ps(m + (4 * r + 0) * kTiles * os, t[r][0]);
        _mm256_storeu_ps(m + (4 * r + 1) * kTiles * os, _mm256_add_ps(t[r][0], t[r][1]));
        _mm256_storeu_ps(m + (4 * r + 2) * kTiles * os, _mm256_sub_ps(t[r][0], t[r][1]));
        _mm256_storeu_ps(m + (4 * r + 3) * kTiles * os, _mm256_sub_ps(zero, t[r][1]));
      }
    }
  }
}

// weights: U [16, ci, co], U[p][i][j] = (G g Gᵀ)[p] for input channel i
// and output channel j of the convolution U serves, where g is wt[j][i]
// (wt [co, ci, 3, 3]); turned (for the data gradient, whose input is the
// forward's output), g is wt[i][j] rotated 180° (wt [ci, co, 3, 3]).
void weights(const float *wt, int64_t ci, int64_t co, bool turned, float *U) {
  for (int64_t i = 0; i < ci; i++)
    for (int64_t j = 0; j < co; j++) {
      const float *k = turned ? wt + (i * co + j) * 9 : wt + (j * ci + i) * 9;
      float g[3][3], t[4][3];
      for (int r = 0; r < 3; r++)
        for (int s = 0; s < 3; s++) g[r][s] = turned ? k[(2 - r) * 3 + (2 - s)] : k[r * 3 + s];
      for (int s = 0; s < 3; s++) {
        t[0][s] = g[0][s];
        t[1][s] = 0.5f * (g[0][s] + g[1][s] + g[2][s]);
        t[2][s] = 0.5f * (g[0][s] - g[1][s] + g[2][s]);
        t[3][s] = g[2][s];
      }
      for (int r = 0; r < 4; r++) {
        float u[4] = {t[r][0], 0.5f * (t[r][0] + t[r][1] + t[r][2]), 0.5f * (t[r][0] - t[r][1] + t[r][2]), t[r][2]};
        for (int s = 0; s < 4; s++) U[((4 * r + s) * ci + i) * co + j] = u[s];
      }
    }
}

// eachRun runs f(t0, nt, V, M) for each run of up to kTiles tiles t0 +
// i, i < nt, of tiles, on libtorch's threads, V and M the thread's
// buffers for the run's transformed values, of a and b channels.
template <typename F>
void eachRun(int64_t tiles, int64_t a, int64_t b, const F &f) {
  lwr_parallel::eachUnit((tiles + kTiles - 1) / kTiles, [&](int64_t u) {
    thread_local std::vector<float> buf;  // kept and grown, as conv_blocked.cpp's scratchpads
    buf.resize(std::max<size_t>(buf.size(), kPos * kTiles * (a + b)));
    int64_t t0 = u * kTiles;
    f(t0, std::min(kTiles, tiles - t0), buf.data(), buf.data() + kPos * kTiles * a);
  });
}

// convolve: y [n, co/8, h, w, 8] = conv(x [n, ci/8, h, w, 8]) with the
// transformed weights U [16, ci, co].
void convolve(const float *x, const float *U, float *y, int64_t n, int64_t ci, int64_t h, int64_t w, int64_t co) {
  Tiles g(h, w);
  eachRun(n * g.count(), ci, co, [&](int64_t t0, int64_t nt, float *V, float *M) {
    inputs(x, g, ci, t0, nt, V);
    for (int p = 0; p < kPos; p++)
      gemm(nt, co, ci, V + p * kTiles * ci, ci, 1, U + p * ci * co, co, M + p * kTiles * co, co, false);
    outputs(M, g, co, t0, nt, y);
  });
}

}  // namespace

bool available() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

void forward(const float *x, const float *wt, float *y, int64_t n, int64_t c, int64_t h, int64_t w, int64_t o) {
  std::vector<float> U(kPos * c * o);
  weights(wt, c, o, false, U.data());
  convolve(x, U.data(), y, n, c, h, w, o);
}

void backwardData(const float *dy, const float *wt, float *dx, int64_t n, int64_t c, int64_t h, int64_t w, int64_t o) {
  std::vector<float> U(kPos * o * c);
  weights(wt, o, c, true, U.data());
  convolve(dy, U.data(), dx, n, o, h, w, c);
}

void backwardWeights(const float *x, const float *dy, float *dw, int64_t n, int64_t c, int64_t h, int64_t w,
                     int64_t o) {
  Tiles g(h, w);
  int64_t size = kPos * c * o;
  int threads = at::get_num_threads();
  // One sum of dU per thread, added in thread order afterwards: which
  // thread takes which runs depends only on the thread count.
  std::vector<float> dU(threads * size, 0.f);
  eachRun(n * g.count(), c, o, [&](int64_t t0, int64_t nt, float *V, float *dM) {
    int tid = at::get_thread_num();
    TORCH_CHECK(tid >= 0 && tid < threads, "Winograd weight gradient: thread ", tid, " of ", threads);
    float *mine = dU.data() + tid * size;
    inputs(x, g, c, t0, nt, V);
    gradOutputs(dy, g, o, t0, nt, dM);
    for (int p = 0; p < kPos; p++)
      gemm(c, o, nt, V + p * kTiles * c, 1, c, dM + p * kTiles * o, o, mine + p * c * o, o, true);
  });
  for (int t = 1; t < threads; t++)
    for (int64_t i = 0; i < size; i++) dU[i] += dU[t * size + i];
  // dw[j][i] = Gᵀ dU[·][i][j] G, G's transpose applied to rows, then columns.
  for (int64_t i = 0; i < c; i++)
    for (int64_t j = 0; j < o; j++) {
      float u[4][4], t[3][4];
      for (int p = 0; p < kPos; p++) u[p / 4][p % 4] = dU[(p * c + i) * o + j];
      for (int s = 0; s < 4; s++) {
        t[0][s] = u[0][s] + 0.5f * (u[1][s] + u[2][s]);
        t[1][s] = 0.5f * (u[1][s] - u[2][s]);
        t[2][s] = 0.5f * (u[1][s] + u[2][s]) + u[3][s];
      }
      float *k = dw + (j * c + i) * 9;
      for (int r = 0; r < 3; r++) {
        k[r * 3 + 0] = t[r][0] + 0.5f * (t[r][1] + t[r][2]);
        k[r * 3 + 1] = 0.5f * (t[r][1] - t[r][2]);
        k[r * 3 + 2] = 0.5f * (t[r][1] + t[r][2]) + t[r][3];
      }
    }
}

}  // namespace lwr_wino

#else

namespace lwr_wino {
bool available() { return false; }
void forward(const float *, const float *, float *, int64_t, int64_t, int64_t, int64_t, int64_t) {}
void backwardData(const float *, const float *, float *, int64_t, int64_t, int64_t, int64_t, int64_t) {}
void backwardWeights(const float *, const float *, float *, int64_t, int64_t, int64_t, int64_t, int64_t) {}
}  // namespace lwr_wino

#endif
