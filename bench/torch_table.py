"""PyTorch's side of a Fashion-MNIST-LT table (bench/fmnist_table.sh).

For every run folder of an lwr table (TABLE/<row>/seed<k> with config.json,
train_subset.txt and summary.json), trains the same row and seed with
bench/torch_train.py on the same subset and schedule, keeps its result as
torch.json beside the run (a result already there is reused, so a stopped
comparison picks up where it was), and prints a Markdown table: per row, the
mean ± sample std over seeds of top-1 / many / medium / few for lwr and for
PyTorch side by side, and per side the seed-paired difference of BS + LWR
against BS. Written for this project; Debian's python3-torch runs it.

  usage: python3 bench/torch_table.py TABLE [--parallel N]
"""
import argparse
import concurrent.futures
import glob
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
METRICS = ("top1", "many", "medium", "few")


def label(cfg):
    """The table's row label of an lwr config.json (as pkg/experiment names it)."""
    s = "CE" if cfg["loss"]["Name"] == "ce" else "BS"
    if cfg["lwr"]:
        s += " + LWR"
        if not cfg["lwr_config"]["Projection"]:
            s += ", no projection"
        if cfg["lwr_schedule"] == "constant":
            s += ", constant λ"
    return s


def torch_flags(cfg):
    if cfg["loss"]["Name"] not in ("ce", "balanced-softmax"):
        raise SystemExit("%s: torch_train.py has CE and Balanced Softmax only" % cfg["out"])
    lc = cfg["lwr_config"]
    if cfg["lwr"] and (lc["Theta"] != 0.4 or lc["Tau"] != 0.1 or lc["Reduction"] != "sum"):
        raise SystemExit("%s: torch_train.py has θ 0.4, τ 0.1, sum only" % cfg["out"])
    f = ["--loss", cfg["loss"]["Name"], "--epochs", str(cfg["epochs"]), "--warmup", str(cfg["warmup"]),
         "--seed", str(cfg["seed"]), "--batch-size", str(cfg["batch_size"]), "--lr", str(cfg["lr"])]
    if cfg["lwr"]:
        f.append("--lwr")
        if not lc["Projection"]:
            f.append("--no-projection")
        if cfg["lwr_schedule"] == "constant":
            f.append("--constant-lambda")
    return f


def run_torch(run):
    out = os.path.join(run, "torch.json")
    if os.path.exists(out):
        return
    cfg = json.load(open(os.path.join(run, "config.json")))
    cmd = [sys.executable, os.path.join(HERE, "torch_train.py"), "--list", os.path.join(run, "train_subset.txt"),
           "--threads", "1"] + torch_flags(cfg)
    res = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=HERE)
    r = json.loads(res.stdout)
    if r["milestones"] != cfg["milestones"]:
        raise SystemExit("%s: torch_train.py's milestones %s, the run's %s" % (run, r["milestones"], cfg["milestones"]))
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(r, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    print("torch %s seed %d: top-1 %.2f" % (label(cfg), cfg["seed"], r["top1"]), file=sys.stderr)


def mean_std(v):
    if not v:
        return "–"
    if len(v) == 1:
        return "%.2f" % v[0]
    return "%.2f ± %.2f" % (statistics.mean(v), statistics.stdev(v))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("table", help="an lwr table folder, e.g. runs/fmnist")
    ap.add_argument("--parallel", type=int, default=2, help="PyTorch runs at once, one thread each")
    a = ap.parse_args()
    runs = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(a.table, "*", "seed*", "summary.json")))
    runs = [r for r in runs if json.load(open(os.path.join(r, "config.json"))).get("stage2", "") == ""]
    if not runs:
        raise SystemExit("%s: no finished runs (*/seed*/summary.json)" % a.table)
    with concurrent.futures.ThreadPoolExecutor(a.parallel) as ex:
        list(ex.map(run_torch, runs))

    rows = {}  # label -> side -> seed -> final metrics
    for r in runs:
        cfg = json.load(open(os.path.join(r, "config.json")))
        row = rows.setdefault(label(cfg), {"lwr": {}, "torch": {}})
        row["lwr"][cfg["seed"]] = json.load(open(os.path.join(r, "summary.json")))["final"]
        row["torch"][cfg["seed"]] = json.load(open(os.path.join(r, "torch.json")))
    order = ["CE", "BS", "BS + LWR", "BS + LWR, no projection", "BS + LWR, constant λ"]
    print("| row | side | n | " + " | ".join(METRICS) + " |")
    print("|---|---|---|" + "---|" * len(METRICS))
    for lab in sorted(rows, key=lambda l: order.index(l) if l in order else len(order)):
        for side, name in (("lwr", "lwr"), ("torch", "PyTorch")):
            res = rows[lab][side]
            cells = [mean_std([res[s][m] for s in sorted(res)]) for m in METRICS]
            print("| %s | %s | %d | %s |" % (lab, name, len(res), " | ".join(cells)))
    if "BS" in rows and "BS + LWR" in rows:
        print()
        print("BS + LWR minus BS, top-1, paired by seed:")
        for side, name in (("lwr", "lwr"), ("torch", "PyTorch")):
            a_, b_ = rows["BS + LWR"][side], rows["BS"][side]
            seeds = sorted(set(a_) & set(b_))
            d = [a_[s]["top1"] - b_[s]["top1"] for s in seeds]
            wins = sum(x > 0 for x in d)
            per = ", ".join("%+.2f" % x for x in d)
            print("- %s: %s over %d seeds (%s); BS + LWR ahead in %d of %d" % (name, mean_std(d), len(d), per, wins, len(d)))


if __name__ == "__main__":
    main()
