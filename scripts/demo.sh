#!/usr/bin/env bash
# The main job (README): sets up, builds, and runs Loom's example on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOOM_BUILD_TESTS=OFF -DLOOM_BUILD_BENCH=OFF >/dev/null
cmake --build build -j "$(nproc)" --target loom_cli mlp_example
./build/examples/mlp_example
./build/loom selftest cpu
