// The c10d shim: process groups over a TCP store with Gloo (and NCCL with
// LWR_DIST_NCCL), built with LWR_GLOO when setup found Gloo's headers and
// they compile against this libtorch; without it, every call says what to
// install.
#include "dist.h"

#include <cstring>

#ifdef LWR_GLOO
#include <torch/version.h>

#include <chrono>
#include <memory>
#include <string>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <vector>
#ifdef LWR_DIST_NCCL
#include <c10/cuda/CUDAFunctions.h>

#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#if TORCH_VERSION_MAJOR >= 2
typedef c10d::Backend lwr_backend;
#else
typedef c10d::ProcessGroup lwr_backend;
#endif

namespace {
struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<lwr_backend> pg;
  int rank, world;
  std::chrono::milliseconds timeout;
};

char *error(const std::exception &e) { return strdup(e.what()); }

void wait(Group *g, c10::intrusive_ptr<c10d::Work> work) {
  if (!work->wait(g->timeout)) throw std::runtime_error("collective timed out");
}

// buckets splits ts into runs of one dtype and device of at most bytes
// bytes each (a tensor larger than that is a bucket alone).
std::vector<std::vector<torch::Tensor>> buckets(tensor *ts, int n, int64_t bytes) {
  std::vector<std::vector<torch::Tensor>> out;
  int64_t size = 0;
  for (int i = 0; i < n; ++i) {
    torch::Tensor t = *ts[i];
    int64_t b = t.numel() * (int64_t)t.element_size();
    if (out.empty() || size + b > bytes || out.back()[0].scalar_type() != t.scalar_type() ||
        out.back()[0].device() != t.device()) {
      out.emplace_back();
      size = 0;
    }
    out.back().push_back(t);
    size += b;
  }
  return out;
}

// flat copies a bucket into one contiguous tensor.
torch::Tensor flat(const std::vector<torch::Tensor> &bucket) {
  std::vector<torch::Tensor> parts;
  for (const auto &t : bucket) parts.push_back(t.detach().reshape({-1}));
  return torch::cat(parts);
}

// sumInPlace replaces the contiguous tensor f with its sum over the
// group's ranks.
void sumInPlace(Group *g, torch::Tensor &f) {
  std::vector<torch::Tensor> v{f};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
  o.timeout = g->timeout;
  wait(g, g->pg->allreduce(v, o));
}

// marked rethrows a collective's failure inside autograd's backward pass
// with the marker pkg/dist looks for: it reaches Go as libtorch's error
// from the backward pass, not from a shim call.
[[noreturn]] void marked(const std::exception &e) {
  throw std::runtime_error(std::string("lwr_dist collective failed: ") + e.what());
}

// SyncBatchNorm is batch norm in training over the ranks' global batch, in
// a few fused passes over the activations: each rank's mean and variance
// (var_mean), summed over the ranks shifted by the running mean K (the same
// on every rank, so the sums do not cancel), then libtorch's batch norm
// kernel with those statistics. Backward: each rank's Σdy and Σdy·x̂ in
// one pass (native_batch_norm_backward), summed over the ranks, and
//   dx = w·invstd·(dy − mean(dy) − x̂·mean(dy·x̂))
// as one affine map per channel of dy and x. dw and db are the rank's own
// (the gradient average over the ranks sums them).
struct SyncBatchNorm : public torch::autograd::Function<SyncBatchNorm> {
  static torch::Tensor forward(torch::autograd::AutogradContext *ctx, torch::Tensor x, torch::Tensor w, torch::Tensor b,
                               torch::Tensor running_mean, torch::Tensor running_var, double momentum, double eps,
                               int64_t group) {
    auto *g = (Group *)(intptr_t)group;
    const int64_t ch = x.size(1);
    const double n = (double)(x.numel() / ch);
    auto local = at::var_mean(x, {0, 2, 3}, /*unbiased=*/false, /*keepdim=*/false);
    torch::Tensor k = running_mean.detach().to(x.scalar_type());
    torch::Tensor shift = std::get<1>(local) - k;
    // (autograd records nothing inside an autograd function's forward and
    // backward: the sums are plain tensors, summed in place.)
    torch::Tensor total =
        torch::cat({shift * n, (std::get<0>(local) + shift * shift) * n, torch::full({1}, n, x.options())});
    sumInPlace(g, total);
    const double count = total[2 * ch].item<double>();
    torch::Tensor mshift = total.narrow(0, 0, ch) / count;
    torch::Tensor mean = k + mshift;
    torch::Tensor var = total.narrow(0, ch, ch) / count - mshift * mshift;
    torch::Tensor y = at::batch_norm(x, w, b, mean, var, /*training=*/false, 0.0, eps, /*cudnn_enabled=*/false);
    {
      torch::NoGradGuard no_grad;
      running_mean.mul_(1 - momentum).add_(mean.to(running_mean.scalar_type()), momentum);
      running_var.mul_(1 - momentum)
          .add_(var.to(running_var.scalar_type()), momentum * count / std::max(count - 1, 1.0));
    }
    ctx->save_for_backward({x, w, mean, (var + eps).rsqrt()});
    ctx->saved_data["group"] = group;
    ctx->saved_data["count"] = count;
    ctx->saved_data["eps"] = eps;
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                 torch::autograd::variable_list grad) {
    auto *g = (Group *)(intptr_t)ctx->saved_data["group"].toInt();
    const double count = ctx->saved_data["count"].toDouble();
    auto saved = ctx->get_saved_variables();
    torch::Tensor x = saved[0], w = saved[1], mean = saved[2], invstd = saved[3];
    torch::Tensor dy = grad[0].contiguous(x.suggest_memory_format());
    const int64_t ch = x.size(1);
    // This rank's Σdy·x̂ (dw) and Σdy (db).
    auto r = at::native_batch_norm_backward(dy, x, w, c10::nullopt, c10::nullopt, mean, invstd, /*train=*/true,
                                            ctx->saved_data["eps"].toDouble(), {false, true, true});
    torch::Tensor dw = std::get<1>(r), db = std::get<2>(r);
    torch::Tensor total = torch::cat({db, dw});
    try {
      sumInPlace(g, total);
    } catch (const std::exception &e) {
      marked(e);
    }
    torch::Tensor meanDy = total.narrow(0, 0, ch) / count, meanDyXhat = total.narrow(0, ch, ch) / count;
    torch::Tensor a = invstd * w;                    // of dy
    torch::Tensor slope = -a * invstd * meanDyXhat;  // of x
    torch::Tensor c = -a * meanDy - slope * mean;
    std::vector<int64_t> perChannel{1, ch, 1, 1};
    torch::Tensor dx = at::addcmul(c.view(perChannel), x, slope.view(perChannel)).addcmul_(dy, a.view(perChannel));
    return {dx, dw, db, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// unflat copies a flat tensor back into the bucket's tensors.
void unflat(const torch::Tensor &f, const std::vector<torch::Tensor> &bucket) {
  int64_t at = 0;
  for (const auto &t : bucket) {
    int64_t k = t.numel();
    t.detach().copy_(f.narrow(0, at, k).view(t.sizes()));
    at += k;
  }
}
}  // namespace

char *lwr_dist_init(const char *backend, const char *addr, int port, int rank, int world, int server,
                    const char *prefix, int64_t timeout_ms, void **group) {
  *group = nullptr;
  try {
    auto g = std::make_unique<Group>();
    g->rank = rank;
    g->world = world;
    g->timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions opts;
    opts.port = (std::uint16_t)port;
    opts.isServer = server != 0;
    // Every rank checks in and the server waits for all of them, as
    // PyTorch's rendezvous does; under torchrun's agent store (a prefix)
    // the agent owns the store and nobody waits.
    bool agent = prefix != nullptr && prefix[0] != 0;
    opts.numWorkers = (std::size_t)world;
    opts.waitWorkers = !agent;
    opts.timeout = g->timeout;
    g->store = c10::make_intrusive<c10d::TCPStore>(std::string(addr), opts);
    if (prefix != nullptr && prefix[0] != 0) {
      g->store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), g->store);
    }
    std::string b(backend);
    if (b == "gloo") {
      auto o = c10d::ProcessGroupGloo::Options::create(g->timeout);
      const char *ifname = std::getenv("GLOO_SOCKET_IFNAME");
      if (ifname != nullptr && ifname[0] != 0) {
        std::string names(ifname);
        size_t start = 0;
        while (start <= names.size()) {
          size_t end = names.find(',', start);
          if (end == std::string::npos) end = names.size();
          if (end > start)
            o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(names.substr(start, end - start)));
          start = end + 1;
        }
      }
      if (o->devices.empty()) o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      o->threads = 2 * (int)o->devices.size();
      g->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g->store, rank, world, o);
    }
#ifdef LWR_DIST_NCCL
    else if (b == "nccl") {
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = g->timeout;
      g->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(g->store, rank, world, o);
    }
#endif
    else {
      return strdup(("backend " + b + ": not built into this lwr (gloo" +
#ifdef LWR_DIST_NCCL
                     std::string(", nccl") +
#else
                     std::string("") +
#endif
                     ")")
                        .c_str());
    }
    *group = g.release();
    return nullptr;
  } catch (const std::exception &e) {
    return error(e);
  }
}

char *lwr_dist_allreduce(void *group, tensor *ts, int n, int mean, int64_t bucket_bytes) {
  auto *g = (Group *)group;
  try {
    torch::NoGradGuard no_grad;
    for (auto &bucket : buckets(ts, n, bucket_bytes)) {
      torch::Tensor f = flat(bucket);
      if (mean) f.div_(g->world);
      sumInPlace(g, f);
      unflat(f, bucket);
    }
    return nullptr;
  } catch (const std::exception &e) {
    return error(e);
  }
}

char *lwr_dist_broadcast(void *group, tensor *ts, int n, int root, int64_t bucket_bytes) {
  auto *g = (Group *)group;
  try {
    torch::NoGradGuard no_grad;
    for (auto &bucket : buckets(ts, n, bucket_bytes)) {
      torch::Tensor f = flat(bucket);
      std::vector<torch::Tensor> v{f};
      c10d::BroadcastOptions o;
      o.rootRank = root;
      o.timeout = g->timeout;
      wait(g, g->pg->broadcast(v, o));
      unflat(f, bucket);
    }
    return nullptr;
  } catch (const std::exception &e) {
    return error(e);
  }
}

char *lwr_dist_barrier(void *group) {
  auto *g = (Group *)group;
  try {
    c10d::BarrierOptions o;
    o.timeout = g->timeout;
    wait(g, g->pg->barrier(o));
    return nullptr;
  } catch (const std::exception &e) {
    return error(e);
  }
}

char *lwr_dist_sync_batch_norm(void *group, tensor x, tensor w, tensor b, tensor running_mean, tensor running_var,
                               double momentum, double eps, tensor *out) {
  *out = nullptr;
  try {
    *out = new torch::Tensor(
        SyncBatchNorm::apply(*x, *w, *b, *running_mean, *running_var, momentum, eps, (int64_t)(intptr_t)group));
    return nullptr;
  } catch (const std::exception &e) {
    return error(e);
  }
}

int lwr_dist_has(const char *backend) {
  std::string b(backend);
  if (b == "gloo") return 1;
#ifdef LWR_DIST_NCCL
  if (b == "nccl") return 1;
#endif
  return 0;
}

void lwr_dist_destroy(void *group) {
  try {
    delete (Group *)group;
  } catch (...) {
  }
}

#else  // no LWR_GLOO

static char *unavailable() {
  return strdup(
      "distributed training needs Gloo's headers when lwr is built: install libgloo-dev "
      "(apt-get install -y libgloo-dev) and run make setup again");
}
char *lwr_dist_init(const char *, const char *, int, int, int, int, const char *, int64_t, void **group) {
  *group = nullptr;
  return unavailable();
}
char *lwr_dist_allreduce(void *, tensor *, int, int, int64_t) { return unavailable(); }
char *lwr_dist_broadcast(void *, tensor *, int, int, int64_t) { return unavailable(); }
char *lwr_dist_barrier(void *) { return unavailable(); }
char *lwr_dist_sync_batch_norm(void *, tensor, tensor, tensor, tensor, tensor, double, double, tensor *out) {
  *out = nullptr;
  return unavailable();
}
int lwr_dist_has(const char *) { return 0; }
void lwr_dist_destroy(void *) {}

#endif  // LWR_GLOO
