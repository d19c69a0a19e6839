#!/usr/bin/env python3
"""Where a decode attention launch's time goes, from the per-block timestamps that
cuda_attention_bench writes (LOOM_BENCH_TIMELINE=DIR, a build configured -DLOOM_DECODE_TIMELINE=ON).

  python3 scripts/decode_timeline.py DIR/settled_cold.csv [more.csv ...]

For each launch in the steady state (the graph's launches 4 .. n-4): every event's min / median /
max offset from the launch's release (its first block's return from pdl_begin, i.e. the previous
launch's completion), the gap from the previous launch's last block to this release, and the
merging blocks (the last split of each kv head) with how long their merge took. Times in ns.
"""
import collections
import statistics
import sys

EVENTS = ["start", "issued", "released", "planned", "keys", "computed", "partial", "counted", "end"]
SM = len(EVENTS)  # slot 9: SM | blocks << 32


def load(path):
    """{launch: {block: [slots]}} and the header line."""
    header, launches = "", collections.defaultdict(dict)
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.startswith("#"):
                header = line[1:].strip()
                continue
            try:
                row, *slots = (int(x) for x in line.split(","))
            except ValueError:
                sys.exit(f"{path}:{n}: not a row of integers: {line.strip()[:80]!r}")
            if len(slots) != SM + 1:
                sys.exit(f"{path}:{n}: {len(slots)} slots, expected {SM + 1} (row, then "
                         f"{', '.join(EVENTS)}, sm)")
            blocks = slots[SM] >> 32
            if blocks == 0:
                sys.exit(f"{path}:{n}: no block count in slot {SM} (an older format?)")
            launches[row // blocks][row % blocks] = slots
    return header, launches


def report(path):
    header, launches = load(path)
    if not launches:
        sys.exit(f"{path}: no rows (was the bench built with -DLOOM_DECODE_TIMELINE=ON?)")
    seqs = sorted(launches)
    print(f"== {path}: {header}; {len(seqs)} launches of {len(launches[seqs[0]])} blocks")
    end = {s: max(b[EVENTS.index("end")] for b in launches[s].values()) for s in seqs}
    steady = seqs[4:-4] if len(seqs) > 10 else seqs
    periods = [end[s] - end[s - 1] for s in steady if s - 1 in end]
    if periods:
        print(f"period (last block to last block): median {statistics.median(periods):.0f}, "
              f"min {min(periods)}, max {max(periods)}")
    for s in steady[:3]:
        blocks = launches[s]
        rel = min(b[EVENTS.index("released")] for b in blocks.values())
        gap = rel - end[s - 1] if s - 1 in end else float("nan")
        print(f"launch {s}: release {gap} after the previous launch's last block")
        for i, name in enumerate(EVENTS):
            xs = sorted(b[i] - rel for b in blocks.values() if b[i])
            print(f"  {name:9s} {xs[0]:7d} {xs[len(xs) // 2]:7d} {xs[-1]:7d}")
        counted, fin = EVENTS.index("counted"), EVENTS.index("end")
        merges = sorted(b[fin] - b[counted] for b in blocks.values() if b[fin] - b[counted] > 300)
        if merges:
            print(f"  merges ({len(merges)}): {merges}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for p in sys.argv[1:]:
        report(p)
