#include "runtime.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <cstring>

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define LWR_AUTOCAST_BY_DEVICE 1
#endif

void lwr_manual_seed(int64_t seed) { torch::manual_seed(seed); }

int lwr_get_num_threads(void) { return at::get_num_threads(); }

void lwr_set_num_threads(int n) {
  if (n > 0) at::set_num_threads(n);
}

char *lwr_autocast_cuda(int on, int bf16, int *prev) {
  try {
    at::ScalarType type = bf16 ? at::kBFloat16 : at::kHalf;
#ifdef LWR_AUTOCAST_BY_DEVICE
    *prev = at::autocast::is_autocast_enabled(at::kCUDA) ? 1 : 0;
    at::autocast::set_autocast_dtype(at::kCUDA, type);
    at::autocast::set_autocast_enabled(at::kCUDA, on != 0);
#else
    *prev = at::autocast::is_enabled() ? 1 : 0;
    at::autocast::set_autocast_gpu_dtype(type);
    at::autocast::set_enabled(on != 0);
#endif
    return nullptr;
  } catch (const std::exception &e) {
    return strdup(e.what());
  }
}

int lwr_autocast_cuda_bf16(void) {
  try {
#ifdef LWR_AUTOCAST_BY_DEVICE
    at::ScalarType type = at::autocast::get_autocast_dtype(at::kCUDA);
#else
    at::ScalarType type = at::autocast::get_autocast_gpu_dtype();
#endif
    return type == at::kBFloat16 ? 1 : type == at::kHalf ? 0 : -1;
  } catch (const std::exception &) {
    return -1;
  }
}

char *lwr_channels_last(tensor t, tensor *out) {
  *out = nullptr;
  try {
    *out = new torch::Tensor(t->dim() == 4 ? t->contiguous(at::MemoryFormat::ChannelsLast) : *t);
    return nullptr;
  } catch (const std::exception &e) {
    return strdup(e.what());
  }
}

char *lwr_set_channels_last(tensor t) {
  try {
    if (t->dim() != 4) return nullptr;
    torch::NoGradGuard no_grad;
    t->set_data(t->contiguous(at::MemoryFormat::ChannelsLast));
    return nullptr;
  } catch (const std::exception &e) {
    return strdup(e.what());
  }
}

int lwr_is_channels_last(tensor t) {
  try {
    return t->dim() == 4 && t->is_contiguous(at::MemoryFormat::ChannelsLast) ? 1 : 0;
  } catch (const std::exception &) {
    return 0;
  }
}

int lwr_has_mkl(void) { return at::hasMKL() ? 1 : 0; }

const char *lwr_torch_version(void) { return TORCH_VERSION; }
