#!/usr/bin/env bash
# The script a GPU session runs, rehearsed on a CPU first: it builds exactly
# what the GPU machine will build (setup against the libtorch found, every
# command and benchmark binary), runs the device tests, then on the device
# (CUDA when libtorch sees one, else the CPU) a short training run with an
# interrupt and a resume, and ResNet-32 forward+backward beside PyTorch.
# Without a GPU it also checks that --device cuda fails with one line and
# --device auto falls back to the CPU. Logs and a summary go to OUTDIR.
#
#   scripts/gpu_rehearsal.sh [OUTDIR]            (default: $OUT, else a new temporary folder)
#
# On the GPU machine (see ../shared/gpu/README.md): carry .gpu and run
#   source .gpu/env.sh; scripts/gpu_rehearsal.sh
# Here, against the same PyTorch as the GPU machines (a CUDA build that runs
# on the CPU):
#   python3 -m venv v && v/bin/pip install 'torch==2.11.*' && PATH=$PWD/v/bin:$PATH scripts/gpu_rehearsal.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-$(mktemp -d -t lwr-rehearsal.XXXXXX)}}
mkdir -p "$out"
tmp=$(mktemp -d -t lwr-rehearsal-bin.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
PY=${PYTHON:-python3}
summary="$out/summary.txt"
: > "$summary"
t0=$(date +%s)
note() { echo "$*" | tee -a "$summary"; }
step() { echo "== $* ($(($(date +%s) - t0)) s)" | tee -a "$summary"; }

step "setup"
make -s setup 2>&1 | tee "$out/setup.log" | grep -E "using libtorch|adapted" | tee -a "$summary"
step "build"
go build -o "$tmp/cifar" ./cmd/cifar
go build -o "$tmp/imagenet" ./cmd/imagenet
go build -o "$tmp/resnet" ./bench/resnet
go vet ./... > "$out/vet.log" 2>&1
cuda=$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)
dev=cpu
[ "$cuda" = 1 ] && dev=cuda
note "device: $dev (torch $("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo '?'))"

step "device tests"
go test -count=1 ./pkg/libtorch ./cmd/cifar -run 'Device|CUDA|Libtorch|OnThread|NoGrad' > "$out/device-tests.log" 2>&1 &&
  note "device tests: pass" || { note "device tests: FAIL (device-tests.log)"; exit 1; }

if [ "$dev" = cpu ]; then
  step "no GPU: --device cuda fails with one line, auto falls back"
  set +e
  msg=$("$tmp/cifar" --dataset synthetic --epochs 1 --device cuda --out "$tmp/nocuda" 2>&1 >/dev/null)
  rc=$?
  set -e
  lines=$(printf '%s\n' "$msg" | grep -c .)
  note "--device cuda: exit $rc, $lines line: $msg"
  [ "$rc" = 1 ] && [ "$lines" = 1 ] || { note "FAIL: want exit 1 and one line"; exit 1; }
  [ ! -e "$tmp/nocuda" ] || { note "FAIL: the refused run made its folder"; exit 1; }
fi

step "training on $dev: 3 epochs, interrupted in the second, resumed"
run=(--dataset synthetic --device "$([ "$dev" = cuda ] && echo cuda || echo auto)" --epochs 3 --warmup 1
  --batch-size 64 --eval-every 1 --quiet)
"$tmp/cifar" "${run[@]}" --out "$tmp/whole" > "$out/train-whole.log" 2>&1
"$tmp/cifar" "${run[@]}" --out "$tmp/cut" > "$out/train-cut.log" 2>&1 &
pid=$!
while [ "$(cat "$tmp/cut/log.jsonl" 2>/dev/null | wc -l)" -lt 1 ]; do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
kill -INT "$pid" 2>/dev/null || true
set +e
wait "$pid"
rc=$?
set -e
note "interrupted: exit $rc (130 unless the run had finished: 0)"
"$tmp/cifar" "${run[@]}" --out "$tmp/cut" --resume >> "$out/train-cut.log" 2>&1
"$PY" - "$tmp/whole/summary.json" "$tmp/cut/summary.json" <<'EOF' | tee -a "$summary"
import json, sys
a, b = (json.load(open(p))["final"] for p in sys.argv[1:])
print("resumed run: top-1 %s vs uninterrupted %s: %s" % (b["top1"], a["top1"], "same" if a == b else "DIFFERENT"))
EOF
cp "$tmp/whole/log.jsonl" "$out/train-log.jsonl"

step "ResNet-32 forward+backward, batch 128, on $dev: ours beside PyTorch"
for r in 1 2 3; do
  "$tmp/resnet" --mode fwdbwd --device "$dev" --batch 128 --iters 10 --warmup 3 | tee -a "$out/fwdbwd.log"
  "$PY" bench/torch_resnet32.py --mode fwdbwd --device "$dev" --batch 128 --iters 10 --warmup 3 | tee -a "$out/fwdbwd.log"
done
grep -E "median" "$out/fwdbwd.log" | tail -2 >> "$summary"
step "done"
echo "results in $out"
