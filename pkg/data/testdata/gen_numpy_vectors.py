"""Generates numpy_shuffle.json: NumPy legacy RandomState outputs that
pkg/data must reproduce bit for bit. Run with Debian's python3-numpy:

    /usr/bin/python3 pkg/data/testdata/gen_numpy_vectors.py > pkg/data/testdata/numpy_shuffle.json
"""
import json

import numpy as np

out = {"numpy_version": np.__version__, "uint32": [], "shuffles": [], "lt_subsets": []}
for seed in (0, 1, 5489, 2**32 - 1):
    rs = np.random.RandomState(seed)
    out["uint32"].append({"seed": seed, "values": [int(v) for v in rs.randint(0, 2**32, size=8, dtype=np.uint64)]})
for seed, n in ((0, 1), (0, 2), (0, 10), (1, 1000), (7, 5000), (123456789, 70000)):
    rs = np.random.RandomState(seed)
    idx = np.arange(n, dtype=np.int64)
    rs.shuffle(idx)
    out["shuffles"].append({"seed": seed, "n": n, "perm": [int(v) for v in idx]})


def lt_subset(targets, classes, n_max, imb_factor, seed):
    """The LDAM-DRW / CMO IMBALANCECIFAR selection, on given targets."""
    counts = [int(n_max * ((1.0 / imb_factor) ** (c / (classes - 1.0)))) for c in range(classes)]
    np.random.seed(seed)
    targets_np = np.array(targets, dtype=np.int64)
    chosen = []
    for c, k in zip(np.unique(targets_np), counts):
        idx = np.where(targets_np == c)[0]
        np.random.shuffle(idx)
        chosen.extend(int(i) for i in idx[:k])
    return counts, chosen


# Labels laid out as in no real data set but with every class present
# n_max times, in a scrambled order, so that np.where's order matters.
for classes, n_max, imb, seed in ((10, 600, 100, 0), (10, 500, 10, 3), (100, 50, 50, 0)):
    targets = [int(v) for v in np.random.RandomState(99).permutation(np.repeat(np.arange(classes), n_max))]
    counts, chosen = lt_subset(targets, classes, n_max, imb, seed)
    out["lt_subsets"].append({"classes": classes, "n_max": n_max, "imbalance_factor": imb, "seed": seed,
                              "targets": targets, "counts": counts, "chosen": chosen})
print(json.dumps(out, separators=(",", ":")))
