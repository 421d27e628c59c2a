#ifndef LWR_FUSED_H
#define LWR_FUSED_H
#include "tensor.h"
#ifdef __cplusplus
extern "C" {
#endif
// 1 when lwr was built with oneDNN's headers for the oneDNN libtorch
// loads (and the two versions agree), else 0.
int lwr_fused_available(void);
// Folds convolution weight w [O, I/groups, kh, kw] and batch norm
// (gamma, beta, mean, var [O], eps) into one convolution: weight
// w*s, bias beta - mean*s, s = gamma/sqrt(var + eps), computed in double
// and stored as float32. stride and pad are (height, width). *out gets the
// handle.
char *lwr_fused_new(tensor w, tensor gamma, tensor beta, tensor mean, tensor var, double eps, int64_t stride_h,
                    int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t groups, void **out);
// y = conv(x) + bias (+ add) (then ReLU when relu is non-zero), x
// [N, I, H, W] float32 on the CPU in any layout; y is channels-last. With
// add (of y's shape), y is computed in add's memory when add is
// channels-last (add is overwritten), else in a channels-last copy of it.
// *out gets y.
char *lwr_fused_run(void *h, tensor x, tensor add, int relu, tensor *out);
// Frees a handle.
void lwr_fused_free(void *h);
#ifdef __cplusplus
}
#endif
#endif
