#!/usr/bin/env bash
# On the device machine (a GPU): the op harness on CUDA against the CPU backend, a
# compute-sanitizer memcheck pass over a subset, and the GEMM benchmark vs cuBLAS (table last).
# Takes a build made elsewhere (BUILD, default build-cuda: op_cases_test and cuda_gemm_bench).
set -uo pipefail
BUILD=${BUILD:-build-cuda}
OUT=${OUT:-/tmp/loom-device}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
echo "== op harness: CUDA vs CPU"
"$BUILD/tests/ops/op_cases_test" --gtest_filter='*CudaMatchesCpu*' --gtest_brief=1 \
  >"$OUT/harness.log" 2>&1
rc=$?
grep -E "^\[  (PASSED|FAILED|SKIPPED) \]|tests ran" "$OUT/harness.log" | grep -v "^\[  SKIPPED \] All" | tail -40
grep -E "^\[  FAILED  \] All" "$OUT/harness.log" | head -60
echo "skipped cases by op without a CUDA kernel (compile fails clearly):"
grep -h "has no kernel on cuda" "$OUT/harness.log" | sed -E "s/.*op '([a-z_0-9]+)'.*/\1/" | sort | uniq -c | head -20
if command -v compute-sanitizer >/dev/null 2>&1 && [ "${MEMCHECK:-1}" = 1 ]; then
  echo "== compute-sanitizer memcheck (subset)"
  timeout 240 compute-sanitizer --tool memcheck --leak-check no --error-exitcode 9 \
    "$BUILD/tests/ops/op_cases_test" \
    --gtest_filter="${MEMCHECK_FILTER:-*CudaMatchesCpu/*0}" --gtest_brief=1 >"$OUT/memcheck.log" 2>&1
  echo "memcheck rc=$? $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.log" | tail -1) $(grep -E 'tests ran|PASSED' "$OUT/memcheck.log" | tail -2 | tr '\n' ' ')"
fi
if [ -x "$BUILD/tests/backends/cuda/cuda_runtime_test" ]; then
  echo "== CUDA runtime tests"
  "$BUILD/tests/backends/cuda/cuda_runtime_test" --gtest_brief=1 2>&1 | tail -3 || rc=1
fi
echo "== GEMM vs cuBLAS"
"$BUILD/bench/cuda/cuda_gemm_bench" 2>&1 | tee "$OUT/gemm.txt"
exit $rc
