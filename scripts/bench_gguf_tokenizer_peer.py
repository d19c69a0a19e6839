#!/usr/bin/env python3
"""Peer timings for docs/benchmarks/gguf.md: llama.cpp's `gguf` package (GGUFReader, numpy
dequantization) and Hugging Face `tokenizers` on the same file and text as
tests/models/gguf_tokenizer_bench.cpp."""
import sys
import time

import numpy as np
import gguf

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from make_tokenizer_golden import build, find_smollm2  # noqa: E402

path = sys.argv[1] if len(sys.argv) > 1 else find_smollm2()
reps = 5
t = time.perf_counter()
for _ in range(reps):
    r = gguf.GGUFReader(path)
print(f"GGUFReader open+parse: {(time.perf_counter() - t) / reps * 1e3:.2f} ms")
t = time.perf_counter()
n = 0
for x in r.tensors:
    n += gguf.quants.dequantize(x.data, x.tensor_type).size
s = time.perf_counter() - t
print(f"gguf.quants.dequantize all tensors: {s * 1e3:.1f} ms ({n / 1e6:.0f} M elements, "
      f"{n * 4 / s / 1e9:.2f} GB/s)")
t = time.perf_counter()
tok = build(path)
print(f"tokenizers build from GGUF vocab+merges: {(time.perf_counter() - t) * 1e3:.1f} ms "
      "(includes reading the GGUF with gguf)")
para = ("The quick brown fox jumps over the lazy dog. In 2024, 1,234 people wrote code: "
        "def f(x): return x * 2 + 3.14159 # comment\n Unicode: naïve café, Москва, 日本語 🚀. ")
text = b""
while len(text) < (1 << 20):
    text += para.encode()
text = text.decode()
t = time.perf_counter()
ids = tok.encode(text, add_special_tokens=False).ids
s = time.perf_counter() - t
print(f"tokenizers encode 1 MiB: {s * 1e3:.1f} ms, {len(ids)} tokens ({len(text.encode()) / s / 1e6:.2f} MB/s)")
