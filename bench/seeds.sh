#!/usr/bin/env bash
# Accuracy at a scale that settles it: the demo's schedule (Fashion-MNIST-LT
# IF 100, ResNet-32, 20 epochs, 2 warm-up epochs, lr ×0.1 at 70% and 85%) over
# many seeds, ours (cmd/cifar) and PyTorch's twin (bench/torch_train.py, on
# the subset our run of the same seed wrote), for CE and BS + LWR. Two jobs
# at a time, each one thread (the machine's two cores, never more threads
# than cores); a job is one seed of one run, ours then PyTorch's. Prints a
# line per run and side (also appended, dated, to runs/seeds.rows), then
# for each run the mean of PyTorch − ours over the seeds (paired by seed
# and subset) with its 95% interval (Student's t).
#   usage: bench/seeds.sh [epochs] [first seed] [last seed]   (defaults: 20 0 19)
#   RUNS="ce bs+lwr" (default) chooses the runs; JOBS=2 the jobs at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
epochs=${1:-20}
first=${2:-0}
last=${3:-19}
warmup=$(( epochs * 5 / 100 > 2 ? (epochs * 5 / 100 < 5 ? epochs * 5 / 100 : 5) : 2 )) # the demo's (config.ShortSchedule)
warmup=$(( warmup < epochs ? warmup : epochs - 1 ))
bench_start seeds
go build -o "$tmp/cifar" ./cmd/cifar
echo "# $(machine), $epochs epochs, seeds $first-$last, ${JOBS:-2} jobs of 1 thread"
printf '%-6s %-5s %-9s %7s %7s %7s %7s\n' side seed run top1 many medium few

# job SEED RUN: ours, then PyTorch's on our subset; two result lines.
job() {
  local seed=$1 run=$2 loss=ce lwr=false pyflags="" out
  [ "$run" = ce ] || loss=balanced-softmax
  [ "$run" = bs+lwr ] && { lwr=true; pyflags=--lwr; }
  out=runs/seeds-$run-s$seed
  # --force: an earlier comparison's folder is moved aside, never overwritten.
  "$tmp/cifar" --quiet --force --tensorboard=false --dataset fashion-mnist --loss "$loss" --lwr="$lwr" --epochs "$epochs" \
    --milestones "$((epochs * 70 / 100)),$((epochs * 85 / 100))" --warmup "$warmup" --eval-every "$epochs" \
    --seed "$seed" --threads 1 --device cpu --out "$out" >/dev/null || return 1
  local ours torch
  ours=$($PY -c '
import json, sys
s = json.load(open(sys.argv[1] + "/summary.json"))["final"]
print("%-6s %-5s %-9s %7.2f %7.2f %7.2f %7.2f" % ("go", sys.argv[2], sys.argv[3], s["top1"], s["many"], s["medium"], s["few"]))' "$out" "$seed" "$run")
  torch=$(cd bench && $PY torch_train.py --list "../$out/train_subset.txt" --loss "$loss" $pyflags --epochs "$epochs" --warmup "$warmup" \
    --seed "$seed" --threads 1 | $PY -c '
import json, sys
r = json.loads(sys.stdin.read())
print("%-6s %-5s %-9s %7.2f %7.2f %7.2f %7.2f" % ("torch", sys.argv[1], sys.argv[2], r["top1"], r["many"], r["medium"], r["few"]))' "$seed" "$run")
  [ -n "$ours" ] && [ -n "$torch" ] || return 1
  printf '%s\n%s\n' "$ours" "$torch"
}

# At most JOBS jobs at once; each job's two lines are kept together, and
# its exit status beside them.
for seed in $(seq "$first" "$last"); do
  for run in ${RUNS:-ce bs+lwr}; do
    while [ "$(jobs -rp | wc -l)" -ge "${JOBS:-2}" ]; do wait -n || true; done
    (set +e; job "$seed" "$run" > "$tmp/job-$seed-$run"; echo $? > "$tmp/rc-$seed-$run") &
  done
done
wait
cat "$tmp"/job-* | sort -k3,3 -k2,2n -k1,1 | tee "$tmp/rows"
# Kept, so that a later run's seeds can be joined with these.
mkdir -p runs && sed "s/^/$(date -u +%F) /" "$tmp/rows" >> runs/seeds.rows
if grep -qv '^0$' "$tmp"/rc-*; then
  echo "seeds.sh: a job failed: $(grep -lv '^0$' "$tmp"/rc-* | xargs -n1 basename | tr '\n' ' ')" >&2
  exit 1
fi

$PY - "$tmp/rows" <<'PYEOF'
import math, statistics, sys
# Student's t, 0.975 quantile, by degrees of freedom (1-30); 1.96 beyond.
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
rows = {}
for line in open(sys.argv[1]):
    side, seed, run, *vals = line.split()
    rows.setdefault(run, {}).setdefault(seed, {})[side] = [float(v) for v in vals]
for run, seeds in sorted(rows.items()):
    pairs = [(s["go"], s["torch"]) for s in seeds.values() if "go" in s and "torch" in s]
    n = len(pairs)
    if n < 2:
        continue
    for k, name in enumerate(["top-1", "many", "medium", "few"]):
        d = [t[k] - g[k] for g, t in pairs if not (math.isnan(t[k]) or math.isnan(g[k]))]
        m, sd = statistics.mean(d), statistics.stdev(d)
        half = (T975[n - 2] if n - 1 <= 30 else 1.96) * sd / math.sqrt(n)
        go, torch = statistics.mean(g[k] for g, _ in pairs), statistics.mean(t[k] for _, t in pairs)
        verdict = "interval excludes 0" if abs(m) > half else "interval holds 0"
        print("# %-8s %-6s ours %6.2f, PyTorch %6.2f; PyTorch - ours %+.2f (95%% interval %+.2f to %+.2f, sd %.2f, n %d): %s"
              % (run, name, go, torch, m, m - half, m + half, sd, n, verdict))
PYEOF
