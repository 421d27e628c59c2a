#ifndef LWR_WINOGRAD_H
#define LWR_WINOGRAD_H
// lwr's own Winograd convolutions, F(2×2, 3×3), for activations in
// oneDNN's 8-channel blocks [N, C/8, H, W, 8] on CPUs with AVX2 and FMA,
// where oneDNN 2.6 has none (its Winograd is for AVX-512 only). 3×3
// kernels, stride 1, pad 1, no bias; C and O multiples of 8; all float32,
// contiguous. Each 2×2 output tile costs 16 multiplications per channel
// pair instead of 36 (a factor 2.25), for transforms of the 4×4 input
// tile, the weights and the output tile (Lavin and Gray, "Fast Algorithms
// for Convolutional Neural Networks", 2016). Work is split into runs of
// 48 tiles, across images, on libtorch's threads; for a given thread
// count the result is the same bits on every call. Internal to the
// kernels (conv_blocked.cpp), not a cgo binding.
#include <cstdint>

namespace lwr_wino {

// Whether this CPU runs the AVX2 + FMA code below.
bool available();

// forward: y = conv(x, w), stride 1, pad 1. x [n, c/8, h, w, 8], wt
// [o, c, 3, 3], y [n, o/8, h, w, 8] (written, not added to).
void forward(const float *x, const float *wt, float *y, int64_t n, int64_t c, int64_t h, int64_t w, int64_t o);

// backwardData: dx, the gradient of forward's x from dy (y's gradient,
// [n, o/8, h, w, 8]): the same convolution of dy with wt turned 180° and
// its channels swapped. dx [n, c/8, h, w, 8].
void backwardData(const float *dy, const float *wt, float *dx, int64_t n, int64_t c, int64_t h, int64_t w, int64_t o);

// backwardWeights: dw [o, c, 3, 3], the gradient of forward's wt from x
// and dy, summed over the batch.
void backwardWeights(const float *x, const float *dy, float *dw, int64_t n, int64_t c, int64_t h, int64_t w, int64_t o);

}  // namespace lwr_wino

#endif
