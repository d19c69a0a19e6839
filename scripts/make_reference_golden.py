#!/usr/bin/env python3
"""Golden data for the reference backend, computed by numpy (a real, independent peer).

Writes tests/data/reference/<case>.in<k>.npy and <case>.out.npy; tests/backends/reference_golden_test.cpp
builds the same op in Loom and compares. Run: python3 scripts/make_reference_golden.py
"""
import math
import os

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "reference")
rng = np.random.default_rng(20261125)


def save(name, inputs, output):
    os.makedirs(OUT, exist_ok=True)
    for k, a in enumerate(inputs):
        np.save(os.path.join(OUT, f"{name}.in{k}.npy"), a)
    np.save(os.path.join(OUT, f"{name}.out.npy"), output)


def f32(*shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


a, b = f32(2, 1, 5), f32(3, 1)
save("add_broadcast", [a, b], a + b)
a, b = f32(2, 3, 4, 5), f32(3, 5, 6)
save("matmul_batched", [a, b], np.matmul(a.astype(np.float64), b).astype(np.float32))
x = f32(3, 17, lo=-10, hi=10)
e = np.exp(x - x.max(-1, keepdims=True))
save("softmax", [x], (e / e.sum(-1, keepdims=True)).astype(np.float32))
save("log_softmax", [x], (x - x.max(-1, keepdims=True) - np.log(e.sum(-1, keepdims=True))).astype(np.float32))
x, g, bb = f32(4, 32), f32(32), f32(32)
mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
save("layer_norm", [x, g, bb], ((x - mu) / np.sqrt(var + 1e-5) * g + bb).astype(np.float32))
save("rms_norm", [x, g], (x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + 1e-6) * g).astype(np.float32))
x = f32(4, 5, 6)
save("sum_axes02_keep", [x], x.sum(axis=(0, 2), keepdims=True))
save("mean_axis1", [x], x.mean(axis=1))
save("max_all", [x], np.array(x.max(), dtype=np.float32))
save("argmax_axis1", [x], x.argmax(axis=1).astype(np.int64))
save("transpose_201", [x], np.ascontiguousarray(x.transpose(2, 0, 1)))
save("slice_neg_step", [x], np.ascontiguousarray(x[:, 4:0:-2, ::3]))
idx = rng.integers(-5, 5, size=(2, 3)).astype(np.int64)
save("gather_axis1", [x, idx], np.take(x, idx, axis=1))
y = f32(3, 5)
save("pad_reflect", [y], np.pad(y, ((2, 1), (1, 4)), mode="reflect"))
save("pad_edge", [y], np.pad(y, ((0, 3), (2, 0)), mode="edge"))
save("tile", [y], np.tile(y, (2, 3)))
save("flip_axis1", [y], np.ascontiguousarray(np.flip(y, axis=1)))
save("concat_axis0", [y, y * 2], np.concatenate([y, y * 2], axis=0))
z = f32(64, lo=-4, hi=4)
save("gelu_erf", [z], (0.5 * z * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))).astype(np.float32))
p, q = f32(64, lo=-5, hi=5), f32(64, lo=0.5, hi=3) * np.where(rng.random(64) < 0.5, -1, 1).astype(np.float32)
save("mod_numpy", [p, q], np.mod(p, q).astype(np.float32))
h = (rng.integers(-20, 20, size=64) / 2).astype(np.float32)
save("round_half_even", [h], np.round(h))
c = f32(64, lo=-100, hi=100)
save("cast_f32_i32", [c], c.astype(np.int32))
print("wrote", len(os.listdir(OUT)), "files to", os.path.normpath(OUT))
