#!/usr/bin/env bash
# On the device machine: the same benchmarks with two builds, alternating A, B, A, B... in one
# call (lent GPUs of one model differ by several percent between calls, so a before / after pair
# is only meaningful within one). A = .devpack-old/loom-dev.tar.xz (e.g. the last session's pack,
# copied aside before scripts/device_pack.sh replaces it), B = .devpack/loom-dev.tar.xz:
#   run(command="ROUNDS=3 bash scripts/device_ab.sh", carry=[".devpack", ".devpack-old"])
# What is timed, each in its own process per round (AB_RUNS: a subset of the names below):
#   mistral   llm_decode_bench --shape mistral7b, pipelined CUDA-graph tok/s
#   smol      llm_decode_bench --shape smollm2 (synthetic weights), the same
#   attention cuda_attention_bench quick: the decode rows (µs)
#   quant     cuda_quant_bench (LOOM_BENCH_ONLY=AB_QUANT_ONLY, default all): µs per shape
# AB_OLD_ENV="NAME=0 ...": side A is B's build run under those settings instead (an A/B of a
# switch; .devpack-old is then not needed).
# AB_ENVS="NAME=0;NAME=64;NAME=128": B's build under each setting in turn (a sweep of a knob;
# ";" between settings, " " between the variables of one), each round alternating them all.
# A warm machine keeps both unpacked builds in /tmp: a later call may carry neither.
set -uo pipefail
RESULT=${OUT:-/tmp/loom-ab-out}
mkdir -p "$RESULT"
for side in old new; do
  pack=.devpack/loom-dev.tar.xz
  [ "$side" = old ] && pack=.devpack-old/loom-dev.tar.xz
  if [ -f "$pack" ]; then
    rm -rf "/tmp/loom-$side" && mkdir -p "/tmp/loom-$side" && tar -xJf "$pack" -C "/tmp/loom-$side"
  fi
  [ "$side" = old ] && [ -n "${AB_OLD_ENV:-}${AB_ENVS:-}" ] && continue
  [ -d "/tmp/loom-$side/bin" ] || { echo "no $side build (carry $pack)"; exit 1; }
done
ROUNDS=${ROUNDS:-3}
AB_RUNS=${AB_RUNS:-mistral smol attention quant}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
one() {  # side (old, new, or a setting of AB_ENVS), what: prints one line of figures
  local dir=/tmp/loom-$1 what=$2 set=
  [ "$1" = old ] && set=${AB_OLD_ENV:-}
  [ -n "${AB_ENVS:-}" ] && set=$1
  [ -n "$set" ] && dir=/tmp/loom-new
  local all=${AB_ENVS:-}
  for kv in ${AB_OLD_ENV:-} ${all//;/ }; do unset "${kv%%=*}"; done
  # shellcheck disable=SC2163
  for kv in $set; do export "$kv"; done
  local bin=$dir/bin
  export LD_LIBRARY_PATH=$dir/lib:${BASE_LD:-}
  case $what in
  mistral | smol)
    local shape=mistral7b
    [ "$what" = smol ] && shape=smollm2
    timeout 300 "$bin/llm_decode_bench" --steps 128 --shape $shape 2>&1 |
      grep -E 'CUDA graph, pipelined' | sed -E 's/^ *//' | tr -s ' ' | cut -c1-120
    ;;
  attention)
    timeout 300 "$bin/cuda_attention_bench" /tmp/ab-attn.csv quick >/tmp/ab-attn.txt 2>&1
    grep '^decode' /tmp/ab-attn.csv | grep -E 'default cold|settled cold' | cut -d, -f2,3,5,6 |
      tr '\n' ' '
    grep 'decode-llm' /tmp/ab-attn.txt | sed -E 's/^decode-llm //' | tr '\n' ' '
    ;;
  quant)
    OUT=/tmp/ab-quant LOOM_BENCH_ONLY=${AB_QUANT_ONLY:-} timeout 300 "$bin/cuda_quant_bench" 2>&1 |
      awk '/^quantized_matmul GEMV/ {p = 1; next} p && $NF ~ /%$/ {$(NF-1) = ""; print}' |
      tr -s ' ' | tr '\n' ';'
    ;;
  esac
  echo
}
BASE_LD=${LD_LIBRARY_PATH:-}
mkdir -p /tmp/ab-quant
for r in $(seq 1 "$ROUNDS"); do
  for what in $AB_RUNS; do
    if [ -n "${AB_ENVS:-}" ]; then
      IFS=';' read -ra sides <<<"$AB_ENVS"
    else
      sides=(old new)
    fi
    for side in "${sides[@]}"; do
      printf '%s round %s %-9s %s\n' "$side" "$r" "$what" "$(one "$side" $what)" |
        tee -a "$RESULT/ab.txt"
    done
  done
done
