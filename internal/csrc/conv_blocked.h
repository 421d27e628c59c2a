#ifndef LWR_CONV_BLOCKED_H
#define LWR_CONV_BLOCKED_H
#include "tensor.h"
#ifdef __cplusplus
extern "C" {
#endif
// The channel block b of the activations oneDNN's training convolutions
// prefer on this CPU (8 with AVX2, 16 with AVX-512), 0 when they prefer
// an unblocked layout or lwr was built without oneDNN's headers.
int64_t lwr_conv_block(void);
// y = conv(x, w), no bias, as an autograd node: x float32 on the CPU,
// either blocked [N, C/b, H, W, b] (contiguous) or an image batch
// [N, C, H, W] in any layout (a network's first convolution); w
// [O, C, kh, kw] float32, any layout, O a multiple of b; stride and pad
// the same along both sides. y is blocked [N, O/b, H', W', b]. The
// gradient of w has w's strides. alg picks the algorithm, forward and
// both backward passes alike: 1 direct (oneDNN's); 2 Winograd wherever
// there is one for the shape (3×3, stride 1, a blocked input): oneDNN's
// F(4×4, 3×3) in blocks of 16 (AVX-512), lwr's F(2×2, 3×3) in blocks of 8
// at pad 1 (AVX2 and FMA: winograd.h), else direct; 0 (auto) Winograd
// only where it measured faster (pad 1, and in blocks of 16 at least 32
// channels in and out, in blocks of 8 16 to 256), else direct. *out gets
// y; returns NULL or an error message the caller frees.
char *lwr_conv_blocked(tensor x, tensor w, int64_t b, int64_t stride, int64_t pad, int64_t alg, tensor *out);
// *used gets the algorithm lwr_conv_blocked runs with these arguments: 1
// (direct) or 2 (Winograd). Returns NULL or an error message the caller
// frees.
char *lwr_conv_blocked_algorithm(tensor x, tensor w, int64_t b, int64_t stride, int64_t pad, int64_t alg,
                                 int64_t *used);
#ifdef __cplusplus
}
#endif
#endif
