#!/usr/bin/env python3
"""`loom convert` end to end (ctest convert_cli): an ONNX MLP with a dynamic batch is converted
plain, with --quantize int8 and with --quantize int4:32, each package is run with `loom run` on
random inputs of two batch sizes and compared with onnxruntime; stderr stays empty when it is not
a terminal (no progress bar); a bad --quantize value is a one-line error with a non-zero exit.

usage: convert_cli_test.py LOOM_BINARY   (exits 0, skipping, without onnx / onnxruntime)
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

try:
    import onnxruntime as ort
    from onnx import TensorProto as TP
    from onnx import helper as h
    from onnx import numpy_helper
except ImportError as e:
    print(f"skipped: {e}")
    sys.exit(0)


def main():
    loom = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="loom_convert_cli_")
    rng = np.random.default_rng(3)
    w1 = (rng.standard_normal((64, 128)) * 0.1).astype(np.float32)  # >= 4096 elements: quantized
    w2 = (rng.standard_normal((128, 10)) * 0.1).astype(np.float32)  # 1280: stays f32
    nodes = [h.make_node("MatMul", ["x", "w1"], ["h"]), h.make_node("Relu", ["h"], ["r"]),
             h.make_node("MatMul", ["r", "w2"], ["y"])]
    g = h.make_graph(nodes, "mlp", [h.make_tensor_value_info("x", TP.FLOAT, ["batch", 64])],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)],
                     initializer=[numpy_helper.from_array(w1, "w1"),
                                  numpy_helper.from_array(w2, "w2")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    path = os.path.join(tmp, "mlp.onnx")
    with open(path, "wb") as f:
        f.write(m.SerializeToString())
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

    failures = []
    for name, args, tol, want_log in (("plain", [], 1e-5, None),
                                      ("int8", ["--quantize", "int8"], 2e-2, "1 weight(s) quantized to int8"),
                                      ("int4", ["--quantize", "int4:32"], 2e-1, "1 weight(s) quantized to int4 (block 32)")):
        pkg = os.path.join(tmp, f"{name}.loom")
        r = subprocess.run([loom, "convert", path, "-o", pkg] + args, capture_output=True, text=True)
        if r.returncode != 0:
            failures.append(f"{name}: convert failed: {r.stderr.strip()}")
            continue
        if r.stderr:
            failures.append(f"{name}: stderr not empty without a terminal: {r.stderr!r}")
        if want_log and want_log not in r.stdout:
            failures.append(f"{name}: expected '{want_log}' in: {r.stdout.strip()}")
        for batch in (1, 5):
            x = rng.standard_normal((batch, 64)).astype(np.float32)
            np.save(os.path.join(tmp, "x.npy"), x)
            out = os.path.join(tmp, f"out_{name}_{batch}")
            r = subprocess.run([loom, "run", pkg, "--input", "x=" + os.path.join(tmp, "x.npy"),
                                "-o", out], capture_output=True, text=True)
            if r.returncode != 0:
                failures.append(f"{name} batch {batch}: run failed: {r.stderr.strip()}")
                continue
            got = np.load(os.path.join(out, "y.npy"))
            want = sess.run(None, {"x": x})[0]
            err = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
            print(f"{name} batch {batch}: max error relative to max |y|: {err:.2e}")
            if got.shape != want.shape or not err <= tol:
                failures.append(f"{name} batch {batch}: error {err:.3g} > {tol} ({got.shape})")

    r = subprocess.run([loom, "convert", path, "-o", os.path.join(tmp, "bad.loom"), "--quantize",
                        "int3"], capture_output=True, text=True)
    lines = r.stderr.strip().splitlines()
    if r.returncode == 0 or len(lines) != 1 or "--quantize" not in lines[0]:
        failures.append(f"bad --quantize: rc {r.returncode}, stderr {r.stderr!r}")

    for f in failures:
        print("FAILED", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
