#ifndef LWR_KERNELS_H
#define LWR_KERNELS_H
#include <stddef.h>
#include <stdint.h>

// Horizontal pass: rows r0 … r0+rows-1 of src (w pixels of RGB each) to
// tmp (rows × outW × 3), taps weights per output column from xlo[x].
void lwr_resize_h(const uint8_t *src, int w, int r0, int rows, const float *xw, const int *xlo, int taps, int outW,
                  int flip, float *tmp);
// Vertical pass: tmp to planes dst (3 × outH × outW).
void lwr_resize_v(const float *tmp, int rows, const float *yw, const int *ylo, int r0, int taps, int outW, int outH,
                  float *dst);
// ColorJitter on planes of n pixels: ops[i] in {0 brightness, 1 contrast,
// 2 saturation} with factors[i]; factor 1 skips.
void lwr_jitter(float *pix, int n, const int *ops, const float *factors);
// Rounds [0, 255] floats to bytes.
void lwr_to_bytes(uint8_t *dst, const float *src, int n);
#endif
