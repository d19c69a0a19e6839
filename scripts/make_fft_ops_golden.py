#!/usr/bin/env python3
"""Golden data for the FFT graph ops (tests/runtime/fft_ops_test.cpp): numpy.fft results and a
numpy implementation of Whisper's log-mel front end (whisper/audio.py, with librosa's Slaney mel
filterbank written out). Usage: scripts/make_fft_ops_golden.py [out_dir]"""
import os
import sys

import numpy as np

# --- Whisper front end
def hz_to_mel(f, htk):
    f = np.asanyarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-300) / min_log_hz) / logstep,
                    f / f_sp)


def mel_to_hz(m, htk):
    m = np.asanyarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filters(sr, n_fft, n_mels, htk=False):
    """librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, htk=htk, norm="slaney")."""
    fftfreqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0, htk), hz_to_mel(sr / 2, htk), n_mels + 2), htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, 1 + n_fft // 2))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights


def stft(audio, n_fft, hop, window):
    """torch.stft(center=True, pad_mode="reflect", return_complex=True): [bins, frames]."""
    padded = np.pad(audio, n_fft // 2, mode="reflect")
    n_frames = 1 + (len(padded) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    return np.fft.rfft(padded[idx] * window, axis=-1).T


def whisper_log_mel(audio, n_fft=400, hop=160, n_mels=80, sr=16000, htk=False):
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # torch.hann_window
    spec = stft(audio.astype(np.float64), n_fft, hop, window)
    magnitudes = np.abs(spec[..., :-1]) ** 2
    mel = mel_filters(sr, n_fft, n_mels, htk) @ magnitudes
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0



def main():
    OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "fft_ops")
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(6)

    def save(name, a):
        np.save(os.path.join(OUT, name + ".npy"), np.ascontiguousarray(a))

    def crandn(*shape):
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)

    # --- fft / ifft / fft2 / rfft / irfft (computed in complex128 from the f32/c64 inputs)
    x = crandn(3, 1000)
    save("fft_x", x)
    save("fft_out", np.fft.fft(x.astype(np.complex128), axis=-1).astype(np.complex64))
    save("ifft_out", np.fft.ifft(x.astype(np.complex128), axis=-1).astype(np.complex64))
    x = crandn(2, 1031)  # prime: Bluestein
    save("fft_prime_x", x)
    save("fft_prime_out", np.fft.fft(x.astype(np.complex128)).astype(np.complex64))
    x = crandn(24, 5, 36)
    save("fft2_x", x)
    save("fft2_out", np.fft.fftn(x.astype(np.complex128), axes=(0, 2), norm="ortho").astype(np.complex64))
    r = rng.standard_normal((4, 2000)).astype(np.float32)
    save("rfft_x", r)
    save("rfft_out", np.fft.rfft(r.astype(np.float64)).astype(np.complex64))
    r = rng.standard_normal((30, 50)).astype(np.float32)
    save("rfft2_x", r)
    save("rfft2_out", np.fft.rfftn(r.astype(np.float64), axes=(0, 1)).astype(np.complex64))
    h = crandn(3, 513)
    save("irfft_x", h)
    save("irfft_1024_out", np.fft.irfft(h.astype(np.complex128), n=1024).astype(np.float32))
    save("irfft_1025_out", np.fft.irfft(h.astype(np.complex128), n=1025).astype(np.float32))

    t = np.arange(16000) / 16000.0
    audio = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1870 * t * (1 + t)) +
             0.05 * rng.standard_normal(t.size)) * np.minimum(1, 4 * t)
    audio = audio.astype(np.float32)
    save("audio_1s", audio)
    save("mel_filters_slaney_80", mel_filters(16000, 400, 80).astype(np.float32))
    save("mel_filters_htk_40", mel_filters(22050, 1024, 40, htk=True).astype(np.float32))
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    save("stft_out", stft(audio.astype(np.float64), 400, 160, window).astype(np.complex64))
    save("log_mel_out", whisper_log_mel(audio).astype(np.float32))
    save("log_mel_htk_out", whisper_log_mel(audio, n_mels=64, htk=True).astype(np.float32))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
