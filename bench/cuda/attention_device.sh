#!/usr/bin/env bash
# The sdpa kernels' checks and timings on the GPU machine, in one call (issue 10):
#   bench/cuda/attention_device.sh BIN_DIR [OUT_DIR]
# BIN_DIR holds cuda_attention_test, op_cases_test and cuda_attention_bench (built with
# -DLOOM_CUDA=ON; run with LD_LIBRARY_PATH=.devbuild/lib). Order: correctness first, then the
# timed table (Loom vs torch SDPA in the same call), then compute-sanitizer memcheck.
set -u
BIN=${1:?bin dir}
OUT=${2:-${OUT:-/tmp}}
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}:$PWD/.devbuild/lib
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
echo "== cuda_attention_test"
"$BIN/cuda_attention_test" --gtest_brief=1 2>&1 | tee "$OUT/attn_test.log" | tail -40
echo "== op harness (CudaMatchesCpu)"
"$BIN/op_cases_test" --gtest_filter='*CudaMatchesCpu*' --gtest_brief=1 2>&1 | tee "$OUT/op_cases.log" | tail -15
echo "== bench"
"$BIN/cuda_attention_bench" "$OUT/attention_loom.csv" ${QUICK:-} 2>&1 | tee "$OUT/bench.log"
echo "== peer"
PYTHONUNBUFFERED=1 python3 bench/cuda/sdpa_peer.py "$OUT/attention_loom.csv" "$OUT/attention_peer.json" 2>&1 | tee "$OUT/peer.log"
echo "== memcheck"
timeout "${MEMCHECK_S:-90}" compute-sanitizer --tool memcheck --error-exitcode 9 \
  "$BIN/cuda_attention_test" --gtest_brief=1 --gtest_filter="${MEMCHECK_FILTER:-*EveryVariant*}" \
  > "$OUT/memcheck.log" 2>&1
echo "memcheck rc=$? (0 clean, 9 errors, 124 timeout)"; tail -5 "$OUT/memcheck.log"
