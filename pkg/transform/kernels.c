// The transforms' inner loops, in C so that the compiler vectorises them.
#include "kernels.h"

void lwr_resize_h(const uint8_t *src, int w, int r0, int rows, const float *xw, const int *xlo, int taps, int outW,
                  int flip, float *tmp) {
  for (int y = 0; y < rows; y++) {
    const uint8_t *in = src + (size_t)(r0 + y) * w * 3;
    float *out = tmp + (size_t)y * outW * 3;
    for (int x = 0; x < outW; x++) {
      const float *wt = xw + (size_t)x * taps;
      const uint8_t *p = in + (size_t)xlo[x] * 3;
      int n = w - xlo[x];
      if (n > taps) n = taps;
      float r = 0, g = 0, b = 0;
      for (int k = 0; k < n; k++) {
        r += wt[k] * p[3 * k];
        g += wt[k] * p[3 * k + 1];
        b += wt[k] * p[3 * k + 2];
      }
      int ox = flip ? outW - 1 - x : x;
      out[3 * ox] = r;
      out[3 * ox + 1] = g;
      out[3 * ox + 2] = b;
    }
  }
}

void lwr_resize_v(const float *tmp, int rows, const float *yw, const int *ylo, int r0, int taps, int outW, int outH,
                  float *dst) {
  size_t plane = (size_t)outW * outH;
  for (int y = 0; y < outH; y++) {
    const float *wt = yw + (size_t)y * taps;
    int base = ylo[y] - r0;
    float *R = dst + (size_t)y * outW, *G = R + plane, *B = G + plane;
    for (int x = 0; x < outW; x++) R[x] = G[x] = B[x] = 0;
    for (int k = 0; k < taps && base + k < rows; k++) {
      float c = wt[k];
      if (c == 0) continue;
      const float *row = tmp + (size_t)(base + k) * outW * 3;
      for (int x = 0; x < outW; x++) {
        R[x] += c * row[3 * x];
        G[x] += c * row[3 * x + 1];
        B[x] += c * row[3 * x + 2];
      }
    }
  }
}

static inline float clamp255(float v) { return v < 0 ? 0 : (v > 255 ? 255 : v); }

void lwr_jitter(float *pix, int n, const int *ops, const float *factors) {
  float *R = pix, *G = pix + n, *B = pix + 2 * n;
  for (int i = 0; i < 3; i++) {
    float f = factors[i];
    if (f == 1) continue;
    switch (ops[i]) {
      case 0:
        for (int k = 0; k < 3 * n; k++) pix[k] = clamp255(pix[k] * f);
        break;
      case 1: {
        double sum = 0;
        for (int k = 0; k < n; k++) sum += 0.299f * R[k] + 0.587f * G[k] + 0.114f * B[k];
        float m = (float)(sum / n) * (1 - f);
        for (int k = 0; k < 3 * n; k++) pix[k] = clamp255(pix[k] * f + m);
        break;
      }
      case 2:
        for (int k = 0; k < n; k++) {
          float g = (0.299f * R[k] + 0.587f * G[k] + 0.114f * B[k]) * (1 - f);
          R[k] = clamp255(R[k] * f + g);
          G[k] = clamp255(G[k] * f + g);
          B[k] = clamp255(B[k] * f + g);
        }
        break;
    }
  }
}

void lwr_to_bytes(uint8_t *dst, const float *src, int n) {
  for (int k = 0; k < n; k++) dst[k] = (uint8_t)clamp255(src[k] + 0.5f);
}
