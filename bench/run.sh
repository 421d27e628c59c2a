#!/usr/bin/env bash
# Side-by-side CPU benchmark of ResNet-32: ours (bench/resnet, Go + gotch)
# against bench/torch_resnet32.py (Debian's python3-torch, the same libtorch
# 1.13), alternating the two so that both see the same machine state, then
# resident memory over 2,000 training steps. Usage: bench/run.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
PY=${PYTHON:-/usr/bin/python3}
make -s setup
go build -o /tmp/lwr-bench-resnet ./bench/resnet
echo "# $(date -u +%F) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# torch $($PY -c 'import torch; print(torch.__version__)')"
for threads in 1 2; do
  for r in $(seq "$rounds"); do
    /tmp/lwr-bench-resnet --mode fwdbwd --batch 128 --iters 10 --warmup 3 --threads "$threads"
    $PY bench/torch_resnet32.py --mode fwdbwd --batch 128 --iters 10 --warmup 3 --threads "$threads"
  done
done
/tmp/lwr-bench-resnet --mode train --batch 16 --iters 2000 --warmup 200 --threads 2
$PY bench/torch_resnet32.py --mode train --batch 16 --iters 2000 --warmup 200 --threads 2
