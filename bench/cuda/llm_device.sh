#!/usr/bin/env bash
# On the device machine: the LLM-on-GPU tests, `loom generate --device cuda` end to end, the decode
# benchmark and the PyTorch peer in one call (docs/benchmarks/cuda_llm.md). Binaries come from
# BIN (default .dev-llm: llama_cuda_test, llm_decode_bench, loom, or pkg.tar.xz of them), built
# and stripped elsewhere.
set -uo pipefail
BIN=${BIN:-.dev-llm}
OUT=${OUT:-/tmp/loom-llm}
mkdir -p "$OUT"
# The binaries travel compressed (the carry limit): BIN/pkg.tar.xz holds them and the libraries
# `loom` links (onnx, protobuf, httplib) besides OpenBLAS (.devbuild/lib).
if [ -f "$BIN/pkg.tar.xz" ]; then
  mkdir -p /tmp/llm-bin && tar xJf "$BIN/pkg.tar.xz" -C /tmp/llm-bin && BIN=/tmp/llm-bin
fi
export LD_LIBRARY_PATH=$PWD/.devbuild/lib:$BIN/lib:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader
rc=0
echo "== llama_cuda_test"
"$BIN/llama_cuda_test" --gtest_brief=1 >"$OUT/llama_cuda_test.log" 2>&1 || rc=1
grep -E "^\[  (PASSED|FAILED|SKIPPED) |tests ran|Failure|Expected|Which is|actual|error" \
  "$OUT/llama_cuda_test.log" | head -40
if [ -x "$BIN/loom" ]; then
  echo "== loom generate --device cuda (synthetic SmolLM2-shaped file: random weights)"
  "$BIN/llm_decode_bench" --write-smollm2 /tmp/smollm2_synthetic.gguf >/dev/null &&
    "$BIN/loom" generate --model /tmp/smollm2_synthetic.gguf --device cuda --raw --ignore-eos \
      -n 48 -p "The sky is" 2>&1 | tail -4 | cut -c1-300 || rc=1
fi
echo "== decode benchmark"
"$BIN/llm_decode_bench" --steps "${STEPS:-128}" 2>&1 | tee "$OUT/bench.txt" || rc=1
if [ "${PEER:-1}" = 1 ]; then
  echo "== PyTorch peer (torch.compile + CUDA graphs)"
  PYTHONUNBUFFERED=1 timeout "${PEER_TIMEOUT:-150}" python3 bench/cuda/llm_decode_peer.py \
    >"$OUT/peer.log" 2>&1 || echo "peer rc=$?"
  grep -E "^(int4|bf16)|RESULT" "$OUT/peer.log" | tail -4
fi
exit $rc
