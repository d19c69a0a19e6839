"""Copied from shared/peers/h100_decode_peer.py (the team's H100 decode peer) so that it runs in the
same device call as bench/cuda/llm_decode_bench; PEER_RUNS=int4 (default) or int4,bf16 picks the
variants (bf16 compiles for ~60 s more).

gpt-fast-style PyTorch decode peer on the lent GPU: a Mistral-7B-shaped Llama decoder with random weights,
static KV cache, torch.compile(mode='reduce-overhead') (CUDA graphs); bf16 weights and int4 (tinygemm) weights.
Prints tokens/s at batch 1. Writes $OUT/decode_peer.json."""
import json, os, time, math
import torch, torch.nn.functional as F
torch.manual_seed(0)
OUT = os.environ.get("OUT", "/tmp")
dev = "cuda"; dt = torch.bfloat16
D, L, H, KV, FF, V, MAXLEN, HD = 4096, 32, 32, 8, 14336, 32000, 1024, 128
R = {}
def log(*a): print(*a, flush=True)

def make_weights():
    s = 0.02
    W = []
    for _ in range(L):
        W.append(dict(wqkv=torch.randn((H + 2 * KV) * HD, D, device=dev, dtype=dt) * s,
                      wo=torch.randn(D, H * HD, device=dev, dtype=dt) * s,
                      w13=torch.randn(2 * FF, D, device=dev, dtype=dt) * s,
                      w2=torch.randn(D, FF, device=dev, dtype=dt) * s,
                      n1=torch.ones(D, device=dev, dtype=dt), n2=torch.ones(D, device=dev, dtype=dt)))
    emb = torch.randn(V, D, device=dev, dtype=dt) * s
    out = torch.randn(V, D, device=dev, dtype=dt) * s
    return W, emb, out

def rms(x, w): return (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-5)).to(x.dtype) * w
inv = 1.0 / (1e6 ** (torch.arange(0, HD, 2, device=dev).float() / HD))
def rope(x, pos):  # x [1, h, 1, HD]
    f = pos.float()[:, None] * inv[None, :]
    c, s = f.cos()[None, None], f.sin()[None, None]
    x1, x2 = x[..., : HD // 2].float(), x[..., HD // 2:].float()
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], -1).to(x.dtype)

class Decoder(torch.nn.Module):
    """Weights and KV cache as module buffers, so CUDA graphs may mutate the cache in place."""
    def __init__(self, linear):
        super().__init__()
        self.linear = linear
        W, emb, out = make_weights()
        self.names = []
        for i, w in enumerate(W):
            for k, v in w.items():
                if k.startswith("w"):
                    pv = linear.prep(v)
                    for j, t in enumerate(pv if isinstance(pv, tuple) else (pv,)):
                        if torch.is_tensor(t): self.register_buffer(f"l{i}_{k}_{j}", t)
                    self.meta = getattr(self, "meta", {}); self.meta[(i, k)] = pv
                else:
                    self.register_buffer(f"l{i}_{k}", v)
        del W
        self.register_buffer("emb", emb); self.register_buffer("out", out)
        self.register_buffer("kc", torch.zeros(L, 1, KV, MAXLEN, HD, device=dev, dtype=dt))
        self.register_buffer("vc", torch.zeros(L, 1, KV, MAXLEN, HD, device=dev, dtype=dt))
        self.register_buffer("mask_base", torch.tril(torch.ones(MAXLEN, MAXLEN, dtype=torch.bool, device=dev)))
    def w(self, i, k):
        pv = self.meta[(i, k)]
        if isinstance(pv, tuple):
            return (getattr(self, f"l{i}_{k}_0"), getattr(self, f"l{i}_{k}_1"), pv[2], pv[3])
        return getattr(self, f"l{i}_{k}_0")
    def forward(self, tok, pos):
        mm = self.linear.mm
        x = self.emb[tok].view(1, 1, D)
        m = self.mask_base[pos].view(1, 1, 1, MAXLEN)
        for i in range(L):
            h = rms(x, getattr(self, f"l{i}_n1"))
            qkv = mm(h.view(1, D), self.w(i, "wqkv")).view(1, 1, H + 2 * KV, HD).transpose(1, 2)
            q, k, v = qkv[:, :H], qkv[:, H:H + KV], qkv[:, H + KV:]
            q, k = rope(q, pos), rope(k, pos)
            self.kc[i].index_copy_(2, pos, k); self.vc[i].index_copy_(2, pos, v)
            a = F.scaled_dot_product_attention(q, self.kc[i], self.vc[i], attn_mask=m, enable_gqa=True)
            x = x + mm(a.transpose(1, 2).reshape(1, H * HD), self.w(i, "wo")).view(1, 1, D)
            h = rms(x, getattr(self, f"l{i}_n2"))
            g = mm(h.view(1, D), self.w(i, "w13"))
            x = x + mm((F.silu(g[:, :FF]) * g[:, FF:]), self.w(i, "w2")).view(1, 1, D)
        return (rms(x, 1.0).view(1, D) @ self.out.t()).argmax(-1)

def run(linear, tag):
    model = Decoder(linear)
    torch.cuda.empty_cache()
    cstep = torch.compile(model, mode="reduce-overhead", fullgraph=True)
    tok = torch.tensor([1], device=dev)
    t0 = time.time()
    with torch.no_grad():
        for i in range(3):
            tok = cstep(tok, torch.tensor([i], device=dev)).clone()
    torch.cuda.synchronize(); R[tag + "_compile_s"] = round(time.time() - t0, 1)
    n = 128; t0 = time.time()
    with torch.no_grad():
        for i in range(3, 3 + n):
            tok = cstep(tok, torch.tensor([i], device=dev)).clone()
    torch.cuda.synchronize(); dtm = time.time() - t0
    R[tag + "_tok_per_s"] = round(n / dtm, 1)
    wb = sum(linear.bytes(pv) for pv in model.meta.values()) + model.out.numel() * 2
    R[tag + "_weight_GB"] = round(wb / 1e9, 3)
    R[tag + "_floor_tok_per_s_at_2.93TBps"] = round(2.93e12 / wb, 1)
    log(tag, json.dumps({k: v for k, v in R.items() if k.startswith(tag)}))
    del model, cstep; torch.cuda.empty_cache()

class Bf16:
    prep = staticmethod(lambda w: w)
    mm = staticmethod(lambda x, w: x @ w.t())
    bytes = staticmethod(lambda w: w.numel() * 2)

class Int4:
    G = 128
    @staticmethod
    def prep(w):
        N, K = w.shape
        wi = torch.randint(0, 16, (N, K // 2), dtype=torch.uint8, device=dev)
        packed = torch.ops.aten._convert_weight_to_int4pack(wi, 8)
        sz = (torch.randn(K // Int4.G, N, 2, device=dev, dtype=torch.bfloat16) * 0.01)
        return (packed, sz, N, K)
    @staticmethod
    def mm(x, w):
        return torch.ops.aten._weight_int4pack_mm(x, w[0], Int4.G, w[1])
    @staticmethod
    def bytes(w): return w[2] * w[3] // 2 + w[1].numel() * 2

runs = os.environ.get("PEER_RUNS", "int4").split(",")
for lin, tag in [(Bf16, "bf16"), (Int4, "int4_tinygemm")]:
    if tag.split("_")[0] not in runs:
        continue
    try:
        run(lin, tag)
    except Exception as ex:
        import traceback; traceback.print_exc(); R[tag + "_error"] = repr(ex)[:400]
    json.dump(R, open(f"{OUT}/decode_peer.json", "w"), indent=1)
log("RESULT", json.dumps(R))
