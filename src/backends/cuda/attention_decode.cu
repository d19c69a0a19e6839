// Split-KV flash-decoding for sdpa (Lq <= 8): the keys of each (batch, kv head) are split over
// many blocks so that a single query row still fills the GPU. A block copies its key range of K
// and V into shared memory with cp.async (all copies in flight at once; scores start when K has
// landed, while V is still arriving), then serves every query row of the kv head's group from it
// (all query heads of a GQA group share one read of K/V). Each split writes a partial
// (max, sum, unnormalised acc) in f32; a second small kernel merges them by log-sum-exp, launched
// as a programmatic dependent of the first so that its launch overlaps the split kernel (pdl.cuh).
// f16, bf16 and f32 K/V; all math in f32. kv_len is read on the device: the key range is divided
// among the splits by the actual length, so a fixed-size cache filled to kv_len keeps every split
// busy.
//
// Two block kernels share that scheme. For f16/bf16 K/V with D 64 or 128 and at most 16 query
// rows per kv head (group·Lq), the scores and P V run on the tensor cores (decode_mma_kernel);
// everything else takes the scalar kernel (decode_kernel), whose f32 FMAs and shared-memory loads
// at 8 warps per SM cap it near 1 TB/s even when K/V stream from HBM.
#include <algorithm>

#include "backends/cuda/attention_common.cuh"
#include "backends/cuda/cuda_common.h"
#include "backends/cuda/mma.cuh"
#include "backends/cuda/pdl.cuh"

namespace loom::backends::cuda::attn {
namespace {

constexpr int kThreads = 128;
constexpr int kRT = 8;             // query rows per pass over the shared K/V
constexpr int kMaxSplits = 1024;   // merge kernel's weight array
constexpr int kMergeRegs = 32;     // splits the merge kernel keeps in registers
constexpr int kKvSmem = 72 << 10;  // shared-memory budget for the K and V ranges

struct DecodeArgs {
  const void* q;
  const void *k, *v;
  void* out;
  int q_dt, out_dt;
  int64_t Hq, Hkv, Lq, Lk;
  int group, rows;  // rows = group * Lq: the query rows sharing one kv head
  MaskView mask;
  const void* kv_len;
  int kv_len_dt;
  float scale_log2;
  bool causal;
  int nsplit, ks_max;  // splits per kv head; keys per split at most
  float* part_acc;     // [B*Hq*Lq][nsplit][D]
  float* part_ml;      // [B*Hq*Lq][nsplit][2]: max (log2 domain), sum
};

template <int KT>
struct Elem;
template <>
struct Elem<kF16> {
  static constexpr int kSize = 2;
  // 16 bytes -> 8 floats.
  __device__ static void chunk(const unsigned char* p, float* f) {
    uint4 u = *reinterpret_cast<const uint4*>(p);
    const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float2 x = __half22float2(h[i]);
      f[2 * i] = x.x, f[2 * i + 1] = x.y;
    }
  }
  __device__ static float2 pair(const unsigned char* p) {
    return __half22float2(*reinterpret_cast<const __half2*>(p));
  }
};
template <>
struct Elem<kBF16> {
  static constexpr int kSize = 2;
  __device__ static void chunk(const unsigned char* p, float* f) {
    uint4 u = *reinterpret_cast<const uint4*>(p);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float2 x = __bfloat1622float2(h[i]);
      f[2 * i] = x.x, f[2 * i + 1] = x.y;
    }
  }
  __device__ static float2 pair(const unsigned char* p) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
  }
};
template <>
struct Elem<kF32> {
  static constexpr int kSize = 4;
  __device__ static void chunk(const unsigned char* p, float* f) {
    float4 u = *reinterpret_cast<const float4*>(p);
    f[0] = u.x, f[1] = u.y, f[2] = u.z, f[3] = u.w;
  }
  __device__ static float2 pair(const unsigned char* p) {
    return *reinterpret_cast<const float2*>(p);
  }
};

// An invalid kv_len: the kv head's rows become NaN (with several splits the merge kernel, which
// reads kv_len too, writes them).
__device__ __forceinline__ void nan_rows(const DecodeArgs& a, int64_t g, int64_t b, int D, int tid,
                                         int nthreads) {
  if (a.nsplit != 1) return;
  for (int idx = tid; idx < a.rows * D; idx += nthreads) {
    const int r = idx / D;
    const int64_t h = g * a.group + r / a.Lq, i = r % a.Lq;
    store(a.out_dt, a.out, ((b * a.Hq + h) * a.Lq + i) * D + idx % D, __int_as_float(0x7fffffff));
  }
}

template <int D>
constexpr int kGroups = D >= 256 ? 1 : 256 / D;  // thread groups splitting the keys in P V

template <int KT, int D>
constexpr int row_bytes() {
  return D * Elem<KT>::kSize + 16;  // +16 B: each thread reads its own key row conflict-free
}

template <int KT, int D>
size_t decode_smem(int ks) {
  return static_cast<size_t>(2 * ks * row_bytes<KT, D>()) +
         sizeof(float) * (kRT * D + 2 * kRT * ks + kGroups<D> * kRT * D + 2 * kRT);
}

template <int KT, int D>
__global__ void __launch_bounds__(kThreads) decode_kernel(DecodeArgs a) {
  using E = Elem<KT>;
  constexpr int RB = row_bytes<KT, D>();
  constexpr int CPR = D * E::kSize / 16;  // 16-byte chunks per row
  constexpr int EPC = 16 / E::kSize;      // elements per chunk
  constexpr int NP = D / 2;               // column pairs
  constexpr int G = kGroups<D>;
  extern __shared__ __align__(16) unsigned char smem[];
  unsigned char* sK = smem;
  unsigned char* sV = sK + a.ks_max * RB;
  float* sQ = reinterpret_cast<float*>(sV + a.ks_max * RB);  // [kRT][D], pre-scaled
  float* sS = sQ + kRT * D;                                  // [kRT][ks_max] scores
  float* sP = sS + kRT * a.ks_max;                           // [ks_max][kRT] p, key-major
  float* sRed = sP + kRT * a.ks_max;                         // [G][kRT][D]
  float* sML = sRed + G * kRT * D;                           // [kRT][2]

  pdl_begin();  // the merge kernel (a programmatic dependent) waits for this grid itself

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int split = blockIdx.x;
  const int64_t g = blockIdx.y, b = blockIdx.z;
  bool bad;
  const int64_t kv_len = read_kv_len(a.kv_len, a.kv_len_dt, a.Lk, &bad);
  if (bad) return nan_rows(a, g, b, D, tid, kThreads);
  // Keys are shared evenly by the actual length (multiples of 8 keys per split).
  const int64_t per = ((kv_len + a.nsplit - 1) / a.nsplit + 7) / 8 * 8;
  const int64_t j0 = split * per;
  const int64_t j1 = j0 + per < kv_len ? j0 + per : kv_len;
  const int nk = j1 > j0 ? static_cast<int>(j1 - j0) : 0;

  const size_t kv_off = static_cast<size_t>((b * a.Hkv + g) * a.Lk + j0) * D * E::kSize;
  const unsigned char* kg = static_cast<const unsigned char*>(a.k) + kv_off;
  const unsigned char* vg = static_cast<const unsigned char*>(a.v) + kv_off;
  for (int c = tid; c < nk * CPR; c += kThreads)
    cp_async16(sK + (c / CPR) * RB + (c % CPR) * 16, kg + static_cast<size_t>(c) * 16, true);
  cp_async_commit();
  for (int c = tid; c < nk * CPR; c += kThreads)
    cp_async16(sV + (c / CPR) * RB + (c % CPR) * 16, vg + static_cast<size_t>(c) * 16, true);
  cp_async_commit();

  const int64_t off = kv_len - a.Lq;  // position of query 0
  for (int rt0 = 0; rt0 < a.rows; rt0 += kRT) {
    const int nr = min(kRT, a.rows - rt0);
    {  // Q rows of the pass: every load in flight before the first store
      constexpr int kPer = kRT * D / kThreads;
      float x[kPer];
#pragma unroll
      for (int u = 0; u < kPer; ++u) {
        const int idx = tid + u * kThreads, r = idx / D, rr = rt0 + r;
        const int64_t h = g * a.group + rr / a.Lq, i = rr % a.Lq;
        x[u] = r < nr ? load<float>(a.q_dt, a.q, ((b * a.Hq + h) * a.Lq + i) * D + idx % D) *
                            a.scale_log2
                      : 0.f;
      }
#pragma unroll
      for (int u = 0; u < kPer; ++u) sQ[tid + u * kThreads] = x[u];
    }
    if (rt0 == 0) cp_async_wait<1>();  // K has landed (V may still be in flight)
    __syncthreads();

    // Scores: one key per thread, all rows of the pass.
    for (int jj = tid; jj < nk; jj += kThreads) {
      float acc[kRT];
#pragma unroll
      for (int r = 0; r < kRT; ++r) acc[r] = 0.f;
      const unsigned char* kr = sK + jj * RB;
#pragma unroll 4
      for (int c = 0; c < CPR; ++c) {
        float kf[EPC];
        E::chunk(kr + c * 16, kf);
#pragma unroll
        for (int r = 0; r < kRT; ++r) {
          if (r < nr) {
            const float4* qv = reinterpret_cast<const float4*>(sQ + r * D + c * EPC);
#pragma unroll
            for (int e4 = 0; e4 < EPC / 4; ++e4) {
              float4 qq = qv[e4];
              acc[r] += qq.x * kf[4 * e4] + qq.y * kf[4 * e4 + 1] + qq.z * kf[4 * e4 + 2] +
                        qq.w * kf[4 * e4 + 3];
            }
          }
        }
      }
      const int64_t j = j0 + jj;
#pragma unroll
      for (int r = 0; r < kRT; ++r) {
        float x = -INFINITY;
        if (r < nr) {
          int rr = rt0 + r;
          int64_t h = g * a.group + rr / a.Lq, i = rr % a.Lq;
          x = acc[r];
          if (a.causal && j > off + i)
            x = -INFINITY;
          else if (a.mask.p)
            x += mask_log2(a.mask, b, h, i, j);
        }
        sS[r * a.ks_max + jj] = x;
      }
    }
    __syncthreads();

    // Softmax of each row over this split's keys (a warp per row).
    for (int r = warp; r < kRT; r += kThreads / 32) {
      float mx = -INFINITY;
      for (int jj = lane; jj < nk; jj += 32) mx = fmaxf(mx, sS[r * a.ks_max + jj]);
      for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      const float muse = mx == -INFINITY ? 0.f : mx;
      float sum = 0.f;
      for (int jj = lane; jj < nk; jj += 32) {
        float p = ex2(sS[r * a.ks_max + jj] - muse);
        sP[jj * kRT + r] = p;
        sum += p;
      }
      for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      if (lane == 0) sML[2 * r] = mx, sML[2 * r + 1] = sum;
    }
    if (rt0 == 0) cp_async_wait<0>();
    __syncthreads();

    // acc = P V: a thread owns a column pair; G thread groups take interleaved keys.
    {
      const int pr = tid % NP, kgp = tid / NP;
      if (kgp < G) {
        float acc[kRT][2];
#pragma unroll
        for (int r = 0; r < kRT; ++r) acc[r][0] = acc[r][1] = 0.f;
        for (int jj = kgp; jj < nk; jj += G) {
          float2 vv = E::pair(sV + jj * RB + pr * 2 * E::kSize);
          const float4 p0 = *reinterpret_cast<const float4*>(sP + jj * kRT);
          const float4 p1 = *reinterpret_cast<const float4*>(sP + jj * kRT + 4);
          const float p[kRT] = {p0.x, p0.y, p0.z, p0.w, p1.x, p1.y, p1.z, p1.w};
#pragma unroll
          for (int r = 0; r < kRT; ++r) {
            if (r < nr) {
              acc[r][0] += p[r] * vv.x;
              acc[r][1] += p[r] * vv.y;
            }
          }
        }
#pragma unroll
        for (int r = 0; r < kRT; ++r) {
          sRed[(kgp * kRT + r) * D + 2 * pr] = acc[r][0];
          sRed[(kgp * kRT + r) * D + 2 * pr + 1] = acc[r][1];
        }
      }
    }
    __syncthreads();
    for (int idx = tid; idx < nr * D; idx += kThreads) {
      const int r = idx / D, d = idx % D;
      float sum = 0.f;
#pragma unroll
      for (int q = 0; q < G; ++q) sum += sRed[(q * kRT + r) * D + d];
      const int rr = rt0 + r;
      const int64_t h = g * a.group + rr / a.Lq, i = rr % a.Lq;
      const int64_t grow = (b * a.Hq + h) * a.Lq + i;
      if (a.nsplit == 1) {
        const float l = sML[2 * r + 1];
        store(a.out_dt, a.out, grow * D + d, l > 0.f ? sum / l : 0.f);
      } else {
        const int64_t pi = grow * a.nsplit + split;
        a.part_acc[pi * D + d] = sum;
        if (d == 0) a.part_ml[2 * pi] = sML[2 * r], a.part_ml[2 * pi + 1] = sML[2 * r + 1];
      }
    }
    __syncthreads();  // the next pass reuses sQ, sS, sRed
  }
}

// Tensor-core decode: the (at most 16) query rows of a kv head's group are the M side of
// mma.sync m16n8k16 (rows past group·Lq are zeros), so S = Q Kᵀ and O += P V for 16 keys cost
// D/8 tensor-core instructions each per warp instead of ~16·D FMAs per thread. Each warp owns a
// quarter of the split's keys: it copies them itself (K, then V, as two cp.async groups), waits
// only for its own copies, and keeps an online softmax in registers (FlashAttention-2's fragment
// reuse: S's accumulators are P's A fragments). The four warps' (max, sum, acc) meet once in
// shared memory, which then holds the split's partial result or, with one split, the output.
constexpr int kMmaWarps = 4;
constexpr int kMmaRows = 16;

template <int D>
constexpr int mma_pitch() {
  return D + 8;  // elements: 16 bytes of padding make the 8 rows an ldmatrix reads conflict-free
}

// Q tile + max(K and V ranges, the warps' partial results): the latter reuse the former.
template <int D>
size_t mma_smem(int ks) {
  const size_t kv = 2 * static_cast<size_t>(ks) * mma_pitch<D>() * 2;
  const size_t part = sizeof(float) * kMmaWarps * kMmaRows * (D + 2);
  return static_cast<size_t>(kMmaRows) * mma_pitch<D>() * 2 + std::max(kv, part);
}

template <bool BF16, int D>
__global__ void __launch_bounds__(kMmaWarps * 32) decode_mma_kernel(DecodeArgs a) {
  constexpr int P = mma_pitch<D>(), CH = D / 8;  // CH: 16-byte chunks per row
  extern __shared__ __align__(16) uint16_t smem16[];
  const int KW = a.ks_max / kMmaWarps;  // shared-memory rows per warp (a multiple of 16)
  uint16_t* sQ = smem16;                // [16][P]
  uint16_t* sK = sQ + kMmaRows * P;     // [ks_max][P]
  uint16_t* sV = sK + a.ks_max * P;     // [ks_max][P]
  // After the key loop: [warp][16][D] partial acc, then [warp][16] (max, sum).
  float* sO = reinterpret_cast<float*>(sK);
  float* sML = sO + kMmaWarps * kMmaRows * D;

  pdl_begin();

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int split = blockIdx.x;
  const int64_t g = blockIdx.y, b = blockIdx.z;
  bool bad;
  const int64_t kv_len = read_kv_len(a.kv_len, a.kv_len_dt, a.Lk, &bad);
  if (bad) return nan_rows(a, g, b, D, tid, kMmaWarps * 32);
  // The split's keys, divided by the actual length in multiples of 64: 16 keys per warp tile.
  const int64_t per = ((kv_len + a.nsplit - 1) / a.nsplit + 63) / 64 * 64;
  const int64_t j0 = split * per, j1 = min(j0 + per, kv_len);
  const int64_t wj0 = j0 + warp * (per / kMmaWarps);
  const int64_t wj1 = min(wj0 + per / kMmaWarps, j1);
  const int nkw = wj1 > wj0 ? static_cast<int>(wj1 - wj0) : 0;
  const int ntiles = (nkw + 15) / 16;

  // This warp's keys -> its rows of sK / sV; rows up to the tile edge are zero-filled (V rows
  // must be zeros: P is 0 there, and 0 * stale NaN would poison the sums).
  const size_t kv_base = static_cast<size_t>((b * a.Hkv + g) * a.Lk) * D;
  const uint16_t* kg = static_cast<const uint16_t*>(a.k) + kv_base;
  const uint16_t* vg = static_cast<const uint16_t*>(a.v) + kv_base;
  uint16_t* wK = sK + warp * KW * P;
  uint16_t* wV = sV + warp * KW * P;
  for (int c = lane; c < ntiles * 16 * CH; c += 32) {
    const int r = c / CH, cc = c % CH;
    const bool ok = r < nkw;
    cp_async16(wK + r * P + cc * 8, ok ? kg + (wj0 + r) * D + cc * 8 : kg, ok);
  }
  cp_async_commit();
  for (int c = lane; c < ntiles * 16 * CH; c += 32) {
    const int r = c / CH, cc = c % CH;
    const bool ok = r < nkw;
    cp_async16(wV + r * P + cc * 8, ok ? vg + (wj0 + r) * D + cc * 8 : vg, ok);
  }
  cp_async_commit();

  // Q (unscaled, in K's type; rows past group·Lq zero) while the copies fly. All of a thread's
  // loads are issued before the first store: one L2 round trip, not one per row.
  {
    constexpr int kPer = kMmaRows * D / (kMmaWarps * 32);
    float x[kPer];
#pragma unroll
    for (int u = 0; u < kPer; ++u) {
      const int idx = tid + u * kMmaWarps * 32, r = idx / D;
      const int64_t h = g * a.group + r / a.Lq, i = r % a.Lq;
      x[u] = r < a.rows ? load<float>(a.q_dt, a.q, ((b * a.Hq + h) * a.Lq + i) * D + idx % D) : 0.f;
    }
#pragma unroll
    for (int u = 0; u < kPer; ++u) {
      const int idx = tid + u * kMmaWarps * 32;
      sQ[(idx / D) * P + idx % D] = BF16 ? f2bf(x[u]) : f2h(x[u]);
    }
  }
  __syncthreads();

  // ldmatrix row/column of this lane within a 16x16 A tile, and within two 8-wide B tiles.
  const int a_row = (lane % 8) + ((lane / 8) % 2) * 8, a_col = (lane / 16) * 8;
  const int kb_row = (lane % 8) + (lane / 16) * 8, kb_col = ((lane / 8) % 2) * 8;
  const int vb_row = (lane % 8) + ((lane / 8) % 2) * 8, vb_col = (lane / 16) * 8;
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) ldsm_x4(qf[kk], sQ + a_row * P + kk * 16 + a_col);

  float o[D / 8][4];
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.f;
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};
  const int64_t off = kv_len - a.Lq;  // position of query 0

  cp_async_wait<1>();  // this lane's K copies have landed; __syncwarp publishes the others'
  __syncwarp();
  for (int t = 0; t < ntiles; ++t) {
    float sc[2][4] = {};
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t bf[4];
      ldsm_x4(bf, wK + (t * 16 + kb_row) * P + kk * 16 + kb_col);
      mma16816<BF16>(sc[0], qf[kk], bf[0], bf[1]);
      mma16816<BF16>(sc[1], qf[kk], bf[2], bf[3]);
    }
    // Scale into the log2 domain; mask keys past this warp's range, causal and user masks.
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = lane / 4 + (e / 2) * 8;
        const int jj = t * 16 + nt * 8 + (lane % 4) * 2 + (e % 2);
        float x = sc[nt][e] * a.scale_log2;
        if (jj >= nkw) {
          x = -INFINITY;
        } else if (row < a.rows) {
          const int64_t i = row % a.Lq, j = wj0 + jj;
          if (a.causal && j > off + i)
            x = -INFINITY;
          else if (a.mask.p)
            x += mask_log2(a.mask, b, g * a.group + row / a.Lq, i, j);
        }
        sc[nt][e] = x;
      }
      // Online softmax: a row's 4 owning lanes agree on its max through two shuffles.
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      float mx =
          fmaxf(fmaxf(sc[0][2 * hr], sc[0][2 * hr + 1]), fmaxf(sc[1][2 * hr], sc[1][2 * hr + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mnew = fmaxf(mrow[hr], mx);
      const float muse = mnew == -INFINITY ? 0.f : mnew;  // all masked so far: no NaN
      const float alpha = ex2(mrow[hr] - muse);
      mrow[hr] = mnew;
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
        const float p0 = ex2(sc[nt][2 * hr] - muse), p1 = ex2(sc[nt][2 * hr + 1] - muse);
        sc[nt][2 * hr] = p0, sc[nt][2 * hr + 1] = p1;
        sum += p0 + p1;
      }
      lrow[hr] = lrow[hr] * alpha + sum;  // lane-partial; reduced after the loop
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) o[dt][2 * hr] *= alpha, o[dt][2 * hr + 1] *= alpha;
    }
    if (t == 0) {
      cp_async_wait<0>();  // V
      __syncwarp();
    }
    // O += P V: the S accumulators of the two n8 tiles are exactly an m16k16 A fragment.
    const uint32_t pa[4] = {pack2<BF16>(sc[0][0], sc[0][1]), pack2<BF16>(sc[0][2], sc[0][3]),
                            pack2<BF16>(sc[1][0], sc[1][1]), pack2<BF16>(sc[1][2], sc[1][3])};
#pragma unroll
    for (int dp = 0; dp < D / 16; ++dp) {
      uint32_t bf[4];
      ldsm_x4_t(bf, wV + (t * 16 + vb_row) * P + dp * 16 + vb_col);
      mma16816<BF16>(o[2 * dp], pa, bf[0], bf[1]);
      mma16816<BF16>(o[2 * dp + 1], pa, bf[2], bf[3]);
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // every warp is done with sK / sV: they become the partial-result area

#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    float l = lrow[hr];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const int row = lane / 4 + hr * 8;
    if (row < a.rows) {
      float* dst = sO + (warp * kMmaRows + row) * D + 2 * (lane % 4);
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt)
        *reinterpret_cast<float2*>(dst + dt * 8) = make_float2(o[dt][2 * hr], o[dt][2 * hr + 1]);
      if (lane % 4 == 0) {
        sML[2 * (warp * kMmaRows + row)] = mrow[hr];
        sML[2 * (warp * kMmaRows + row) + 1] = l;
      }
    }
  }
  __syncthreads();

  // The warps' partials by log-sum-exp: the split's (max, sum, acc), or the output.
  for (int idx = tid; idx < a.rows * D; idx += kMmaWarps * 32) {
    const int r = idx / D, d = idx % D;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < kMmaWarps; ++w) mx = fmaxf(mx, sML[2 * (w * kMmaRows + r)]);
    const float muse = mx == -INFINITY ? 0.f : mx;
    float l = 0.f, acc = 0.f;
#pragma unroll
    for (int w = 0; w < kMmaWarps; ++w) {
      const float wt = ex2(sML[2 * (w * kMmaRows + r)] - muse);
      l += wt * sML[2 * (w * kMmaRows + r) + 1];
      acc += wt * sO[(w * kMmaRows + r) * D + d];
    }
    const int64_t h = g * a.group + r / a.Lq, i = r % a.Lq;
    const int64_t grow = (b * a.Hq + h) * a.Lq + i;
    if (a.nsplit == 1) {
      store(a.out_dt, a.out, grow * D + d, l > 0.f ? acc / l : 0.f);
    } else {
      const int64_t pi = grow * a.nsplit + split;
      a.part_acc[pi * D + d] = acc;
      if (d == 0) a.part_ml[2 * pi] = mx, a.part_ml[2 * pi + 1] = l;
    }
  }
}

struct MergeArgs {
  const float *part_acc, *part_ml;
  void* out;
  int out_dt;
  int nsplit, D;
  int64_t Lk;
  const void* kv_len;
  int kv_len_dt;
};

// One block per query row: weights 2^(m_s - M) per split, out = sum_s w_s acc_s / sum_s w_s l_s.
__global__ void __launch_bounds__(kThreads) merge_kernel(MergeArgs a) {
  __shared__ float w[kMaxSplits];
  __shared__ float red[kThreads / 32];
  pdl_begin();  // the split kernel's results
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int64_t row = blockIdx.x;
  bool bad;
  read_kv_len(a.kv_len, a.kv_len_dt, a.Lk, &bad);
  if (bad) {
    for (int d = tid; d < a.D; d += kThreads)
      store(a.out_dt, a.out, row * a.D + d, __int_as_float(0x7fffffff));
    return;
  }
  const float* ml = a.part_ml + row * a.nsplit * 2;
  if (a.nsplit <= kMergeRegs && a.D <= kThreads) {
    // Up to kMergeRegs splits: a thread per column loads its column of every split and all the
    // splits' (max, sum) at once, one L2 round trip, and needs no block reduction (the general
    // loop below pays a round trip per step: max, weights, then eight splits at a time).
    const int d = tid;
    float mv[kMergeRegs], lv[kMergeRegs], av[kMergeRegs];
#pragma unroll
    for (int s = 0; s < kMergeRegs; ++s) {
      const bool on = s < a.nsplit;
      mv[s] = on ? ml[2 * s] : -INFINITY;
      lv[s] = on ? ml[2 * s + 1] : 0.f;
      av[s] = on && d < a.D ? a.part_acc[(row * a.nsplit + s) * a.D + d] : 0.f;
    }
    float mx = -INFINITY;
#pragma unroll
    for (int s = 0; s < kMergeRegs; ++s) mx = fmaxf(mx, mv[s]);
    float l = 0.f, t = 0.f;
#pragma unroll
    for (int s = 0; s < kMergeRegs; ++s) {
      const float ws = mv[s] == -INFINITY ? 0.f : ex2(mv[s] - mx);  // empty splits weigh 0
      l += ws * lv[s];
      t += ws * av[s];
    }
    if (d < a.D) store(a.out_dt, a.out, row * a.D + d, l > 0.f ? t / l : 0.f);
    return;
  }
  float mx = -INFINITY;
  for (int s = tid; s < a.nsplit; s += kThreads) mx = fmaxf(mx, ml[2 * s]);
  for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  if (lane == 0) red[warp] = mx;
  __syncthreads();
  mx = red[0];
  for (int i = 1; i < kThreads / 32; ++i) mx = fmaxf(mx, red[i]);
  __syncthreads();
  float l = 0.f;
  for (int s = tid; s < a.nsplit; s += kThreads) {
    float m = ml[2 * s];
    float ws = m == -INFINITY ? 0.f : ex2(m - mx);  // empty or fully masked splits weigh 0
    w[s] = ws;
    l += ws * ml[2 * s + 1];
  }
  for (int o = 16; o > 0; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
  if (lane == 0) red[warp] = l;
  __syncthreads();
  l = 0.f;
  for (int i = 0; i < kThreads / 32; ++i) l += red[i];
  const float inv = l > 0.f ? 1.f / l : 0.f;
  const float* acc = a.part_acc + row * a.nsplit * a.D;
  for (int d = tid; d < a.D; d += kThreads) {
    // Independent partial sums keep several loads in flight (the splits' partials sit in L2).
    float sum[8] = {};
    int s = 0;
    for (; s + 8 <= a.nsplit; s += 8)
#pragma unroll
      for (int u = 0; u < 8; ++u) sum[u] += w[s + u] * acc[static_cast<int64_t>(s + u) * a.D + d];
    for (; s < a.nsplit; ++s) sum[0] += w[s] * acc[static_cast<int64_t>(s) * a.D + d];
    float t = 0.f;
#pragma unroll
    for (int u = 0; u < 8; ++u) t += sum[u];
    store(a.out_dt, a.out, row * a.D + d, t * inv);
  }
}

template <int KT, int D>
void launch_split(const DecodeArgs& a, int64_t B, cudaStream_t s) {
  auto kern = decode_kernel<KT, D>;
  size_t smem = decode_smem<KT, D>(a.ks_max);
  LOOM_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem)));
  dim3 grid(static_cast<unsigned>(a.nsplit), static_cast<unsigned>(a.Hkv),
            static_cast<unsigned>(B));
  launch_pdl(kern, grid, kThreads, smem, s, a);
}

template <bool BF16, int D>
void launch_split_mma(const DecodeArgs& a, int64_t B, cudaStream_t s) {
  auto kern = decode_mma_kernel<BF16, D>;
  size_t smem = mma_smem<D>(a.ks_max);
  LOOM_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem)));
  dim3 grid(static_cast<unsigned>(a.nsplit), static_cast<unsigned>(a.Hkv),
            static_cast<unsigned>(B));
  launch_pdl(kern, grid, kMmaWarps * 32, smem, s, a);
}

using SplitFn = void (*)(const DecodeArgs&, int64_t, cudaStream_t);
template <int KT>
SplitFn split_fn(int64_t d) {
  return d == 64 ? launch_split<KT, 64> : d == 128 ? launch_split<KT, 128> : launch_split<KT, 256>;
}

int elem_size(DType t) { return t == DType::f32 ? 4 : 2; }

// Largest keys-per-split whose K and V ranges fit the shared-memory budget.
int max_split_keys(const SdpaLaunch& a) {
  int64_t rb = a.D * elem_size(a.kv_dtype) + 16;
  int ks = 256;
  while (ks > 8 && 2 * ks * rb > kKvSmem) ks /= 2;
  return ks;
}

// Keys per split: the largest (<= the shared-memory bound) that still gives a block per
// multiprocessor; more splits only add merge work. The tensor-core kernel takes multiples of 64
// (16 keys per warp tile).
int choose_split_keys(const SdpaLaunch& a, int sms, bool mma) {
  const int lo = mma ? 64 : 32;
  int ks = max_split_keys(a);
  if (a.decode_split_keys > 0) {  // asked for, within what the kernels and the merge take
    int want = std::min(ks, a.decode_split_keys);
    want = mma ? std::max(lo, want / 64 * 64) : want;
    while (want < ks && (a.Lk + want - 1) / want > kMaxSplits) want *= 2;
    return want;
  }
  while (ks > lo && a.B * a.Hkv * ((a.Lk + ks - 1) / ks) < sms) ks /= 2;
  return ks;
}

bool use_mma(const SdpaLaunch& a) {
  const bool fits = (a.kv_dtype == DType::f16 || a.kv_dtype == DType::bf16) &&
                    (a.D == 64 || a.D == 128) && a.Hq / a.Hkv * a.Lq <= kMmaRows &&
                    max_split_keys(a) >= 64;
  return fits && a.decode_kernel != 0;
}

}  // namespace

bool decode_supports(const SdpaLaunch& a) {
  bool kv = a.kv_dtype == DType::f16 || a.kv_dtype == DType::bf16 || a.kv_dtype == DType::f32;
  if (!(a.Lq >= 1 && a.Lq <= 8 && kv && a.D == a.Dv && (a.D == 64 || a.D == 128 || a.D == 256) &&
        aligned16(a.k) && aligned16(a.v) && a.Hkv <= 65535 && a.B <= 65535 &&
        a.Hq / a.Hkv * a.Lq < (int64_t{1} << 20)))
    return false;
  int64_t ks = max_split_keys(a);
  return (a.Lk + ks - 1) / ks <= kMaxSplits;
}

void launch_decode(const SdpaLaunch& a, cudaStream_t s, int device) {
  DecodeArgs d{};
  d.q = a.q, d.k = a.k, d.v = a.v, d.out = a.out;
  d.q_dt = static_cast<int>(a.q_dtype), d.out_dt = static_cast<int>(a.out_dtype);
  d.Hq = a.Hq, d.Hkv = a.Hkv, d.Lq = a.Lq, d.Lk = a.Lk;
  d.group = static_cast<int>(a.Hq / a.Hkv);
  d.rows = static_cast<int>(d.group * a.Lq);
  d.mask = mask_view(a);
  d.kv_len = a.kv_len;
  d.kv_len_dt = static_cast<int>(a.kv_len_dtype);
  d.scale_log2 = a.scale * kLog2e;
  d.causal = a.causal;
  const bool mma = use_mma(a);
  d.ks_max = choose_split_keys(a, sm_count(device), mma);
  d.nsplit = static_cast<int>(std::max<int64_t>(1, (a.Lk + d.ks_max - 1) / d.ks_max));
  LOOM_CHECK(d.nsplit <= kMaxSplits, "[cuda] sdpa: ", d.nsplit, " key splits exceed ", kMaxSplits);
  std::shared_ptr<Storage> part;
  if (d.nsplit > 1) {
    int64_t rows = a.B * a.Hq * a.Lq;
    size_t n_acc = static_cast<size_t>(rows * d.nsplit * a.D);
    part = scratch(device, (n_acc + static_cast<size_t>(rows * d.nsplit * 2)) * sizeof(float));
    d.part_acc = reinterpret_cast<float*>(part->data());
    d.part_ml = d.part_acc + n_acc;
  }
  SplitFn f = mma                         ? (a.kv_dtype == DType::bf16
                                                 ? (a.D == 64 ? launch_split_mma<true, 64> : launch_split_mma<true, 128>)
                                                 : (a.D == 64 ? launch_split_mma<false, 64> : launch_split_mma<false, 128>))
              : a.kv_dtype == DType::f16  ? split_fn<kF16>(a.D)
              : a.kv_dtype == DType::bf16 ? split_fn<kBF16>(a.D)
                                          : split_fn<kF32>(a.D);
  f(d, a.B, s);
  if (d.nsplit == 1) return;

  MergeArgs m{};
  m.part_acc = d.part_acc, m.part_ml = d.part_ml;
  m.out = a.out, m.out_dt = d.out_dt;
  m.nsplit = d.nsplit, m.D = static_cast<int>(a.D);
  m.Lk = a.Lk, m.kv_len = a.kv_len, m.kv_len_dt = d.kv_len_dt;
  launch_pdl(merge_kernel, dim3(static_cast<unsigned>(a.B * a.Hq * a.Lq)), kThreads, 0, s, m);
}

}  // namespace loom::backends::cuda::attn
