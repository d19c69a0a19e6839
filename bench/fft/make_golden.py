#!/usr/bin/env python3
"""Writes the numpy.fft golden files under tests/data/fft/ (small .npy, checked in).

Inputs are float32 / complex64 (what Loom computes on); numpy transforms them in double precision
and the results are stored as complex64 / float32. Run: python3 bench/fft/make_golden.py
"""
import os

import numpy as np

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "fft")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(20261125)


def crand(*shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def save(name, a):
    np.save(os.path.join(out, name + ".npy"), a)


# fft of 3 rows of length 12 (mixed radix) and 97 (Bluestein), along the last axis.
for n in (12, 97, 1000):
    x = crand(3, n)
    save(f"fft_{n}_in", x)
    save(f"fft_{n}_out", np.fft.fft(x.astype(np.complex128), axis=-1).astype(np.complex64))
    save(f"ifft_{n}_ortho_out",
         np.fft.ifft(x.astype(np.complex128), axis=-1, norm="ortho").astype(np.complex64))

# rfft / irfft, even and odd lengths (400 = an STFT frame).
for n in (400, 9):
    x = rng.standard_normal((4, n)).astype(np.float32)
    save(f"rfft_{n}_in", x)
    save(f"rfft_{n}_out", np.fft.rfft(x.astype(np.float64), axis=-1).astype(np.complex64))
    spec = crand(4, n // 2 + 1)
    save(f"irfft_{n}_in", spec)
    save(f"irfft_{n}_out", np.fft.irfft(spec.astype(np.complex128), n=n, axis=-1).astype(np.float32))

# 2-D over both axes of a 6 x 10 array: fft2 and rfft2 / irfft2.
x = crand(6, 10)
save("fft2_6x10_in", x)
save("fft2_6x10_out", np.fft.fft2(x.astype(np.complex128)).astype(np.complex64))
xr = rng.standard_normal((6, 10)).astype(np.float32)
save("rfft2_6x10_in", xr)
save("rfft2_6x10_out", np.fft.rfft2(xr.astype(np.float64)).astype(np.complex64))
save("irfft2_6x10_out", xr)  # irfft2(rfft2(x)) == x
print("wrote", sorted(os.listdir(out)))
