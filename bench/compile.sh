#!/usr/bin/env bash
# Training-step speed against PyTorch at its best on this CPU, in one run:
# ours built against Debian's libtorch 1.13 (channels-last, and blocked in
# oneDNN's channel block where it has one, its convolutions as auto picks
# and all direct) and against PyPI's libtorch 2.11
# (channels-last: PyPI's torch hides its oneDNN), beside PyTorch 2.11 eager in NCHW and
# channels-last, torch.compile in its default mode and in
# max-autotune-no-cudagraphs (the forward with the loss, so its backward,
# and the optimizer step; the compiling first step's time is reported
# apart), and Debian's PyTorch 1.13 eager channels-last. The step is
# bench/resnet --mode step's (forward, Balanced Softmax + LWR, backward,
# SGD with momentum and weight decay). Rounds alternate the sides; each
# figure is the median over rounds of a round's median time. Inductor
# caches what it compiled, here in a folder per oneDNN ISA cap and ATen
# CPU capability (/tmp/torchinductor_$USER-ISA-CAPABILITY): its cache keys
# leave ATEN_CPU_CAPABILITY out, and a kernel compiled without it crashed
# (segmentation fault) when loaded under ATEN_CPU_CAPABILITY=avx2. Only a
# first round on a fresh cache compiles from nothing.
#   usage: bench/compile.sh [rounds] [resnet50 rounds]   (defaults: 3, 0)
#   PYTHON211 is the Python with PyPI's torch 2.11 (default: the venv
#   .ci/run keeps, ~/.cache/lwr-ci/torch-2.11.); MODES the torch.compile
#   modes (default: "default max-autotune-no-cudagraphs"; "" for none).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rounds=${1:-3}
r50=${2:-0}
py211=${PYTHON211:-$HOME/.cache/lwr-ci/torch-2.11./bin/python3}
"$py211" -c 'import torch' 2>/dev/null || { echo "compile.sh: no PyTorch at $py211 (set PYTHON211; .ci/run builds it)" >&2; exit 1; }
bench_start compile
# Ours against each libtorch; setup is put back to Debian's at the end.
go build -o "$tmp/resnet-1.13" ./bench/resnet
trap 'make -s setup >/dev/null; rm -rf "$tmp"' EXIT
PATH=$(dirname "$py211"):$PATH make -s setup >/dev/null
go build -o "$tmp/resnet-2.11" ./bench/resnet
make -s setup >/dev/null
v211=$("$py211" -c 'import torch; print(torch.__version__)')
isa=${DNNL_MAX_CPU_ISA:-$(grep -qw avx512f /proc/cpuinfo && echo AVX512_CORE || echo AVX2)}
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/torchinductor_${USER:-$(id -un)}-$isa-${ATEN_CPU_CAPABILITY:-default}}
echo "# $(machine), ISA $isa (ATen ${ATEN_CPU_CAPABILITY:-default}), torch $v211 and $($PY -c 'import torch; print(torch.__version__)')"
# ours (1.13) runs channels-last, and blocked in oneDNN's block where it
# has one, which --memory-format auto then picks.
block=$("$tmp/resnet-1.13" --mode block)
auto=channels-last
[ "$("$tmp/resnet-1.13" --mode blocked)" = true ] && auto=blocked$block
echo "# oneDNN's block here: $block; ours' auto: $auto"
log=$tmp/log
case_() { # case_ NAME ROUNDS THREADS ITERS WARMUP ARGS...
  local name=$1 n=$2 threads=$3 iters=$4 warm=$5
  shift 5
  local run="--mode step --threads $threads --iters $iters --warmup $warm $*"
  for r in $(seq "$n"); do
    "$tmp/resnet-1.13" $run --memory-format channels-last | sed "s/^go /$name go-1.13 /" | tee -a "$log"
    [ "$block" = 0 ] || "$tmp/resnet-1.13" $run --memory-format blocked | sed "s/^go /$name go-1.13 /" | tee -a "$log"
    # Blocked with direct convolutions only (auto: Winograd where it applies).
    [ "$block" = 0 ] || "$tmp/resnet-1.13" $run --memory-format blocked --conv-algorithm direct | sed "s/^go /$name go-1.13 /" | tee -a "$log"
    "$tmp/resnet-2.11" $run --memory-format channels-last | sed "s/^go /$name go-2.11 /" | tee -a "$log"
    "$py211" bench/torch_resnet32.py $run | sed "s/^torch /$name torch-2.11 /" | tee -a "$log"
    "$py211" bench/torch_resnet32.py $run --channels-last | sed "s/^torch /$name torch-2.11 /" | tee -a "$log"
    for mode in ${MODES-default max-autotune-no-cudagraphs}; do
      # At least 3 untimed steps: the second and third recompile (the
      # optimizer's state appears), which would be timed otherwise.
      "$py211" bench/torch_resnet32.py $run --warmup "$((warm < 3 ? 3 : warm))" --channels-last --compile "$mode" 2>"$tmp/err" | sed "s/^torch /$name torch-2.11 /" | tee -a "$log" ||
        { echo "$name: torch.compile $mode failed:" >&2; tail -5 "$tmp/err" >&2; }
    done
    $PY bench/torch_resnet32.py $run --channels-last | sed "s/^torch /$name torch-1.13 /" | tee -a "$log"
  done
}
if [ "$rounds" -gt 0 ]; then
  case_ r32-b128-t2 "$rounds" 2 8 5 --batch 128
  case_ r32-b16-t1 "$rounds" 1 20 5 --batch 16
fi
if [ "$r50" -gt 0 ]; then
  case_ r50-b32-t2 "$r50" 2 2 1 --model resnet50 --side 224 --batch 32 --classes 1000
fi
echo
echo "| case | side, libtorch | format | median step | this / ours (1.13, auto: $auto) | first step (compiling), round by round |"
echo "|---|---|---|---|---|---|"
for c in r32-b128-t2 r32-b16-t1 r50-b32-t2; do
  grep -q "^$c " "$log" || continue
  ours=$(grep "^$c go-1.13 .*format=$auto:" "$log" | median)
  grep "^$c " "$log" | awk '{print $2, $0}' | sed 's/.*format=\([^:]*\):.*/&\t\1/' | awk -F'\t' '{split($1, a, " "); print a[1] "\t" $2}' | sort -u |
    while IFS=$'\t' read -r side fmt; do
      t=$(grep "^$c $side .*format=$fmt:" "$log" | median)
      first=$(grep "^$c $side .*format=$fmt:" "$log" | sed -n 's/.*first step (compiling) \([0-9.]*\) s.*/\1/p' | paste -sd/ | sed 's|/| / |g')
      awk -v c="$c" -v s="$side" -v f="$fmt" -v t="$t" -v o="$ours" -v first="$first" 'BEGIN {
        printf "| %s | %s | %s | %.1f ms | %.2f× | %s |\n", c, s, f, t, t / o, (first == "" ? "—" : first " s") }'
    done
done
