#!/usr/bin/env bash
# Data-parallel training speed on this machine, ours beside PyTorch DDP
# (Gloo) in the same run: Balanced Softmax + LWR, ResNet-32, Fashion-MNIST-LT,
# global batch 128, 1 process and 2 processes × 1 thread, rounds alternating
# the four, the median images/s of each run's epochs after the first, and
# ours' time in collectives per step (comm_seconds over the steps).
#   usage: bench/ddp.sh [rounds] [epochs]   (defaults: 3, 4)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rounds=${1:-3}
epochs=${2:-4}
bench_start ddp
go build -o "$tmp/cifar" ./cmd/cifar
echo "# $(machine), $epochs epochs, global batch 128"
printf '%-6s %-5s %-9s %12s %14s\n' round side processes "images/s" "comm ms/step"
ours() { # ours ROUND PROCS
  local out=$tmp/go$1-$2 extra=()
  [ "$2" -gt 1 ] && extra=(--nproc-per-node "$2")
  "$tmp/cifar" --quiet --device cpu --threads 1 --epochs "$epochs" --warmup 1 --lr 0.05 --eval-every "$epochs" \
    --out "$out" "${extra[@]}" >/dev/null 2>"$out.err" || { cat "$out.err"; exit 1; }
  $PY - "$out" "$1" "$2" <<'PYEOF'
import json, sys
out, rnd, procs = sys.argv[1:]
lines = [json.loads(l) for l in open(out + "/log.jsonl")][1:]
rates = sorted(l["images_per_sec"] for l in lines)
steps = 12  # ceil(1485 / 128)
comm = sorted(1000 * l.get("comm_seconds", 0) / steps for l in lines)
print("%-6s %-5s %-9s %12.1f %14.1f" % (rnd, "go", procs, rates[len(rates) // 2], comm[len(comm) // 2]))
PYEOF
}
theirs() { # theirs ROUND PROCS
  local list=$tmp/go$1-1/train_subset.txt launcher=()
  [ "$2" -gt 1 ] && launcher=(-m torch.distributed.run --redirects=1 --tee=1 --nnodes 1 --nproc_per_node "$2" --master_port "$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')")
  (cd bench && OMP_NUM_THREADS=1 $PY "${launcher[@]}" torch_ddp.py --list "$list" --epochs "$epochs" --threads 1 2>"$tmp/torch.err") |
    grep -o '{.*}' | $PY -c '
import json, sys
r = json.loads(sys.stdin.read())
print("%-6s %-5s %-9s %12.1f %14s" % (sys.argv[1], "torch", sys.argv[2], r["images_per_sec_median"], "-"))' "$1" "$2" ||
    { cat "$tmp/torch.err"; exit 1; }
}
for r in $(seq 1 "$rounds"); do
  ours "$r" 1
  theirs "$r" 1
  ours "$r" 2
  theirs "$r" 2
done
