#ifndef LWR_DIST_H
#define LWR_DIST_H

#include "tensor.h"
#ifdef __cplusplus
extern "C" {
#endif
// A process group: a TCP store (the server at rank 0 unless server is 0)
// and a Gloo or NCCL backend over it. prefix, when not empty, prefixes the
// store's keys (torchrun's agent store). timeout_ms bounds every
// collective and the rendezvous.
char *lwr_dist_init(const char *backend, const char *addr, int port, int rank, int world, int server,
                    const char *prefix, int64_t timeout_ms, void **group);
// Allreduces n tensors in buckets of at most bucket_bytes (flattened by
// dtype and device, in the order given): the sum, or the mean when mean is
// non-zero (divided by the world size before the sum, as DDP does).
char *lwr_dist_allreduce(void *group, tensor *ts, int n, int mean, int64_t bucket_bytes);
// Broadcasts n tensors from root, in buckets of at most bucket_bytes.
char *lwr_dist_broadcast(void *group, tensor *ts, int n, int root, int64_t bucket_bytes);
char *lwr_dist_barrier(void *group);
// *out is batch norm in training of x [N,C,H,W] over the global batch of
// the group's ranks (PyTorch's SyncBatchNorm): normalised with the mean and
// variance of every rank's x, the running statistics updated with them
// (the variance unbiased over the global batch). Its backward pass sums
// the per-channel gradient statistics over the ranks. Every rank must call
// it, and run the backward pass through it, in the same order.
char *lwr_dist_sync_batch_norm(void *group, tensor x, tensor w, tensor b, tensor running_mean, tensor running_var,
                               double momentum, double eps, tensor *out);
// 1 when the shim was built with a backend ("gloo" or "nccl"), else 0.
int lwr_dist_has(const char *backend);
void lwr_dist_destroy(void *group);
#ifdef __cplusplus
}
#endif
#endif
