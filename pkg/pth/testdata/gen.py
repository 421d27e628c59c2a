"""Makes the torch.save fixtures of pth_test.go: run with a PyTorch (Debian's
python3-torch 1.13, and a PyTorch 2.x) as

    python3 gen.py TAG

It writes TAG-state.pth (a state_dict: float32, a transposed view, two views
of one storage, float16, bfloat16, float64, int64, bool), TAG-checkpoint.pth
(a training checkpoint: {"model": the state_dict saved from
DistributedDataParallel, i.e. names prefixed "module.", "epoch", "args": an
argparse.Namespace, "optimizer": its state}), and TAG.json: every tensor's
shape and values in row-major order as float64. Written for this project.
"""
import argparse
import collections
import json
import sys

import torch

tag = sys.argv[1]
g = torch.Generator().manual_seed(5)
base = torch.randn(4, 6, generator=g)
sd = collections.OrderedDict()
sd["conv.weight"] = torch.randn(2, 3, 3, 3, generator=g)
sd["fc.weight_t"] = base.t()  # strides (1, 6)
sd["view.a"] = base[1]  # offset 6 into base's storage
sd["view.b"] = base[:, 2:4]  # offset 2, strides (6, 1)
sd["half"] = torch.tensor([1.0, -2.5, 65504.0, 6e-8, 0.0], dtype=torch.float16)
sd["bf16"] = torch.tensor([1.0, -3.0, 1e30], dtype=torch.bfloat16)
sd["double"] = torch.tensor([[0.1, 0.2]], dtype=torch.float64)
sd["bn.num_batches_tracked"] = torch.tensor(7)
sd["mask"] = torch.tensor([True, False, True])
sd["empty"] = torch.zeros(0, 3)
torch.save(sd, "%s-state.pth" % tag)

net = torch.nn.Linear(3, 2)
opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
net(torch.randn(4, 3)).sum().backward()
opt.step()
model = collections.OrderedDict(("module." + k, v) for k, v in sd.items())
torch.save({"model": model, "epoch": 3, "args": argparse.Namespace(lr=0.1, arch="resnet50"),
            "optimizer": opt.state_dict(), "best": 71.25, "big": 2 ** 70}, "%s-checkpoint.pth" % tag)

want = {k: {"shape": list(v.shape), "values": v.double().flatten().tolist()} for k, v in sd.items()}
json.dump(want, open("%s.json" % tag, "w"), indent=0)
