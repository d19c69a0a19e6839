#!/usr/bin/env bash
# quantized_matmul's checks and timings on the GPU machine, in one call (issue 10 part 2):
#   bench/cuda/quant_device.sh BIN_DIR [OUT_DIR]
# BIN_DIR holds cuda_quant_test, op_cases_test and cuda_quant_bench (built with -DLOOM_CUDA=ON;
# they need .devbuild/lib's OpenBLAS). Correctness first (vs the CPU and reference backends, the
# op harness's quantization cases, a memcheck subset), then the GEMV table with its PyTorch peers
# (tinygemm int4, fp16 cuBLAS) measured in the same call. About 40 s on an H100.
set -u
BIN=${1:?bin dir}
OUT=${2:-${OUT:-/tmp}}
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}:$PWD/.devbuild/lib
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.max.mem --format=csv,noheader
echo "== cuda_quant_test"
timeout 120 "$BIN/cuda_quant_test" --gtest_brief=1 >"$OUT/quant_test.log" 2>&1
echo "rc=$?"
grep -E "Failure|FAILED|PASSED|tests ran" "$OUT/quant_test.log" | head -30
if [ -x "$BIN/op_cases_test" ]; then
  echo "== op harness (quantization cases, CUDA vs CPU)"
  timeout 120 "$BIN/op_cases_test" --gtest_filter='*CudaMatchesCpu*quant*:*CudaMatchesCpu*lut*' \
    --gtest_brief=1 >"$OUT/quant_harness.log" 2>&1
  echo "rc=$?"
  grep -E "FAILED|PASSED|tests ran" "$OUT/quant_harness.log" | head -20
fi
if command -v compute-sanitizer >/dev/null; then
  echo "== memcheck (subset)"
  timeout 90 compute-sanitizer --tool memcheck --leak-check no "$BIN/cuda_quant_test" \
    --gtest_filter='*DequantizeBlocks*:*Lookup*:*Batched*' --gtest_brief=1 >"$OUT/quant_memcheck.log" 2>&1
  echo "rc=$?"
  grep -E "ERROR SUMMARY|PASSED|FAILED" "$OUT/quant_memcheck.log" | head -5
fi
echo "== bench (Loom), then peers and the joined table"
OUT="$OUT" timeout 150 "$BIN/cuda_quant_bench" >"$OUT/quant_bench.txt" 2>&1
echo "rc=$?"
tail -5 "$OUT/quant_bench.txt"
OUT="$OUT" PYTHONUNBUFFERED=1 timeout 120 python3 bench/cuda/quant_peer.py "$OUT/quant_bench.csv" 2>&1 |
  tee "$OUT/quant_peer.txt" | tail -90
