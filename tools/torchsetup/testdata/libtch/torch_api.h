// A miniature of gotch's torch_api.h for the adapter's tests.
#include <stdexcept>
#include <torch/torch.h>
typedef torch::Tensor *tensor;
extern const char *torch_last_err;
#define PROTECT(x)                                                             \
  try {                                                                        \
    x                                                                          \
  } catch (const std::exception &e) {                                          \
    torch_last_err = e.what();                                                 \
  }
