// A stand-in for libtorch's headers: relu and dim exist, gelu and
// clone_missing do not (nor align_tensors_missing), so the adapter must stub
// atg_gelu, atg_clone and atg_align_tensors.
#pragma once
#include <cstdint>
namespace torch {
struct Tensor { int64_t d; };
inline Tensor relu(const Tensor &t) { return t; }
inline int64_t dim(const Tensor &t) { return t.d; }
}
