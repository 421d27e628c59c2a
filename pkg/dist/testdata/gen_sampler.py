"""Makes sampler.json for sampler_test.go with Debian's python3-torch: the
indices torch.utils.data.distributed.DistributedSampler gives every rank
(shuffle=True, drop_last=False, set_epoch), and torch.randperm's
permutations. Written for this project; run as python3 gen_sampler.py."""
import json

import torch
from torch.utils.data.distributed import DistributedSampler

cases = []
for n, world, seed, epoch in [(10, 2, 0, 0), (10, 3, 0, 1), (7, 4, 5, 2), (1485, 2, 0, 3), (100, 8, 42, 0), (3, 5, 1, 0)]:
    # set_epoch: a fresh sampler per rank with the epoch set
    ranks = []
    for r in range(world):
        s = DistributedSampler(range(n), num_replicas=world, rank=r, shuffle=True, seed=seed, drop_last=False)
        s.set_epoch(epoch)
        ranks.append(list(iter(s)))
    cases.append({"n": n, "world": world, "seed": seed, "epoch": epoch, "ranks": ranks})
perms = [{"n": n, "seed": seed, "perm": torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()}
         for n, seed in [(10, 0), (20, 3), (1000, 7), (20000, 11)]]
json.dump({"torch": torch.__version__, "samplers": cases, "randperm": perms}, open("sampler.json", "w"))
