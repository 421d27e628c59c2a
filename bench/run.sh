#!/usr/bin/env bash
# Side-by-side CPU benchmark of ResNet-32 (batch 128, 3×32×32, 100 classes):
# ours (bench/resnet: Go + gotch) against bench/torch_resnet32.py (Debian's
# python3-torch, the same libtorch 1.13), alternating the two round by round
# so that both see the same machine state, then resident memory over 2,000
# training steps (BS + LWR, SGD) for both.
#   usage: [THREADS="1 2"] bench/run.sh [rounds] [leak-steps]     (defaults 8, 2000; 0 steps: no memory run)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rounds=${1:-8}
steps=${2:-2000}
bench_start bench
go build -o "$tmp/resnet" ./bench/resnet
echo "# $(machine), torch $($PY -c 'import torch; print(torch.__version__)')"
log=$tmp/log
for threads in ${THREADS:-1 2}; do
  for r in $(seq "$rounds"); do
    "$tmp/resnet" --mode fwdbwd --batch 128 --iters 5 --warmup 2 --threads "$threads" | tee -a "$log"
    $PY bench/torch_resnet32.py --mode fwdbwd --batch 128 --iters 5 --warmup 2 --threads "$threads" | tee -a "$log"
  done
done
# Median over rounds of each round's median, per side and thread count.
for threads in ${THREADS:-1 2}; do
  go=$(grep -E "^go .*threads=$threads[: ]" "$log" | median)
  py=$(grep -E "^torch .*threads=$threads[: ]" "$log" | median)
  echo "SUMMARY fwd+bwd threads=$threads: go $go ms, torch $py ms, go/torch $(awk -v g="$go" -v p="$py" 'BEGIN {printf "%.3f", g/p}') (median of $rounds rounds)"
done
[ "$steps" -gt 0 ] || exit 0
"$tmp/resnet" --mode train --batch 16 --iters "$steps" --warmup 200 --threads 2
$PY bench/torch_resnet32.py --mode train --batch 16 --iters "$steps" --warmup 200 --threads 2
