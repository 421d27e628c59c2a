"""PyTorch's side of bench/ddp.sh: Balanced Softmax + LWR on ResNet-32,
Fashion-MNIST-LT (a Go run's train_subset.txt), global batch 128, with
DistributedDataParallel over Gloo when started by torchrun (WORLD_SIZE set),
else in one process. Prints rank 0's median images/s over the epochs after
the first, as JSON. Written for this project; Debian's python3-torch runs it.
"""
import argparse
import json
import os
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data.distributed import DistributedSampler

from torch_resnet32 import ResNet32, lwr_loss
from torch_train import augment, read_idx


class Both(torch.nn.Module):
    """The network and the LWR projection, so that DDP averages both's gradients."""

    def __init__(self):
        super().__init__()
        self.net = ResNet32(10, channels=1)
        self.proj = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64))

    def forward(self, x):
        logits, _ = self.net(x)
        return logits, lwr_loss(self.net.linear.weight, self.proj)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--list", required=True)
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=128, help="the global batch")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("gloo")
    torch.manual_seed(0)
    images = read_idx(a.data_dir + "/train-images-idx3-ubyte.gz")
    labels = read_idx(a.data_dir + "/train-labels-idx1-ubyte.gz").astype(np.int64)
    idx = np.loadtxt(a.list, dtype=np.int64, ndmin=2)[:, 0]
    x_train = torch.from_numpy(images[idx].copy()).unsqueeze(1)
    y_train = torch.from_numpy(labels[idx].copy())
    log_counts = torch.bincount(y_train, minlength=10).float().log()
    model = Both()
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    sampler = DistributedSampler(range(len(y_train)), num_replicas=world, rank=rank, shuffle=True, seed=0)
    gen = torch.Generator().manual_seed(rank)
    per = a.batch_size // world
    rates = []
    for epoch in range(a.epochs):
        sampler.set_epoch(epoch)
        order = torch.tensor(list(iter(sampler)))
        lam = (1 - epoch / a.epochs) ** 2
        if world > 1:
            dist.barrier()
        t0 = time.perf_counter()
        for lo in range(0, len(order), per):
            b = order[lo:lo + per]
            img = (augment(x_train[b].float() / 255, 4, gen) - 0.2860) / 0.3530
            logits, r = model(img)
            loss = F.cross_entropy(logits + log_counts, y_train[b]) + lam * r
            opt.zero_grad()
            loss.backward()
            opt.step()
        if world > 1:
            dist.barrier()
        rates.append(len(order) * world / (time.perf_counter() - t0))
    if rank == 0:
        later = sorted(rates[1:])
        print(json.dumps({"world": world, "images_per_sec_median": later[len(later) // 2], "rates": rates}))
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
