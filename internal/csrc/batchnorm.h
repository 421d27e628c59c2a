#ifndef LWR_BATCHNORM_H
#define LWR_BATCHNORM_H
#include "tensor.h"
#ifdef __cplusplus
extern "C" {
#endif
// relu(batch_norm(x) + res) in training (without relu where relu is 0),
// as one autograd node: x
// float32 on the CPU, [N,C,H,W] channels-last or oneDNN's blocked
// [N,C/b,H,W,b] (contiguous), N*H*W > 1; res NULL or a float32 CPU tensor
// of x's shape; w, b the affine weight and bias [C]
// (float32); mean, var the running statistics [C] (float32), updated in
// place with the momentum as torch.nn.BatchNorm2d does (var unbiased).
// Normalises with the batch's mean and biased variance plus eps. *out
// gets the result, or NULL when the case is not one it handles (another
// device, dtype, layout or shape): the caller then runs libtorch's ops.
// Returns NULL, or an error message the caller frees.
char *lwr_bn_relu(tensor x, tensor res, tensor w, tensor b, tensor mean, tensor var, double momentum, double eps,
                  int relu, tensor *out);
#ifdef __cplusplus
}
#endif
#endif
