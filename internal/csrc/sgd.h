#ifndef LWR_SGD_H
#define LWR_SGD_H
#include "tensor.h"
#ifdef __cplusplus
extern "C" {
#endif
// One SGD step over n parameters, as torch.optim.SGD (dampening 0):
//   d = g + wd*p;  b = momentum*b + d;  p -= lr*(nesterov ? d + momentum*b : b)
// then the gradients are zeroed. Parameters without a gradient are skipped.
// bufs (one momentum buffer per parameter) may be NULL when momentum is 0.
// Returns NULL, or an error message the caller frees.
char *lwr_sgd_step(tensor *params, tensor *bufs, int n, double lr, double momentum, double wd, int nesterov);
#ifdef __cplusplus
}
#endif
#endif
