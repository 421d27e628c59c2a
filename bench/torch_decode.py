"""torchvision's side of bench/decode.sh: the same files through PIL and
torchvision's transforms on one core, ending, like ours, in a uint8 CHW
tensor (PILToTensor): RandomResizedCrop(224) + RandomHorizontalFlip
[+ ColorJitter(0.4, 0.4, 0.4)], or Resize(256) + CenterCrop(224).

    /usr/bin/python3 bench/torch_decode.py --root DIR --list LIST [--mode train|test] [--jitter]

Debian's python3-torchvision and python3-pil. Written for this project.
"""
import argparse
import os
import time

import PIL
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--list", required=True)
    ap.add_argument("--mode", default="train", choices=["train", "test"])
    ap.add_argument("--jitter", action="store_true")
    ap.add_argument("--passes", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(1)
    if a.mode == "train":
        steps = [T.RandomResizedCrop(224), T.RandomHorizontalFlip()]
        if a.jitter:
            steps.append(T.ColorJitter(0.4, 0.4, 0.4))
    else:
        steps = [T.Resize(256), T.CenterCrop(224)]
    tf = T.Compose(steps + [T.PILToTensor()])
    paths = [os.path.join(a.root, line.split()[0]) for line in open(a.list) if line.strip()]
    elapsed = 0.0
    for p in range(a.passes):
        t0 = time.perf_counter()
        for path in paths:
            with open(path, "rb") as f:
                img = Image.open(f).convert("RGB")
            x = tf(img)
            assert x.shape == (3, 224, 224) and x.dtype == torch.uint8
        if p > 0:
            elapsed += time.perf_counter() - t0
    n = len(paths) * (a.passes - 1)
    print("%.1f images/s per core (%d images, torchvision %s + PIL %s, %s%s)" % (
        n / elapsed, n, torchvision.__version__, PIL.__version__, a.mode, " + jitter" if a.jitter else ""))


if __name__ == "__main__":
    main()
