// The int8-activation GEMV (quant_gemv_int8.cu's arithmetic: x quantized per block of 32 as the
// CPU does, dp4a over the codes) for one row of x, with k split over the warps of a CTA instead
// of rows over warps: warp w of W = k / 512 owns blocks [16w, 16w + 16) of every row, and each
// lane takes half a block (16 of its elements: lane l, block 16w + l / 2, half l % 2) and keeps
// that half of x as int8 in four registers.
//
// Why: in the row-per-warp kernels every CTA first stages all of x (quantizing it, or copying its
// image: k + k / 4 bytes from L2) before it computes, and a decode step pays that prologue in
// every CTA of every GEMV after the kernel before it ends: the output projection (x the attention's
// f32 output, quantized in every CTA) took 7.3 us for 3.2 us of weights (H100, Mistral-7B). Here a
// warp reads only its 512 elements of x (2 KB of f32, or 640 bytes of the image) and quantizes them
// itself, a block per pair of lanes. The CTA's warps walk the same row groups (kRows rows per
// step: each warp copies its slice of them by cp.async, run_steps' pipeline), reduce each row's
// partial sum over their lanes and park it in shared memory; the CTA adds its warps' partials
// once its rows are done.
#include <algorithm>

#include "backends/cuda/device_util.cuh"
#include "backends/cuda/pdl.cuh"
#include "backends/cuda/quant_int8_blocks.cuh"
#include "backends/cuda/quant_matmul.h"
#include "backends/cuda/quant_stage.cuh"

namespace loom::backends::cuda {
namespace {

constexpr int kSlice = 512;  // elements of k per warp
constexpr int kSliceBlocks = kSlice / 32;
constexpr int kRows = kSplitRows;  // rows per step (park_partials)
// Steps a warp holds (one computed). 4, not 3: in a decode step more of each GEMV's weights are
// copied before it waits for its x (during the image kernel or the attention before it): H100,
// Mistral-7B 524.8 -> 533.4 tok/s together with the grid below (either alone: 522.7 and 526.9
// against 525.3, another machine). Alone, q4_0 14336 x 4096 12.63 -> 13.03 us, 4096 x 14336 14.19
// -> 13.41.
constexpr int kStages = 4;
constexpr int kMaxWarps = 32;  // k <= 16384

struct SlicedArgs {
  const uint8_t* w;  // [n][rb], rows 16-byte aligned
  int64_t n, rb;
  int k, kb, kbp, warps;
  const void* x;     // f32 [k] (16-byte aligned), or null with xg
  const int4* xg;    // x's image (launch_quantize_x's layout, one row), or null
  const float* xss;  // the image's blocks' sums of squares (a normed x: y scaled by 1 / rms)
  float eps;
  int early;
  void* y;
  int ydt;
};

template <int F>
__global__ void __launch_bounds__(kMaxWarps * 32) gemv_int8_sliced_kernel(const SlicedArgs a) {
  using B = Blk<F>;
  constexpr int NC = kCodeWords<B>;
  constexpr int SLICE_BYTES = kSliceBlocks * B::BYTES;  // a multiple of 16
  constexpr int UNITS = SLICE_BYTES / 16;               // 16-byte copies per row slice
  constexpr int SLOT = kRows * SLICE_BYTES;
  static_assert(SLICE_BYTES % 16 == 0, "slices of whole 16-byte units");
  extern __shared__ int4 smem4[];
  const int lane = static_cast<int>(threadIdx.x & 31), warp = static_cast<int>(threadIdx.x >> 5);
  uint8_t* slots = reinterpret_cast<uint8_t*>(smem4) + static_cast<size_t>(warp) * kStages * SLOT;
  float* part = reinterpret_cast<float*>(reinterpret_cast<uint8_t*>(smem4) +
                                         static_cast<size_t>(a.warps) * kStages * SLOT);

  const int64_t groups = (a.n + kRows - 1) / kRows;
  const int64_t steps = blockIdx.x < groups ? (groups - 1 - blockIdx.x) / gridDim.x + 1 : 0;
  const auto last = static_cast<uint32_t>(a.n - 1);
  const uint8_t* wl = a.w + warp * SLICE_BYTES;
  uint32_t next_row0 = blockIdx.x * kRows;
  const uint32_t row_step = gridDim.x * kRows;
  // A step's copies: each of its rows' slices (UNITS units); rows past n re-read the last one.
  auto issue = [&](int64_t, int, int s) {
    const uint32_t row0 = next_row0;
    next_row0 += row_step;
    uint8_t* slot = slots + s * SLOT;
#pragma unroll
    for (int u = lane; u < kRows * UNITS; u += 32) {
      const int r = u / UNITS, c = u % UNITS;
      const uint32_t row = min(row0 + r, last);
      cp_async16(slot + r * SLICE_BYTES + 16 * c, wl + static_cast<int64_t>(row) * a.rb + 16 * c,
                 16);
    }
  };
  // The lane's half block of x: int8 codes (its 16 positions in x's layout: elements 16h.. of
  // the block, or the even / odd ones for INTER), the block's scale, d · Σ of the half's codes.
  const int blk = warp * kSliceBlocks + lane / 2, h = lane & 1;
  int xw[4];
  float dx = 0.f, sxh = 0.f, inv = 1.f;
  const auto prologue = [&] {
    int qsum = 0;
    if (a.xg) {
      const int4 v = __ldg(a.xg + x_slot(a.kbp, 0, blk) + 32 * h);
      xw[0] = v.x, xw[1] = v.y, xw[2] = v.z, xw[3] = v.w;
      dx = __ldg(reinterpret_cast<const float*>(a.xg + 2 * a.kbp) + blk);
    } else {
      const float* xb = static_cast<const float*>(a.x) + 32 * blk;
      float v[16];
      if constexpr (B::INTER) {  // positions 0..15: the even elements, 16..31: the odd ones
#pragma unroll
        for (int t = 0; t < 8; ++t) {
          const float4 f = __ldg(reinterpret_cast<const float4*>(xb) + t);
          v[2 * t] = h ? f.y : f.x, v[2 * t + 1] = h ? f.w : f.z;
        }
      } else {
#pragma unroll
        for (int t = 0; t < 4; ++t) {
          const float4 f = __ldg(reinterpret_cast<const float4*>(xb + 16 * h) + t);
          v[4 * t] = f.x, v[4 * t + 1] = f.y, v[4 * t + 2] = f.z, v[4 * t + 3] = f.w;
        }
      }
      // quantize_block32's rounding (the CPU's): d = max|x| / 127 over the block, q = rint(x / d).
      float amax = 0.f;
#pragma unroll
      for (int t = 0; t < 16; ++t) amax = fmaxf(amax, fabsf(v[t]));
      amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
      dx = __fdiv_rn(amax, 127.0f);
      const float id = dx != 0.f ? __fdiv_rn(1.0f, dx) : 0.f;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        uint32_t word = 0;
#pragma unroll
        for (int t = 0; t < 4; ++t) {
          const int q = static_cast<int>(rintf(__fmul_rn(v[4 * j + t], id)));
          word |= (static_cast<uint32_t>(q) & 0xFFu) << (8 * t);
        }
        xw[j] = static_cast<int>(word);
      }
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) qsum = __dp4a(xw[j], 0x01010101, qsum);
    sxh = dx * static_cast<float>(qsum);
    if (a.xss) {  // 1 / rms of the normed row from its blocks' sums of squares
      float ss = 0.f;
      for (int b = lane; b < a.kb; b += 32) ss += __ldg(a.xss + b);
      for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
      inv = rsqrtf(ss / static_cast<float>(a.k) + a.eps);
    }
  };
  run_steps<kStages>(steps, 1, a.early, issue, prologue, [&](int64_t q, int, int s) {
    const uint8_t* slot = slots + s * SLOT;
    float sum[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float dw, wm;
      int cw[NC];
      parse_staged<B>(slot + r * SLICE_BYTES, (lane / 2) * B::BYTES, dw, wm, cw);
      int sumi = 0;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        // (Selects, not cw[4 h + j]: a run-time index would put cw in local memory.)
        const int c = B::FOUR ? (h ? (cw[j] >> 4) : cw[j]) & 0x0F0F0F0F : (h ? cw[4 + j] : cw[j]);
        sumi = __dp4a(c, xw[j], sumi);
      }
      sum[r] = dw * dx * static_cast<float>(sumi) + wm * sxh;
    }
    park_partials(part, sum, q, a.warps, warp, lane);
  });
  sum_partials(part, steps, a.warps, a.n,
               [&](int64_t row, float t) { store(a.ydt, a.y, row, t * inv); });
}

template <int F>
bool launch_format(cudaStream_t s, SlicedArgs a, int device) {
  auto kern = gemv_int8_sliced_kernel<F>;
  SplitLaunch l;
  if (!split_launch(reinterpret_cast<const void*>(kern), device, a.n, a.warps,
                    kStages * kRows * kSliceBlocks * Blk<F>::BYTES, 0, l))
    return false;
  // Few rows of an f32 x (a decode step's output projection: at most 8 row groups per SM): 2
  // CTAs per SM, not 4, so half as many CTAs read and quantize x after the wait, each with about
  // 4 steps, 3 of them copied before it (H100, Mistral-7B with kStages = 4: 531.6 tok/s with
  // every f32 x capped, 533.4 with only these; q4_0 4096 x 4096 alone 6.56 -> 5.07 us).
  const int64_t groups = (a.n + kRows - 1) / kRows;
  if (!a.xg && groups <= 8 * static_cast<int64_t>(sm_count(device)))
    l.grid = std::min<unsigned>(l.grid, static_cast<unsigned>(2 * sm_count(device)));
  launch_pdl(kern, l.grid, l.threads, l.smem, s, a);
  return true;
}

}  // namespace

bool launch_quant_gemv_int8_sliced(cudaStream_t s, int f, const uint8_t* w, int64_t n,
                                   int64_t row_bytes, int64_t k, bool constant, const void* x,
                                   int x_dtype, const void* image, const float* xss, float eps,
                                   void* y) {
  if (k % kSlice || k > kSlice * kMaxWarps || n <= 0 || n >= (int64_t{1} << 31) || !aligned16(w) ||
      row_bytes % 16 || (!image && (x_dtype != kF32 || !aligned16(x))))
    return false;
  if (f != kQ4_0 && f != kQ4_1 && f != kQ8_0 && f != kAffineU4Blocks && f != kAffineI8Blocks)
    return false;
  SlicedArgs a{};
  a.w = w, a.n = n, a.rb = row_bytes;
  a.k = static_cast<int>(k), a.kb = a.k / 32, a.kbp = (a.kb + 31) / 32 * 32;
  a.warps = a.k / kSlice;
  a.x = x, a.xg = static_cast<const int4*>(image), a.xss = xss, a.eps = eps;
  a.early = constant ? kStages - 1 : 0;  // x is a few loads per lane: every step may go early
  a.y = y, a.ydt = x_dtype;
  int device = 0;  // the backend made the launch's device current (stream_for)
  LOOM_CUDA_CHECK(cudaGetDevice(&device));
  switch (f) {
    case kQ4_0:
      return launch_format<kQ4_0>(s, a, device);
    case kQ4_1:
      return launch_format<kQ4_1>(s, a, device);
    case kQ8_0:
      return launch_format<kQ8_0>(s, a, device);
    case kAffineU4Blocks:
      return launch_format<kAffineU4Blocks>(s, a, device);
    default:
      return launch_format<kAffineI8Blocks>(s, a, device);
  }
}

}  // namespace loom::backends::cuda
