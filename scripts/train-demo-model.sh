#!/bin/sh
# Reproducible wrapper for scripts/train-demo-model.py (see its header for the pipeline).
#   scripts/train-demo-model.sh --minutes 25 --out models/demo
# Sets up what makes torch 1.13 (Debian python3-torch) fast enough on 2 CPU cores:
#  - Debian's libopenblas0-openmp, unpacked with dpkg -x (no root needed) and put first on
#    LD_LIBRARY_PATH; torch otherwise links the slow reference BLAS (~5 GFLOP/s vs 35-65).
#  - glibc malloc: no mmap for large blocks, no trimming (avoids page-fault storms).
# OPENBLAS_DIR overrides where the package is unpacked (default /tmp/openblas).
set -eu
cd "$(dirname "$0")/.."
OPENBLAS_DIR=${OPENBLAS_DIR:-/tmp/openblas}
LIB="$OPENBLAS_DIR/usr/lib/x86_64-linux-gnu/openblas-openmp"
if [ ! -f "$LIB/libblas.so.3" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && { apt-get download libopenblas0-openmp || { apt-get update && apt-get download libopenblas0-openmp; }; })
  dpkg -x "$tmp"/libopenblas0-openmp_*.deb "$OPENBLAS_DIR"
  rm -rf "$tmp"
fi
export LD_LIBRARY_PATH="$LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export MALLOC_MMAP_MAX_=0
export MALLOC_TRIM_THRESHOLD_=68719476736
export OMP_NUM_THREADS=2
exec /usr/bin/python3 scripts/train-demo-model.py "$@"
