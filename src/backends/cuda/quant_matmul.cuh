// Kernels behind quant_matmul.h, shared by the .cu files that instantiate them (block formats in
// quant_matmul_blocks.cu, affine / LUT tensors in quant_matmul_tensors.cu).
//
// Shape of the work. A warp owns 2 weight rows (GEMV) or one row (dequantize) and walks them in
// chunks of k: each chunk's packed bytes (any alignment: 18-, 20-, 34-byte blocks...) are loaded
// with 16-byte streaming loads into registers one chunk ahead (GEMV), parked in the warp's
// shared-memory stage, and decoded from there. Each lane decodes groups of 8
// consecutive elements: a group is two words of 4 unsigned byte-sized codes plus a scale d and an
// offset m (value = d·(code − bias) + m, or d·table[code]); codes become floats with one
// byte_perm and one add (2^23 magic, exact), so no integer→float conversion (16/clk on sm_90)
// sits on the hot path. GEMV accumulates d·Σ code·x + m·Σx per group in f32 (x read once for all
// the warp's rows) and reduces across the warp at the end.
#pragma once
#include "backends/cuda/device_util.cuh"
#include "backends/cuda/quant_matmul.h"

namespace loom::backends::cuda::qmm {

constexpr int kWarps = 4;     // warps per CTA
constexpr int kRows = 2;      // weight rows per warp in the GEMV (x is read once for both)
constexpr int kChunk = 1024;  // elements of a row staged per step
constexpr int kVecs = 3;      // 16-byte vectors per lane per staged row: 1536 B >= 1152 + 2·16
constexpr int kBufVecs = kVecs * 32 + 1;  // +1: 4-byte reads at the end may touch one more word

struct Params {
  const uint8_t* w;
  int64_t n, k, rb, total;
  const void *scale, *zp;
  int sdt, zdt, skind;
  int64_t block, nblocks;
  const void* table;
  int tdt;
  int64_t entries;
  bool per_row;
  const void* x;
  int xdt, m;
  bool xvec;
  void* y;  // GEMV result [m, n] (x's dtype) or dequantized [n, k] (odt)
  int odt;
  bool ovec;
};

struct Grp {
  uint32_t q0, q1;  // codes of elements 0..3 and 4..7 (INTER: even and odd elements)
  float d, m;
};

// A byte position in a warp's shared-memory stage. Reads are aligned 32-bit words plus a funnel
// shift, through a pointer the compiler can see is shared (no integer round trip, so it emits LDS,
// not generic loads) and 32-bit offsets.
struct SPtr {
  const uint32_t* w;  // the stage (16-byte aligned)
  int off;            // bytes from its start
  __device__ __forceinline__ SPtr operator+(int o) const { return {w, off + o}; }
};
// 4 bytes at any offset.
__device__ __forceinline__ uint32_t ldu32(SPtr p) {
  const int i = p.off >> 2;
  return __funnelshift_r(p.w[i], p.w[i + 1], static_cast<uint32_t>(p.off & 3) * 8);
}
__device__ __forceinline__ float ldh(SPtr p) { return h2f(static_cast<uint16_t>(ldu32(p))); }
__device__ __forceinline__ int ldb(SPtr p) {
  return static_cast<int>((p.w[p.off >> 2] >> ((p.off & 3) * 8)) & 0xFFu);
}
// Bits 0..3 of b to bit 0 of bytes 0..3.
__device__ __forceinline__ uint32_t spread4(uint32_t b) { return (b * 0x00204081u) & 0x01010101u; }

__device__ __forceinline__ void scale_min_k4(int s, SPtr q, int& sc, int& m) {
  if (s < 4) {
    sc = ldb(q + s) & 63;
    m = ldb(q + (s + 4)) & 63;
  } else {
    sc = (ldb(q + (s + 4)) & 15) | ((ldb(q + (s - 4)) >> 6) << 4);
    m = (ldb(q + (s + 4)) >> 4) | ((ldb(q + s) >> 6) << 4);
  }
}

// Affine tensors: the group's scale and offset.
__device__ __forceinline__ void affine_params(const Params& p, int64_t row, int64_t kpos, float& d,
                                              float& m) {
  // 32-bit division: the 64-bit one costs dozens of instructions per group.
  int64_t si = p.skind == 0 ? 0
                            : (p.skind == 1 ? row * p.nblocks + static_cast<uint32_t>(kpos) /
                                                                    static_cast<uint32_t>(p.block)
                                            : row);
  d = load<float>(p.sdt, p.scale, si);
  float z = p.zp ? load<float>(p.zdt, p.zp, si) : 0.f;
  m = -d * z;
}

// Format traits: QK elements / BYTES bytes per block; BIAS subtracted from codes; MIN: m used;
// TABLE: values are table[code]; INTER: q0 holds the even elements of the group, q1 the odd.
// decode(b, g, ...) reads group g (of QK / 8) of the block at b (shared memory).
template <int F>
struct Fmt;

template <>
struct Fmt<kQ4_0> {
  static constexpr int QK = 32, BYTES = 18;
  static constexpr float BIAS = 8;
  static constexpr bool MIN = false, TABLE = false, INTER = false;
  static __device__ __forceinline__ Grp decode(SPtr b, int g, const Params&, int64_t, int64_t) {
    SPtr qs = b + 2 + 8 * (g & 1);
    int sh = (g >> 1) * 4;
    return {(ldu32(qs) >> sh) & 0x0F0F0F0Fu, (ldu32(qs + 4) >> sh) & 0x0F0F0F0Fu, ldh(b), 0.f};
  }
};
template <>
struct Fmt<kIQ4_NL> : Fmt<kQ4_0> {
  static constexpr bool TABLE = true;
};
template <>
struct Fmt<kQ4_1> {
  static constexpr int QK = 32, BYTES = 20;
  static constexpr float BIAS = 0;
  static constexpr bool MIN = true, TABLE = false, INTER = false;
  static __device__ __forceinline__ Grp decode(SPtr b, int g, const Params&, int64_t, int64_t) {
    SPtr qs = b + 4 + 8 * (g & 1);
    int sh = (g >> 1) * 4;
    return {(ldu32(qs) >> sh) & 0x0F0F0F0Fu, (ldu32(qs + 4) >> sh) & 0x0F0F0F0Fu, ldh(b),
            ldh(b + 2)};
  }
};
template <>
struct Fmt<kQ8_0> {
  static constexpr int QK = 32, BYTES = 34;
  static constexpr float BIAS = 128;  // int8 codes ^ 0x80 are unsigned
  static constexpr bool MIN = false, TABLE = false, INTER = false;
  static __device__ __forceinline__ Grp decode(SPtr b, int g, const Params&, int64_t, int64_t) {
    SPtr qs = b + 2 + 8 * g;
    return {ldu32(qs) ^ 0x80808080u, ldu32(qs + 4) ^ 0x80808080u, ldh(b), 0.f};
  }
};
template <int OFF, bool HASMIN>
struct Q5 {  // q5_0 (OFF 2: d, qh, qs) and q5_1 (OFF 4: d, m, qh, qs)
  static constexpr int QK = 32, BYTES = HASMIN ? 24 : 22;
  static constexpr float BIAS = HASMIN ? 0 : 16;
  static constexpr bool MIN = HASMIN, TABLE = false, INTER = false;
  static __device__ __forceinline__ Grp decode(SPtr b, int g, const Params&, int64_t, int64_t) {
    SPtr qs = b + OFF + 4 + 8 * (g & 1);
    int sh = (g >> 1) * 4;
    uint32_t hb = (ldu32(b + OFF) >> (8 * g)) & 0xFFu;
    return {((ldu32(qs) >> sh) & 0x0F0F0F0Fu) | (spread4(hb & 15) << 4),
            ((ldu32(qs + 4) >> sh) & 0x0F0F0F0Fu) | (spread4(hb >> 4) << 4), ldh(b),
            HASMIN ? ldh(b + 2) : 0.f};
  }
};
template <>
struct Fmt<kQ5_0> : Q5<2, false> {};
template <>
struct Fmt<kQ5_1> : Q5<4, true> {};
template <bool FIVE>
struct QK4 {  // q4_k / q5_k: 8 sub-blocks of 32 with 6-bit scales and mins
  static constexpr int QK = 256, BYTES = FIVE ? 176 : 144;
  static constexpr float BIAS = 0;
  static constexpr bool MIN = true, TABLE = false, INTER = false;
  static __device__ __forceinline__ Grp decode(SPtr b, int g, const Params&, int64_t, int64_t) {
    int s = g >> 2, l0 = 8 * (g & 3), sh = 4 * (s & 1);
    SPtr qs = b + (FIVE ? 48 : 16) + 32 * (s >> 1) + l0;
    uint32_t q0 = (ldu32(qs) >> sh) & 0x0F0F0F0Fu, q1 = (ldu32(qs + 4) >> sh) & 0x0F0F0F0Fu;
    if (FIVE) {
      q0 |= ((ldu32(b + 16 + l0) >> s) & 0x01010101u) << 4;
      q1 |= ((ldu32(b + 20 + l0) >> s) & 0x01010101u) << 4;
    }
    int sc, mn;
    scale_min_k4(s, b + 4, sc, mn);
    return {q0, q1, ldh(b) * static_cast<float>(sc), -(ldh(b + 2) * static_cast<float>(mn))};
  }
};
template <>
struct Fmt<kQ4_K> : QK4<false> {};
template <>
struct Fmt<kQ5_K> : QK4<true> {};
template <>
struct Fmt<kQ6_K> {
  static constexpr int QK = 256, BYTES = 210;
  static constexpr float BIAS = 32;
  static constexpr bool MIN = false, TABLE = false, INTER = false;
  static __device__ __forceinline__ Grp decode(SPtr b, int g, const Params&, int64_t, int64_t) {
    int h = g >> 4, p = (g >> 2) & 3, l0 = 8 * (g & 3);
    SPtr ql = b + 64 * h + 32 * (p & 1) + l0;
    SPtr qh = b + 128 + 32 * h + l0;
    int sl = 4 * (p >> 1), sh = 2 * p;
    uint32_t q0 = ((ldu32(ql) >> sl) & 0x0F0F0F0Fu) | (((ldu32(qh) >> sh) & 0x03030303u) << 4);
    uint32_t q1 =
        ((ldu32(ql + 4) >> sl) & 0x0F0F0F0Fu) | (((ldu32(qh + 4) >> sh) & 0x03030303u) << 4);
    float sc = static_cast<float>(static_cast<int8_t>(ldb(b + (192 + (g >> 1)))));
    return {q0, q1, ldh(b + 208) * sc, 0.f};
  }
};
template <>
struct Fmt<kAffineU4Blocks> {
  static constexpr int QK = 32, BYTES = 20;
  static constexpr float BIAS = 0;
  static constexpr bool MIN = true, TABLE = false, INTER = true;
  static __device__ __forceinline__ Grp decode(SPtr b, int g, const Params&, int64_t, int64_t) {
    uint32_t w = ldu32(b + 4 + 4 * g);
    float s = ldh(b);
    return {w & 0x0F0F0F0Fu, (w >> 4) & 0x0F0F0F0Fu, s, -s * ldh(b + 2)};
  }
};
template <>
struct Fmt<kAffineI8Blocks> {
  static constexpr int QK = 32, BYTES = 36;
  static constexpr float BIAS = 128;
  static constexpr bool MIN = true, TABLE = false, INTER = false;
  static __device__ __forceinline__ Grp decode(SPtr b, int g, const Params&, int64_t, int64_t) {
    SPtr qs = b + 4 + 8 * g;
    float s = ldh(b);
    return {ldu32(qs) ^ 0x80808080u, ldu32(qs + 4) ^ 0x80808080u, s, -s * ldh(b + 2)};
  }
};
// Affine / LUT tensors: a "block" is one group of 8 codes (4 bytes of u4/i4, 8 of u8/i8).
template <bool FOUR, uint32_t FLIP, bool LUT>
struct Tensor8 {
  static constexpr int QK = 8, BYTES = FOUR ? 4 : 8;
  static constexpr float BIAS = FLIP == 0 ? 0.f : (FOUR ? 8.f : 128.f);
  static constexpr bool MIN = !LUT, TABLE = LUT, INTER = FOUR;  // u4 packs element 2i low
  static __device__ __forceinline__ Grp decode(SPtr b, int, const Params& p, int64_t row,
                                               int64_t kpos) {
    Grp r;
    if (FOUR) {
      uint32_t w = ldu32(b) ^ FLIP;
      r.q0 = w & 0x0F0F0F0Fu;
      r.q1 = (w >> 4) & 0x0F0F0F0Fu;
    } else {
      r.q0 = ldu32(b) ^ FLIP;
      r.q1 = ldu32(b + 4) ^ FLIP;
    }
    if (LUT) {
      r.d = 1.f, r.m = 0.f;
    } else {
      affine_params(p, row, kpos, r.d, r.m);
    }
    return r;
  }
};
template <>
struct Fmt<kAffU4> : Tensor8<true, 0u, false> {};
template <>
struct Fmt<kAffI4> : Tensor8<true, 0x88888888u, false> {};  // i4 ^ 8 = code + 8
template <>
struct Fmt<kAffU8> : Tensor8<false, 0u, false> {};
template <>
struct Fmt<kAffI8> : Tensor8<false, 0x80808080u, false> {};
template <>
struct Fmt<kLutU4> : Tensor8<true, 0u, true> {};
template <>
struct Fmt<kLutU8> : Tensor8<false, 0u, true> {};

// The group's 8 values (code − bias, or table[code]) in element order.
template <class FT>
__device__ __forceinline__ void values(const Grp& g, const float* tab, float (&f)[8]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int e0 = FT::INTER ? 2 * i : i, e1 = FT::INTER ? 2 * i + 1 : 4 + i;
    if constexpr (FT::TABLE) {
      f[e0] = tab[__byte_perm(g.q0, 0, 0x4440 | i)];
      f[e1] = tab[__byte_perm(g.q1, 0, 0x4440 | i)];
    } else {
      constexpr float kMagic = 8388608.f + FT::BIAS;  // 2^23 + code, exactly, minus the bias
      f[e0] = __uint_as_float(__byte_perm(g.q0, 0x4B000000u, 0x7540 | i)) - kMagic;
      f[e1] = __uint_as_float(__byte_perm(g.q1, 0x4B000000u, 0x7540 | i)) - kMagic;
    }
  }
}

// 16 bytes that are read once: no L1 allocation, 256-byte L2 prefetch.
__device__ __forceinline__ uint4 ld_stream(const uint8_t* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}
// A vector that crosses either end of the weights: the bytes inside, zeros elsewhere.
static __device__ __noinline__ uint4 ld_edge(const uint8_t* va, const uint8_t* lo,
                                             const uint8_t* hi) {
  uint32_t w[4] = {0, 0, 0, 0};
#pragma unroll
  for (int i = 0; i < 16; ++i)
    if (va + i >= lo && va + i < hi) w[i >> 2] |= static_cast<uint32_t>(va[i]) << (8 * (i & 3));
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// Loads chunk c of `row` into v (lane's share); off: where the chunk starts in the staged bytes.
template <int CB>
__device__ __forceinline__ void stage_load(const Params& p, int64_t row, int64_t c, int lane,
                                           uint4 (&v)[kVecs], int& off) {
  const int64_t start = row * p.rb + c * CB;
  const int64_t len = p.rb - c * CB < CB ? p.rb - c * CB : CB;
  const uint8_t* a0 = p.w + start;
  const auto* av =
      reinterpret_cast<const uint8_t*>(reinterpret_cast<uintptr_t>(a0) & ~uintptr_t{15});
  const int nvec = static_cast<int>((a0 + len - av + 15) >> 4);
  const uint8_t* hi = p.w + p.total;
  off = static_cast<int>(a0 - av);
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int vi = lane + 32 * j;
    const uint8_t* va = av + 16 * vi;
    if (vi < nvec) v[j] = va >= p.w && va + 16 <= hi ? ld_stream(va) : ld_edge(va, p.w, hi);
  }
}

__device__ __forceinline__ void load_x8(const Params& p, int m, int64_t kpos, float (&x)[8]) {
  const int64_t i = static_cast<int64_t>(m) * p.k + kpos;
  if (p.xdt == kF32) {
    const float* xp = static_cast<const float*>(p.x) + i;
    if (p.xvec) {
      float4 a = __ldg(reinterpret_cast<const float4*>(xp));
      float4 b = __ldg(reinterpret_cast<const float4*>(xp) + 1);
      x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w, x[4] = b.x, x[5] = b.y, x[6] = b.z,
      x[7] = b.w;
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) x[e] = __ldg(xp + e);
    }
  } else {
    const uint16_t* xp = static_cast<const uint16_t*>(p.x) + i;
    uint32_t w[4];
    if (p.xvec) {
      uint4 v = __ldg(reinterpret_cast<const uint4*>(xp));
      w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j)
        w[j] = static_cast<uint32_t>(__ldg(xp + 2 * j)) |
               (static_cast<uint32_t>(__ldg(xp + 2 * j + 1)) << 16);
    }
    const bool half = p.xdt == kF16;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      auto h = static_cast<uint16_t>(w[e >> 1] >> (16 * (e & 1)));
      x[e] = half ? h2f(h) : bf2f(h);
    }
  }
}

// The table of row `row` into tab (iq4_nl: the fixed one; LUT: the row's or the only table).
template <int F>
__device__ __forceinline__ void load_table(const Params& p, int64_t row, int lane, float* tab) {
  if constexpr (F == kIQ4_NL) {
    // {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113} as int8 bytes,
    // selected without a runtime-indexed array (which would live in local memory).
    const uint32_t w = lane < 4    ? 0xBFAD9881u
                       : lane < 8  ? 0xF6EADDCFu
                       : lane < 12 ? 0x26190D01u
                                   : 0x71594535u;
    if (lane < 16) tab[lane] = static_cast<float>(static_cast<int8_t>(w >> (8 * (lane & 3))));
  } else if constexpr (Fmt<F>::TABLE) {
    const int64_t base = p.per_row ? row * p.entries : 0;
    for (int e = lane; e < p.entries; e += 32) tab[e] = load<float>(p.tdt, p.table, base + e);
  }
}

template <int F, int MT>
__global__ void __launch_bounds__(kWarps * 32) gemv_kernel(const Params p) {
  using FT = Fmt<F>;
  constexpr int GPB = FT::QK / 8;
  constexpr int CB = kChunk / FT::QK * FT::BYTES;
  static_assert(CB + 32 <= kVecs * 32 * 16, "a staged chunk must fit the buffer");
  __shared__ uint4 sbuf[kWarps][kRows][kBufVecs];
  __shared__ float stab[FT::TABLE ? kWarps * kRows * 256 : 1];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * kWarps + warp) * kRows;
  if (row0 >= p.n) return;  // whole warps only: no block-wide barrier below
  bool live[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    live[r] = row0 + r < p.n;
    if (FT::TABLE && live[r]) load_table<F>(p, row0 + r, lane, &stab[(warp * kRows + r) * 256]);
  }
  float acc[kRows][MT];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int m = 0; m < MT; ++m) acc[r][m] = 0.f;
  const int k = static_cast<int>(p.k);
  const int nch = (k + kChunk - 1) / kChunk;
  uint4 pre[kRows][kVecs];
  int off[kRows], offc[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
    if (live[r]) stage_load<CB>(p, row0 + r, 0, lane, pre[r], off[r]);
  for (int c = 0; c < nch; ++c) {
    __syncwarp();  // every lane is done reading the previous chunk
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      offc[r] = off[r];
      if (live[r])
#pragma unroll
        for (int j = 0; j < kVecs; ++j) sbuf[warp][r][lane + 32 * j] = pre[r][j];
    }
    __syncwarp();
    if (c + 1 < nch)  // the next chunk's loads are in flight while this one is decoded
#pragma unroll
      for (int r = 0; r < kRows; ++r)
        if (live[r]) stage_load<CB>(p, row0 + r, c + 1, lane, pre[r], off[r]);
    const int kc = c * kChunk;
#pragma unroll
    for (int t = 0; t < kChunk / 256; ++t) {
      const int gi = lane + 32 * t;
      const int kpos = kc + 8 * gi;
      if (kpos >= k) continue;
      float x[MT][8], xs[MT];
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        if (m < p.m) {
          load_x8(p, m, kpos, x[m]);
        } else {
#pragma unroll
          for (int e = 0; e < 8; ++e) x[m][e] = 0.f;
        }
        xs[m] = ((x[m][0] + x[m][1]) + (x[m][2] + x[m][3])) +
                ((x[m][4] + x[m][5]) + (x[m][6] + x[m][7]));
      }
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        if (!live[r]) continue;
        const SPtr bp{reinterpret_cast<const uint32_t*>(sbuf[warp][r]),
                      offc[r] + (gi / GPB) * FT::BYTES};
        Grp g = FT::decode(bp, gi % GPB, p, row0 + r, kpos);
        float f[8];
        values<FT>(g, &stab[FT::TABLE ? (warp * kRows + r) * 256 : 0], f);
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          float s = f[0] * x[m][0];
#pragma unroll
          for (int e = 1; e < 8; ++e) s = fmaf(f[e], x[m][e], s);
          acc[r][m] = fmaf(g.d, s, acc[r][m]);
          if (FT::MIN) acc[r][m] = fmaf(g.m, xs[m], acc[r][m]);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      float v = acc[r][m];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane == 0 && live[r] && m < p.m) store(p.xdt, p.y, m * p.n + row0 + r, v);
    }
}

template <int F>
__global__ void __launch_bounds__(kWarps * 32) dequant_kernel(const Params p) {
  using FT = Fmt<F>;
  constexpr int GPB = FT::QK / 8;
  constexpr int CB = kChunk / FT::QK * FT::BYTES;
  __shared__ uint4 sbuf[kWarps][kBufVecs];
  __shared__ float stab[FT::TABLE ? kWarps * 256 : 1];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (row >= p.n) return;
  float* tab = &stab[FT::TABLE ? warp * 256 : 0];
  load_table<F>(p, row, lane, tab);
  const int64_t nch = (p.k + kChunk - 1) / kChunk;
  for (int64_t c = 0; c < nch; ++c) {
    uint4 v[kVecs];
    int off;
    stage_load<CB>(p, row, c, lane, v, off);
    __syncwarp();
#pragma unroll
    for (int j = 0; j < kVecs; ++j) sbuf[warp][lane + 32 * j] = v[j];
    __syncwarp();
#pragma unroll
    for (int t = 0; t < kChunk / 256; ++t) {
      const int gi = lane + 32 * t;
      const int64_t kpos = c * kChunk + 8 * gi;
      if (kpos >= p.k) continue;
      const SPtr bp{reinterpret_cast<const uint32_t*>(sbuf[warp]), off + (gi / GPB) * FT::BYTES};
      Grp g = FT::decode(bp, gi % GPB, p, row, kpos);
      float f[8];
      values<FT>(g, tab, f);
#pragma unroll
      for (int e = 0; e < 8; ++e) f[e] = FT::MIN ? fmaf(g.d, f[e], g.m) : g.d * f[e];
      const int64_t o = row * p.k + kpos;
      if (p.odt == kF32 && p.ovec) {
        auto* op = reinterpret_cast<float4*>(static_cast<float*>(p.y) + o);
        op[0] = make_float4(f[0], f[1], f[2], f[3]);
        op[1] = make_float4(f[4], f[5], f[6], f[7]);
      } else if ((p.odt == kF16 || p.odt == kBF16) && p.ovec) {
        uint32_t h[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          uint16_t a = p.odt == kF16 ? f2h(f[2 * i]) : f2bf(f[2 * i]);
          uint16_t b = p.odt == kF16 ? f2h(f[2 * i + 1]) : f2bf(f[2 * i + 1]);
          h[i] = static_cast<uint32_t>(a) | (static_cast<uint32_t>(b) << 16);
        }
        *reinterpret_cast<uint4*>(static_cast<uint16_t*>(p.y) + o) =
            make_uint4(h[0], h[1], h[2], h[3]);
      } else {
#pragma unroll
        for (int e = 0; e < 8; ++e) store(p.odt, p.y, o + e, f[e]);
      }
    }
  }
}

// mt 0: dequantize into p.y; 1, 2, 4, 8: GEMV with up to mt rows of x.
template <int F>
void launch(cudaStream_t s, const Params& p, int mt) {
  const dim3 block(kWarps * 32);
  if (mt == 0) {
    dequant_kernel<F><<<static_cast<unsigned>((p.n + kWarps - 1) / kWarps), block, 0, s>>>(p);
  } else {
    const auto grid = static_cast<unsigned>((p.n + kWarps * kRows - 1) / (kWarps * kRows));
    switch (mt) {
      case 1:
        gemv_kernel<F, 1><<<grid, block, 0, s>>>(p);
        break;
      case 2:
        gemv_kernel<F, 2><<<grid, block, 0, s>>>(p);
        break;
      case 4:
        gemv_kernel<F, 4><<<grid, block, 0, s>>>(p);
        break;
      default:
        gemv_kernel<F, 8><<<grid, block, 0, s>>>(p);
        break;
    }
  }
  LOOM_CUDA_LAUNCHED();
}

// Instantiated per group of formats in their own translation units (compile in parallel).
bool launch_block_format(cudaStream_t s, const Params& p, int format, int mt);
bool launch_tensor_format(cudaStream_t s, const Params& p, int format, int mt);

}  // namespace loom::backends::cuda::qmm
