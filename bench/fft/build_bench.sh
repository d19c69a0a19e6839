#!/bin/sh
# Builds fft_bench against an existing build dir (default build-fft) when bench/CMakeLists.txt does
# not (yet) add bench/fft. Usage: bench/fft/build_bench.sh [build-dir]
set -e
cd "$(dirname "$0")/../.."
B=${1:-build-fft}
ninja -C "$B" loom_cpu_fft
g++ -O2 -std=c++20 -Isrc -Iinclude bench/fft/fft_bench.cpp "$B/src/backends/cpu/fft/libloom_cpu_fft.a" \
  "$B/src/libloom_backends.a" "$B/src/libloom_ir.a" "$B/src/libloom_core.a" \
  -lbenchmark -lopenblas -lpthread -o "$B/fft_bench"
echo "$B/fft_bench"
