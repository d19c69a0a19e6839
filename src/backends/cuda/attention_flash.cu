// FlashAttention-2 style sdpa prefill on the tensor cores (f16/bf16, head dim 64 or 128).
// A block owns BM query rows of one (batch, head); each warp owns 16*MT of them. Q is loaded once,
// K/V tiles of BN keys stream through shared memory double-buffered with cp.async. S = Q K^T and
// O += P V run on mma.sync m16n8k16 (f32 accumulators) with fragments from ldmatrix; the softmax is
// online in f32 (log2 domain). P goes from S's accumulator registers straight into A fragments,
// never through shared memory. Causal blocks stop at their last row's position, and only tiles
// that cross the diagonal, the kv_len end or carry a user mask pay per-element masking.
#include "backends/cuda/attention_common.cuh"
#include "backends/cuda/cuda_common.h"
#include "backends/cuda/mma.cuh"

namespace loom::backends::cuda::attn {
namespace {

struct FlashArgs {
  const uint16_t *q, *k, *v;
  uint16_t* out;
  int64_t Hq, Hkv, Lq, Lk;
  int group;  // query heads per kv head
  int m_tiles;
  MaskView mask;
  const void* kv_len;
  int kv_len_dt;
  float scale_log2;  // scale * log2(e): scores live in the log2 domain
  bool causal;
};

template <int D, int NW, int MT, int BN>
struct Cfg {
  static constexpr int kBM = 16 * MT * NW;
  static constexpr int kThreads = 32 * NW;
  // Row pitch in elements: 16 bytes of padding put the 8 rows an ldmatrix reads in 8 different
  // bank groups (conflict-free without a swizzle).
  static constexpr int kPitch = D + 8;
  static constexpr int kQ = kBM * kPitch, kKV = BN * kPitch;
  static constexpr size_t kSmem = static_cast<size_t>(kQ + 4 * kKV) * 2;
  // Q fragments stay in registers when they are few; else they are re-read from shared memory.
  static constexpr bool kQReg = MT * D <= 128;
};

template <bool BF16, int D, int NW, int MT, int BN>
__global__ void __launch_bounds__(NW * 32) flash_kernel(FlashArgs a) {
  using C = Cfg<D, NW, MT, BN>;
  constexpr int BM = C::kBM, P = C::kPitch, CH = D / 8;  // CH: 16-byte chunks per row
  extern __shared__ __align__(16) uint16_t smem[];
  uint16_t* sQ = smem;
  uint16_t* sK = sQ + C::kQ;
  uint16_t* sV = sK + 2 * C::kKV;

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  // Causal: the later (heavier) query tiles go first, so the grid's tail is made of light ones.
  const int mtile =
      a.causal ? a.m_tiles - 1 - static_cast<int>(blockIdx.x) : static_cast<int>(blockIdx.x);
  const int64_t h = blockIdx.y, b = blockIdx.z, g = h / a.group;
  const int64_t m0 = static_cast<int64_t>(mtile) * BM;
  const uint16_t* qg = a.q + (b * a.Hq + h) * a.Lq * D;
  const uint16_t* kg = a.k + (b * a.Hkv + g) * a.Lk * D;
  const uint16_t* vg = a.v + (b * a.Hkv + g) * a.Lk * D;
  uint16_t* og = a.out + (b * a.Hq + h) * a.Lq * D;

  bool bad;
  const int64_t kv_len = read_kv_len(a.kv_len, a.kv_len_dt, a.Lk, &bad);
  const int wr0 = warp * 16 * MT;  // this warp's first row in the tile
  if (bad) {
    const float nan = __int_as_float(0x7fffffff);
    for (int c = tid; c < BM * D; c += C::kThreads) {
      int64_t r = m0 + c / D;
      if (r < a.Lq) og[r * D + c % D] = BF16 ? f2bf(nan) : f2h(nan);
    }
    return;
  }
  const int64_t off = kv_len - a.Lq;  // position of query row 0
  int64_t n_end = kv_len;
  if (a.causal) n_end = min(n_end, off + m0 + BM);  // keys past the last row's position
  const int n_tiles = n_end > 0 ? static_cast<int>((n_end + BN - 1) / BN) : 0;

  for (int c = tid; c < BM * CH; c += C::kThreads) {
    int r = c / CH, cc = c % CH;
    bool ok = m0 + r < a.Lq;
    cp_async16(sQ + r * P + cc * 8, ok ? qg + (m0 + r) * D + cc * 8 : qg, ok);
  }
  auto load_kv = [&](int tile, int stage) {
    const int64_t j0 = static_cast<int64_t>(tile) * BN;
    uint16_t* dk = sK + stage * C::kKV;
    uint16_t* dv = sV + stage * C::kKV;
#pragma unroll
    for (int c = tid; c < BN * CH; c += C::kThreads) {
      int r = c / CH, cc = c % CH;
      bool ok = j0 + r < kv_len;
      int64_t o = ok ? (j0 + r) * D + cc * 8 : 0;
      cp_async16(dk + r * P + cc * 8, kg + o, ok);
      cp_async16(dv + r * P + cc * 8, vg + o, ok);
    }
  };
  if (n_tiles > 0) load_kv(0, 0);
  cp_async_commit();

  float o[MT][D / 8][4];
  float mrow[MT][2], lrow[MT][2];
#pragma unroll
  for (int mi = 0; mi < MT; ++mi) {
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[mi][dt][e] = 0.f;
    mrow[mi][0] = mrow[mi][1] = -INFINITY;
    lrow[mi][0] = lrow[mi][1] = 0.f;
  }
  uint32_t qf[C::kQReg ? MT : 1][C::kQReg ? D / 16 : 1][4];

  // ldmatrix row/column of this lane within a 16x16 A tile, and within two 8-wide B tiles.
  const int a_row = (lane % 8) + ((lane / 8) % 2) * 8, a_col = (lane / 16) * 8;
  const int kb_row = (lane % 8) + (lane / 16) * 8, kb_col = ((lane / 8) % 2) * 8;
  const int vb_row = (lane % 8) + ((lane / 8) % 2) * 8, vb_col = (lane / 16) * 8;

  for (int t = 0; t < n_tiles; ++t) {
    const int st = t & 1;
    if (t + 1 < n_tiles) load_kv(t + 1, st ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    if constexpr (C::kQReg) {
      if (t == 0) {
#pragma unroll
        for (int mi = 0; mi < MT; ++mi)
#pragma unroll
          for (int kk = 0; kk < D / 16; ++kk)
            ldsm_x4(qf[mi][kk], sQ + (wr0 + mi * 16 + a_row) * P + kk * 16 + a_col);
      }
    }
    const uint16_t* Ks = sK + st * C::kKV;
    const uint16_t* Vs = sV + st * C::kKV;

    // S = Q K^T for this warp's rows and the tile's BN keys.
    float s[MT][BN / 8][4];
#pragma unroll
    for (int mi = 0; mi < MT; ++mi)
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mi][nt][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t af[MT][4];
#pragma unroll
      for (int mi = 0; mi < MT; ++mi) {
        if constexpr (C::kQReg) {
#pragma unroll
          for (int e = 0; e < 4; ++e) af[mi][e] = qf[mi][kk][e];
        } else {
          ldsm_x4(af[mi], sQ + (wr0 + mi * 16 + a_row) * P + kk * 16 + a_col);
        }
      }
#pragma unroll
      for (int np = 0; np < BN / 16; ++np) {
        uint32_t bf[4];
        ldsm_x4(bf, Ks + (np * 16 + kb_row) * P + kk * 16 + kb_col);
#pragma unroll
        for (int mi = 0; mi < MT; ++mi) {
          mma16816<BF16>(s[mi][2 * np], af[mi], bf[0], bf[1]);
          mma16816<BF16>(s[mi][2 * np + 1], af[mi], bf[2], bf[3]);
        }
      }
    }

    // Scale (log2 domain) and mask. Per-element checks only where some key can be masked.
    const int64_t j0 = static_cast<int64_t>(t) * BN;
    const bool edge =
        j0 + BN > kv_len || a.mask.p != nullptr || (a.causal && j0 + BN - 1 > off + m0 + wr0);
#pragma unroll
    for (int mi = 0; mi < MT; ++mi)
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float x = s[mi][nt][e] * a.scale_log2;
          if (edge) {
            const int64_t row = m0 + wr0 + mi * 16 + lane / 4 + (e / 2) * 8;
            const int64_t j = j0 + nt * 8 + (lane % 4) * 2 + (e % 2);
            if (j >= kv_len || (a.causal && j > off + row))
              x = -INFINITY;
            else if (a.mask.p && row < a.Lq)
              x += mask_log2(a.mask, b, h, row, j);
          }
          s[mi][nt][e] = x;
        }

        // Online softmax: each row's 4 owning lanes agree on the max through two shuffles.
#pragma unroll
    for (int mi = 0; mi < MT; ++mi)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < BN / 8; ++nt)
          mx = fmaxf(mx, fmaxf(s[mi][nt][2 * hr], s[mi][nt][2 * hr + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mnew = fmaxf(mrow[mi][hr], mx);
        const float muse = mnew == -INFINITY ? 0.f : mnew;  // all masked so far: no NaN
        const float alpha = ex2(mrow[mi][hr] - muse);
        mrow[mi][hr] = mnew;
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < BN / 8; ++nt) {
          float p0 = ex2(s[mi][nt][2 * hr] - muse), p1 = ex2(s[mi][nt][2 * hr + 1] - muse);
          s[mi][nt][2 * hr] = p0;
          s[mi][nt][2 * hr + 1] = p1;
          sum += p0 + p1;
        }
        lrow[mi][hr] = lrow[mi][hr] * alpha + sum;  // lane-partial; reduced once at the end
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) {
          o[mi][dt][2 * hr] *= alpha;
          o[mi][dt][2 * hr + 1] *= alpha;
        }
      }

      // O += P V: the S accumulators of two adjacent n8 tiles are exactly an m16k16 A fragment.
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      uint32_t pa[MT][4];
#pragma unroll
      for (int mi = 0; mi < MT; ++mi) {
        pa[mi][0] = pack2<BF16>(s[mi][2 * kk][0], s[mi][2 * kk][1]);
        pa[mi][1] = pack2<BF16>(s[mi][2 * kk][2], s[mi][2 * kk][3]);
        pa[mi][2] = pack2<BF16>(s[mi][2 * kk + 1][0], s[mi][2 * kk + 1][1]);
        pa[mi][3] = pack2<BF16>(s[mi][2 * kk + 1][2], s[mi][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t bf[4];
        ldsm_x4_t(bf, Vs + (kk * 16 + vb_row) * P + dp * 16 + vb_col);
#pragma unroll
        for (int mi = 0; mi < MT; ++mi) {
          mma16816<BF16>(o[mi][2 * dp], pa[mi], bf[0], bf[1]);
          mma16816<BF16>(o[mi][2 * dp + 1], pa[mi], bf[2], bf[3]);
        }
      }
    }
    __syncthreads();  // the next iteration's copies overwrite the stage just read
  }
  cp_async_wait<0>();

#pragma unroll
  for (int mi = 0; mi < MT; ++mi)
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      float l = lrow[mi][hr];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = l > 0.f ? 1.f / l : 0.f;  // a fully masked row gives zeros
      const int64_t row = m0 + wr0 + mi * 16 + lane / 4 + hr * 8;
      if (row < a.Lq) {
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) {
          uint32_t v = pack2<BF16>(o[mi][dt][2 * hr] * inv, o[mi][dt][2 * hr + 1] * inv);
          *reinterpret_cast<uint32_t*>(og + row * D + dt * 8 + (lane % 4) * 2) = v;
        }
      }
    }
}

template <bool BF16, int D, int NW, int MT, int BN>
void launch_cfg(const FlashArgs& fa, int64_t B, cudaStream_t s) {
  using C = Cfg<D, NW, MT, BN>;
  auto kern = flash_kernel<BF16, D, NW, MT, BN>;
  // Per launch (a host-side attribute write): it is per device, and cheap next to the kernel.
  LOOM_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(C::kSmem)));
  FlashArgs a = fa;
  a.m_tiles = static_cast<int>((a.Lq + C::kBM - 1) / C::kBM);
  dim3 grid(static_cast<unsigned>(a.m_tiles), static_cast<unsigned>(a.Hq),
            static_cast<unsigned>(B));
  kern<<<grid, C::kThreads, C::kSmem, s>>>(a);
  LOOM_CUDA_LAUNCHED();
}

// Tile configurations per head dim: <warps, m16 tiles per warp, keys per tile>.
struct Variant {
  const char* name;
  void (*f16)(const FlashArgs&, int64_t, cudaStream_t);
  void (*bf16)(const FlashArgs&, int64_t, cudaStream_t);
};
const Variant kD128[] = {
    {"4w x 16 rows x 64 keys", launch_cfg<false, 128, 4, 1, 64>, launch_cfg<true, 128, 4, 1, 64>},
    {"4w x 32 rows x 64 keys", launch_cfg<false, 128, 4, 2, 64>, launch_cfg<true, 128, 4, 2, 64>},
    {"8w x 16 rows x 64 keys", launch_cfg<false, 128, 8, 1, 64>, launch_cfg<true, 128, 8, 1, 64>},
    {"4w x 32 rows x 32 keys", launch_cfg<false, 128, 4, 2, 32>, launch_cfg<true, 128, 4, 2, 32>},
};
const Variant kD64[] = {
    {"4w x 16 rows x 64 keys", launch_cfg<false, 64, 4, 1, 64>, launch_cfg<true, 64, 4, 1, 64>},
    {"4w x 32 rows x 64 keys", launch_cfg<false, 64, 4, 2, 64>, launch_cfg<true, 64, 4, 2, 64>},
    {"4w x 16 rows x 128 keys", launch_cfg<false, 64, 4, 1, 128>, launch_cfg<true, 64, 4, 1, 128>},
    {"4w x 32 rows x 32 keys", launch_cfg<false, 64, 4, 2, 32>, launch_cfg<true, 64, 4, 2, 32>},
};

const Variant* variants(int64_t d, int* n) {
  if (d == 128) return *n = 4, kD128;
  if (d == 64) return *n = 4, kD64;
  return *n = 0, nullptr;
}

// The default tile per head dim (from bench/cuda/attention_bench on the H100).
int default_variant(int64_t d, int64_t Lq) {
  (void)d;
  (void)Lq;
  return 0;
}

}  // namespace

int flash_variants(int64_t d) {
  int n;
  variants(d, &n);
  return n;
}
const char* flash_variant_name(int64_t d, int v) {
  int n;
  const Variant* t = variants(d, &n);
  return v >= 0 && v < n ? t[v].name : "?";
}

bool flash_supports(const SdpaLaunch& a) {
  bool half = a.q_dtype == DType::f16 || a.q_dtype == DType::bf16;
  return a.Lq > 8 && half && a.kv_dtype == a.q_dtype && a.out_dtype == a.q_dtype && a.D == a.Dv &&
         (a.D == 64 || a.D == 128) && aligned16(a.q) && aligned16(a.k) && aligned16(a.v) &&
         aligned16(a.out) && a.Hq <= 65535 && a.B <= 65535 && a.Lq < (int64_t{1} << 30);
}

void launch_flash(const SdpaLaunch& a, cudaStream_t s) {
  int n;
  const Variant* t = variants(a.D, &n);
  int v = a.flash_variant >= 0 ? a.flash_variant : default_variant(a.D, a.Lq);
  LOOM_CHECK(v < n, "[cuda] sdpa: flash variant ", v, " does not exist for head dim ", a.D);
  FlashArgs fa{};
  fa.q = static_cast<const uint16_t*>(a.q);
  fa.k = static_cast<const uint16_t*>(a.k);
  fa.v = static_cast<const uint16_t*>(a.v);
  fa.out = static_cast<uint16_t*>(a.out);
  fa.Hq = a.Hq, fa.Hkv = a.Hkv, fa.Lq = a.Lq, fa.Lk = a.Lk;
  fa.group = static_cast<int>(a.Hq / a.Hkv);
  fa.mask = mask_view(a);
  fa.kv_len = a.kv_len;
  fa.kv_len_dt = static_cast<int>(a.kv_len_dtype);
  fa.scale_log2 = a.scale * kLog2e;
  fa.causal = a.causal;
  (a.q_dtype == DType::bf16 ? t[v].bf16 : t[v].f16)(fa, a.B, s);
}

}  // namespace loom::backends::cuda::attn
