"""ResNet-32 in PyTorch, the reference side of bench/run.sh.

The same network as pkg/resnet (LDAM-DRW's CIFAR ResNet-32: option-A
shortcuts, He init), the same forward+backward timing and the same training
step (Balanced Softmax + LWR, SGD), so a side-by-side run on one machine
measures our overhead over libtorch alone. Written for this project.
"""
import argparse
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = (cout - cin) // 2 if stride != 1 or cin != cout else 0

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        s = x
        if self.pad:
            s = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(h + s)


class ResNet32(nn.Module):
    def __init__(self, classes, channels=3):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for stage, width in enumerate((16, 32, 64)):
            for i in range(5):
                blocks.append(Block(cin, width, 2 if i == 0 and stage > 0 else 1))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.linear = nn.Linear(64, classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        h = self.blocks(F.relu(self.bn1(self.conv1(x))))
        f = F.adaptive_avg_pool2d(h, 1).flatten(1)
        return self.linear(f), f


def lwr_loss(w, proj, theta=0.4, tau=0.1):
    z = F.normalize(proj(w), dim=1)
    s = z @ z.t()
    mask = (s > theta).to(s.dtype).detach()
    return F.cross_entropy(mask * s / tau, torch.arange(w.shape[0], device=w.device), reduction="sum")


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="fwdbwd", choices=["fwdbwd", "train", "step", "lwr", "eval"])
    ap.add_argument("--channels-last", action="store_true", help="step, eval: the model and input in torch.channels_last")
    ap.add_argument("--side", type=int, default=32, help="step, eval: image side")
    ap.add_argument("--dim", type=int, default=64, help="lwr: classifier width (64 for ResNet-32, 2048 for ResNet-50)")
    ap.add_argument("--model", default="resnet32", choices=["resnet32", "resnet50"], help="step, eval: torchvision's resnet50 or ResNet-32")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--compile", default="", choices=["", "default", "max-autotune-no-cudagraphs"],
                    help="step: torch.compile the forward and loss (its backward with it) and the optimizer step in this mode; the first step's time, compilation included, is reported apart")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    y = torch.randint(a.classes, (a.batch,), device=dev)
    if a.mode == "step":
        step(a, dev, y)
        return
    if a.mode == "lwr":
        regularizer(a, dev, sync)
        return
    if a.mode == "eval":
        evaluate(a, dev)
        return
    net = ResNet32(a.classes).to(dev)
    x = torch.randn(a.batch, 3, 32, 32, device=dev)
    if a.mode == "fwdbwd":
        times = []
        for i in range(a.warmup + a.iters):
            t0 = time.perf_counter()
            logits, _ = net(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            loss.item()
            for p in net.parameters():
                p.grad.zero_()
            sync()
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
        times.sort()
        print("torch %s fwdbwd resnet32 batch=%d threads=%d device=%s: median %.1f ms, min %.1f ms over %d iterations"
              % (torch.__version__, a.batch, torch.get_num_threads(), a.device, 1000 * times[len(times) // 2], 1000 * times[0], len(times)))
        return
    proj = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64)).to(dev)
    counts = torch.tensor([max(1, 500 - 4 * c) for c in range(a.classes)], dtype=torch.float, device=dev)
    opt = torch.optim.SGD(list(net.parameters()) + list(proj.parameters()), lr=0.1, momentum=0.9, weight_decay=5e-4)
    window, samples, first, t0 = a.iters // 10, [], 0.0, time.perf_counter()
    for i in range(1, a.iters + 1):
        logits, _ = net(x)
        loss = F.cross_entropy(logits + counts.log(), y) + 0.5 * lwr_loss(net.linear.weight, proj)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i > a.warmup and i % 10 == 0:
            samples.append(rss_kib() / 1024)
        if i > a.warmup and (i - a.warmup) % window == 0:
            mean = sum(samples) / len(samples)
            samples = []
            first = first or mean
            print("steps %5d-%5d  mean rss %7.1f MiB  vs first window %+.2f%%  (%.1f steps/s)"
                  % (i - window + 1, i, mean, 100 * (mean - first) / first, i / (time.perf_counter() - t0)))

def build(a, dev):
    """The --model network on dev, a function from images to logits, and
    one returning the classifier's weight [classes, d]."""
    if a.model == "resnet50":
        import torchvision
        net = torchvision.models.resnet50(num_classes=a.classes).to(dev)
        return net, net, lambda: net.fc.weight
    net = ResNet32(a.classes).to(dev)
    return net, lambda x: net(x)[0], lambda: net.linear.weight


def step(a, dev, y):
    """Times whole training steps — forward, Balanced Softmax + LWR,
    backward, SGD with momentum and weight decay — as bench/resnet --mode
    step does."""
    net, forward, head = build(a, dev)
    dim = head().shape[1]
    proj = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim)).to(dev)
    x = torch.randn(a.batch, 3, a.side, a.side, device=dev)
    if a.channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    counts = torch.tensor([max(1, 500 - 4 * c) for c in range(a.classes)], dtype=torch.float, device=dev)
    opt = torch.optim.SGD(list(net.parameters()) + list(proj.parameters()), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def objective(x, y):
        logits = forward(x)
        return F.cross_entropy(logits + counts.log(), y) + 0.5 * lwr_loss(head(), proj)

    def update():
        opt.step()

    if a.compile:
        objective = torch.compile(objective, mode=a.compile)
        update = torch.compile(update, mode=a.compile)
    times, first = [], 0.0
    for i in range(a.warmup + a.iters):
        t0 = time.perf_counter()
        loss = objective(x, y)
        opt.zero_grad()
        loss.backward()
        update()
        loss.item()
        if i == 0:
            first = time.perf_counter() - t0
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    fmt = "channels-last" if a.channels_last else "contiguous"
    extra = ""
    if a.compile:
        fmt += "+compile-" + a.compile
        extra = ", first step (compiling) %.1f s" % first
    print("torch %s step %s batch=%d side=%d threads=%d format=%s: median %.1f ms, min %.1f ms over %d iterations%s"
          % (torch.__version__, a.model, a.batch, a.side, torch.get_num_threads(), fmt,
             1000 * times[len(times) // 2], 1000 * times[0], len(times), extra))


def evaluate(a, dev):
    """Times evaluation as bench/resnet --mode eval: the model's forward in
    eval mode under no_grad, softmax included, per image."""
    net, forward, _ = build(a, dev)
    net.eval()
    x = torch.randn(a.batch, 3, a.side, a.side, device=dev)
    if a.channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    with torch.no_grad():
        for i in range(a.warmup + a.iters):
            t0 = time.perf_counter()
            forward(x).softmax(1, dtype=torch.float64).tolist()
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
    times.sort()
    print("torch %s eval %s batch=%d side=%d threads=%d format=%s: median %.3f ms/image over %d batches"
          % (torch.__version__, a.model, a.batch, a.side, torch.get_num_threads(), "channels-last" if a.channels_last else "contiguous",
             1000 * times[len(times) // 2] / a.batch, len(times)))


def regularizer(a, dev, sync):
    """Times lwr_loss alone on weights [classes, dim], forward and backward, as bench/resnet --mode lwr."""
    w = torch.randn(a.classes, a.dim, device=dev, requires_grad=True)
    proj = nn.Sequential(nn.Linear(a.dim, a.dim), nn.ReLU(), nn.Linear(a.dim, a.dim)).to(dev)
    times = []
    for i in range(a.warmup + a.iters):
        t0 = time.perf_counter()
        r = lwr_loss(w, proj)
        r.backward()
        r.item()
        sync()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    print("torch %s lwr classes=%d dim=%d threads=%d: median %.1f ms, min %.1f ms over %d iterations"
          % (torch.__version__, a.classes, a.dim, torch.get_num_threads(), 1000 * times[len(times) // 2], 1000 * times[0], len(times)))


if __name__ == "__main__":
    main()
