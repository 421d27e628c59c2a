"""Writes parity.json: training steps of ResNet-32 in PyTorch from weights and
a batch that both sides compute from the same formulas, so that
TestTrainStepParity can check our training step (forward, loss, LWR,
backward, SGD with momentum and weight decay, batch-norm running
statistics) against PyTorch's: the losses of each step, then the sum and
norm of every parameter and running statistic.

Two precisions, because float32 results depend on the CPU: oneDNN picks
SSE4.1, AVX2 or AVX-512 convolution kernels by machine, and steps at lr 0.1
amplify their rounding differences (0.5% after five steps). So
- float64: five steps (the last two after a ×0.1 decay); oneDNN has no
  float64 kernels, the result is the same on every x86-64 CPU and the test's
  tolerance is tight;
- float32: one step, what the trainer runs; its tolerance is the spread
  measured across DNNL_MAX_CPU_ISA=SSE41|AVX2|AVX512_CORE (parity_test.go).

    cd pkg/train/testdata && /usr/bin/python3 gen_parity.py > parity.json

(the float64 cases come out the same under any DNNL_MAX_CPU_ISA; the float32
ones were written under AVX2).

Debian's python3-torch (1.13) and python3-numpy. Written for this project.
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../bench"))
from torch_resnet32 import ResNet32, lwr_loss  # noqa: E402

BATCH, CLASSES, SIDE = 16, 10, 28
LRS, MOMENTUM, WD, LAMBDA = [0.1, 0.1, 0.1, 0.01, 0.01], 0.9, 5e-4, 1.0  # a step decay after 3 steps
COUNTS = [600, 359, 215, 129, 77, 46, 27, 16, 9, 5]  # Fashion-MNIST-LT IF 100


def go_name(name):
    """Our variable name for a PyTorch parameter name."""
    parts = name.split(".")
    if parts[0] == "blocks":
        k = int(parts[1])
        return "layer%d.%d.%s" % (k // 5 + 1, k % 5, ".".join(parts[2:]))
    if parts[0] == "proj":
        return "lwr." + name
    return name


def init_value(index, name, shape, dtype):
    """The formula both sides fill parameter number index (in name order) with."""
    n = int(np.prod(shape))
    k = np.arange(n, dtype=np.float64)
    wave = np.sin(0.37 * k + 1.3 * index + 0.5)
    if len(shape) >= 2:
        fan_in = n // shape[0]
        v = math.sqrt(2.0 / fan_in) * math.sqrt(2.0) * wave
    elif ".bn" in "." + name and name.endswith("weight"):
        v = 1.0 + 0.1 * wave
    else:
        v = 0.1 * wave
    return torch.from_numpy(v.astype(NP[dtype]).reshape(shape))


NP = {torch.float32: np.float32, torch.float64: np.float64}


def batch(dtype):
    b = np.arange(BATCH, dtype=np.float64)[:, None]
    k = np.arange(SIDE * SIDE, dtype=np.float64)[None, :]
    x = 1.5 * np.sin(0.013 * k * (b + 1) + b)
    y = np.arange(BATCH) % CLASSES
    return torch.from_numpy(x.astype(NP[dtype]).reshape(BATCH, 1, SIDE, SIDE)), torch.from_numpy(y)


def run(loss_name, use_lwr, dtype, lrs):
    torch.set_default_dtype(dtype)
    net = ResNet32(CLASSES, channels=1)
    proj = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64))
    named = [(go_name(n), p) for n, p in net.named_parameters()]
    if use_lwr:
        named += [(go_name("proj." + n), p) for n, p in proj.named_parameters()]
    named.sort(key=lambda t: t[0])
    with torch.no_grad():
        for i, (name, p) in enumerate(named):
            p.copy_(init_value(i, name, tuple(p.shape), dtype))
    opt = torch.optim.SGD([p for _, p in named], lr=lrs[0], momentum=MOMENTUM, weight_decay=WD)
    x, y = batch(dtype)
    log_counts = torch.tensor(COUNTS, dtype=dtype).log()
    steps = []
    net.train()
    for lr in lrs:
        for g in opt.param_groups:
            g["lr"] = lr
        logits, _ = net(x)
        if loss_name == "balanced-softmax":
            logits = logits + log_counts
        bal = F.cross_entropy(logits, y)
        total = bal
        r = None
        if use_lwr:
            r = lwr_loss(net.linear.weight, proj)
            total = bal + LAMBDA * r
        opt.zero_grad()
        total.backward()
        opt.step()
        steps.append({"loss_bal": bal.item(), "lwr": r.item() if r is not None else None})
    named += [(go_name(n), b) for n, b in net.named_buffers() if "running" in n]
    torch.set_default_dtype(torch.float32)
    return {
        "loss": loss_name, "lwr": use_lwr, "dtype": str(dtype).replace("torch.", ""), "lrs": lrs, "steps": steps,
        "sums": {name: p.detach().double().sum().item() for name, p in named},
        "norms": {name: p.detach().double().norm().item() for name, p in named},
    }


def main():
    torch.set_num_threads(1)
    print(json.dumps({
        "generator": "pkg/train/testdata/gen_parity.py", "torch_version": torch.__version__,
        "batch": BATCH, "classes": CLASSES, "side": SIDE, "momentum": MOMENTUM, "weight_decay": WD, "lambda": LAMBDA, "counts": COUNTS,
        "cases": [run(loss, lwr, dtype, LRS if dtype == torch.float64 else LRS[:1])
                  for dtype in (torch.float64, torch.float32)
                  for loss, lwr in (("ce", False), ("balanced-softmax", True))],
    }, indent=1))


if __name__ == "__main__":
    main()
