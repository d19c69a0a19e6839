#!/usr/bin/env python3
"""Side-by-side: numpy.fft (pocketfft, 1 thread) vs Loom's CPU FFT, measured in the same run.

Usage: python3 bench/fft/run_compare.py [path/to/fft_bench] [--rounds N]
Each side is measured `rounds` times, alternating, and the best time kept (the machine may be
shared). Ratio = numpy time / Loom time (> 1: Loom is faster). GFLOP/s uses 5 n log2 n per
complex transform and half that for real ones (the usual convention).
"""
import json
import math
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
args = [a for a in sys.argv[1:] if not a.startswith("--")]
rounds = 3
if "--rounds" in sys.argv:
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1])
    args = [a for a in args if a != str(rounds)]
binary = args[0] if args else os.path.join(here, "..", "..", "build-fft", "fft_bench")

numpy_best, loom_best, isa = {}, {}, "?"
for _ in range(rounds):
    np_out = subprocess.run([sys.executable, os.path.join(here, "numpy_peer.py")], check=True,
                            capture_output=True, text=True).stdout
    res = json.loads(np_out)
    np_version = res.pop("numpy")
    for k, v in res.items():
        numpy_best[k] = min(v, numpy_best.get(k, math.inf))
    out = subprocess.run([binary, "--benchmark_format=json", "--benchmark_min_time=0.2s"],
                         check=True, capture_output=True, text=True).stdout
    for b in json.loads(out)["benchmarks"]:
        name = b["name"].replace("/real_time", "")
        isa = b.get("label", isa)
        t = b["real_time"] * {"us": 1e-6, "ms": 1e-3, "ns": 1e-9}[b["time_unit"]]
        loom_best[name] = min(t, loom_best.get(name, math.inf))

threads = sorted({int(k.split("/t")[1]) for k in loom_best})
head = f"| shape | numpy {np_version} (ms) |"
for t in threads:
    head += f" Loom {t}T (ms) | ratio {t}T |"
head += " Loom 1T GFLOP/s |"
print(f"Loom kernels: {isa}; best of {rounds} rounds\n")
print(head)
print("|" + "---|" * (head.count("|") - 1))
for key, tn in numpy_best.items():
    kind, dims = key.split("_")
    n, count = map(int, dims.split("x"))
    flops = 5 * n * math.log2(n) * count * (1.0 if kind == "c2c" else 0.5)
    row = f"| {key} | {tn * 1e3:.3f} |"
    for t in threads:
        lt = loom_best.get(f"{key}/t{t}")
        row += f" {lt * 1e3:.3f} | {tn / lt:.2f}x |" if lt else " - | - |"
    lt1 = loom_best.get(f"{key}/t1")
    row += f" {flops / lt1 / 1e9:.1f} |" if lt1 else " - |"
    print(row)
