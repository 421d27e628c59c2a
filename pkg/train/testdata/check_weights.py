"""PyTorch's side of TestWeightsInPyTorch (weights_test.go), with Debian's
python3-torch and python3-torchvision.

    check_weights.py check MODEL CLASSES NORMED WEIGHTS BATCH
        Loads WEIGHTS (safetensors written by lwr) into torchvision's resnet50
        or a ResNet-32 in LDAM-DRW's layout with load_state_dict(strict=True),
        runs it in eval mode on BATCH's "x" and compares with BATCH's
        "logits" (lwr's). Exit 1 beyond a relative difference of 1e-5.
    check_weights.py make MODEL CLASSES NORMED WEIGHTS BATCH [PTH]
        Writes a network of PyTorch's own initialisation (batch-norm
        statistics moved by two training-mode passes) as WEIGHTS, and a batch
        with PyTorch's eval logits as BATCH, for lwr to import and compare;
        with PTH, the same state dict also as torch.save writes it.

Safetensors are read and written with NumPy here (a few lines; the format is
an 8-byte header length, a JSON header, the raw bytes). Written for this
project.
"""
import json
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        lo, hi = e["data_offsets"]
        a = np.frombuffer(body[lo:hi], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
        out[name] = torch.from_numpy(a.copy())
    return out


def write_safetensors(path, tensors):
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        a = tensors[name].detach().cpu().numpy()
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}[a.dtype]
        b = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))


class Block(nn.Module):
    """A basic block with LDAM-DRW's option-A shortcut: stride-2 subsampling
    and zero channels on both sides."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = cout // 4 if stride != 1 or cin != cout else 0

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        s = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad)) if self.pad else x
        return F.relu(h + s)


class NormedLinear(nn.Module):
    """LDAM's cosine classifier: weight [in, out], both sides normalised."""

    def __init__(self, cin, cout):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cin, cout))

    def forward(self, x):
        return F.normalize(x, dim=1).mm(F.normalize(self.weight, dim=0))


class ResNet32(nn.Module):
    """ResNet-32 for 32×32 inputs with LDAM-DRW's parameter names."""

    def __init__(self, classes, normed):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for stage, (width, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
            blocks = []
            for i in range(5):
                blocks.append(Block(cin, width, stride if i == 0 else 1))
                cin = width
            setattr(self, "layer%d" % (stage + 1), nn.Sequential(*blocks))
        self.linear = NormedLinear(64, classes) if normed else nn.Linear(64, classes)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.layer3(self.layer2(self.layer1(h)))
        h = F.adaptive_avg_pool2d(h, 1).flatten(1)
        return self.linear(h)


def network(model, classes, normed):
    if model == "resnet50":
        return torchvision.models.resnet50(num_classes=classes)
    if model == "resnet32":
        return ResNet32(classes, normed)
    raise SystemExit("unknown model " + model)


def main():
    mode, model, classes, normed, weights, batch = sys.argv[1:7]
    classes, normed = int(classes), normed == "1"
    torch.manual_seed(7)
    net = network(model, classes, normed)
    if mode == "check":
        net.load_state_dict(read_safetensors(weights), strict=True)
        b = read_safetensors(batch)
        net.eval()
        with torch.no_grad():
            got = net(b["x"])
        want = b["logits"]
        rel = ((got - want).abs().max() / want.abs().max()).item()
        print("max relative difference of the logits: %.3g" % rel)
        sys.exit(0 if rel <= 1e-5 else 1)
    if mode == "make":
        side = 32 if model == "resnet32" else 64
        net.train()
        with torch.no_grad():
            for _ in range(2):
                net(torch.randn(8, 3, side, side))
        net.eval()
        x = torch.randn(4, 3, side, side)
        with torch.no_grad():
            logits = net(x)
        write_safetensors(weights, net.state_dict())
        if len(sys.argv) > 7:
            torch.save(net.state_dict(), sys.argv[7])
        write_safetensors(batch, {"x": x, "logits": logits})
        return
    raise SystemExit("mode: check or make")


if __name__ == "__main__":
    main()
