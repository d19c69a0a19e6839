#!/usr/bin/env bash
# Here (no GPU): builds the CUDA test and benchmark binaries in BUILD (default build-cuda,
# -DLOOM_CUDA=ON), strips them and packs them with OpenBLAS into .devpack/loom-dev.tar.xz (git-
# ignored), small enough for one device call (the carry limit is 64 MiB). Then:
#   run(command="bash scripts/device.sh", carry=[".devpack"])
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-cuda}
TESTS="op_cases_test cuda_runtime_test cuda_fft_test cuda_attention_test cuda_quant_test
  cuda_stitch_test llama_cuda_test sampling_test"
BENCHES="cuda_gemm_bench cuda_fft_bench cuda_attention_bench cuda_quant_bench cuda_stitch_bench
  llm_decode_bench"
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOOM_CUDA=ON
fi
# shellcheck disable=SC2086
cmake --build "$BUILD" -j "$(nproc)" --target $TESTS $BENCHES loom_cli  # loom_cli: `loom`
STAGE=$(mktemp -d)
mkdir -p "$STAGE/bin" "$STAGE/lib"
for t in $TESTS $BENCHES loom; do
  f=$(find "$BUILD" -name "$t" -type f -perm -u+x -print -quit)
  cp "$f" "$STAGE/bin/" && strip "$STAGE/bin/$t"
done
# Libraries the device machine lacks (it has the CUDA toolkit and driver).
# `loom` also needs ONNX, protobuf and cpp-httplib (and what they pull in).
for lib in libopenblas.so.0 libgfortran.so.5 libquadmath.so.0 libonnx_proto.so.1 libprotobuf.so.32 \
  libcpp-httplib.so.0.11 libbrotlidec.so.1 libbrotlienc.so.1 libbrotlicommon.so.1 libcupti.so.13; do
  p=$(ldconfig -p | awk -v l="$lib" '$1 == l && !f {print $NF; f = 1}')  # no early exit: pipefail
  [ -n "$p" ] && cp -L "$p" "$STAGE/lib/"
done
mkdir -p .devpack
# A dictionary larger than one binary: the binaries share most of their bytes (static loom).
tar -C "$STAGE" -cf - bin lib | xz -T1 --lzma2=preset=6,dict=192MiB >.devpack/loom-dev.tar.xz
rm -rf "$STAGE"
grep -q '^/.devpack/' .git/info/exclude 2>/dev/null || echo '/.devpack/' >>.git/info/exclude
ls -lh .devpack/loom-dev.tar.xz
