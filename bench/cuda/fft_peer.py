"""Peer for bench/cuda/fft_bench.cpp: the same cases in PyTorch (torch.fft / torch.stft: cuFFT;
conv2d: cuDNN with TF32 off, as Loom computes f32 exactly), timed as /work/shared/peers/h100_peers.py
times them (CUDA events around one call, median of 20 after 5 warm-ups), plus the card's copy
bandwidth for the floor. With --loom FILE (fft_bench's output) prints the table:
case, Loom us, torch us (events, as h100_peers.py), torch us (pipelined: host clock around 50
back-to-back calls, as fft_bench times Loom), ratio Loom / torch pipelined, floor us (bytes / copy
bandwidth)."""
import argparse, json, math

import torch

torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False


def bench(fn, iters=20, warm=5):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(iters):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); torch.cuda.synchronize()
        ts.append(s.elapsed_time(e))
    ts.sort()
    return ts[len(ts) // 2] * 1e3  # us


def pipelined(fn, iters=50):
    # Host clock around `iters` back-to-back calls plus a sync: how fft_bench times Loom.
    import time
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters * 1e6


def mel_filters(n_fft=400, n_mels=80, sr=16000):
    # librosa.filters.mel(norm="slaney"), as Loom's mel_filterbank (values do not affect timing).
    def hz_to_mel(f):
        f_sp, min_log_hz = 200.0 / 3, 1000.0
        return min_log_hz / f_sp + math.log(f / min_log_hz) / (math.log(6.4) / 27) if f >= min_log_hz else f / f_sp
    def mel_to_hz(m):
        f_sp, min_log_hz = 200.0 / 3, 1000.0
        ml = min_log_hz / f_sp
        return min_log_hz * math.exp(math.log(6.4) / 27 * (m - ml)) if m >= ml else f_sp * m
    bins = n_fft // 2 + 1
    lo, hi = hz_to_mel(0), hz_to_mel(sr / 2)
    mf = [mel_to_hz(lo + (hi - lo) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    fr = torch.linspace(0, sr / 2, bins, dtype=torch.float64)
    w = torch.zeros(n_mels, bins, dtype=torch.float64)
    for m in range(n_mels):
        lower = (fr - mf[m]) / (mf[m + 1] - mf[m]); upper = (mf[m + 2] - fr) / (mf[m + 2] - mf[m + 1])
        w[m] = torch.clamp(torch.minimum(lower, upper), min=0) * 2.0 / (mf[m + 2] - mf[m])
    return w.float()


def log_mel(audio, win, filters):
    # whisper/audio.py log_mel_spectrogram
    stft = torch.stft(audio, 400, 160, window=win, return_complex=True)
    mag = stft[..., :-1].abs() ** 2
    mel = filters @ mag
    l = torch.clamp(mel, min=1e-10).log10()
    l = torch.maximum(l, l.max() - 8.0)
    return (l + 4.0) / 4.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loom", help="fft_bench output")
    args = ap.parse_args()
    dev = "cuda"
    T = 16000 * 30
    r = {}
    n = 1 << 30
    a = torch.empty(n, dtype=torch.uint8, device=dev); a.random_(0, 255); b = torch.empty_like(a)
    r["copy_GBps"] = 2 * n / (bench(lambda: b.copy_(a)) * 1e-6) / 1e9
    del a, b
    x = torch.randn(4096, 512, device=dev)
    r["rfft_4096x512"] = bench(lambda: torch.fft.rfft(x, dim=-1))
    z = torch.randn(1 << 24, device=dev, dtype=torch.complex64)
    r["c2c_2^24"] = bench(lambda: torch.fft.fft(z))
    z2 = torch.randn(8192, 1024, device=dev, dtype=torch.complex64)
    r["c2c_8192x1024"] = bench(lambda: torch.fft.fft(z2, dim=-1))
    audio = torch.randn(T, device=dev); win = torch.hann_window(400, device=dev)
    r["stft_whisper_30s"] = bench(lambda: torch.stft(audio, 400, 160, window=win, return_complex=True))
    audio8 = torch.randn(8, T, device=dev)
    r["stft_whisper_8x30s"] = bench(lambda: torch.stft(audio8, 400, 160, window=win, return_complex=True))
    filters = mel_filters().to(dev)
    r["log_mel_whisper_30s"] = bench(lambda: log_mel(audio, win, filters))
    xc = torch.randn(32, 64, 56, 56, device=dev); wc = torch.randn(64, 64, 3, 3, device=dev)
    r["conv_32x64x56x56_k3"] = bench(lambda: torch.nn.functional.conv2d(xc, wc, padding=1))
    p = {}
    p["rfft_4096x512"] = pipelined(lambda: torch.fft.rfft(x, dim=-1))
    p["c2c_2^24"] = pipelined(lambda: torch.fft.fft(z))
    p["c2c_8192x1024"] = pipelined(lambda: torch.fft.fft(z2, dim=-1))
    p["stft_whisper_30s"] = pipelined(lambda: torch.stft(audio, 400, 160, window=win, return_complex=True))
    p["stft_whisper_8x30s"] = pipelined(lambda: torch.stft(audio8, 400, 160, window=win, return_complex=True))
    p["log_mel_whisper_30s"] = pipelined(lambda: log_mel(audio, win, filters))
    p["conv_32x64x56x56_k3"] = pipelined(lambda: torch.nn.functional.conv2d(xc, wc, padding=1))
    print("# torch pipelined", json.dumps(p))
    print("# torch", torch.__version__, torch.cuda.get_device_name(0), json.dumps(r))
    if not args.loom:
        return
    bw = r["copy_GBps"] * 1e9
    print(f"\n{'case':32} {'loom us':>9} {'torch ev':>9} {'torch pl':>9} {'ratio':>6} {'floor us':>9}")
    for line in open(args.loom):
        if line.startswith("#") or not line.strip():
            continue
        name, us, nbytes = line.split()
        t, tp = r.get(name, float("nan")), p.get(name, float("nan"))
        print(f"{name:32} {float(us):9.1f} {t:9.1f} {tp:9.1f} {float(us) / tp:6.2f} {float(nbytes) / bw * 1e6:9.1f}")


if __name__ == "__main__":
    main()
