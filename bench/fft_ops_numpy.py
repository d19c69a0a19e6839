#!/usr/bin/env python3
"""numpy peer of bench/fft_ops_bench.cpp: rfft 4096x512 (f32), fft 2^20 (complex64) and Whisper's
log-mel front end on 30 s of 16 kHz audio written in numpy float32 (reflect pad, as_strided frames
times a Hann window, rfft, |X|^2, the 80 Slaney filters as a matmul, log10 / max-8 / (x+4)/4).
Prints best milliseconds per call. numpy.fft (pocketfft) is single-threaded; the matmul goes to
the BLAS, so run with OPENBLAS_NUM_THREADS=1 (or 2) for the matching column."""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from make_fft_ops_golden import mel_filters  # noqa: E402  (writes nothing when imported)


def best_ms(fn, min_total=1.0, repeats=7):
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0, reps = time.perf_counter(), 0
        while True:
            fn()
            reps += 1
            el = time.perf_counter() - t0
            if el > min_total / repeats:
                break
        best = min(best, el / reps)
    return best * 1e3


def main():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (512, 4096)).astype(np.float32)
    z = np.full(1 << 20, 0.5 - 0.25j, dtype=np.complex64)
    audio = rng.uniform(-0.5, 0.5, 480000).astype(np.float32)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)).astype(np.float32)
    filters = mel_filters(16000, 400, 80).astype(np.float32)

    def log_mel():
        padded = np.pad(audio, 200, mode="reflect")
        n_frames = 1 + (padded.size - 400) // 160
        fr = np.lib.stride_tricks.as_strided(padded, (n_frames, 400), (160 * 4, 4))
        spec = np.fft.rfft(fr * window, axis=-1)
        mag = (np.abs(spec[:-1]) ** 2).T
        mel = filters @ mag
        log_spec = np.log10(np.maximum(mel, 1e-10))
        log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
        return (log_spec + 4.0) / 4.0

    assert np.fft.rfft(x).dtype == np.complex64 and log_mel().dtype == np.float32
    print(f"numpy {np.__version__}")
    print(f"rfft_4096x512 {best_ms(lambda: np.fft.rfft(x)):.3f} ms")
    print(f"fft_2^20 {best_ms(lambda: np.fft.fft(z)):.3f} ms")
    print(f"log_mel_30s {best_ms(log_mel):.3f} ms")


if __name__ == "__main__":
    main()
