"""PyTorch peers for bench/cuda/quant_bench.cpp, measured in the same device call, and the joined
table. Peers: tinygemm int4 (torch.ops.aten._weight_int4pack_mm, group 128, bf16 activations) and
fp16 cuBLAS (torch.mm of x [m, k] by W^T), the shapes of quant_bench. Timing as quant_bench: a CUDA
graph of 20 calls replayed (no Python or launch overhead), weights rotated over copies > 2x L2 so
each call reads them from HBM; median of 7 x 5 replays. The copy bandwidth is measured here too.

Usage (device machine): python3 bench/cuda/quant_peer.py [quant_bench.csv]
Writes $OUT/quant_peer.json and, given the CSV, prints + writes $OUT/quant_table.md."""
import csv, json, math, os, sys
import torch

OUT = os.environ.get("OUT", "/tmp")
dev = "cuda"


def graph_time_us(calls, per_graph=20):
    """calls: list of zero-arg callables (one per weight copy); median us per call."""
    for c in calls:
        c()
    torch.cuda.synchronize()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for c in calls:
            c()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    try:
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for i in range(per_graph):
                calls[i % len(calls)]()
        run = g.replay
        per = per_graph
    except Exception as ex:  # not capturable: plain back-to-back launches
        print("graph capture failed, timing launches:", repr(ex)[:200], flush=True)

        def run():
            for i in range(per_graph):
                calls[i % len(calls)]()
        per = per_graph
    run()
    torch.cuda.synchronize()
    ts = []
    for _ in range(7):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(5):
            run()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b) * 1e3 / (5 * per))
    ts.sort()
    return ts[len(ts) // 2]


def copies_for(nbytes):
    return max(1, min(64, math.ceil(120e6 / nbytes)))


def copy_gbps():
    n = 1 << 30
    a = torch.empty(n, dtype=torch.uint8, device=dev)
    a.random_(0, 255)
    b = torch.empty_like(a)
    ts = []
    for i in range(12):
        e0 = torch.cuda.Event(enable_timing=True)
        e1 = torch.cuda.Event(enable_timing=True)
        e0.record()
        b.copy_(a)
        e1.record()
        torch.cuda.synchronize()
        if i >= 2:
            ts.append(e0.elapsed_time(e1))
    ts.sort()
    return 2 * n / (ts[len(ts) // 2] * 1e-3) / 1e9


def tinygemm(n, k, m):
    bytes_ = n * k // 2 + (k // 128) * n * 2 * 2
    cs = []
    for c in range(copies_for(bytes_)):
        wi = torch.randint(0, 16, (n, k // 2), dtype=torch.uint8, device=dev)
        packed = torch.ops.aten._convert_weight_to_int4pack(wi, 8)
        sz = (torch.rand(k // 128, n, 2, device=dev) * 0.1).to(torch.bfloat16)
        cs.append((packed, sz))
    x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
    calls = [lambda p=p, sz=sz: torch.ops.aten._weight_int4pack_mm(x, p, 128, sz) for p, sz in cs]
    return graph_time_us(calls), bytes_


def fp16_mm(n, k, m):
    bytes_ = n * k * 2
    ws = [torch.randn(n, k, device=dev, dtype=torch.float16) for _ in range(copies_for(bytes_))]
    x = torch.randn(m, k, device=dev, dtype=torch.float16)
    calls = [lambda w=w: torch.mm(x, w.t()) for w in ws]
    return graph_time_us(calls), bytes_


def prefill_fp16(m, n, k):
    w = torch.randn(n, k, device=dev, dtype=torch.float16)
    x = torch.randn(m, k, device=dev, dtype=torch.float16)
    return graph_time_us([lambda: torch.mm(x, w.t())], per_graph=10)


def main():
    R = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "copy_gbps": copy_gbps()}
    peers = {}
    shapes = [(4096, 4096), (14336, 4096), (4096, 14336)]
    for n, k in shapes:
        for m in (1, 4, 8):
            if m > 1 and (n, k) != (14336, 4096):
                continue
            try:
                us, b = tinygemm(n, k, m)
                peers[f"tinygemm {n}x{k} m{m}"] = {"us": us, "bytes": b}
            except Exception as ex:
                peers[f"tinygemm {n}x{k} m{m}"] = {"error": repr(ex)[:300]}
            us, b = fp16_mm(n, k, m)
            peers[f"fp16 {n}x{k} m{m}"] = {"us": us, "bytes": b}
    for n, k in [(192, 576), (576, 576), (1536, 576), (576, 1536), (49152, 576)]:
        us, b = fp16_mm(n, k, 1)
        peers[f"fp16 {n}x{k} m1"] = {"us": us, "bytes": b}
    peers["fp16 prefill 14336x4096 m512"] = {"us": prefill_fp16(512, 14336, 4096)}
    R["peers"] = peers
    for key, v in peers.items():
        print(f"{key:36s} " + (f"{v['us']:9.2f} us" if "us" in v else v.get("error", "")), flush=True)
    json.dump(R, open(f"{OUT}/quant_peer.json", "w"), indent=1)
    if len(sys.argv) < 2 or not os.path.exists(sys.argv[1]):
        return
    bw = R["copy_gbps"]
    lines = [f"GPU {R['gpu']}, torch {R['torch']}; device-to-device copy (torch) {bw:.0f} GB/s "
             "(read + write); % = weight GB/s over that.", "",
             "| shape (n x k) | format | m | x | Loom us | weight GB/s | % of copy BW | "
             "tinygemm int4 us | Loom / tinygemm | fp16 cuBLAS us | Loom / fp16 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in csv.DictReader(open(sys.argv[1])):
        n, k, m, us = int(row["n"]), int(row["k"]), int(row["m"]), float(row["us"])
        if row["shape"].startswith("prefill"):
            p = peers.get(f"fp16 prefill {n}x{k} m{m}", {}).get("us")
            tf = 2 * m * n * k / (us * 1e-6) / 1e12
            lines.append(f"| {n} x {k} (prefill, executable) | {row['format']} | {m} | {row['x']} "
                         f"| {us:.1f} | {tf:.0f} TFLOP/s | - | - | - | "
                         f"{p:.1f} | {us / p:.2f} |" if p else "")
            continue
        gbps = float(row["weight_bytes"]) / (us * 1e-6) / 1e9
        tg = peers.get(f"tinygemm {n}x{k} m{m}", {}).get("us")
        fp = peers.get(f"fp16 {n}x{k} m{m}", {}).get("us")
        four = row["format"] in ("affine-u4-g128", "q4_0", "q4_1", "iq4_nl", "affine_u4",
                                 "q4_k", "lut-u4-row")
        tgs = f"{tg:.2f} | {us / tg:.2f}" if tg and four else "- | -"
        fps = f"{fp:.2f} | {us / fp:.2f}" if fp else "- | -"
        lines.append(f"| {n} x {k} | {row['format']} | {m} | {row['x']} | {us:.2f} | {gbps:.0f} | "
                     f"{100 * gbps / bw:.1f} | {tgs} | {fps} |")
    table = "\n".join(l for l in lines if l is not None)
    print(table)
    open(f"{OUT}/quant_table.md", "w").write(table + "\n")


if __name__ == "__main__":
    main()
