#!/usr/bin/env bash
# cRT on Fashion-MNIST-LT from the CE networks of an fmnist table: for each
# seed, export the CE run's network, retrain its classifier for 10 epochs
# with the backbone frozen and class-balanced sampling (--stage2 crt), and
# print top-1 and many/medium/few beside the CE network's.
#   usage: bench/crt.sh TABLE_DIR [seeds...]     (TABLE_DIR: runs/fmnist, from --preset fmnist; default seeds 0 1 2)
set -euo pipefail
cd "$(dirname "$0")/.."
table=${1:?usage: bench/crt.sh TABLE_DIR [seeds...]}
shift
seeds=${*:-0 1 2}
PY=${PYTHON:-python3}
make -s setup
tmp=$(mktemp -d -t lwr-crt.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/cifar" ./cmd/cifar
printf '%-5s %-10s %7s %7s %7s %7s\n' seed network top1 many medium few
for s in $seeds; do
  ce=$table/fashion-mnist-lt-if100-ce/seed$s
  "$tmp/cifar" --out "$ce" --export "$tmp/ce$s.safetensors" >/dev/null
  "$tmp/cifar" --quiet --force --init-from "$tmp/ce$s.safetensors" --stage2 crt --loss ce --lwr=false \
    --epochs 10 --seed "$s" --out "$table/crt/seed$s" >/dev/null
  for run in "$ce" "$table/crt/seed$s"; do
    "$PY" - "$run" "$s" <<'PYEOF'
import json, sys
run, seed = sys.argv[1:]
f = json.load(open(run + "/summary.json"))["final"]
name = "cRT" if "/crt/" in run else "CE"
print("%-5s %-10s %7.2f %7.2f %7.2f %7.2f" % (seed, name, f["top1"], f["many"], f["medium"], f["few"]))
PYEOF
  done
done
