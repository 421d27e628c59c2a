#!/usr/bin/env bash
# ImageNet-style decoding throughput per core, ours beside torchvision + PIL
# on the same JPEGs: the training transform (decode + RandomResizedCrop(224) +
# flip, then + ColorJitter(0.4, 0.4, 0.4)) and the test one (Resize(256) +
# CenterCrop(224)), each ending in a uint8 CHW image; then our whole pipeline
# on 1 and all cores. The JPEGs are made by bench/gen_jpegs.py from real
# photographs (ImageNet's sizes and qualities), in $JPEG_DIR (kept, made if
# absent; it must then be empty or not exist) or else a temporary folder.
#   usage: bench/decode.sh [count] [rounds]      (defaults: 400 images, 3 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
count=${1:-400}
rounds=${2:-3}
bench_start decode
dir=${JPEG_DIR:-$tmp/jpegs}
go build -o "$tmp/decode" ./bench/decode
if [ ! -f "$dir/list.txt" ] || [ "$(wc -l < "$dir/list.txt")" != "$count" ]; then
  if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
    echo "decode.sh: $dir holds something else than $count generated JPEGs; set JPEG_DIR to an empty or new folder" >&2
    exit 1
  fi
  $PY bench/gen_jpegs.py "$dir" "$count"
fi
echo "# $(machine); $count JPEGs, $(du -sh "$dir" | cut -f1)"
args=(--root "$dir" --list "$dir/list.txt")
for r in $(seq "$rounds"); do
  echo "## round $r"
  "$tmp/decode" "${args[@]}"
  $PY bench/torch_decode.py "${args[@]}"
  "$tmp/decode" "${args[@]}" --jitter
  $PY bench/torch_decode.py "${args[@]}" --jitter
  "$tmp/decode" "${args[@]}" --mode test
  $PY bench/torch_decode.py "${args[@]}" --mode test
  "$tmp/decode" "${args[@]}" --decoder go
done
"$tmp/decode" "${args[@]}" --workers 1
"$tmp/decode" "${args[@]}" --workers "$(nproc)"
