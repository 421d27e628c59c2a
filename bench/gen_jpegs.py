"""Makes ImageNet-like JPEGs for bench/decode.sh: random crops of the real
photographs that ship in gotch's module (kangaroo, koala, emu, Bondi
beach …), scaled so the longer side is 500 pixels (ImageNet's typical
500×375 / 500×333 / 375×500), saved at quality 75–95 with 4:2:0 chroma, in
ImageNet's folder layout, with an ImageNet-LT style list ("path label").

    /usr/bin/python3 bench/gen_jpegs.py OUT_DIR [count]

Debian's python3-pil and python3-numpy. Written for this project.
"""
import glob
import os
import subprocess
import sys

import numpy as np
from PIL import Image


def main():
    out = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    modcache = subprocess.check_output(["go", "env", "GOMODCACHE"], text=True).strip()
    sources = sorted(glob.glob(os.path.join(modcache, "github.com/sugarme/gotch@v0.9.1/example/*/*.jpg")))
    sources = [s for s in sources if "transformed" not in s and "yolo_" not in s and "out10" not in s]
    if not sources:
        sys.exit("gen_jpegs: no photographs under %s (run go mod download)" % modcache)
    photos = [Image.open(s).convert("RGB") for s in sources]
    rng = np.random.RandomState(0)
    lines = []
    for i in range(count):
        label = i % 10
        img = photos[rng.randint(len(photos))]
        w, h = img.size
        frac = rng.uniform(0.4, 1.0)
        cw, ch = int(w * frac), int(h * frac)
        x, y = rng.randint(0, w - cw + 1), rng.randint(0, h - ch + 1)
        crop = img.crop((x, y, x + cw, y + ch))
        shape = [(500, 375), (500, 333), (375, 500), (500, 400), (333, 500)][rng.randint(5)]
        crop = crop.resize(shape, Image.BILINEAR)
        wnid = "n%08d" % (1000 + label)
        rel = "train/%s/%s_%d.JPEG" % (wnid, wnid, i)
        os.makedirs(os.path.join(out, os.path.dirname(rel)), exist_ok=True)
        crop.save(os.path.join(out, rel), quality=int(rng.randint(75, 96)), subsampling=2)
        lines.append("%s %d\n" % (rel, label))
    with open(os.path.join(out, "list.txt"), "w") as f:
        f.writelines(lines)


if __name__ == "__main__":
    main()
