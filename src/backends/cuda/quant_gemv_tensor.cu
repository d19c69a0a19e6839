// Decode GEMV (m <= 8 rows of x) for quantized_matmul "affine" and "lut" weights: W [n, k] of
// u4 / i4 / u8 / i8 codes with a scale (and optional zero point) per tensor, per row or per block
// of k — MPSGraph's and tinygemm's int4 layout is u4 codes with a bf16 scale and zero point per
// 128 of k — or u4 / u8 indices into one table or one per row.
//
// Why a kernel of its own: the generic float GEMV (quant_matmul.cuh) fetches the scale and zero
// point of every group of 8 codes from global memory through a dtype switch and a 64-bit index,
// which held that int4 layout at 13-20 % of the copy bandwidth, 3-4x behind tinygemm.
//
// Shape of the work, as the staged int8 GEMV's (quant_gemv_int8.cu): one wave of persistent CTAs
// of 8 warps; each CTA stages x once in shared memory; a warp owns two weight rows at a time
// (every x load serves both) and copies their codes, with the step's scales and zero points (or
// the row's table), into shared memory by cp.async, a step or two ahead of the one it computes.
// A lane takes whole blocks of 32 codes, so a block of k must be a multiple of 32 (one scale and
// zero point per lane and block).
//
// Arithmetic. f32 x stays float, like the CPU backend's affine GEMV:
// - 4-bit codes u become floats without a conversion: one byte_perm puts the code into bits 16-19
//   of 0x3F000000, which is f = 0.5 + u/256 exactly, and Σ x·u = 256·(Σ x·f) − 128·Σx. One
//   byte_perm and one FMA per weight; the subtraction costs the block's f32 sum ~4 bits (0.5
//   against u/256), a relative error ~1e-6.
// - 8-bit codes: the 2^23 magic (byte_perm, subtract) gives the exact integer, then the FMA.
// - Tables: the code indexes the row's f32 table in shared memory.
// Per block of 32: y += s·(Σ x·q − z·Σx) (affine) or Σ x·table[q] (LUT).
// f16 / bf16 x with affine codes: x is quantized to int8 per block of 32 as the int8 GEMV does
// (|Δx| <= max|x| / 254, the order of the half rounding of W that dequantize -> matmul in x's
// dtype applies) and the products run on dp4a: a quarter of the instructions. H100, 14336 x 4096
// u4 with bf16 scale and zero point per 128: 16.4 us against 23.3 in float (tinygemm: 18.1).
// LOOM_QMM_TENSOR_INT8=0 keeps float for half x; LOOM_QMM_TENSOR=0 turns the kernel off.
#include <algorithm>

#include "backends/cuda/device_util.cuh"
#include "backends/cuda/pdl.cuh"
#include "backends/cuda/quant_matmul.h"
#include "backends/cuda/quant_stage.cuh"

namespace loom::backends::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kRows = 2;  // weight rows per warp at a time
// Steps: kStages<BIG> held per warp (the one computed, the rest in flight) of kCodeBytes<BIG>
// code bytes per row.
template <int BIG>
constexpr int kStages = BIG ? 2 : 3;
template <int BIG>
constexpr int kCodeBytes = BIG ? 2048 : 1024;
constexpr int kMaxSmem = 200 << 10;

struct TensorArgs {
  const uint8_t* w;  // 16-byte aligned, rows of rb bytes (a multiple of 16)
  int64_t n, rb;
  int k, kb, kbp, m;  // kb blocks of 32 per row; kbp: kb rounded up to 32
  const void* x;
  int xdt;
  bool xvec;  // x 16-byte aligned: vector loads
  int early;  // codes and scales are constants: steps whose copies precede pdl_begin (run_steps)
  void* y;
  // Affine: scale and zero point (zp may be null), 16-byte aligned, element sizes ssz / zsz,
  // sbytes / zbytes in all. skind 0: one value, 1: per bpb blocks of 32 along k (nblocks per
  // row), 3: per row.
  const uint8_t *scale = nullptr, *zp = nullptr;
  int sdt = 0, zdt = 0, ssz = 0, zsz = 0, skind = 0, bpb = 1, bpb_shift = 0;
  int64_t nblocks = 0, sbytes = 0, zbytes = 0;
  // LUT: `entries` values per table; per_row tables are f32, 16-byte aligned, tbytes in all.
  const uint8_t* table = nullptr;
  int tdt = 0, entries = 0;
  bool per_row = false;
  int64_t tbytes = 0;
  // int8 x already quantized by launch_quantize_x (long rows): the image of x's shared memory,
  // which every CTA copies instead of reading and quantizing x.
  const int4* xg = nullptr;
  int preg = 0;  // bytes of a slot's parameter region (scales, zero points, or the row's table)
  int slot = 0;  // bytes of one row's slot: codes, then one or two parameter regions
};

template <int F, int BIG>
struct TFmt {
  static constexpr bool FOUR = F == kAffU4 || F == kAffI4 || F == kLutU4;
  static constexpr bool LUT = F == kLutU4 || F == kLutU8;
  static constexpr uint32_t FLIP = F == kAffI4 ? 0x88888888u : F == kAffI8 ? 0x80808080u : 0u;
  static constexpr float BIAS = F == kAffI4 ? 8.f : F == kAffI8 ? 128.f : 0.f;  // u = q + BIAS
  // int8 activations (dp4a): codes as dp4a operands t = code ^ FLIP8 (4-bit: unsigned nibbles,
  // 8-bit: signed bytes), q = t + OFF8.
  static constexpr uint32_t FLIP8 = F == kAffI4 ? 0x88888888u : F == kAffU8 ? 0x80808080u : 0u;
  static constexpr float OFF8 = F == kAffI4 ? -8.f : F == kAffU8 ? 128.f : 0.f;
  static constexpr int BLOCK_BYTES = FOUR ? 16 : 32;        // 32 codes
  static constexpr int CB = kCodeBytes<BIG> / BLOCK_BYTES;  // blocks of 32 per step
  static_assert(!LUT || (BIAS == 0.f && FLIP8 == 0u && OFF8 == 0.f), "table indices: unsigned");
};

// One scale or zero point staged in shared memory. Floats without a branch (a switch here was
// dozens of instructions and branches per block and row); integers on a rarely taken path.
__device__ __forceinline__ float ld_param(int dt, const uint8_t* p) {
  if (dt == kF32 || dt == kF16 || dt == kBF16) {
    const auto addr = reinterpret_cast<uintptr_t>(p);
    const uint32_t w = *reinterpret_cast<const uint32_t*>(addr & ~uintptr_t{3});
    const uint32_t h = (addr & 2) ? w >> 16 : w & 0xFFFFu;
    const float half = h2f(static_cast<uint16_t>(h)), brain = __uint_as_float(h << 16);
    return dt == kF32 ? __uint_as_float(w) : dt == kBF16 ? brain : half;
  }
  return dt == kU8   ? static_cast<float>(*p)
         : dt == kI8 ? static_cast<float>(static_cast<int8_t>(*p))
                     : static_cast<float>(*reinterpret_cast<const int32_t*>(p));
}

// A 2-byte float parameter (HP kernels: f16 or bf16 scales and zero points, MPSGraph's and
// tinygemm's layout): one 16-bit shared load and a shift or conversion, a third of ld_param's
// instructions, which were nearly half of the int8 path's per block (H100, 14336 x 4096 u4 per 128,
// bf16: see cuda_quant.md, session 15).
__device__ __forceinline__ float ld_half_param(int dt, const uint8_t* p) {
  const uint16_t h = *reinterpret_cast<const uint16_t*>(p);
  return dt == kBF16 ? __uint_as_float(static_cast<uint32_t>(h) << 16) : h2f(h);
}

// The scale block of block b of 32 (a shift where bpb is a power of two, the usual 128 / 32).
__device__ __forceinline__ int block_of(const TensorArgs& a, int b) {
  return a.bpb_shift >= 0 ? b >> a.bpb_shift : b / a.bpb;
}

// Index of the scale (zero point) of block b of `row`.
__device__ __forceinline__ int64_t param_index(const TensorArgs& a, int64_t row, int b) {
  return a.skind == 0 ? 0 : a.skind == 3 ? row : row * a.nblocks + block_of(a, b);
}

// x in shared memory: block b of row mi as 8 float4, the p-th at xs4[x_base(mi, b) + 32 p], so
// the 32 lanes of a warp (32 consecutive blocks) read 512 consecutive bytes per p. Within each
// group of 8 elements the first float4 holds the elements paired with the low nibbles of a code
// word: 0, 2, 4, 6 for 4-bit codes (element 2i in the low nibble of byte i), else 0..3.
__device__ __forceinline__ int64_t x_base(const TensorArgs& a, int mi, int b) {
  return static_cast<int64_t>(mi) * a.kbp * 8 + (b & ~31) * 8 + (b & 31);
}

// int8 x (I8): as the int8 GEMV keeps it (quant_gemv_int8.cu): block b of row mi as two int4 at
// xq4[x_slot(mi, b)] and [+ 32], its scale d in xd and d·Σq in xsum.
__device__ __forceinline__ int64_t x_slot(const TensorArgs& a, int mi, int b) {
  return 2 * (static_cast<int64_t>(mi) * a.kbp + (b & ~31)) + (b & 31);
}

// XG: the kernel may copy x's image (TensorArgs::xg; decode rows, m <= 2).
template <bool FOUR, bool I8, bool XG>
__device__ __forceinline__ void stage_x(const TensorArgs& a, void* xsm, float* xd, float* xsum) {
  if (XG && a.xg)  // xsum follows xd
    return copy_x_image(a.xg, a.m, a.kb, a.kbp, static_cast<int4*>(xsm), xd);
  for (int mb = threadIdx.x; mb < a.m * a.kb; mb += kWarps * 32) {
    const int mi = mb / a.kb, b = mb % a.kb;
    const int64_t x0 = static_cast<int64_t>(mi) * a.k + 32 * b;
    float v[32];
    if (a.xdt == kF32 && a.xvec) {
      const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(a.x) + x0);
#pragma unroll
      for (int t = 0; t < 8; ++t) {
        const float4 f = __ldg(p + t);
        v[4 * t] = f.x, v[4 * t + 1] = f.y, v[4 * t + 2] = f.z, v[4 * t + 3] = f.w;
      }
    } else if ((a.xdt == kF16 || a.xdt == kBF16) && a.xvec) {
      const uint4* p = reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(a.x) + x0);
#pragma unroll
      for (int t = 0; t < 4; ++t) {
        const uint4 u = __ldg(p + t);
        const uint32_t h[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          const auto bits = static_cast<uint16_t>(h[e >> 1] >> (16 * (e & 1)));
          v[8 * t + e] = a.xdt == kF16 ? h2f(bits) : bf2f(bits);
        }
      }
    } else {  // unaligned x (unrolled: a loop would put v in local memory for every path)
#pragma unroll
      for (int t = 0; t < 32; ++t) v[t] = load<float>(a.xdt, a.x, x0 + t);
    }
    if constexpr (I8) {
      uint32_t w[8];
      float d;
      int sum;
      quantize_block32<FOUR>(v, w, d, sum);
      int4* dst = static_cast<int4*>(xsm) + x_slot(a, mi, b);
      dst[0] = make_int4(static_cast<int>(w[0]), static_cast<int>(w[1]), static_cast<int>(w[2]),
                         static_cast<int>(w[3]));
      dst[32] = make_int4(static_cast<int>(w[4]), static_cast<int>(w[5]), static_cast<int>(w[6]),
                          static_cast<int>(w[7]));
      xd[mb] = d, xsum[mb] = d * static_cast<float>(sum);
      continue;
    }
    float s = 0.f;
#pragma unroll
    for (int t = 0; t < 32; ++t) s += v[t];
    float4* dst = static_cast<float4*>(xsm) + x_base(a, mi, b);
#pragma unroll
    for (int p = 0; p < 8; ++p) {  // group p / 2, low (p even) or high half
      const int g = 8 * (p >> 1), h = p & 1;
      dst[32 * p] =
          FOUR ? make_float4(v[g + h], v[g + 2 + h], v[g + 4 + h], v[g + 6 + h])
               : make_float4(v[g + 4 * h], v[g + 4 * h + 1], v[g + 4 * h + 2], v[g + 4 * h + 3]);
    }
    xsum[mb] = s;
  }
}

// The 4 values of byte lanes 0..3 of w (codes or table indices), as floats f (see the top).
template <int F>
__device__ __forceinline__ void values4(uint32_t w, const float* tab, float (&f)[4]) {
  using T = TFmt<F, 0>;
#pragma unroll
  for (int t = 0; t < 4; ++t) {
    if constexpr (T::LUT) {
      f[t] = tab[__byte_perm(w, 0, 0x4440 | t)];
    } else if constexpr (T::FOUR) {  // 0.5 + u / 256
      f[t] = __uint_as_float(__byte_perm(w, 0x3F000000u, 0x7044 | (t << 8)));
    } else {  // the exact code: 2^23 + u − (2^23 + BIAS)
      f[t] = __uint_as_float(__byte_perm(w, 0x4B000000u, 0x7540 | t)) - (8388608.f + T::BIAS);
    }
  }
}

// HP: scales and zero points are f16 / bf16 (ld_half_param).
template <int F, int MT, int BIG, bool I8, bool HP>
__global__ void __launch_bounds__(kWarps * 32) gemv_tensor_kernel(const TensorArgs a) {
  using T = TFmt<F, BIG>;
  constexpr int R = kRows, ST = kStages<BIG>, CB = T::CB, CODE_BYTES = kCodeBytes<BIG>;
  extern __shared__ int4 smem4[];
  // [kWarps][ST][R][slot]; 4-bit LUT: from a 256-byte boundary (lut_values), slots of a multiple
  // of 256 bytes, each row's table at slot + CODE_BYTES, one shared table after the slots.
  constexpr bool LUT4 = F == kLutU4;
  uint8_t* stage = reinterpret_cast<uint8_t*>(smem4);
  if constexpr (LUT4)
    stage += (256u - (static_cast<uint32_t>(__cvta_generic_to_shared(smem4)) & 255u)) & 255u;
  // x: f32 [m][kbp][32] (xs4) or int8 [m][kbp][32] (xq4, I8) with scales xd; then Σx [m][kb].
  uint8_t* xsm = stage + static_cast<size_t>(kWarps) * ST * R * a.slot + (LUT4 ? 256 : 0);
  const auto* xs4 = reinterpret_cast<const float4*>(xsm);
  const auto* xq4 = reinterpret_cast<const int4*>(xsm);
  float* xd = reinterpret_cast<float*>(xsm + static_cast<size_t>(a.m) * a.kbp * (I8 ? 32 : 128));
  float* xsum = xd + (I8 ? a.m * a.kb : 0);  // [m][kb]
  float* shared_tab =                        // LUT with one table: f32 [entries]
      LUT4 ? reinterpret_cast<float*>(xsm - 256) : xsum + a.m * a.kb;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

  // Warp gw owns the row groups gw, gw + nw, ... of R rows (none when gw >= groups); a row
  // group takes nch steps, one chunk of CB blocks each.
  const int64_t groups = (a.n + R - 1) / R;
  const int64_t gw = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  const int64_t nw = static_cast<int64_t>(gridDim.x) * kWarps;
  const int nch = (a.kb + CB - 1) / CB;
  const int64_t steps = gw < groups ? ((groups - 1 - gw) / nw + 1) * nch : 0;
  uint8_t* slots = stage + static_cast<size_t>(warp) * ST * R * a.slot;

  // Row r of the warp's row group q; rows past n re-read the last row (sums never stored).
  auto row_of = [&](int64_t q, int r) {
    const int64_t row = (gw + q * nw) * R + r;
    return row < a.n ? row : a.n - 1;
  };
  // Copies of step (q, c) into slot s: per row, its codes and parameters. The codes are whole
  // 16-byte units inside the weights (16-byte aligned rows and chunks): at most two per lane, no
  // end checks. Parameters are a few units at most (copy_span).
  auto issue = [&](int64_t q, int c, int s) {
    const int b0 = c * CB, nb = min(CB, a.kb - b0);
    const int units = nb * T::BLOCK_BYTES / 16;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int64_t row = row_of(q, r);
      uint8_t* slot = slots + (s * R + r) * a.slot;
      const uint8_t* src = a.w + row * a.rb + b0 * T::BLOCK_BYTES;
#pragma unroll
      for (int u = lane; u < CODE_BYTES / 16; u += 32)
        if (u < units) cp_async16(slot + 16 * u, src + 16 * u, 16);
      if constexpr (T::LUT) {
        if (a.per_row)
          copy_span(slot + CODE_BYTES, a.table + row * a.entries * 4, a.entries * 4,
                    a.table + a.tbytes, lane);
      } else {
        const int64_t i0 = param_index(a, row, b0);
        const int cnt = static_cast<int>(param_index(a, row, b0 + nb - 1) - i0 + 1);
        copy_span(slot + CODE_BYTES, a.scale + i0 * a.ssz, cnt * a.ssz, a.scale + a.sbytes, lane);
        if (a.zp)
          copy_span(slot + CODE_BYTES + a.preg, a.zp + i0 * a.zsz, cnt * a.zsz, a.zp + a.zbytes,
                    lane);
      }
    }
  };
  float acc[R][MT];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int mi = 0; mi < MT; ++mi) acc[r][mi] = 0.f;

  const auto prologue = [&] {
    stage_x<T::FOUR, I8, I8 && MT <= 2>(a, xsm, xd, xsum);
    if constexpr (T::LUT) {
      if (!a.per_row)
        for (int e = threadIdx.x; e < a.entries; e += kWarps * 32)
          shared_tab[e] = load<float>(a.tdt, a.table, e);
    }
  };
  run_steps<ST>(steps, nch, a.early, issue, prologue, [&](int64_t q, int c, int s) {
    const int b0 = c * CB, nb = min(CB, a.kb - b0);
    const uint8_t* sl[R];
    const uint8_t* sp[R];  // the step's first scale (LUT: the row's table)
    const uint8_t* zpp[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int64_t row = row_of(q, r);
      sl[r] = slots + (s * R + r) * a.slot;
      if constexpr (T::LUT) {
        sp[r] = a.per_row ? sl[r] + CODE_BYTES : reinterpret_cast<const uint8_t*>(shared_tab);
        zpp[r] = nullptr;
      } else {
        // Where the step's first entries landed: (source address & 15) into each region.
        const int64_t i0 = param_index(a, row, b0);
        const auto misalign = [](const uint8_t* p) {
          return static_cast<int>(reinterpret_cast<uintptr_t>(p) & 15);
        };
        sp[r] = sl[r] + CODE_BYTES + misalign(a.scale + i0 * a.ssz);
        zpp[r] = a.zp ? sl[r] + CODE_BYTES + a.preg + misalign(a.zp + i0 * a.zsz) : nullptr;
      }
    }
    const int pb0 = a.skind == 1 ? block_of(a, b0) : 0;
#pragma unroll
    for (int j = 0; j < (CB + 31) / 32; ++j) {
      const int i = 32 * j + lane;  // the lane's block in the chunk
      if (i >= nb) break;
      const int b = b0 + i;
      float sc[R] = {}, zc[R] = {};
      if constexpr (!T::LUT) {
        const int loc = a.skind == 1 ? block_of(a, b) - pb0 : 0;
#pragma unroll
        for (int r = 0; r < R; ++r) {
          if constexpr (HP) {
            sc[r] = ld_half_param(a.sdt, sp[r] + 2 * loc);
            zc[r] = a.zp ? ld_half_param(a.zdt, zpp[r] + 2 * loc) : 0.f;
          } else {
            sc[r] = ld_param(a.sdt, sp[r] + loc * a.ssz);
            zc[r] = a.zp ? ld_param(a.zdt, zpp[r] + loc * a.zsz) : 0.f;
          }
        }
      }
      float sf[R][MT];
      uint32_t cw[R][T::BLOCK_BYTES / 4];  // the block's codes, 16-byte loads (no bank conflict)
#pragma unroll
      for (int r = 0; r < R; ++r) {
#pragma unroll
        for (int mi = 0; mi < MT; ++mi) sf[r][mi] = 0.f;
#pragma unroll
        for (int u = 0; u < T::BLOCK_BYTES / 16; ++u) {
          const uint4 v = reinterpret_cast<const uint4*>(sl[r] + i * T::BLOCK_BYTES)[u];
          cw[r][4 * u] = v.x, cw[r][4 * u + 1] = v.y, cw[r][4 * u + 2] = v.z,
                    cw[r][4 * u + 3] = v.w;
        }
      }
      if constexpr (I8) {  // y += s·(d_x·Σ t·q_x − (z − OFF8)·d_x·Σq_x), integer sums on dp4a
#pragma unroll
        for (int mi = 0; mi < MT; ++mi) {
          if (mi >= a.m) break;
          const int4* xv = xq4 + x_slot(a, mi, b);
          const int4 x0 = xv[0], x1 = xv[32];
          const int xw[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
          const float dx = xd[mi * a.kb + b], sx = xsum[mi * a.kb + b];
#pragma unroll
          for (int r = 0; r < R; ++r) {
            int sumi = 0;
            if constexpr (T::FOUR) {
#pragma unroll
              for (int j = 0; j < 4; ++j) {
                const uint32_t w = cw[r][j] ^ T::FLIP8;
                sumi = __dp4a(static_cast<int>(w & 0x0F0F0F0Fu), xw[j], sumi);
                sumi = __dp4a(static_cast<int>((w >> 4) & 0x0F0F0F0Fu), xw[4 + j], sumi);
              }
            } else {
#pragma unroll
              for (int j = 0; j < 8; ++j)
                sumi = __dp4a(static_cast<int>(cw[r][j] ^ T::FLIP8), xw[j], sumi);
            }
            acc[r][mi] += sc[r] * (dx * static_cast<float>(sumi) - (zc[r] - T::OFF8) * sx);
          }
        }
      } else {
        // Four groups of 8 elements: (low, high) nibbles of word g for 4-bit codes, words 2g and
        // 2g + 1 for 8-bit ones; they pair with x's float4 2g and 2g + 1.
#pragma unroll
        for (int g = 0; g < 4; ++g) {
          float f[R][2][4];
#pragma unroll
          for (int r = 0; r < R; ++r) {
            const float* tab = reinterpret_cast<const float*>(sp[r]);
            if constexpr (T::FOUR) {
              const uint32_t w = cw[r][g] ^ T::FLIP;
              if constexpr (LUT4) {
                const auto tb = static_cast<uint32_t>(__cvta_generic_to_shared(tab));
                lut_values((w << 2) & 0x3C3C3C3Cu, tb, f[r][0]);
                lut_values((w >> 2) & 0x3C3C3C3Cu, tb, f[r][1]);
              } else {
                values4<F>(w & 0x0F0F0F0Fu, tab, f[r][0]);
                values4<F>((w >> 4) & 0x0F0F0F0Fu, tab, f[r][1]);
              }
            } else {
              values4<F>(cw[r][2 * g] ^ T::FLIP, tab, f[r][0]);
              values4<F>(cw[r][2 * g + 1] ^ T::FLIP, tab, f[r][1]);
            }
          }
#pragma unroll
          for (int mi = 0; mi < MT; ++mi) {
            if (mi >= a.m) break;
            const float4* xv = xs4 + x_base(a, mi, b);
            const float4 x0 = xv[32 * (2 * g)], x1 = xv[32 * (2 * g + 1)];
#pragma unroll
            for (int r = 0; r < R; ++r) {
              float v = sf[r][mi];
              v = fmaf(f[r][0][0], x0.x, v), v = fmaf(f[r][0][1], x0.y, v);
              v = fmaf(f[r][0][2], x0.z, v), v = fmaf(f[r][0][3], x0.w, v);
              v = fmaf(f[r][1][0], x1.x, v), v = fmaf(f[r][1][1], x1.y, v);
              v = fmaf(f[r][1][2], x1.z, v), v = fmaf(f[r][1][3], x1.w, v);
              sf[r][mi] = v;
            }
          }
        }
#pragma unroll
        for (int mi = 0; mi < MT; ++mi) {
          if (mi >= a.m) break;
          const float sx = xsum[mi * a.kb + b];
#pragma unroll
          for (int r = 0; r < R; ++r) {
            if constexpr (T::LUT)
              acc[r][mi] += sf[r][mi];
            else if constexpr (T::FOUR)
              acc[r][mi] += sc[r] * (256.f * sf[r][mi] - (128.f + T::BIAS + zc[r]) * sx);
            else
              acc[r][mi] += sc[r] * (sf[r][mi] - zc[r] * sx);
          }
        }
      }
    }
    if (c == nch - 1) store_rows(acc, a.m, a.n, a.xdt, a.y, (gw + q * nw) * R, lane);  // done
  });
}

template <int F, int MT, int BIG, bool I8, bool HP = false>
void launch_tensor(cudaStream_t s, const TensorArgs& a, size_t smem) {
  auto kern = gemv_tensor_kernel<F, MT, BIG, I8, HP>;
  int device = 0;  // the backend made the launch's device current (stream_for)
  LOOM_CUDA_CHECK(cudaGetDevice(&device));
  const int fit = resident_ctas(reinterpret_cast<const void*>(kern), device, kWarps * 32, smem);
  const int64_t want = (a.n + kWarps * kRows - 1) / (kWarps * kRows);
  const auto grid =
      static_cast<unsigned>(std::min<int64_t>(want, static_cast<int64_t>(fit) * sm_count(device)));
  launch_pdl(kern, grid, kWarps * 32, smem, s, a);
}

// Steps of 2048 code bytes (2 stages) halve the per-step work of 1024 (3 stages), which is most
// of this kernel's instructions beside the products (H100, 14336 x 4096 u4, bf16 x: 16.4 vs
// 20.4 us with int8 x, 23.3 vs 25.2 with float x); float x with 8 rows keeps the small steps,
// whose registers the big ones would spill (201 vs 101 us).
template <bool I8, int MT>
constexpr int kBig = I8 || MT <= 4 ? 1 : 0;
// Half parameters (f16 / bf16 scales and zero points) take the HP kernels for decode rows of
// int8 x (m <= 2; more rows amortise the parameters over more products).
bool half_params(const TensorArgs& a) {
  const auto half = [](int dt) { return dt == kF16 || dt == kBF16; };
  return a.ssz == 2 && half(a.sdt) && (!a.zp || (a.zsz == 2 && half(a.zdt)));
}
template <int F, bool I8>
void launch_format(cudaStream_t s, const TensorArgs& a, size_t smem, int64_t m) {
  if constexpr (I8) {
    if (m <= 2 && half_params(a))
      return m <= 1 ? launch_tensor<F, 1, kBig<I8, 1>, I8, true>(s, a, smem)
                    : launch_tensor<F, 2, kBig<I8, 2>, I8, true>(s, a, smem);
  }
  if (m <= 1) return launch_tensor<F, 1, kBig<I8, 1>, I8>(s, a, smem);
  if (m <= 2) return launch_tensor<F, 2, kBig<I8, 2>, I8>(s, a, smem);
  if (m <= 4) return launch_tensor<F, 4, kBig<I8, 4>, I8>(s, a, smem);
  return launch_tensor<F, 8, kBig<I8, 8>, I8>(s, a, smem);
}

// Bytes of a dtype the parameter loads read; 0: not one of them.
int param_size(int dt, bool integer_ok) {
  switch (dt) {
    case kF32:
      return 4;
    case kF16:
    case kBF16:
      return 2;
    case kU8:
    case kI8:
      return integer_ok ? 1 : 0;
    case kI32:
      return integer_ok ? 4 : 0;
    default:
      return 0;
  }
}

int64_t round16(int64_t v) { return (v + 15) / 16 * 16; }

}  // namespace

bool launch_quant_gemv_tensor(cudaStream_t s, const QuantWeights& w, const void* x, int x_dtype,
                              int64_t m, void* y) {
  static const bool on = env_on("LOOM_QMM_TENSOR");
  const int f = w.format;
  if (!on || f < kAffU4 || f > kLutU8 || m < 1 || m > 8 || w.k % 32 || w.k > (1 << 24) ||
      w.n <= 0 || !w.w || !aligned16(w.w) || w.row_bytes % 16)
    return false;
  TensorArgs a;
  a.w = static_cast<const uint8_t*>(w.w), a.n = w.n, a.rb = w.row_bytes;
  a.k = static_cast<int>(w.k), a.kb = a.k / 32, a.kbp = (a.kb + 31) / 32 * 32;
  a.m = static_cast<int>(m), a.x = x, a.xdt = x_dtype, a.xvec = aligned16(x), a.y = y;
  a.early = w.constant;
  // Half activations take int8 x (as the int8 GEMV does for the block formats): its error,
  // ~|x|/254 per element, is of the order of the half rounding of W that dequantize -> matmul in
  // x's dtype applies, and the dp4a products cost a quarter of the float ones. f32 x keeps float.
  // LOOM_QMM_TENSOR_INT8=0: float for half x too.
  static const bool i8_on = env_on("LOOM_QMM_TENSOR_INT8");
  const bool i8 = i8_on && f < kLutU4 && (x_dtype == kF16 || x_dtype == kBF16);
  const bool four = f == kAffU4 || f == kAffI4 || f == kLutU4;
  const bool big = i8 || m <= 4;  // kBig
  const int code_bytes = big ? kCodeBytes<1> : kCodeBytes<0>;
  const int cb = code_bytes / (four ? 16 : 32);  // blocks of 32 per step
  if (f >= kLutU4) {
    a.table = static_cast<const uint8_t*>(w.table), a.tdt = w.table_dtype;
    a.entries = static_cast<int>(w.entries), a.per_row = w.table_per_row;
    if (!a.table || a.entries != (f == kLutU4 ? 16 : 256) || !param_size(a.tdt, false))
      return false;
    if (a.per_row) {  // staged with the codes, read as f32
      if (a.tdt != kF32 || !aligned16(a.table)) return false;
      a.tbytes = w.n * a.entries * 4;
      // 4-bit: slots of a multiple of 256 bytes (lut_values); the tables are 64-byte aligned.
      a.preg = f == kLutU4 ? 256 : static_cast<int>(round16(a.entries * 4 + 15));
    }
    a.slot = code_bytes + a.preg;
  } else {
    a.scale = static_cast<const uint8_t*>(w.scale),
    a.zp = static_cast<const uint8_t*>(w.zero_point);
    a.sdt = w.scale_dtype, a.zdt = w.zero_dtype, a.skind = w.scale_kind;
    a.ssz = param_size(a.sdt, false);
    a.zsz = a.zp ? param_size(a.zdt, true) : 1;
    if (!a.scale || !a.ssz || !a.zsz || !aligned16(a.scale) || (a.zp && !aligned16(a.zp)))
      return false;
    int64_t entries = 1;  // per array
    int count = 1;        // entries a step reads per row, at most
    if (a.skind == 1) {
      if (w.block <= 0 || w.block % 32 || w.nblocks != (w.k + w.block - 1) / w.block) return false;
      a.bpb = static_cast<int>(w.block / 32), a.nblocks = w.nblocks;
      a.bpb_shift = (a.bpb & (a.bpb - 1)) ? -1 : __builtin_ctz(static_cast<unsigned>(a.bpb));
      entries = w.n * w.nblocks;
      count = (cb - 1) / a.bpb + 2;
    } else if (a.skind == 3) {
      entries = w.n;
    } else if (a.skind != 0) {
      return false;
    }
    a.sbytes = entries * a.ssz, a.zbytes = entries * a.zsz;
    a.preg = static_cast<int>(round16(count * std::max(a.ssz, a.zsz) + 15));
    a.slot = code_bytes + 2 * a.preg;
  }
  const size_t stages = big ? kStages<1> : kStages<0>;
  const size_t smem = kWarps * stages * kRows * a.slot +
                      static_cast<size_t>(m) * a.kbp * (i8 ? 32 : 128) +
                      static_cast<size_t>(m) * a.kb * sizeof(float) * (i8 ? 2 : 1) +
                      (f == kLutU8 && !a.per_row ? static_cast<size_t>(a.entries) * 4 : 0) +
                      (f == kLutU4 ? 512 : 0);  // the stages' alignment, the one table
  if (smem > kMaxSmem) return false;
  // Long decode rows: x quantized once for every CTA to copy (as the int8 GEMV does): each CTA
  // would otherwise read all of x from L2 and quantize it. (m > 2: the kernels without the copy
  // path, whose code it slowed by 5 % at k = 4096, m = 4.)
  std::shared_ptr<Storage> image;  // back to the cache on return; the stream orders its reuse
  if (i8 && m <= 2 && xq_min_k() > 0 && a.k >= xq_min_k()) {
    int device = 0;
    LOOM_CUDA_CHECK(cudaGetDevice(&device));
    image = scratch(device, x_image_bytes(a.m, a.k));
    launch_quantize_x(s, x, x_dtype, m, a.k, a.m, four, false, image->data());
    a.xg = reinterpret_cast<const int4*>(image->data());
  }
  switch (f) {
    case kAffU4:
      i8 ? launch_format<kAffU4, true>(s, a, smem, m) : launch_format<kAffU4, false>(s, a, smem, m);
      break;
    case kAffI4:
      i8 ? launch_format<kAffI4, true>(s, a, smem, m) : launch_format<kAffI4, false>(s, a, smem, m);
      break;
    case kAffU8:
      i8 ? launch_format<kAffU8, true>(s, a, smem, m) : launch_format<kAffU8, false>(s, a, smem, m);
      break;
    case kAffI8:
      i8 ? launch_format<kAffI8, true>(s, a, smem, m) : launch_format<kAffI8, false>(s, a, smem, m);
      break;
    case kLutU4:
      launch_format<kLutU4, false>(s, a, smem, m);
      break;
    default:
      launch_format<kLutU8, false>(s, a, smem, m);
      break;
  }
  return true;
}

}  // namespace loom::backends::cuda
