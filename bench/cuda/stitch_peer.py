"""PyTorch peers of bench/cuda/stitch_bench.cpp: the same three elementwise regions in eager mode
and under torch.compile (one Triton kernel each), same shapes, dtypes and value range, timed the
same way (host clock around N calls plus one sync, after warm-up). Prints the combined table.

Run on the device machine after the Loom bench:
  stitch_bench > loom.txt; python3 bench/cuda/stitch_peer.py loom.txt
"""
import sys
import time

import torch
import torch.nn.functional as F


def time_us(fn, iters=50):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters * 1e6


def chain(x, a, b, c, d):
    return torch.clamp(F.gelu((x * a + b) * torch.sigmoid(x) - c), -3, 3) * d


def swiglu_res(g, u, r):
    return F.silu(g) * u + r


def rand(shape, dt):
    return (torch.rand(shape, device="cuda", dtype=torch.float32) * 4 - 2).to(dt)


def cases():
    R, C = 4096, 4096
    for name, dt in (("chain8_f32_16M", torch.float32), ("chain8_f16_16M", torch.float16)):
        yield name, chain, [rand((R, C), dt)] + [rand((C,), dt) for _ in range(4)]
    bf = torch.bfloat16
    yield "swiglu_res_bf16_2048x14336", swiglu_res, [rand((2048, 14336), bf) for _ in range(3)]


def main():
    loom, copy_gbps_loom = {}, None
    if len(sys.argv) > 1:
        for line in open(sys.argv[1]):
            f = line.split()
            if f and f[0] == "RESULT":
                loom[f[1]] = dict(us=float(f[2]), unstitched=float(f[3]), bytes=float(f[4]),
                                  compile_ms=float(f[5]), bad=int(f[6]),
                                  recompile_ms=float(f[7]) if len(f) > 7 else -1)
            elif f and f[0] == "COPY_GBPS":
                copy_gbps_loom = float(f[1])
    n = 1 << 30
    src = torch.empty(n, dtype=torch.uint8, device="cuda").random_(0, 255)
    dst = torch.empty_like(src)
    copy_gbps = 2 * n / (time_us(lambda: dst.copy_(src), 20) * 1e-6) / 1e9
    del src, dst
    bw = copy_gbps_loom or copy_gbps
    print(f"{torch.cuda.get_device_name()}  torch {torch.__version__}  D2D copy "
          f"{copy_gbps:.0f} GB/s (torch) / {copy_gbps_loom or 0:.0f} GB/s (loom bench)")
    hdr = (f"{'case':28} {'loom us':>8} {'unstitched':>10} {'eager us':>9} {'compiled':>9} "
           f"{'loom/eager':>10} {'loom/comp':>9} {'floor us':>8} {'loom/floor':>10}")
    print(hdr)
    for name, fn, args in cases():
        eager = time_us(lambda: fn(*args))
        comp = torch.compile(fn)
        t0 = time.perf_counter()
        comp(*args)
        torch.cuda.synchronize()
        compile_s = time.perf_counter() - t0
        compiled = time_us(lambda: comp(*args))
        nbytes = sum(a.numel() * a.element_size() for a in args) + fn(*args).numel() * args[0].element_size()
        floor = nbytes / (bw * 1e9) * 1e6
        L = loom.get(name)
        if L:
            print(f"{name:28} {L['us']:8.1f} {L['unstitched']:10.1f} {eager:9.1f} {compiled:9.1f} "
                  f"{L['us'] / eager:10.2f} {L['us'] / compiled:9.2f} {floor:8.1f} "
                  f"{L['us'] / floor:10.2f}   (loom compile {L['compile_ms']:.0f} ms cold, "
                  f"{L['recompile_ms']:.1f} ms cached, "
                  f"torch.compile {compile_s:.1f} s, {L['bad']} mismatches vs cpu)")
        else:
            print(f"{name:28} {'-':>8} {'-':>10} {eager:9.1f} {compiled:9.1f}")


if __name__ == "__main__":
    main()
