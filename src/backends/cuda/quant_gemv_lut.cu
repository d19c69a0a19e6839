// Decode GEMV (m = 1, f32 x) for 4-bit lookup-table weights with one f32 table of 16 per row
// (quantized_matmul "lut": u4 indices [n, k], tables [n, 16]), the layout of MPSGraph's LUT
// quantization. The table's values are arbitrary, so every weight costs a lookup and a float FMA;
// the question is only what else it costs.
//
// Why a kernel of its own: in the tensor GEMV's shape (quant_gemv_tensor.cu: a warp per two rows,
// x staged in shared memory) x's loads are a third of the shared-memory traffic (a float4 per 8
// weights per two rows) and two CTAs fit an SM: 50 % of the copy rate at 14336 x 4096 (H100).
// Here a CTA splits k instead: warp w of W = k / 512 owns elements [512w, 512w + 512) of every row,
// and its lanes keep their 16 values of x in registers for all the rows. The CTA's warps walk the
// same row groups (kRows rows per step, each warp copying its slice of them with their tables by
// cp.async, run_steps' pipeline), reduce each row's partial sum over their lanes, and park it in
// shared memory; the CTA adds its warps' partials once all its rows are done. Shared memory then
// serves only the codes (8 bytes per lane per row), the tables' lookups (lut_values: one byte_perm
// forms each address; 16 words, no bank conflicts) and the partials. H100, 14336 x 4096: 20.0 ->
// 13.9 us (72.6 % of the copy rate), 13.3 (76 %) once the copies' addresses were no longer
// recomputed per step; 4096 x 14336 (28 warps per CTA): 23.4 -> 14.5 (3 stages) -> 14.4.
#include <type_traits>

#include "backends/cuda/device_util.cuh"
#include "backends/cuda/pdl.cuh"
#include "backends/cuda/quant_matmul.h"
#include "backends/cuda/quant_stage.cuh"

namespace loom::backends::cuda {
namespace {

constexpr int kSlice = 512;              // elements of k per warp
constexpr int kSliceBytes = kSlice / 2;  // their code bytes per row (8 per lane)
constexpr int kTableBytes = 16 * 4;
constexpr int kRows = kSplitRows;                // rows per step (park_partials)
constexpr int kCodeBytes = kRows * kSliceBytes;  // 1024
// A step's slot: its rows' code slices, then their tables in one 256-byte block (aligned: every
// table starts 64r bytes into it, lut_values).
constexpr int kSlotBytes = kCodeBytes + 256;
static_assert(kRows * kTableBytes == 256, "the step's tables fill its 256-byte block");
constexpr int kMaxWarps = 32;  // k <= 16384

struct LutArgs {
  const uint8_t* w;    // [n][k / 2], rows 16-byte aligned
  const float* table;  // [n][16], 16-byte aligned
  const float* x;      // [k], 16-byte aligned
  float* y;            // [n]
  int64_t n;
  int k, warps;  // warps = k / kSlice
  int early;     // steps whose copies start before the previous kernel ends (constant weights)
};

// (x & mask) | at in one instruction (ptxas splits two constants into an AND and an OR).
__device__ __forceinline__ uint32_t and_or(uint32_t x, uint32_t mask, uint32_t at) {
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(x), "r"(mask), "r"(at));
  return d;
}

// kStages: steps a warp holds (one computed), launch_quant_gemv_lut.
template <int kStages>
__global__ void __launch_bounds__(kMaxWarps * 32) gemv_lut_sliced_kernel(const LutArgs a) {
  extern __shared__ int4 smem4[];
  uint8_t* base = reinterpret_cast<uint8_t*>(smem4);
  base += (256u - (static_cast<uint32_t>(__cvta_generic_to_shared(base)) & 255u)) & 255u;
  const int lane = static_cast<int>(threadIdx.x & 31), warp = static_cast<int>(threadIdx.x >> 5);
  uint8_t* slots = base + static_cast<size_t>(warp) * kStages * kSlotBytes;
  float* part =
      reinterpret_cast<float*>(base + static_cast<size_t>(a.warps) * kStages * kSlotBytes);

  // The CTA's row groups: blockIdx.x, + gridDim.x, ...; one step each.
  const int64_t groups = (a.n + kRows - 1) / kRows;
  const int64_t steps =
      blockIdx.x < groups ? (groups - 1 - blockIdx.x) / gridDim.x + 1 : 0;  // same for every warp
  // 32-bit rows (n < 2^31, launch_quant_gemv_lut). The copies' sources are pointers advanced by a
  // fixed stride from one issue to the next (steps are issued in order), their destinations 32-bit
  // shared addresses: recomputed from the row at every step (with the clamp to the last row), they
  // were 60 of a step's 350 instructions, and the kernel is issue-bound (ncu: the schedulers issue
  // in 73 % of the cycles). H100, 14336 x 4096: 13.9 -> 13.3-13.45 us (two calls).
  const auto rb = static_cast<uint32_t>(a.k / 2), last = static_cast<uint32_t>(a.n - 1);
  const uint32_t row_step = gridDim.x * kRows;
  uint32_t next_row0 = blockIdx.x * kRows;
  // The lane's units: half-warp h = lane / 16 copies 16 bytes of rows h and h + 2 of the step;
  // lanes < 16 a quarter of row lane / 4's table.
  const int col = warp * kSliceBytes + 16 * (lane & 15), hrow = lane >> 4;
  const uint8_t* src = a.w + static_cast<size_t>(next_row0 + hrow) * rb + col;
  const float* tsrc = a.table + static_cast<size_t>(next_row0 + (lane >> 2)) * 16 + 4 * (lane & 3);
  const size_t src_step = static_cast<size_t>(row_step) * rb, rb2 = 2 * static_cast<size_t>(rb),
               tsrc_step = static_cast<size_t>(row_step) * 16;
  const auto slots_s = static_cast<uint32_t>(__cvta_generic_to_shared(slots));  // slot 0
  const uint32_t dst = slots_s + hrow * kSliceBytes + 16 * (lane & 15);
  const uint32_t tdst = slots_s + kCodeBytes + (lane >> 2) * kTableBytes + 16 * (lane & 3);
  // A step's copies: each row's slice (16 units of 16 bytes) and its table (4 units); in the
  // matrix's last group, rows past n re-read the last one (never stored).
  auto issue = [&](int64_t, int, int s) {
    const uint32_t row0 = next_row0, at = s * kSlotBytes;
    if (row0 + kRows - 1 <= last) {
      cp_async16_shared(dst + at, src);
      cp_async16_shared(dst + at + 2 * kSliceBytes, src + rb2);
      if (lane < kRows * 4) cp_async16_shared(tdst + at, tsrc);
    } else {
#pragma unroll
      for (int u = 0; u < kRows / 2; ++u) {  // rows 2u and 2u + 1, a half-warp each
        const uint32_t row = min(row0 + 2 * u + hrow, last);
        cp_async16_shared(dst + at + 2 * u * kSliceBytes,
                          a.w + static_cast<size_t>(row) * rb + col);
      }
      if (lane < kRows * 4)
        cp_async16_shared(
            tdst + at,
            a.table + static_cast<size_t>(min(row0 + (lane >> 2), last)) * 16 + 4 * (lane & 3));
    }
    next_row0 += row_step, src += src_step, tsrc += tsrc_step;
  };
  float xr[16];  // x[512 warp + 16 lane + j]
  const auto prologue = [&] {
    const float4* p = reinterpret_cast<const float4*>(a.x + warp * kSlice + lane * 16);
#pragma unroll
    for (int t = 0; t < 4; ++t) {
      const float4 v = __ldg(p + t);
      xr[4 * t] = v.x, xr[4 * t + 1] = v.y, xr[4 * t + 2] = v.z, xr[4 * t + 3] = v.w;
    }
  };
  const uint8_t* codes = slots + 8 * lane;  // the lane's 8 code bytes of row 0, step slot 0
  const uint32_t tables = slots_s + kCodeBytes;
  run_steps<kStages>(steps, 1, a.early, issue, prologue, [&](int64_t q, int, int s) {
    float sum[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      // Byte i of the lane's 8 holds elements 2i (low nibble) and 2i + 1 (high nibble).
      const uint2 c = *reinterpret_cast<const uint2*>(codes + s * kSlotBytes + r * kSliceBytes);
      // Row r's table is 64r bytes into the step's 256-byte block of tables.
      const uint32_t tab = tables + s * kSlotBytes, at = 0x01010101u * (kTableBytes * r);
      float v = 0.f, u = 0.f;  // two chains of FMAs
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const uint32_t word = h ? c.y : c.x;
        float lo[4], hi[4];
        lut_values(and_or(word << 2, 0x3C3C3C3Cu, at), tab, lo);
        lut_values(and_or(word >> 2, 0x3C3C3C3Cu, at), tab, hi);
#pragma unroll
        for (int t = 0; t < 4; ++t) {
          v = fmaf(lo[t], xr[8 * h + 2 * t], v);
          u = fmaf(hi[t], xr[8 * h + 2 * t + 1], u);
        }
      }
      sum[r] = v + u;
    }
    park_partials(part, sum, q, a.warps, warp, lane);
  });
  sum_partials(part, steps, a.warps, a.n, [&](int64_t row, float t) { a.y[row] = t; });
}

}  // namespace

bool launch_quant_gemv_lut(cudaStream_t s, const QuantWeights& w, const void* x, int x_dtype,
                           int64_t m, void* y) {
  static const bool on = env_on("LOOM_QMM_LUT_SLICED");
  if (!on || w.format != kLutU4 || !w.table_per_row || w.table_dtype != kF32 || w.entries != 16 ||
      m != 1 || x_dtype != kF32 || w.k % kSlice || w.k > kSlice * kMaxWarps || w.n <= 0 ||
      w.n >= (int64_t{1} << 31) || w.row_bytes != w.k / 2 || !aligned16(w.w) ||
      !aligned16(w.table) || !aligned16(x))
    return false;
  LutArgs a;
  a.w = static_cast<const uint8_t*>(w.w), a.table = static_cast<const float*>(w.table);
  a.x = static_cast<const float*>(x), a.y = static_cast<float*>(y);
  a.n = w.n, a.k = static_cast<int>(w.k), a.warps = a.k / kSlice;
  int device = 0;  // the backend made the launch's device current (stream_for)
  LOOM_CUDA_CHECK(cudaGetDevice(&device));
  // Steps a warp holds: 4, or 3 for long rows (16 or more warps per CTA): H100, 4096 x 14336
  // 15.19 -> 14.45 us (14336 x 4096: 13.85 either way; 5 and 6 stages no better).
  const auto go = [&](auto stages) {
    constexpr int ST = decltype(stages)::value;
    // x lives in registers, loaded in the prologue: every step but the computed one may go early.
    a.early = w.constant ? ST - 1 : 0;
    auto kern = gemv_lut_sliced_kernel<ST>;
    SplitLaunch l;
    if (!split_launch(reinterpret_cast<const void*>(kern), device, a.n, a.warps, ST * kSlotBytes,
                      256, l))  // + 256: the stages' alignment
      return false;
    launch_pdl(kern, l.grid, l.threads, l.smem, s, a);
    return true;
  };
  return a.warps >= 16 ? go(std::integral_constant<int, 3>{})
                       : go(std::integral_constant<int, 4>{});
}

}  // namespace loom::backends::cuda
