#!/usr/bin/env python3
"""Writes a synthetic Llama-like `.loom` package (docs/FORMAT.md) for the viewer's scale tests.

Per layer `blk.N`: an RMSNorm-like chain, q/k/v/o matmuls with named weights, a KV-cache variable
(read -> add -> assign), a shared hub value (`rope`, used by every layer: drawn as stubs), and
`ffn` SiLU-gated MLP repeats to reach the requested op count. Everything is [1, D] f32 so the
types are easy to state; the package loader re-runs type inference and checks them.

usage: make_synthetic.py OUT.loom [--layers N] [--ffn K] [--dim D]
"""
import argparse
import json
import struct

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=1, help="MLP repeats per layer")
    ap.add_argument("--dim", type=int, default=16)
    a = ap.parse_args()
    D = a.dim
    rng = np.random.default_rng(0)
    nodes, data, variables = [], bytearray(), []
    t_vec = {"dtype": "f32", "shape": [1, D]}

    def tensor(arr):
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        off = (len(data) + 63) // 64 * 64
        data.extend(b"\0" * (off - len(data)))
        data.extend(arr.tobytes())
        return {"dtype": "f32", "shape": list(arr.shape), "offset": off, "nbytes": arr.nbytes}

    def node(op, inputs, name, attrs=None, outputs=None):
        nodes.append({"op": op, "name": name, "inputs": [[i, 0] for i in inputs],
                      "attrs": attrs or {}, "outputs": [t_vec] if outputs is None else outputs})
        return len(nodes) - 1

    def const(name, arr):
        t = tensor(arr)
        return node("constant", [], name, {"value": {"t": t}},
                    [{"dtype": "f32", "shape": t["shape"]}])

    count = [0]

    def op(kind, *inputs):
        count[0] += 1
        return node(kind, list(inputs), f"{kind}_{count[0]}")

    x = node("placeholder", [], "x", {"name": {"s": "x"}, "dtype": {"s": "f32"}, "shape": {"iv": [1, D]}})
    p = node("placeholder", [], "pos", {"name": {"s": "pos"}, "dtype": {"s": "f32"}, "shape": {"iv": [1, D]}})
    rope = op("tanh", p)
    h = op("mul", x, const("token_embd.scale", rng.standard_normal((1, D))))

    def norm(h, w):
        sq = op("mul", h, h)
        s = op("add", sq, const(w + ".eps", np.full((1, D), 1e-5)))
        return op("mul", op("mul", h, op("rsqrt", s)), const(w, rng.standard_normal((1, D))))

    def mm(v, w):
        return op("matmul", v, const(w, rng.standard_normal((D, D)) * 0.1))

    for l in range(a.layers):
        b = f"blk.{l}."
        hn = norm(h, b + "attn_norm.weight")
        q, k, v = mm(hn, b + "attn_q.weight"), mm(hn, b + "attn_k.weight"), mm(hn, b + "attn_v.weight")
        q, k = op("mul", q, rope), op("mul", k, rope)
        var = f"cache_k_{l}"
        variables.append({"name": var, "data": tensor(np.zeros((1, D)))})
        vattrs = {"variable": {"s": var}, "dtype": {"s": "f32"}, "shape": {"iv": [1, D]}}
        old = node("read", [], f"read_{var}", vattrs)
        new = op("add", old, k)
        node("assign", [new], f"assign_{var}", vattrs, [])
        att = op("sigmoid", op("mul", q, new))
        h = op("add", h, mm(op("mul", att, v), b + "attn_output.weight"))
        for r in range(a.ffn):
            s = "" if r == 0 else f"{r}."
            hn = norm(h, b + s + "ffn_norm.weight")
            g, u = mm(hn, b + s + "ffn_gate.weight"), mm(hn, b + s + "ffn_up.weight")
            act = op("mul", op("mul", g, op("sigmoid", g)), u)
            h = op("add", h, mm(act, b + s + "ffn_down.weight"))
    out = op("matmul", norm(h, "output_norm.weight"), const("output.weight", rng.standard_normal((D, D))))

    header = {"format": "loom-package", "kind": "graph",
              "compile_options": {"device": "cpu", "optimization_level": 1, "disabled_passes": [],
                                  "constant_folding_max_elements": 1048576,
                                  "plan_cache_capacity": 64, "num_threads": 0},
              "pass_log": [],
              "graph": {"variables": variables, "nodes": nodes, "outputs": [[out, 0]]}}
    h = json.dumps(header).encode()
    start = (20 + len(h) + 63) // 64 * 64
    with open(a.out, "wb") as f:
        f.write(b"LOOMPKG\0" + struct.pack("<IQ", 1, len(h)) + h)
        f.write(b"\0" * (start - 20 - len(h)))
        f.write(bytes(data))
    print(f"{a.out}: {len(nodes)} nodes, {a.layers} layers")


if __name__ == "__main__":
    main()
