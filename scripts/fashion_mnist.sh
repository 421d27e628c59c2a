#!/usr/bin/env bash
# Makes sure Fashion-MNIST (the offline default data set) is on this
# machine: the four *-ubyte.gz files in $FASHION_MNIST_DIR, or else in
# /usr/share/datasets/fashion-mnist, where Debian's dataset-fashion-mnist
# puts them. As root on Debian/Ubuntu it installs that package; otherwise
# it says in one line what to run. `make demo` calls it first.
set -euo pipefail
dir=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
files="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"
have() { for f in $files; do [ -s "$dir/$f" ] || return 1; done; }
have && exit 0
if [ -n "${FASHION_MNIST_DIR:-}" ]; then
  echo "fashion-mnist: FASHION_MNIST_DIR=$dir lacks one of: $files" >&2
  exit 1
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "fashion-mnist: installing Debian's dataset-fashion-mnist with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends dataset-fashion-mnist >/dev/null; } ||
    { echo "fashion-mnist: apt-get install dataset-fashion-mnist failed (offline?)" >&2; exit 1; }
  have && exit 0
  echo "fashion-mnist: dataset-fashion-mnist is installed but $dir lacks its files" >&2
  exit 1
fi
echo "fashion-mnist: not found in $dir: run 'sudo apt-get install dataset-fashion-mnist', or set FASHION_MNIST_DIR to a folder with $files" >&2
exit 1
