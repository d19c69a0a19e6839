#!/usr/bin/env python3
"""An independent numpy implementation of a Llama-family GGUF forward pass (weights dequantized by
the `gguf` package from llama.cpp), used as a peer to check Loom's model builder.

usage: llama_numpy_reference.py MODEL.gguf TOKEN_IDS... -> prints the argmax and top-5 of the last logits
"""
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def main():
    path, ids = sys.argv[1], [int(t) for t in sys.argv[2:]]
    r = GGUFReader(path)
    f = {k: v.contents() for k, v in r.fields.items() if not k.startswith("tokenizer")}
    T = {t.name: t for t in r.tensors}

    def w(name):
        t = T[name]
        a = dequantize(t.data, t.tensor_type).astype(np.float32)
        return a.reshape([int(d) for d in reversed(t.shape)])

    L, d, H = f["llama.block_count"], f["llama.embedding_length"], f["llama.attention.head_count"]
    Hkv, eps, theta = f["llama.attention.head_count_kv"], f["llama.attention.layer_norm_rms_epsilon"], f["llama.rope.freq_base"]
    D = d // H
    n = len(ids)
    x = w("token_embd.weight")[ids]  # [n, d]
    pos = np.arange(n)
    inv = theta ** (-np.arange(0, D, 2) / D)
    ang = pos[:, None] * inv[None, :]  # [n, D/2]
    cos, sin = np.cos(ang), np.sin(ang)

    def rope(t):  # t [h, n, D], ggml NORM mode: pairs (2i, 2i+1)
        a, b = t[..., 0::2], t[..., 1::2]
        out = np.empty_like(t)
        out[..., 0::2] = a * cos - b * sin
        out[..., 1::2] = b * cos + a * sin
        return out

    def norm(t, g):
        return t / np.sqrt((t.astype(np.float64) ** 2).mean(-1, keepdims=True) + eps) * g

    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(L):
        p = f"blk.{l}."
        h = norm(x, w(p + "attn_norm.weight"))
        q = (h @ w(p + "attn_q.weight").T).reshape(n, H, D).transpose(1, 0, 2)
        k = (h @ w(p + "attn_k.weight").T).reshape(n, Hkv, D).transpose(1, 0, 2)
        v = (h @ w(p + "attn_v.weight").T).reshape(n, Hkv, D).transpose(1, 0, 2)
        q, k = rope(q), rope(k)
        k, v = np.repeat(k, H // Hkv, 0), np.repeat(v, H // Hkv, 0)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(D) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        o = (s @ v).transpose(1, 0, 2).reshape(n, d)
        x = x + o @ w(p + "attn_output.weight").T
        h = norm(x, w(p + "ffn_norm.weight"))
        g, u = h @ w(p + "ffn_gate.weight").T, h @ w(p + "ffn_up.weight").T
        x = x + (g / (1 + np.exp(-g)) * u) @ w(p + "ffn_down.weight").T
    x = norm(x, w("output_norm.weight"))
    head = w("output.weight") if "output.weight" in T else w("token_embd.weight")
    logits = x[-1] @ head.T
    top = np.argsort(-logits)[:5]
    print("argmax", int(top[0]), "top5", [int(t) for t in top], "values", [float(logits[t]) for t in top])


if __name__ == "__main__":
    main()
