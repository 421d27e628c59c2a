"""Writes pil_resize.json: PIL's bilinear resize (antialiased) of a fixed
random RGB image over a few boxes and sizes, for TestResizeMatchesPIL.

    cd pkg/transform/testdata && /usr/bin/python3 gen_pil.py > pil_resize.json

Debian's python3-pil and python3-numpy. Written for this project.
"""
import json

import numpy as np
from PIL import Image

rng = np.random.RandomState(0)
# A smooth image plus noise, so that resampling errors show.
h, w = 61, 83
yy, xx = np.mgrid[0:h, 0:w]
base = np.stack([127 + 100 * np.sin(xx / 7.0), 127 + 100 * np.cos(yy / 5.0), (xx * 3 + yy * 2) % 256], -1)
pix = np.clip(base + rng.randint(-20, 21, size=base.shape), 0, 255).astype(np.uint8)
img = Image.fromarray(pix, "RGB")
cases = []
for box, size in [((0, 0, 83, 61), (20, 15)), ((10.5, 4.25, 50.5, 40.75), (16, 16)),
                  ((3, 5, 43, 35), (56, 48)), ((0, 0, 83, 61), (83, 61)), ((7, 9, 67, 60), (9, 31))]:
    out = img.resize(size, Image.BILINEAR, box=box)
    cases.append({"box": box, "width": size[0], "height": size[1],
                  "pixels": np.asarray(out).reshape(-1).tolist()})
print(json.dumps({"width": w, "height": h, "pixels": pix.reshape(-1).tolist(), "cases": cases}))
