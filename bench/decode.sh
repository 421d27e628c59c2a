#!/usr/bin/env bash
# ImageNet-style decoding throughput per core, ours beside torchvision + PIL
# on the same JPEGs: the training transform (decode + RandomResizedCrop(224) +
# flip, then + ColorJitter(0.4, 0.4, 0.4)) and the test one (Resize(256) +
# CenterCrop(224)), each ending in a uint8 CHW image; then our whole pipeline
# on 1 and all cores. The JPEGs are made by bench/gen_jpegs.py from real
# photographs (ImageNet's sizes and qualities), in DIR (default /tmp/lwr-jpegs).
#   usage: bench/decode.sh [count] [rounds]      (defaults: 400 images, 3 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-400}
rounds=${2:-3}
dir=${JPEG_DIR:-/tmp/lwr-jpegs}
PY=${PYTHON:-/usr/bin/python3}
make -s setup
go build -o /tmp/lwr-decode ./bench/decode
if [ ! -f "$dir/list.txt" ] || [ "$(wc -l < "$dir/list.txt")" != "$count" ]; then
  rm -rf "$dir"
  $PY bench/gen_jpegs.py "$dir" "$count"
fi
echo "# $(date -u +%F) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $count JPEGs, $(du -sh "$dir" | cut -f1)"
args=(--root "$dir" --list "$dir/list.txt")
for r in $(seq "$rounds"); do
  echo "## round $r"
  /tmp/lwr-decode "${args[@]}"
  $PY bench/torch_decode.py "${args[@]}"
  /tmp/lwr-decode "${args[@]}" --jitter
  $PY bench/torch_decode.py "${args[@]}" --jitter
  /tmp/lwr-decode "${args[@]}" --mode test
  $PY bench/torch_decode.py "${args[@]}" --mode test
  /tmp/lwr-decode "${args[@]}" --decoder go
done
/tmp/lwr-decode "${args[@]}" --workers 1
/tmp/lwr-decode "${args[@]}" --workers "$(nproc)"
