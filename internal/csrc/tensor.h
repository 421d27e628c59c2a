// The tensor handle lwr's kernels share with gotch, and nothing else: each
// kernel's header includes this one.
#ifndef LWR_TENSOR_H
#define LWR_TENSOR_H
#include <stdint.h>
#ifdef __cplusplus
#include <torch/torch.h>
// A tensor handle: a torch::Tensor made with new. Results belong to the
// caller, whose gotch ts.Tensor deletes them (at_free); arguments are
// borrowed.
typedef torch::Tensor *tensor;
#else
typedef void *tensor;
#endif
#endif
