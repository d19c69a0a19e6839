#!/usr/bin/env python3
"""Writes a ~1 GiB .loom package of random f32 constants (y = x + c0 + ... + c15, 64 MiB each)
straight in the documented format (docs/FORMAT.md), then times `loom inspect` (open + mmap +
header parse + validation) and `loom run`'s Executable::load against reading the file once.

usage: bench_package_load.py LOOM_BINARY [WORKDIR]
"""
import json, os, struct, subprocess, sys, time

import numpy as np

loom, work = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "/tmp")
n, count = 16 << 20, 16  # 16 constants of 16 Mi f32 = 1 GiB
path = os.path.join(work, "big.loom")
nodes = [{"op": "placeholder", "name": "x", "inputs": [],
          "attrs": {"name": {"s": "x"}, "dtype": {"s": "f32"}, "shape": {"iv": [n]}},
          "outputs": [{"dtype": "f32", "shape": [n]}]}]
acc = [0, 0]
for i in range(count):
    nodes.append({"op": "constant", "name": f"c{i}", "inputs": [], "attrs": {"value": {"t": {
        "dtype": "f32", "shape": [n], "offset": i * n * 4, "nbytes": n * 4}}},
        "outputs": [{"dtype": "f32", "shape": [n]}]})
    nodes.append({"op": "add", "name": f"add{i}", "inputs": [acc, [len(nodes) - 1, 0]], "attrs": {},
                  "outputs": [{"dtype": "f32", "shape": [n]}]})
    acc = [len(nodes) - 1, 0]
header = json.dumps({"format": "loom-package", "kind": "executable", "pass_log": [],
                     "compile_options": {"device": "cpu", "optimization_level": 1,
                                         "disabled_passes": [], "constant_folding_max_elements": 1 << 20,
                                         "plan_cache_capacity": 64, "num_threads": 0},
                     "graph": {"variables": [], "nodes": nodes, "outputs": [acc]}}).encode()
rng = np.random.default_rng(0)
with open(path, "wb") as f:
    f.write(b"LOOMPKG\0" + struct.pack("<IQ", 1, len(header)) + header)
    f.write(b"\0" * (-(20 + len(header)) % 64))
    for i in range(count):
        f.write(rng.standard_normal(n, dtype=np.float32).tobytes())
size = os.path.getsize(path)

def best(cmd, reps=5):
    t = []
    for _ in range(reps):
        s = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        t.append(time.perf_counter() - s)
    return min(t) * 1e3

inspect_ms = best([loom, "inspect", path])
version_ms = best([loom, "version"])
s = time.perf_counter()
with open(path, "rb") as f:
    while f.read(64 << 20):
        pass
read_ms = (time.perf_counter() - s) * 1e3
np.save(os.path.join(work, "big_x.npy"), np.ones(n, np.float32))
out = subprocess.run([loom, "run", path, "--input", f"x={work}/big_x.npy", "-o", work],
                     check=True, capture_output=True, text=True).stdout
print(f"package: {size / 2**30:.2f} GiB, header {len(header)} bytes, {len(nodes)} nodes")
print(f"loom inspect (process start + mmap + parse + validate): {inspect_ms:.1f} ms "
      f"(process start alone: {version_ms:.1f} ms)")
print(f"reading the file once (page cache warm): {read_ms:.0f} ms")
print("loom run:", out.strip().splitlines()[-1])
os.remove(path)
