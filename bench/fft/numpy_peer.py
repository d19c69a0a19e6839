#!/usr/bin/env python3
"""numpy.fft (pocketfft, single-threaded) on the shapes of bench/fft/fft_bench.cpp.

Prints JSON {key: best seconds per call}. Inputs are float32/complex64 (numpy >= 2 transforms
them in single precision). The stft shape frames a 480k-sample waveform at hop 160 with
as_strided, like Loom's zero-copy frames view.
"""
import json
import sys
import time

import numpy as np


def shapes():
    for lg in range(10, 21):
        yield "c2c", 1 << lg, (1 << 20) >> lg
    for lg in range(10, 21):
        yield "r2c", 1 << lg, (1 << 20) >> lg
    yield "c2c", 1000, 1024
    yield "c2c", 4099, 256
    yield "r2c", 4096, 512
    yield "r2c", 512, 4096
    yield "stft", 400, 3000


def best_time(fn, min_total=0.5, repeats=7):
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        reps = 0
        while True:
            fn()
            reps += 1
            el = time.perf_counter() - t0
            if el > min_total / repeats:
                break
        best = min(best, el / reps)
    return best


def main():
    rng = np.random.default_rng(1)
    out = {"numpy": np.__version__}
    only = sys.argv[1:]
    for kind, n, count in shapes():
        key = f"{kind}_{n}x{count}"
        if only and key not in only:
            continue
        if kind == "c2c":
            x = (rng.standard_normal((count, n)) + 1j * rng.standard_normal((count, n))).astype(np.complex64)
            fn = lambda: np.fft.fft(x, axis=-1)
        elif kind == "r2c":
            x = rng.standard_normal((count, n)).astype(np.float32)
            fn = lambda: np.fft.rfft(x, axis=-1)
        else:
            hop = 160
            wave = rng.standard_normal(hop * (count - 1) + n).astype(np.float32)
            frames = np.lib.stride_tricks.as_strided(wave, (count, n), (hop * 4, 4))
            fn = lambda: np.fft.rfft(frames, axis=-1)
        assert fn().dtype == np.complex64
        out[key] = best_time(fn)
        print(key, f"{out[key] * 1e6:.1f} us", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
