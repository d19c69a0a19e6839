#!/usr/bin/env bash
# On the device machine (a GPU), in one call: every CUDA test (the op harness on CUDA against the
# CPU backend, runtime, FFT, attention, quantized matmul, stitching, the LLM), a compute-sanitizer
# memcheck pass, and every GPU benchmark with its PyTorch peer measured in the same run.
# Binaries come packed by scripts/device_pack.sh (.devpack/loom-dev.tar.xz) or from BUILD.
#   run(command="bash scripts/device.sh", carry=[".devpack"])
set -uo pipefail
# Logs go to LOGS; with OUT set (the device tool's folder) they come back as one archive.
RESULT=${OUT:-}
export OUT=/tmp/loom-device
mkdir -p "$OUT"
# A warm machine keeps /tmp between calls: a later call may carry no binaries and reuse them.
if [ -f .devpack/loom-dev.tar.xz ] || [ -d /tmp/loom-dev/bin ]; then
  [ -f .devpack/loom-dev.tar.xz ] && rm -rf /tmp/loom-dev && mkdir -p /tmp/loom-dev &&
    tar -xJf .devpack/loom-dev.tar.xz -C /tmp/loom-dev
  BIN=/tmp/loom-dev/bin
  export LD_LIBRARY_PATH=/tmp/loom-dev/lib:${LD_LIBRARY_PATH:-}
else
  BUILD=${BUILD:-build-cuda}
  BIN=$(mktemp -d)
  for f in $(find "$BUILD/tests" "$BUILD/bench" -type f -perm -u+x -name '*cuda*' -o -type f \
    -name op_cases_test -o -type f -name llm_decode_bench); do ln -sf "$PWD/$f" "$BIN/"; done
fi
export PYTHONUNBUFFERED=1
# SmolLM2's real weights arrive in pieces over several calls (scripts/device_smol.sh): keep each
# piece on this machine and put the file together once all have come and the checksum matches.
SMOL=/tmp/loom-smol
for info in .devsmol/p*/info; do
  [ -f "$info" ] || continue
  read -r sum idx count <"$info"
  mkdir -p "$SMOL" && cp "$(dirname "$info")/piece" "$SMOL/piece$idx" && echo "$sum $count" >"$SMOL/info"
done
if [ -f "$SMOL/info" ] && [ ! -f "$SMOL/model.gguf" ]; then
  read -r sum count <"$SMOL/info"
  if [ "$(ls "$SMOL"/piece* | wc -l)" = "$count" ]; then
    cat $(ls "$SMOL"/piece* | sort -V) >"$SMOL/model.gguf.part"
    if [ "$(sha256sum "$SMOL/model.gguf.part" | cut -d' ' -f1)" = "$sum" ]; then
      mv "$SMOL/model.gguf.part" "$SMOL/model.gguf"
    else
      echo "SmolLM2 pieces do not match their checksum" && rm -f "$SMOL/model.gguf.part"
    fi
  fi
fi
[ -f "$SMOL/model.gguf" ] && export LOOM_SMOLLM2_GGUF=$SMOL/model.gguf
export LOOM_CACHE_DIR=${LOOM_CACHE_DIR:-$OUT/cache}  # NVRTC kernels: a fresh cache per run
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
# cuDNN, dlopen'ed by sdpa's fused-attention path: the image's pip nvidia-cudnn-cu13.
CUDNN_DIR=$(python3 -c "import nvidia.cudnn as c; print(list(c.__path__)[0] + '/lib')" 2>/dev/null)
[ -f "$CUDNN_DIR/libcudnn.so.9" ] || CUDNN_DIR=$(find / \( -path /proc -o -path /sys \) -prune -o \
  -name libcudnn.so.9 -path '*-packages/*' -print 2>/dev/null | head -1 | xargs -r dirname)
[ -n "$CUDNN_DIR" ] && export LD_LIBRARY_PATH=$CUDNN_DIR:${LD_LIBRARY_PATH:-}
echo "cudnn: ${CUDNN_DIR:-not found (sdpa runs without cuDNN)}" | tee -a "$SUMMARY"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader |
  tee "$OUT/gpu.txt"
rc=0
gtest() {  # name, binary, args...
  local name=$1 bin=$2
  shift 2
  [ -x "$BIN/$bin" ] || {
    echo "$name: missing" >>"$SUMMARY"
    return
  }
  echo "== $name"
  "$BIN/$bin" --gtest_brief=1 "$@" >"$OUT/$name.log" 2>&1 || rc=1
  grep -E "^\[  FAILED  \]" "$OUT/$name.log" | head -20
  printf '%-22s %s\n' "$name" "$(grep -E '^\[==========\]|^\[  (PASSED|FAILED|SKIPPED) ' \
    "$OUT/$name.log" | grep -v ' listed below' | tr '\n' ' ')" >>"$SUMMARY"
}
echo "SmolLM2 real weights: ${LOOM_SMOLLM2_GGUF:-not here ($(ls $SMOL/piece* 2>/dev/null | wc -l) pieces)}" |
  tee -a "$SUMMARY"
SUITES=${SUITES:-harness runtime fft attention quant stitch llama sampling}  # which test suites to run
suite() { case " $SUITES " in *" $1 "*) gtest "$@" ;; esac; }
suite harness op_cases_test --gtest_filter='*CudaMatchesCpu*'
case " $SUITES " in *" harness "*)
  echo "op cases skipped for a missing CUDA kernel:" \
    "$(grep -c 'has no kernel on cuda' "$OUT/harness.log")" | tee -a "$SUMMARY" ;;
esac
suite runtime cuda_runtime_test
suite fft cuda_fft_test
suite attention cuda_attention_test
suite quant cuda_quant_test
suite stitch cuda_stitch_test
suite llama llama_cuda_test
suite sampling sampling_test
if command -v compute-sanitizer >/dev/null 2>&1 && [ "${MEMCHECK:-1}" = 1 ]; then
  echo "== compute-sanitizer memcheck (a case of every op)"
  timeout 180 compute-sanitizer --tool memcheck --leak-check no --error-exitcode 9 \
    "$BIN/op_cases_test" --gtest_filter="${MEMCHECK_FILTER:-*CudaMatchesCpu/*0}" --gtest_brief=1 \
    >"$OUT/memcheck.log" 2>&1
  echo "memcheck rc=$? $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.log" | tail -1)" | tee -a "$SUMMARY"
fi
BENCHES=${BENCHES:-gemm attention quant fft stitch llm}  # which areas to time
bench() {  # name, command...
  local name=$1
  shift
  case " $BENCHES " in *" ${name%_*} "*) ;; *) return ;; esac
  [ "${2:-}" = none ] && return  # QUANT_BEFORE=none / LLM_BEFORE=none: no "before" run
  case $name in *_peer) [ "${PEERS:-1}" = 1 ] || return ;; esac  # PEERS=0: Loom's side only
  echo "== $name"
  timeout "${BENCH_TIMEOUT:-120}" "$@" 2>&1 | tee "$OUT/$name.txt" | tail -30 || true
}
[ "${BENCH:-1}" = 1 ] || BENCHES=none
bench gemm "$BIN/cuda_gemm_bench"
bench attention_loom "$BIN/cuda_attention_bench" "$OUT/attention_loom.csv"
bench attention_peer python3 bench/cuda/sdpa_peer.py "$OUT/attention_loom.csv" \
  "$OUT/attention_peer.json"
# Before/after pairs in the same call: QUANT_BEFORE / LLM_BEFORE name the switch of the "before"
# run (default: the GEMV without its balanced kernel; decode without it too); LLM_BEFORE_ARGS adds
# arguments to the "before" decode run (e.g. --kv-cache f32); "none" skips the "before" run.
bench quant_before env ${QUANT_BEFORE:-LOOM_QMM_INT8_STAGE=0} "$BIN/cuda_quant_bench"
bench quant_loom "$BIN/cuda_quant_bench"
bench quant_peer python3 bench/cuda/quant_peer.py "$OUT/quant_bench.csv"
bench fft_loom "$BIN/cuda_fft_bench"
bench fft_peer python3 bench/cuda/fft_peer.py --loom "$OUT/fft_loom.txt"
bench stitch_loom "$BIN/cuda_stitch_bench"
bench stitch_peer python3 bench/cuda/stitch_peer.py "$OUT/stitch_loom.txt"
bench llm_loom "$BIN/llm_decode_bench" --steps 128 ${LOOM_SMOLLM2_GGUF:+--model "$LOOM_SMOLLM2_GGUF"}
bench llm_before env ${LLM_BEFORE:-LOOM_QMM_INT8_STAGE=0} "$BIN/llm_decode_bench" --steps 128 \
  ${LLM_BEFORE_ARGS:-} ${LOOM_SMOLLM2_GGUF:+--model "$LOOM_SMOLLM2_GGUF"}
bench llm_peer python3 bench/cuda/llm_decode_peer.py
echo "== summary"
cat "$SUMMARY"
[ -n "$RESULT" ] && tar -czf "$RESULT/device-logs.tgz" -C "$OUT" --exclude=cache .
exit $rc
