#ifndef LWR_RUNTIME_H
#define LWR_RUNTIME_H
#include "tensor.h"
#ifdef __cplusplus
extern "C" {
#endif
// Seeds libtorch's default generators (CPU and every CUDA device), as
// torch.manual_seed does.
void lwr_manual_seed(int64_t seed);
// The size of libtorch's intra-op thread pool, and setting it (n > 0).
int lwr_get_num_threads(void);
void lwr_set_num_threads(int n);
// Switches CUDA autocast (mixed precision) on or off for the calling
// thread, casting to bfloat16 when bf16 is non-zero, else to float16;
// *prev gets the previous on/off state (0 or 1). libtorch 2.4 and later
// take the device type; older ones only know CUDA's. Returns NULL, or an
// error message the caller frees.
char *lwr_autocast_cuda(int on, int bf16, int *prev);
// The type CUDA autocast casts to: 1 bfloat16, 0 float16, -1 another or an error.
int lwr_autocast_cuda_bf16(void);
// *out gets t in the channels-last (NHWC) memory format, as
// t.contiguous(memory_format=torch.channels_last); a tensor that is not
// 4-d comes back as it is (a new handle). Returns NULL or an error message.
char *lwr_channels_last(tensor t, tensor *out);
// Switches a 4-d tensor's storage to channels-last in place (set_data:
// parameters keep their identity, gradients follow); others are left.
// Returns NULL or an error message.
char *lwr_set_channels_last(tensor t);
// 1 when t is 4-d and channels-last, else 0.
int lwr_is_channels_last(tensor t);
// 1 when libtorch was built with MKL (its CPU BLAS), else 0.
int lwr_has_mkl(void);
// libtorch's version, as its headers say ("1.13.0", "2.11.0"): a static
// string.
const char *lwr_torch_version(void);
#ifdef __cplusplus
}
#endif
#endif
