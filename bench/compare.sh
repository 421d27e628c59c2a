#!/usr/bin/env bash
# Side-by-side training on Fashion-MNIST-LT IF 100 (ResNet-32, batch 128,
# SGD, 1 warm-up epoch, lr ×0.1 at 70% and 85%): ours (cmd/cifar) and the
# same recipe in PyTorch (bench/torch_train.py, on the subset our run wrote),
# for CE, Balanced Softmax and BS + LWR, one line of results per run: the
# final accuracy, the median training epoch and the final evaluation (10,000
# test images) in seconds; then the ratios PyTorch / ours of each pair (the
# same seed and run), medians over the pairs.
#   usage: bench/compare.sh [epochs] [seeds...]      (defaults: 30, seeds 0 1)
#   RUNS="ce bs+lwr" bench/compare.sh ... runs a subset of the three.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
epochs=${1:-30}
shift || true
seeds=${*:-0 1}
bench_start compare
go build -o "$tmp/cifar" ./cmd/cifar
echo "# $(machine), $epochs epochs"
printf '%-6s %-5s %-9s %7s %7s %7s %7s %10s %8s\n' side seed run top1 many medium few "s/epoch" "eval s"
for seed in $seeds; do
  for run in ${RUNS:-ce bs bs+lwr}; do
    loss=ce; lwr=false; pyflags=""
    [ "$run" = ce ] || loss=balanced-softmax
    [ "$run" = bs+lwr ] && { lwr=true; pyflags=--lwr; }
    out=runs/compare-$run-s$seed
    # --force: an earlier comparison's folder is moved aside, never overwritten.
    "$tmp/cifar" --quiet --force --dataset fashion-mnist --loss "$loss" --lwr="$lwr" --epochs "$epochs" \
      --milestones "$((epochs * 70 / 100)),$((epochs * 85 / 100))" --warmup 1 --eval-every "$epochs" \
      --seed "$seed" --threads 2 --device cpu --out "$out" >/dev/null
    $PY - "$out" "$seed" "$run" <<'PYEOF' | tee -a "$tmp/rows"
import json, sys
out, seed, run = sys.argv[1:]
s = json.load(open(out + "/summary.json"))["final"]
log = [json.loads(l) for l in open(out + "/log.jsonl")]
t = sorted(l["seconds"] for l in log)
print("%-6s %-5s %-9s %7.2f %7.2f %7.2f %7.2f %10.2f %8.2f" % ("go", seed, run, s["top1"], s["many"], s["medium"], s["few"], t[len(t) // 2], log[-1]["eval_seconds"]))
PYEOF
    (cd bench && $PY torch_train.py --list "../$out/train_subset.txt" --loss "$loss" $pyflags --epochs "$epochs" \
      --seed "$seed" --threads 2) | $PY -c '
import json, sys
r = json.loads(sys.stdin.read())
print("%-6s %-5s %-9s %7.2f %7.2f %7.2f %7.2f %10.2f %8.2f" % ("torch", sys.argv[1], sys.argv[2], r["top1"], r["many"], r["medium"], r["few"], r["epoch_seconds_median"], r["eval_seconds"]))' "$seed" "$run" | tee -a "$tmp/rows"
  done
done
# The ratios PyTorch / ours of each pair (same seed and run), and their medians.
$PY - "$tmp/rows" <<'PYEOF'
import statistics, sys
pairs = {}
for line in open(sys.argv[1]):
    f = line.split()
    pairs.setdefault((f[1], f[2]), {})[f[0]] = (float(f[-2]), float(f[-1]))
r = [(t[0] / g[0], t[1] / g[1], (t[0] + t[1]) / (g[0] + g[1]))
     for p in pairs.values() for g, t in [(p.get("go"), p.get("torch"))] if g and t]
if r:
    med = [statistics.median(x[i] for x in r) for i in range(3)]
    tot = [x[2] for x in r]
    print("# PyTorch / ours over %d pairs, medians: training epoch %.2f×, evaluation %.2f×, training + evaluation %.2f× (%.2f–%.2f)"
          % (len(r), med[0], med[1], med[2], min(tot), max(tot)))
PYEOF
