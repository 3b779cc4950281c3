#!/usr/bin/env bash
# GPU check, for a machine with an NVIDIA GPU and no network (see ../shared/notes/gpu-builds.md):
# builds moe-eval with CUDA into build-cuda/, runs the routing-equivalence tests with every layer on
# the GPU, and the throughput and overhead benchmarks; prints a summary. Sized for < 10 minutes.
# That machine has no network and no Node.js: `node scripts/gpu-bundle.mjs` packs Node's binary, the
# production node_modules/, dist/ and the patched vendor/llama.cpp/ into .gpu-check/bundle.tar.xz,
# which travels with the working tree (49 MiB together, for a transfer of at most 64 MiB) and is
# unpacked here first.
#   node scripts/gpu-bundle.mjs        # here
#   bash bench/gpu-check.sh            # there
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
if [ -f .gpu-check/bundle.tar.xz ] && [ ! -d node_modules ]; then
  tar -xJf .gpu-check/bundle.tar.xz
  echo "unpacked .gpu-check/bundle.tar.xz in $(( $(date +%s) - t0 )) s"
fi
[ -x .gpu-check/node/bin/node ] && export PATH="$PWD/.gpu-check/node/bin:$PATH"
command -v node >/dev/null || { echo "no node: run scripts/gpu-bundle.mjs where npm works and carry .gpu-check"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || { echo "no NVIDIA GPU"; exit 1; }

# cuBLAS: the CUDA toolkit's, or the one in NVIDIA's pip wheels
if ! ls /usr/local/cuda/include/cublas_v2.h >/dev/null 2>&1; then
  CUBLAS_DIR=$(python3 -c "import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__))" 2>/dev/null || true)
  if [ -n "$CUBLAS_DIR" ]; then
    export CPATH="$CUBLAS_DIR/include:${CPATH:-}"
    export LIBRARY_PATH="$CUBLAS_DIR/lib:${LIBRARY_PATH:-}"
    export LD_LIBRARY_PATH="$CUBLAS_DIR/lib:${LD_LIBRARY_PATH:-}"
    for f in "$CUBLAS_DIR"/lib/libcublas*.so.*; do b=${f%%.so.*}.so; [ -e "$b" ] || ln -sf "$f" "$b"; done
    CUBLAS_SO=$(ls "$CUBLAS_DIR"/lib/libcublas.so* | head -1)
    CUBLASLT_SO=$(ls "$CUBLAS_DIR"/lib/libcublasLt.so* | head -1)
    export MOE_EVAL_CMAKE_DEFS="CUDA_cublas_LIBRARY=$CUBLAS_SO CUDA_cublasLt_LIBRARY=$CUBLASLT_SO"
    echo "cuBLAS from $CUBLAS_DIR"
  fi
fi

# the addon and its peer llama-perplexity from the same CUDA build: the throughput ratio compares
# GPU with GPU (llama-perplexity offloads every layer by default, as MOE_EVAL_GPU_LAYERS=-1 does here)
export MOE_EVAL_BUILD_DIR=build-cuda
MOE_EVAL_GPU=cuda MOE_EVAL_CUDA_ARCHITECTURES="${MOE_EVAL_CUDA_ARCHITECTURES:-90}" \
  node scripts/build-native.mjs --peers > build-cuda.log 2>&1 || { tail -40 build-cuda.log; exit 1; }
t1=$(date +%s)
echo "CUDA build: $((t1 - t0)) s"
export MOE_EVAL_ADDON="$PWD/build-cuda/Release/moe_eval.node"
export MOE_EVAL_GPU_LAYERS=-1
node -e "import('./dist/index.js').then(m => console.log(m.systemInfo?.() ?? ''))" || true
node --test --test-concurrency=1 test/routing-equivalence.test.mjs 2>&1 | grep -E '^# (pass|fail)|not ok' || true
node bench/routing-overhead.mjs || true
node bench/perplexity-throughput.mjs || true
echo "GPU check done in $(( $(date +%s) - t0 )) s"
