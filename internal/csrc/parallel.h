#ifndef LWR_PARALLEL_H
#define LWR_PARALLEL_H
// eachUnit, the kernels' parallel loop. Internal to the kernels, not a
// cgo binding.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/TensorIterator.h>
#include <cstdint>

namespace lwr_parallel {

// eachUnit runs f(k) for each unit of work k in [0, n) on libtorch's
// intra-op threads, each thread a run of consecutive units fixed by n and
// the thread count; inside f, at::get_thread_num() is the thread's index,
// below at::get_num_threads(). at::parallel_for is inline: compiled in
// lwr's files, without -fopenmp, its OpenMP loop would run on one thread,
// and with it could link another OpenMP runtime than libtorch's (pip's
// wheels bundle their own). A TensorIterator's for_each runs in libtorch,
// on its pool, over a tensor of unit numbers.
template <typename F>
void eachUnit(int64_t n, const F &f) {
  if (n == 1 || at::get_num_threads() == 1) {
    for (int64_t k = 0; k < n; k++) f(k);
    return;
  }
  auto units = at::arange(n, at::TensorOptions().dtype(at::kLong));
  auto iter = at::TensorIteratorConfig().add_input(units).build();
  iter.for_each(
      [&](char **data, const int64_t *strides, int64_t size0, int64_t size1) {
        for (int64_t i = 0; i < size1; i++)
          for (int64_t j = 0; j < size0; j++)
            f(*reinterpret_cast<const int64_t *>(data[0] + i * strides[1] + j * strides[0]));
      },
      1);
}

}  // namespace lwr_parallel

#endif
