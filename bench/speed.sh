#!/usr/bin/env bash
# Training-step speed on this CPU, ours beside PyTorch in the same run:
# whole training steps (forward, Balanced Softmax + LWR, backward, SGD with
# momentum and weight decay) with the weights and input in the default NCHW
# layout and in channels-last (and for ResNet-32 ours with its activations
# in oneDNN's blocks, where --memory-format auto picks that), for ResNet-32
# (batch 128 at 2 threads, batch 16 at 1 thread) and ResNet-50 (224 px, batch 32, 2 threads), then LWR's
# R alone (forward + backward) at ResNet-32's and ImageNet-LT's sizes
# (100 × 64, 1,000 × 2,048), and evaluation (forward in eval mode, 2
# threads, batches of 64: ResNet-32 at 28 px and ResNet-50 at 224 px:
# ours fused and with libtorch's kernels, PyTorch in both
# layouts). Rounds alternate the sides; each figure is the
# median over rounds of a round's median time.
#   usage: bench/speed.sh [rounds] [resnet50 rounds]   (defaults: 5, 2; 0 skips those cases)
#   ONLY="step lwr eval" (the default) picks the groups of cases to run.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rounds=${1:-5}
r50=${2:-2}
only=" ${ONLY:-step lwr eval} "
want() { [[ "$only" == *" $1 "* ]]; }
bench_start speed
go build -o "$tmp/resnet" ./bench/resnet
echo "# $(machine), torch $($PY -c 'import torch; print(torch.__version__)')"
log=$tmp/log
# ResNet-32 and ResNet-50 also train with their activations in oneDNN's
# blocks, which --memory-format auto picks where oneDNN computes in blocks.
blocked=$("$tmp/resnet" --mode blocked)
echo "# blocked activations (auto for ResNet-32 and ResNet-50 here): $blocked"
case_() { # case_ NAME ROUNDS THREADS ITERS WARMUP ARGS...
  local name=$1 n=$2 threads=$3 iters=$4 warm=$5
  shift 5
  local formats="contiguous channels-last"
  [ "$blocked" == true ] && formats="$formats blocked"
  for r in $(seq "$n"); do
    for f in $formats; do
      "$tmp/resnet" --mode step --threads "$threads" --iters "$iters" --warmup "$warm" --memory-format "$f" "$@" | sed "s/^/$name /" | tee -a "$log"
      if [ "$f" = blocked ]; then
        # and with direct convolutions only (auto: Winograd where it applies)
        "$tmp/resnet" --mode step --threads "$threads" --iters "$iters" --warmup "$warm" --memory-format "$f" --conv-algorithm direct "$@" | sed "s/^/$name /" | tee -a "$log"
        continue
      fi
      cl=""
      [ "$f" = channels-last ] && cl=--channels-last
      $PY bench/torch_resnet32.py --mode step --threads "$threads" --iters "$iters" --warmup "$warm" $cl "$@" | sed "s/^/$name /" | tee -a "$log"
    done
  done
}
if want step && [ "$rounds" -gt 0 ]; then
  case_ r32-b128-t2 "$rounds" 2 8 5 --batch 128
  case_ r32-b16-t1 "$rounds" 1 20 5 --batch 16
fi
if want step && [ "$r50" -gt 0 ]; then
  case_ r50-b32-t2 "$r50" 2 2 1 --model resnet50 --side 224 --batch 32 --classes 1000
fi
lwr_case() { # lwr_case NAME ROUNDS ITERS CLASSES DIM
  local name=$1 n=$2 iters=$3 classes=$4 dim=$5
  for r in $(seq "$n"); do
    "$tmp/resnet" --mode lwr --threads 2 --iters "$iters" --warmup 2 --classes "$classes" --dim "$dim" | sed "s/^/$name /" | tee -a "$log"
    $PY bench/torch_resnet32.py --mode lwr --threads 2 --iters "$iters" --warmup 2 --classes "$classes" --dim "$dim" | sed "s/^/$name /" | tee -a "$log"
  done
}
if want lwr && [ "$rounds" -gt 0 ]; then
  lwr_case lwr-100x64-t2 "$rounds" 50 100 64
  lwr_case lwr-1000x2048-t2 "$((rounds < 3 ? rounds : 3))" 3 1000 2048 # PyTorch: ~50 s a round
fi
eval_case() { # eval_case NAME ROUNDS ARGS...
  local name=$1 n=$2
  shift 2
  local args="--mode eval --threads 2 $*"
  for r in $(seq "$n"); do
    for fused in true false; do
      "$tmp/resnet" $args --memory-format channels-last --fused="$fused" | sed "s/^/$name /" | tee -a "$log"
    done
    $PY bench/torch_resnet32.py $args | sed "s/^/$name /" | tee -a "$log"
    $PY bench/torch_resnet32.py $args --channels-last | sed "s/^/$name /" | tee -a "$log"
    # PyTorch with lwr's glibc heap settings (pkg/libtorch/heap.go): with
    # glibc's defaults its evaluation batches fault their activations in anew.
    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824:glibc.malloc.top_pad=67108864 \
      $PY bench/torch_resnet32.py $args --channels-last | sed "s/^/$name heap-kept /" | tee -a "$log"
  done
}
if want eval && [ "$rounds" -gt 0 ]; then
  eval_case eval-r32-b64-t2 "$rounds" --batch 64 --side 28 --classes 10 --iters 64 --warmup 4
fi
if want eval && [ "$r50" -gt 0 ]; then
  eval_case eval-r50-b64-t2 "$r50" --model resnet50 --batch 64 --side 224 --classes 1000 --iters 4 --warmup 1
fi
echo
echo "| case | ours NCHW | ours channels-last | ours blocked | ours blocked, direct convolutions | PyTorch NCHW | PyTorch channels-last | ours (auto) vs PyTorch NCHW | vs PyTorch channels-last |"
echo "|---|---|---|---|---|---|---|---|---|"
for c in r32-b128-t2 r32-b16-t1 r50-b32-t2; do
  grep -q "^$c " "$log" || continue
  gn=$(grep "^$c go .*format=contiguous" "$log" | median)
  gc=$(grep "^$c go .*format=channels-last" "$log" | median)
  gb="" gd=""
  grep -q "^$c go .*format=blocked[0-9]*:" "$log" && gb=$(grep "^$c go .*format=blocked[0-9]*:" "$log" | median)
  grep -q "^$c go .*format=blocked[0-9]*-direct:" "$log" && gd=$(grep "^$c go .*format=blocked[0-9]*-direct:" "$log" | median)
  tn=$(grep "^$c torch .*format=contiguous" "$log" | median)
  tc=$(grep "^$c torch .*format=channels-last" "$log" | median)
  awk -v c="$c" -v gn="$gn" -v gc="$gc" -v gb="$gb" -v gd="$gd" -v tn="$tn" -v tc="$tc" 'BEGIN {
    auto = gc; b = "—"; d = "—"; how = "channels-last"
    if (gb != "") { auto = gb; b = sprintf("%.1f ms", gb); how = "blocked" }
    if (gd != "") d = sprintf("%.1f ms", gd)
    printf "| %s | %.1f ms | %.1f ms | %s | %s | %.1f ms | %.1f ms | %.2f× (%s) | %.2f× |\n", c, gn, gc, b, d, tn, tc, tn / auto, how, tc / auto }'
done
echo
echo "| LWR's R, forward + backward, 2 threads | ours | PyTorch | ours vs PyTorch |"
echo "|---|---|---|---|"
for c in lwr-100x64-t2 lwr-1000x2048-t2; do
  grep -q "^$c " "$log" || continue
  g=$(grep "^$c go " "$log" | median)
  t=$(grep "^$c torch " "$log" | median)
  how=$(grep -m1 "^$c go " "$log" | sed 's/.*products=\([^:]*\):.*/\1/')
  awk -v c="$c" -v g="$g" -v t="$t" -v how="$how" 'BEGIN { printf "| %s (ours: %s) | %.1f ms | %.1f ms | %.2f× |\n", c, how, g, t, t / g }'
done
echo
echo "| evaluation, ms an image | ours fused | ours, libtorch's kernels | PyTorch NCHW | PyTorch channels-last | PyTorch channels-last, heap kept | fused vs PyTorch NCHW | vs channels-last | vs channels-last, heap kept |"
echo "|---|---|---|---|---|---|---|---|---|"
for c in eval-r32-b64-t2 eval-r50-b64-t2; do
  grep -q "^$c " "$log" || continue
  gf=$(grep "^$c go .*fused=true" "$log" | median)
  gl=$(grep "^$c go .*fused=false" "$log" | median)
  tn=$(grep "^$c torch .*format=contiguous" "$log" | median)
  tc=$(grep "^$c torch .*format=channels-last" "$log" | median)
  tk=$(grep "^$c heap-kept torch .*format=channels-last" "$log" | median)
  awk -v c="$c" -v gf="$gf" -v gl="$gl" -v tn="$tn" -v tc="$tc" -v tk="$tk" 'BEGIN {
    printf "| %s | %.3f | %.3f | %.3f | %.3f | %.3f | %.2f× | %.2f× | %.2f× |\n", c, gf, gl, tn, tc, tk, tn / gf, tc / gf, tk / gf }'
done
