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


def augment(img, pad, gen, drawn=None):
    """Random crop (zero padding pad) and flip; drawn = (dy, dx, flip) replays given draws."""
    b, c, h, w = img.shape
    padded = F.pad(img, (pad, pad, pad, pad))
    if drawn is None:
        dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
        dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    else:
        dy, dx = drawn[0], drawn[1]
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(b, c, h, w + 2 * pad)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(b, c, h, w)
    out = padded.gather(2, rows).gather(3, cols)
    if drawn is None:
        flip = torch.randint(0, 2, (b, 1, 1, 1), generator=gen).bool()
    else:
        flip = drawn[2].view(b, 1, 1, 1)
    return torch.where(flip, out.flip(3), out)


def load_replay(folder, net, proj, weights=True):
    """Sets net's and proj's weights to a Go run's initial ones (bench/replay's
    init.pt; unless not weights) and returns its data stream, one dict per epoch."""
    import re
    stream = [json.loads(line) for line in open(folder + "/stream.jsonl")]
    if not weights:
        return stream
    saved = dict(torch.jit.load(folder + "/init.pt").named_parameters())
    with torch.no_grad():
        for name, p in list(net.named_parameters()) + list(net.named_buffers()):
            if name.endswith("num_batches_tracked"):
                continue
            m = re.match(r"blocks\.(\d+)\.(.*)", name)
            go = "layer%d.%d.%s" % (int(m.group(1)) // 5 + 1, int(m.group(1)) % 5, m.group(2)) if m else name
            p.copy_(saved["model." + go])
        for name, p in proj.named_parameters():
            p.copy_(saved["model.lwr.proj." + name])
    return stream


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--list", required=True, help="train_subset.txt of a Go run")
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--loss", default="balanced-softmax", choices=["ce", "balanced-softmax"])
    ap.add_argument("--lwr", action="store_true")
    ap.add_argument("--no-projection", action="store_true", help="LWR on the normalised rows themselves, no MLP")
    ap.add_argument("--constant-lambda", action="store_true", help="λ = 1 throughout instead of (1 - t/T)²")
    ap.add_argument("--warmup", type=int, default=-1, help="linear warm-up epochs (default: max(1, 5%% of --epochs))")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--replay", help="a bench/replay folder: start from a Go run's weights, draw its data stream")
    ap.add_argument("--replay-only", choices=["init", "stream"], help="replay only the weights or only the data stream")
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
    if a.no_projection:
        proj = torch.nn.Identity()
    stream = None
    if a.replay:
        stream = load_replay(a.replay, net, proj, a.replay_only != "stream")
        if a.replay_only == "init":
            stream = None
    params = list(net.parameters()) + (list(proj.parameters()) if a.lwr else [])
    opt = torch.optim.SGD(params, lr=a.lr, momentum=0.9, weight_decay=5e-4)
    e = a.epochs
    milestones, warmup = [e * 70 // 100, e * 85 // 100], max(1, e * 5 // 100)
    if a.warmup >= 0:
        warmup = a.warmup
    log_counts = counts.float().log()
    n = len(y_train)
    times, losses = [], []
    for epoch in range(e):
        lr = a.lr * (epoch + 1) / warmup if epoch < warmup else a.lr * 0.1 ** sum(epoch >= m for m in milestones)
        for g in opt.param_groups:
            g["lr"] = lr
        lam = 1.0 if a.constant_lambda else (1 - epoch / e) ** 2
        t0 = time.perf_counter()
        net.train()
        order = torch.randperm(n, generator=gen) if stream is None else torch.tensor(stream[epoch]["order"])
        loss_sum = 0.0
        for lo in range(0, n, a.batch_size):
            b = order[lo:lo + a.batch_size]
            img = x_train[b].float() / 255
            drawn = None
            if stream is not None:
                st = stream[epoch]
                drawn = tuple(torch.tensor(st[k][lo:lo + a.batch_size]) for k in ("dy", "dx", "flip"))
            img = (augment(img, 4, gen, drawn) - mean) / std
            logits, _ = net(img)
            if a.loss == "balanced-softmax":
                logits_adj = logits + log_counts
            else:
                logits_adj = logits
            loss = F.cross_entropy(logits_adj, y_train[b])
            loss_sum += loss.item() * len(b)
            if a.lwr:
                loss = loss + lam * lwr_loss(net.linear.weight, proj)
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
        losses.append(loss_sum / n)
    t0 = time.perf_counter()
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
    eval_seconds = time.perf_counter() - t0

    def group(sel):
        v = [acc[c].item() for c in range(10) if sel(counts[c].item())]
        return sum(v) / len(v) if v else math.nan

    print(json.dumps({
        "loss": a.loss, "lwr": a.lwr, "projection": not a.no_projection, "constant_lambda": a.constant_lambda,
        "seed": a.seed, "epochs": e, "warmup": warmup, "milestones": milestones,
        "top1": 100 * correct.sum().item() / total.sum().item(),
        "many": group(lambda k: k > 100), "medium": group(lambda k: 20 <= k <= 100), "few": group(lambda k: k < 20),
        "epoch_seconds_median": sorted(times)[len(times) // 2], "train_seconds": sum(times),
        "eval_seconds": eval_seconds,
        "epoch_loss_bal": losses,
    }))


if __name__ == "__main__":
    main()
