#!/usr/bin/env python3
"""Runs a real ONNX model through Loom (`loom convert` + `loom run`) and onnxruntime on the same
random input; prints max |diff| and both latencies (same thread count).

Default model: magika's standard_v3_3 (PyPI `magika`, file-type classifier; input `bytes`
int32 [batch, 2048], byte values 0..255 and 256 for padding). Get it with
  pip download --no-deps magika -d /tmp/p_magika && unzip -o /tmp/p_magika/*.whl -d /tmp/p_magika/x

The exported graph computes its reshape targets from Shape(bytes) with a dynamic batch dim;
Loom imports it as is (docs/ONNX.md, "Dynamic dims in shape arithmetic"), so one package serves
every batch size: the script converts once and runs --batches (default 1 and 8). --quantize int8
(or int4[:block]) converts with `loom convert --quantize` and reports the error that adds.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort

DEFAULT = "/tmp/p_magika/x/magika/models/standard_v3_3/model.onnx"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=DEFAULT)
    p.add_argument("--loom", default="build/loom")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--quantize", default="")
    a = p.parse_args()
    if not os.path.exists(a.model):
        print(f"model not found: {a.model} (see the docstring)")
        return 2

    m = onnx.load(a.model)
    inp = m.graph.input[0]
    tmp = tempfile.mkdtemp(prefix="loom_real_")
    pkg = os.path.join(tmp, "model.loom")
    cmd = [a.loom, "convert", a.model, "-o", pkg, "--quiet"]
    if a.quantize:
        cmd += ["--quantize", a.quantize]
    t = time.perf_counter()
    r = subprocess.run(cmd, check=True, capture_output=True, text=True)
    print(r.stdout.strip(), f"(wall {1e3 * (time.perf_counter() - t):.0f} ms)")
    # `loom run` uses every core (CompileOptions::num_threads = 0); ORT gets the same count.
    threads = os.cpu_count()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch in (int(b) for b in a.batches.split(",")):
        dims = [batch] + [d.dim_value for d in inp.type.tensor_type.shape.dim][1:]
        rng = np.random.default_rng(batch)
        x = rng.integers(0, 257, size=dims).astype(np.int32)
        np.save(os.path.join(tmp, "x.npy"), x)
        out = os.path.join(tmp, f"out{batch}")
        r = subprocess.run([a.loom, "run", pkg, "--input", f"{inp.name}=" +
                            os.path.join(tmp, "x.npy"), "-o", out, "--repeat", str(a.repeat)],
                           check=True, capture_output=True, text=True)
        loom_ms = float(re.search(r"median ([0-9.e+-]+) ms", r.stdout).group(1))
        outs = sorted(f for f in os.listdir(out) if f.endswith(".npy"))
        y_loom = np.load(os.path.join(out, outs[0]))
        y_ort = sess.run(None, {inp.name: x})[0]
        times = []
        for _ in range(a.repeat):
            t = time.perf_counter()
            sess.run(None, {inp.name: x})
            times.append((time.perf_counter() - t) * 1e3)
        ort_ms = float(np.median(times))
        diff = float(np.max(np.abs(y_loom.astype(np.float64) - y_ort.astype(np.float64))))
        same_top1 = bool(np.all(np.argmax(y_loom, -1) == np.argmax(y_ort, -1)))
        worst = max(worst, diff)
        print(f"model {a.model} batch {batch} threads {threads}")
        print(f"output {y_ort.shape} max|diff| {diff:.3g}  argmax equal: {same_top1}")
        print(f"latency median: loom {loom_ms:.3f} ms, onnxruntime {ort_ms:.3f} ms, "
              f"ratio loom/ort {loom_ms / ort_ms:.2f}")
    return 0 if worst < (5e-2 if a.quantize else 1e-3) else 1


if __name__ == "__main__":
    sys.exit(main())
