#!/usr/bin/env bash
# Here (no GPU): what ptxas made of the decode GEMV kernels, before device time goes into timing
# them. Per kernel: registers, stack and local memory (they set how many CTAs fit per SM), and the
# step loop's first stretch: the shared-memory loads issued after its cp.async wait (DEPBAR.LE)
# before the first dp4a / FMA. The k-split GEMV's speed follows that schedule more than its source
# (docs/benchmarks/cuda_quant.md, "Session 16"): compare a change's report with its parent's.
#   bash scripts/sass_report.sh [object files...]  (default: build-cuda's quant_gemv_*.cu.o)
# Needs cuobjdump: the CUDA toolkit's, or PyPI's nvidia-cuda-cuobjdump.
set -euo pipefail
cd "$(dirname "$0")/.."
CUOBJDUMP=$(command -v cuobjdump || true)
[ -z "$CUOBJDUMP" ] && [ -x /usr/local/cuda/bin/cuobjdump ] && CUOBJDUMP=/usr/local/cuda/bin/cuobjdump
if [ -z "$CUOBJDUMP" ]; then
  CUOBJDUMP=$(python3 - <<'PY' 2>/dev/null || true
import glob, os, site
for d in site.getsitepackages() + [site.getusersitepackages()]:
    for f in glob.glob(os.path.join(d, "nvidia", "*", "bin", "cuobjdump")):
        print(f); raise SystemExit
PY
)
fi
[ -n "$CUOBJDUMP" ] || { echo "no cuobjdump: pip install nvidia-cuda-cuobjdump" >&2; exit 1; }
objs=("$@")
[ ${#objs[@]} -gt 0 ] || mapfile -t objs < <(ls build-cuda/src/backends/cuda/CMakeFiles/loom_cuda.dir/quant_gemv_*.cu.o)
printf '%-64s %4s %5s %5s %9s\n' kernel regs stack local "lds-first"
for o in "${objs[@]}"; do
  echo "# $o"
  # Resources: "Function <mangled>:" then "REG:n STACK:n SHARED:n LOCAL:n ...".
  "$CUOBJDUMP" -res-usage "$o" 2>/dev/null |
    awk '/Function/ {f = $2; sub(/:$/, "", f)} /REG:/ {
      for (i = 1; i <= NF; ++i) { split($i, kv, ":"); r[kv[1]] = kv[2] }
      print f, r["REG"], r["STACK"], r["LOCAL"] }' >/tmp/sass_res.$$
  # Schedule: per function, LDS between the first DEPBAR.LE and the first IDP / FFMA after it.
  "$CUOBJDUMP" -sass "$o" 2>/dev/null |
    awk '/Function :/ {f = $3; dep = 0; done = 0; n[f] = "-"}
      /DEPBAR\.LE/ && !dep {dep = 1; c = 0}
      dep && !done && / LDS/ {c++}
      dep && !done && (/ IDP\./ || / FFMA /) {n[f] = c; done = 1}
      END {for (k in n) print k, n[k]}' >/tmp/sass_loop.$$
  while read -r f reg stack local; do
    lds=$(awk -v f="$f" '$1 == f {print $2}' /tmp/sass_loop.$$)
    name=$(echo "$f" | c++filt |
      sed -E 's/^void //; s/\(anonymous namespace\):://g; s/loom::backends::cuda:://g; s/\(.*//')
    printf '%-64.64s %4s %5s %5s %9s\n' "$name" "$reg" "$stack" "$local" "${lds:--}"
  done </tmp/sass_res.$$
  rm -f /tmp/sass_res.$$ /tmp/sass_loop.$$
done
