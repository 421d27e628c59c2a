#!/usr/bin/env bash
# Downloads the binary versions of CIFAR-10 and/or CIFAR-100 from the
# authors' site into DIR (default ./data), resuming a partial download,
# verifying the MD5 the site publishes, and unpacking through a temporary
# folder so that DIR never holds a half-written data set.
#
#   scripts/download_cifar.sh [DIR] [10|100|all]
#
# Environment (for tests and mirrors): CIFAR_BASE_URL replaces
# https://www.cs.toronto.edu/~kriz; CIFAR10_MD5 / CIFAR100_MD5 replace the sums.
set -euo pipefail
dir=${1:-data}
which=${2:-all}
base=${CIFAR_BASE_URL:-https://www.cs.toronto.edu/~kriz}
md5_10=${CIFAR10_MD5:-c32a1d4ab5d03f1284b67883e8d87530}
md5_100=${CIFAR100_MD5:-03b5dce01913d631647c71ecec9e9cb8}

die() { echo "download_cifar: $*" >&2; exit 1; }
case $which in 10|100|all) ;; *) die "second argument '$which': want 10, 100 or all" ;; esac
command -v curl >/dev/null || die "curl is not installed (apt-get install curl)"
mkdir -p "$dir"

fetch() { # archive md5 folder
  local archive=$1 md5=$2 folder=$3
  if [ -d "$dir/$folder" ]; then
    echo "$dir/$folder: already there"
    return
  fi
  local part="$dir/$archive.part"
  if [ ! -f "$dir/$archive" ]; then
    echo "downloading $base/$archive"
    local rc=0
    curl -fL --retry 3 -C - -o "$part" "$base/$archive" || rc=$?
    case $rc in
      0) ;;
      6|7|28) die "cannot reach $base (curl exit $rc): offline? Download $archive elsewhere and put it in $dir/, then run this again" ;;
      *) die "download of $base/$archive failed (curl exit $rc); run again to resume" ;;
    esac
    mv "$part" "$dir/$archive"
  fi
  local got
  got=$(md5sum "$dir/$archive" | cut -d' ' -f1)
  if [ "$got" != "$md5" ]; then
    mv "$dir/$archive" "$dir/$archive.bad"
    die "$dir/$archive: MD5 $got, want $md5 (corrupt or wrong file; moved to $archive.bad, run again to download anew)"
  fi
  local tmp
  tmp=$(mktemp -d "$dir/.unpack.XXXXXX")
  if ! tar -xzf "$dir/$archive" -C "$tmp"; then
    rm -rf "$tmp"
    die "$dir/$archive: not a gzip tar archive"
  fi
  [ -d "$tmp/$folder" ] || { rm -rf "$tmp"; die "$dir/$archive: has no $folder/ inside"; }
  mv "$tmp/$folder" "$dir/$folder"
  rm -rf "$tmp"
  echo "$dir/$folder: ready (MD5 verified)"
}

[ "$which" = 100 ] || fetch cifar-10-binary.tar.gz "$md5_10" cifar-10-batches-bin
[ "$which" = 10 ] || fetch cifar-100-binary.tar.gz "$md5_100" cifar-100-binary
