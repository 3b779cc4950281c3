#!/usr/bin/env bash
# AddressSanitizer run of the CPU build (llama.cpp, ggml and the addon all instrumented) over the test
# suites that exercise native code. Builds into build-asan/ (the normal build/ is untouched).
#   bash scripts/asan-test.sh            # ~15 min on 2 cores the first time (ccache helps after)
# Leak detection is off: Node itself is not LeakSanitizer-clean; native leaks are covered by the
# RSS-over-100-cycles test (test/reliability.test.mjs). Record the last result in docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."
MOE_EVAL_BUILD_DIR=build-asan MOE_EVAL_SANITIZE=address node scripts/build-native.mjs
node scripts/build-ts.mjs
ASAN_LIB=$(gcc -print-file-name=libasan.so)
export LD_PRELOAD="$ASAN_LIB"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_odr_violation=0"
export MOE_EVAL_ADDON="$PWD/build-asan/Release/moe_eval.node"
export MOE_EVAL_FUZZ_CASES="${MOE_EVAL_FUZZ_CASES:-500}"
node --test --test-concurrency=1 \
  test/api.test.mjs test/evaluate.test.mjs test/routing-equivalence.test.mjs test/kld.test.mjs \
  test/calibrate.test.mjs test/sweep.test.mjs test/hostile-files.test.mjs test/compare.test.mjs
echo "AddressSanitizer: no errors reported"
