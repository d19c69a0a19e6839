"""PyTorch SDPA peer for bench/cuda/attention_bench (issue 10), run in the same device call.

usage: python3 bench/cuda/sdpa_peer.py attention_loom.csv [out.json]

Measures torch.nn.functional.scaled_dot_product_attention with each backend (flash, efficient,
cudnn, math where it applies) on the shapes attention_bench timed, plus the two ceilings (a 1 GiB
device copy, an 8192^3 fp16 GEMM), then prints one table: shape, Loom us, TFLOP/s (prefill) or
GB/s (decode), Loom's best flash tile and its cuDNN path (prefill), PyTorch best us and backend,
ratio (torch / Loom default: >1 means Loom is faster), floor.
Prefill is timed like attention_bench (median of event-bracketed calls after warm-up). Decode is
timed both eagerly (as ../shared/peers measured it: includes PyTorch's per-call host overhead)
and as a replayed CUDA graph (GPU time only); like Loom's, 'cold' rotates K/V buffer sets larger
than the L2 and 'hot' reuses one set.
"""
import csv, json, math, os, sys
import torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def time_events(fn, warm=3, iters=10):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(iters):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); torch.cuda.synchronize()
        ts.append(s.elapsed_time(e) * 1e3)
    return median(ts)


def time_graph(fn_i, n, reps=20):
    """fn_i(i) issues call i; n calls captured in one graph; median us per call."""
    st = torch.cuda.Stream()
    st.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(st):
        for i in range(3):
            fn_i(i)
    torch.cuda.current_stream().wait_stream(st)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for i in range(n):
            fn_i(i)
    for _ in range(3):
        g.replay()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record(); g.replay(); e.record(); torch.cuda.synchronize()
        ts.append(s.elapsed_time(e) * 1e3 / n)
    return median(ts)


BACKENDS = [("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION),
            ("cudnn", SDPBackend.CUDNN_ATTENTION), ("math", SDPBackend.MATH)]
DT = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32}


def parse(shape):
    return {p.rstrip("0123456789"): int(p[len(p.rstrip("0123456789")):]) for p in shape.split("_")}


def peer_prefill(shape, dtype, causal):
    p = parse(shape)
    B, H, S, D = p["B"], p["H"], p["S"], p["D"]
    q = torch.randn(B, H, S, D, device="cuda", dtype=DT[dtype])
    k = torch.randn_like(q); v = torch.randn_like(q)
    res = {}
    for name, be in BACKENDS:
        if name == "math" and B * H * S * S > 2 ** 31:
            res[name] = "skipped (too slow)"; continue
        try:
            with sdpa_kernel([be]):
                res[name] = time_events(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
                                        warm=3, iters=10)
        except Exception as ex:
            res[name] = "n/a: " + str(ex).split("\n")[0][:80]
    return res


def peer_decode(shape, dtype):
    p = parse(shape)
    B, Hq, Hkv, L, D = p["B"], p["Hq"], p["Hkv"], p["L"], p["D"]
    kv_bytes = 2 * B * Hkv * L * D * torch.tensor([], dtype=DT[dtype]).element_size()
    nbuf = int(min(32, max(1, math.ceil(256e6 / kv_bytes))))
    q = torch.randn(B, Hq, 1, D, device="cuda", dtype=DT[dtype])
    ks = [torch.randn(B, Hkv, L, D, device="cuda", dtype=DT[dtype]) for _ in range(nbuf)]
    vs = [torch.randn_like(ks[0]) for _ in range(nbuf)]
    gqa = Hq != Hkv
    res = {}
    eager = time_events(lambda: F.scaled_dot_product_attention(q, ks[0], vs[0], enable_gqa=gqa), 5, 20)
    res["default eager hot"] = eager
    for name, be in BACKENDS:
        for label, sets in (("cold", nbuf), ("hot", 1)):
            try:
                with sdpa_kernel([be]):
                    n = max(sets, 20) // sets * sets
                    res[f"{name} graph {label}"] = time_graph(
                        lambda i: F.scaled_dot_product_attention(q, ks[i % sets], vs[i % sets], enable_gqa=gqa), n)
            except Exception as ex:
                res[f"{name} graph {label}"] = "n/a: " + str(ex).split("\n")[0][:80]
    del ks, vs
    torch.cuda.empty_cache()
    return res


def ceilings():
    n = 1 << 30
    a = torch.empty(n, dtype=torch.uint8, device="cuda"); a.random_(0, 255); b = torch.empty_like(a)
    bw = 2 * n / (time_events(lambda: b.copy_(a)) * 1e-6)
    del a, b
    x = torch.randn(8192, 8192, device="cuda", dtype=torch.float16); y = torch.randn_like(x)
    tf = 2 * 8192 ** 3 / (time_events(lambda: x @ y) * 1e-6)
    del x, y
    torch.cuda.empty_cache()
    return bw, tf


def main():
    rows = list(csv.DictReader(open(sys.argv[1])))
    out_json = sys.argv[2] if len(sys.argv) > 2 else None
    bw, tf = ceilings()
    print(f"ceilings: copy {bw / 1e12:.2f} TB/s (read+write), fp16 GEMM {tf / 1e12:.0f} TFLOP/s; "
          f"{torch.cuda.get_device_name()} torch {torch.__version__} cudnn {torch.backends.cudnn.version()}", flush=True)
    result = {"ceilings": {"copy_TBps": bw / 1e12, "gemm_fp16_TFLOPS": tf / 1e12}, "rows": []}
    seen = {}
    table = []
    for r in rows:
        key = (r["kind"], r["shape"], r["dtype"], r["causal"])
        if key in seen:
            continue
        if r["kind"] == "prefill":
            peer = peer_prefill(r["shape"], r["dtype"], r["causal"] == "1")
        else:
            peer = peer_decode(r["shape"], r["dtype"])
        seen[key] = peer
        print(key, {k: (round(v, 1) if isinstance(v, float) else v) for k, v in peer.items()}, flush=True)
    for key, peer in seen.items():
        kind, shape, dtype, causal = key
        mine = [r for r in rows if (r["kind"], r["shape"], r["dtype"], r["causal"]) == key]
        p = parse(shape)
        if kind == "prefill":
            dflt = next(r for r in mine if r["what"] == "default")
            best = min((r for r in mine if r["what"].startswith("v")), key=lambda r: float(r["us"]))
            cud = next((r for r in mine if r["what"] == "cudnn"), None)
            nums = {k: v for k, v in peer.items() if isinstance(v, float)}
            pk = min(nums, key=nums.get) if nums else None
            flops = 4 * p["B"] * p["H"] * p["S"] ** 2 * p["D"] * (0.5 if causal == "1" else 1)
            floor = flops / tf * 1e6
            us = float(dflt["us"])
            table.append([kind, shape, dtype, "causal" if causal == "1" else "", f"{us:.1f}",
                          f"{flops / us / 1e6:.0f} TF/s", f"{best['what'][:2]} {float(best['us']):.1f}",
                          f"{float(cud['us']):.1f}" if cud else "n/a",
                          f"{nums[pk]:.1f} ({pk})" if pk else "n/a",
                          f"{nums[pk] / us:.2f}" if pk else "", f"{floor:.1f}"])
            extra = {"loom_best_variant": best["what"], "loom_best_us": float(best["us"])}
        else:
            cold = next(r for r in mine if r["what"] == "default cold")
            hot = next(r for r in mine if r["what"] == "default hot (L2)")
            kv_bytes = 2 * p["B"] * p["Hkv"] * p["L"] * p["D"] * (4 if dtype == "f32" else 2)
            floor = kv_bytes / bw * 1e6
            coldp = {k: v for k, v in peer.items() if isinstance(v, float) and k.endswith("cold")}
            pk = min(coldp, key=coldp.get) if coldp else None
            us = float(cold["us"])
            table.append([kind, shape, dtype, "", f"{us:.1f} (hot {float(hot['us']):.1f})",
                          f"{kv_bytes / us / 1e3:.0f} GB/s", "", "",
                          f"{coldp[pk]:.1f} ({pk.replace(' graph cold', '')}; eager {peer['default eager hot']:.1f})" if pk else "n/a",
                          f"{coldp[pk] / us:.2f}" if pk else "", f"{floor:.1f}"])
            extra = {}
        result["rows"].append({"kind": kind, "shape": shape, "dtype": dtype, "causal": causal == "1",
                               "loom": {r["what"]: float(r["us"]) for r in mine}, "torch_us": peer, **extra})
    if out_json:
        json.dump(result, open(out_json, "w"), indent=1)
    hdr = ["kind", "shape", "dtype", "", "Loom us", "rate", "best var us", "cudnn us", "PyTorch best us", "ratio",
           "floor us"]
    w = [max(len(str(x[i])) for x in table + [hdr]) for i in range(len(hdr))]
    print()
    for t in [hdr] + table:
        print("  ".join(str(x).ljust(w[i]) for i, x in enumerate(t)))


if __name__ == "__main__":
    main()
