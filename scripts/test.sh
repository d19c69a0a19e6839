#!/usr/bin/env bash
# The test command (README, .ci/run): installs dependencies, builds, runs every test.
#   1. Release build (-Wall -Wextra), all tests through ctest.
#   2. A sanitizer build (address + undefined behaviour) running the core test suites.
# Set LOOM_TEST_SANITIZE=0 to skip step 2. GPU tests skip cleanly without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
JOBS=${JOBS:-$(nproc)}

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOOM_CUDA=${LOOM_CUDA:-AUTO}
cmake --build build -j "$JOBS"
ctest --test-dir build -j "$JOBS" --output-on-failure --timeout 600

if [ "${LOOM_TEST_SANITIZE:-1}" = "1" ]; then
  cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=Debug -DLOOM_SANITIZE=ON \
        -DLOOM_CUDA=OFF -DLOOM_BUILD_BENCH=OFF -DLOOM_WITH_COMPONENTS=OFF
  # Components, benchmarks and CUDA are off here: the core suites (graph, runtime, passes,
  # reference and CPU kernels through the op harness) and the examples.
  cmake --build build-sanitize -j "$JOBS"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ctest --test-dir build-sanitize -j "$JOBS" --output-on-failure --timeout 900
fi
echo "test.sh: all tests passed"
