# Sourced by the bench scripts, from the repository root.

# bench_start NAME: PY is the Python whose PyTorch the scripts compare with
# ($PYTHON, else Debian's python3-torch), gotch is adapted to the libtorch
# found (make setup), and $tmp is this run's own folder (nothing fixed in
# /tmp), removed when the script exits.
bench_start() {
  PY=${PYTHON:-/usr/bin/python3}
  make -s setup
  tmp=$(mktemp -d -t "lwr-$1.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
}

# machine describes where a result was measured, for its header line: the
# date (UTC), the number of cores and the CPU model.
machine() {
  echo "$(date -u +%F) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
}

# median: the median of the "median N ms" figures in the lines on stdin
# (the median over rounds of each round's median); nothing for no lines.
median() {
  sed 's/.*median \([0-9.]*\) ms.*/\1/' | sort -n | awk '{a[NR]=$1} END {if (NR) print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
}
