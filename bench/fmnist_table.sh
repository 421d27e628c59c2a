#!/usr/bin/env bash
# The offline Fashion-MNIST-LT table, lwr beside PyTorch: `--preset fmnist`
# (CE, BS, BS + LWR, without projection, constant λ) over the given seeds and
# epochs, two runs at a time with one thread each, then the same rows and
# seeds with bench/torch_train.py on each run's subset and schedule
# (bench/torch_table.py). Both stop and resume: run it again to finish.
#   usage: bench/fmnist_table.sh [epochs] [seeds]   (defaults: 30, 0,1,2,3,4)
#   OUT=DIR: where the table goes (default runs/fmnist-vs-torch-EPOCHS)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
epochs=${1:-30}
seeds=${2:-0,1,2,3,4}
out=${OUT:-runs/fmnist-vs-torch-$epochs}
bench_start fmtable
go build -o "$tmp/cifar" ./cmd/cifar
echo "# $(machine), $epochs epochs, seeds $seeds"
start=$SECONDS
"$tmp/cifar" --preset fmnist --seeds "$seeds" --epochs "$epochs" --parallel 2 --out "$out" --quiet
echo "# lwr: $((SECONDS - start)) s; its table: $out/fmnist/table.md"
start=$SECONDS
$PY bench/torch_table.py "$out/fmnist" --parallel 2
echo "# PyTorch: $((SECONDS - start)) s"
