"""The lwr trainer's recipe in PyTorch, for side-by-side runs (bench/compare.sh).

Trains ResNet-32 on the long-tailed subset a Go run wrote (its
train_subset.txt: "index label" lines into Fashion-MNIST's training set), with
the same pipeline: the data on the device as uint8, batched random crop (zero
padding 4) and flip, per-channel normalisation, SGD (momentum 0.9, weight decay
5e-4), linear warm-up then step decay, CE / Balanced Softmax, optionally + LWR
with λ(t) = (1 - t/T)². Prints the epoch times and the final top-1 and
many/medium/few accuracy as JSON. Written for this project; Debian's
python3-torch (libtorch 1.13) runs it.
"""
import argparse
import gzip
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from torch_resnet32 import ResNet32, lwr_loss


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def augment(img, pad, gen):
    b, c, h, w = img.shape
    padded = F.pad(img, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(b, c, h, w + 2 * pad)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(b, c, h, w)
    out = padded.gather(2, rows).gather(3, cols)
    flip = torch.randint(0, 2, (b, 1, 1, 1), generator=gen).bool()
    return torch.where(flip, out.flip(3), out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--list", required=True, help="train_subset.txt of a Go run")
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--loss", default="balanced-softmax", choices=["ce", "balanced-softmax"])
    ap.add_argument("--lwr", action="store_true")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)

    images = read_idx(a.data_dir + "/train-images-idx3-ubyte.gz")
    labels = read_idx(a.data_dir + "/train-labels-idx1-ubyte.gz").astype(np.int64)
    idx = np.loadtxt(a.list, dtype=np.int64, ndmin=2)[:, 0]
    x_train = torch.from_numpy(images[idx].copy()).unsqueeze(1)
    y_train = torch.from_numpy(labels[idx].copy())
    x_test = torch.from_numpy(read_idx(a.data_dir + "/t10k-images-idx3-ubyte.gz").copy()).unsqueeze(1)
    y_test = torch.from_numpy(read_idx(a.data_dir + "/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    counts = torch.bincount(y_train, minlength=10)
    mean, std = 0.2860, 0.3530

    net = ResNet32(10, channels=1)
    proj = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64))
    params = list(net.parameters()) + (list(proj.parameters()) if a.lwr else [])
    opt = torch.optim.SGD(params, lr=a.lr, momentum=0.9, weight_decay=5e-4)
    e = a.epochs
    milestones, warmup = [e * 70 // 100, e * 85 // 100], max(1, e * 5 // 100)
    log_counts = counts.float().log()
    n = len(y_train)
    times = []
    for epoch in range(e):
        lr = a.lr * (epoch + 1) / warmup if epoch < warmup else a.lr * 0.1 ** sum(epoch >= m for m in milestones)
        for g in opt.param_groups:
            g["lr"] = lr
        lam = (1 - epoch / e) ** 2
        t0 = time.perf_counter()
        net.train()
        order = torch.randperm(n, generator=gen)
        for lo in range(0, n, a.batch_size):
            b = order[lo:lo + a.batch_size]
            img = x_train[b].float() / 255
            img = (augment(img, 4, gen) - mean) / std
            logits, _ = net(img)
            if a.loss == "balanced-softmax":
                logits_adj = logits + log_counts
            else:
                logits_adj = logits
            loss = F.cross_entropy(logits_adj, y_train[b])
            if a.lwr:
                loss = loss + lam * lwr_loss(net.linear.weight, proj)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()
        times.append(time.perf_counter() - t0)
    net.eval()
    correct = torch.zeros(10)
    total = torch.zeros(10)
    with torch.no_grad():
        for lo in range(0, len(y_test), 256):
            img = (x_test[lo:lo + 256].float() / 255 - mean) / std
            pred = net(img)[0].argmax(1)
            y = y_test[lo:lo + 256]
            total += torch.bincount(y, minlength=10).float()
            correct += torch.bincount(y[pred == y], minlength=10).float()
    acc = 100 * correct / total

    def group(sel):
        v = [acc[c].item() for c in range(10) if sel(counts[c].item())]
        return sum(v) / len(v) if v else math.nan

    print(json.dumps({
        "loss": a.loss, "lwr": a.lwr, "seed": a.seed, "epochs": e,
        "top1": 100 * correct.sum().item() / total.sum().item(),
        "many": group(lambda k: k > 100), "medium": group(lambda k: 20 <= k <= 100), "few": group(lambda k: k < 20),
        "epoch_seconds_median": sorted(times)[len(times) // 2], "train_seconds": sum(times),
    }))


if __name__ == "__main__":
    main()
