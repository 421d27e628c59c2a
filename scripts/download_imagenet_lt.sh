#!/usr/bin/env bash
# Downloads ImageNet-LT's split files (Liu et al., OLTR, 2019) into DIR
# (default ./data/imagenet): ImageNet_LT_train.txt (115,846 images, 1,280 to
# 5 per class), ImageNet_LT_val.txt (20 per class) and ImageNet_LT_test.txt
# (50 per class), one "relative/path label" per line. A partial download
# resumes; each file is checked line by line (format, 1,000 classes, the
# published counts per class) before it is moved into place, so DIR never
# holds a half-written or wrong list. The images themselves are ILSVRC2012's,
# which need an account at image-net.org: see the README.
#
#   scripts/download_imagenet_lt.sh [DIR]
#
# Environment: IMAGENET_LT_BASE_URL replaces the default mirror (a public
# GitHub copy of the OLTR files, pinned to one commit so that it cannot
# change under us; the authors' own copy is on Google Drive, which curl
# cannot fetch: download it by hand and put the three files in DIR, then
# run this script to check them). IMAGENET_LT_SHA256_{TRAIN,VAL,TEST} pin a
# file's SHA-256: a file that differs is refused. The val list's digest is
# pinned by default (that copy's, checked when this was written); the
# mirror's copies of the train and test lists could not be read from where
# this project is built, so for those the script prints the digest of what
# it accepted, for you to compare.
set -euo pipefail
dir=${1:-data/imagenet}
base=${IMAGENET_LT_BASE_URL:-https://raw.githubusercontent.com/facebookresearch/ic_gan/8eff2f7390e385e801993211a941f3592c50984d/BigGAN_PyTorch/imagenet_lt}
sha_train=${IMAGENET_LT_SHA256_TRAIN:-}
sha_val=${IMAGENET_LT_SHA256_VAL-9af7ba688acf9532ff5845a8fb14a1e97fdc4c51ac48bc72c08ea9c3f7ff142e}
sha_test=${IMAGENET_LT_SHA256_TEST:-}

die() { echo "download_imagenet_lt: $*" >&2; exit 1; }
command -v curl >/dev/null || die "curl is not installed (apt-get install curl)"
mkdir -p "$dir"

# check FILE LINES MIN MAX PREFIX: every line "PREFIX... label" (any path when
# PREFIX is empty) with a label in 0..999, LINES lines, between MIN and MAX
# images in every class.
check() {
  awk -v want="$2" -v lo="$3" -v hi="$4" -v prefix="$5" -v file="$1" '
    NF == 0 { next }
    NF != 2 || $2 !~ /^[0-9]+$/ || $2 > 999 { printf "%s:%d: want \"path label\" with a label in 0..999, got \"%s\"\n", file, NR, $0; bad = 1; exit }
    prefix != "" && index($1, prefix) != 1 { printf "%s:%d: path %s does not start with %s\n", file, NR, $1, prefix; bad = 1; exit }
    { n++; count[$2]++ }
    END {
      if (bad) exit 1
      if (n != want) { printf "%s: %d images, want %d\n", file, n, want; exit 1 }
      for (c = 0; c < 1000; c++) if (count[c] < lo || count[c] > hi) {
        printf "%s: class %d has %d images, want %d..%d\n", file, c, count[c], lo, hi; exit 1 }
    }' "$1"
}

# digest FILE NAME: FILE's SHA-256 against NAME's pinned one, if any.
digest() {
  local got want
  got=$(sha256sum "$1" | cut -d' ' -f1)
  want=$(eval echo "\${sha_$2}")
  if [ -z "$want" ]; then
    echo "$1: sha256 $got (no pinned digest for this list: compare it with your copy's)" >&2
  elif [ "$got" != "$want" ]; then
    echo "$1: sha256 $got, want $want (IMAGENET_LT_SHA256_${2^^})" >&2
    return 1
  fi
}

fetch() { # name lines min max prefix
  local name=$1 file="$dir/ImageNet_LT_$1.txt"
  if [ -f "$file" ]; then
    { check "$file" "${@:2}" && digest "$file" "$name"; } >&2 || die "$file is there but fails the check above (remove it to download anew)"
    echo "$file: already there (checked)"
    return
  fi
  local part="$file.part" rc=0
  echo "downloading $base/ImageNet_LT_$name.txt"
  curl -fL --retry 3 -C - -o "$part" "$base/ImageNet_LT_$name.txt" || rc=$?
  case $rc in
    0) ;;
    6|7|28) die "cannot reach $base (curl exit $rc): offline? Put ImageNet_LT_$name.txt in $dir/ by hand, then run this again to check it" ;;
    22) rm -f "$part"; die "$base/ImageNet_LT_$name.txt: not found there (set IMAGENET_LT_BASE_URL to another copy)" ;;
    *) die "download of $base/ImageNet_LT_$name.txt failed (curl exit $rc); run again to resume" ;;
  esac
  if ! { check "$part" "${@:2}" && digest "$part" "$name"; } >&2; then
    mv "$part" "$file.bad"
    die "$base/ImageNet_LT_$name.txt is not ImageNet-LT's list (see above; kept as $file.bad)"
  fi
  mv "$part" "$file"
  echo "$file: ready (checked)"
}

fetch train 115846 5 1280 train/
fetch val 20000 20 20 ""
fetch test 50000 50 50 val/
