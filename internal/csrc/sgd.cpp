#include "sgd.h"

#include <cstring>

char *lwr_sgd_step(tensor *params, tensor *bufs, int n, double lr, double momentum, double wd, int nesterov) {
  try {
    torch::NoGradGuard no_grad;
    for (int i = 0; i < n; ++i) {
      torch::Tensor &p = *params[i];
      torch::Tensor g = p.grad();
      if (!g.defined()) continue;
      torch::Tensor d = wd != 0 ? g.add(p, wd) : g;
      torch::Tensor step = d;
      if (momentum != 0) {
        torch::Tensor &b = *bufs[i];
        b.mul_(momentum).add_(d);
        step = nesterov ? d.add(b, momentum) : b;
      }
      p.add_(step, -lr);
      g.zero_();
    }
    return nullptr;
  } catch (const std::exception &e) {
    return strdup(e.what());
  }
}
