// Shared-memory staging of packed weights for the decode GEMVs (quant_gemv_int8.cu,
// quant_gemv_tensor.cu): each warp copies its rows' bytes into shared memory with 16-byte
// cp.async a few steps ahead of the one it computes, so many bytes are in flight per SM without
// registers holding them. Included only by .cu files.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/cuda/cuda_common.h"
#include "backends/cuda/device_util.cuh"
#include "backends/cuda/pdl.cuh"

namespace loom::backends::cuda {

// 16-byte global -> shared copy that bypasses L1; reads only `bytes` (1..16) of the source and
// zero-fills the rest (the last unit of the weights may end mid-unit).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int bytes) {
  const auto s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes)
               : "memory");
}
// The same, whole 16 bytes, to a 32-bit shared address computed once by the caller.
__device__ __forceinline__ void cp_async16_shared(uint32_t smem, const void* gmem) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
// The warp copies the 16-byte units covering [g, g + bytes) to dst (16-byte aligned); the span
// starts (g & 15) bytes early, so the bytes land at dst + (g & 15). The array g lies in starts
// 16-byte aligned, so the first unit never starts before it; the last one is cut at its end, wend.
__device__ __forceinline__ void copy_span(uint8_t* dst, const uint8_t* g, int bytes,
                                          const uint8_t* wend, int lane) {
  const int o = static_cast<int>(reinterpret_cast<uintptr_t>(g) & 15);
  const uint8_t* g16 = g - o;
  const int units = (o + bytes + 15) >> 4;
  for (int u = lane; u < units; u += 32) {
    const uint8_t* src = g16 + 16 * u;
    const int64_t left = wend - src;
    cp_async16(dst + 16 * u, src, left < 16 ? static_cast<int>(left) : 16);
  }
}
template <int N>  // waits until at most N of this thread's groups are pending
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// A warp's copy pipeline over its `steps` steps (row group q, chunk c of nch each), ST slots:
// issue(q, c, s) starts the copies of step (q, c) into slot s, compute(q, c, s) consumes it once
// landed, prologue() (the CTA's x staging) runs once after the first step is issued.
//
// Every lane commits one cp.async group per step (empty past the last step), so after the commit
// of step t, wait_group<ST - 1> means exactly "step t has landed". With constant weights the
// first `early` steps' copies start before the previous kernel has finished (pdl.cuh), overlapping
// it (early = 0: none; the weights may be an earlier kernel's output); the others wait until x is
// staged, as x's loads from L2 queue behind the copies in flight. How many pay depends on the
// prologue: copying a ready x image (a few KB), all ST - 1 (H100, Mistral-7B 458.2 -> 467.2
// tok/s once the kernel before triggers early, pdl_trigger); quantizing x in every CTA or forming
// a norm, one (SmolLM2 1699 -> 1653 with all; before pdl_trigger, all cost a Mistral-7B down
// projection 5.5 of its 17.6 us).
template <int ST, class Issue, class Prologue, class Compute>
__device__ __forceinline__ void run_steps(int64_t steps, int nch, int early, Issue&& issue,
                                          Prologue&& prologue, Compute&& compute) {
  auto advance = [nch](int64_t& q, int& c) {
    if (++c == nch) c = 0, ++q;
  };
  if (!early) pdl_begin();
  int64_t iq = 0;  // the next step to issue: row group iq, chunk ic
  int ic = 0;
  auto issue_next = [&](int s) {
    if (s < steps) {
      issue(iq, ic, s);
      advance(iq, ic);
    }
    cp_async_commit();
  };
  int s0 = 0;  // steps issued
  for (; s0 < ST - 1 && (s0 == 0 || s0 < early); ++s0) issue_next(s0);
  if (early) pdl_begin();  // x is the previous kernel's output
  prologue();
  for (; s0 < ST - 1; ++s0) issue_next(s0);
  __syncthreads();  // the only CTA-wide barrier: from here on each warp runs on its own
  int64_t q = 0;    // the step computed: row group q, chunk c, in slot s
  int c = 0, s = 0;
  for (int64_t t = 0; t < steps; ++t) {
    __syncwarp();  // every lane is done with step t - 1's slot, which step t + ST - 1 refills
    if (t + ST - 1 < steps) {
      issue(iq, ic, s == 0 ? ST - 1 : s - 1);
      advance(iq, ic);
    }
    cp_async_commit();
    cp_async_wait<ST - 1>();  // this lane's copies of step t have landed,
    __syncwarp();             // and every lane's are visible to the warp
    compute(q, c, s);
    advance(q, c);
    s = s + 1 == ST ? 0 : s + 1;
  }
}

// Warp sums of acc stored as y[mi][row0 + r] (dtype ydt; rows < n, mi < m), times scale[mi]
// where given (x's rows normalised after the product, Int8Args::xss), then acc reset for the
// warp's next rows.
template <int R, int MT>
__device__ __forceinline__ void store_rows(float (&acc)[R][MT], int m, int64_t n, int ydt, void* y,
                                           int64_t row0, int lane, const float* scale = nullptr) {
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int mi = 0; mi < MT; ++mi) {
      float v = acc[r][mi];
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane == 0 && mi < m && row0 + r < n)
        store(ydt, y, static_cast<int64_t>(mi) * n + row0 + r, scale ? v * scale[mi] : v);
      acc[r][mi] = 0.f;
    }
}

// x's image from launch_quantize_x (quant_matmul.h) for `rows` rows into shared memory, by the
// block's threads: the codes (2·rows·kbp int4) to xq4, then the scales and d·Σq (one array of
// 2·rows·kb floats) to xd.
__device__ __forceinline__ void copy_x_image(const int4* xg, int rows, int kb, int kbp, int4* xq4,
                                             float* xd) {
  for (int i = threadIdx.x; i < 2 * rows * kbp; i += blockDim.x) xq4[i] = __ldg(xg + i);
  const auto* fg = reinterpret_cast<const float*>(xg + 2 * rows * kbp);
  for (int i = threadIdx.x; i < 2 * rows * kb; i += blockDim.x) xd[i] = __ldg(fg + i);
}

// 32 activations -> int8 as the CPU backend quantizes them (quantize_activations: d = max|v| /
// 127, q = round(v / d)): the codes as 8 words, d, and Σq. INTER (4-bit codes that pair element
// 2i with 2i + 1 in one byte): the even elements first, then the odd ones.
template <bool INTER>
__device__ __forceinline__ void quantize_block32(const float (&v)[32], uint32_t (&words)[8],
                                                 float& d, int& sum) {
  float amax = 0.f;
#pragma unroll
  for (int t = 0; t < 32; ++t) amax = fmaxf(amax, fabsf(v[t]));
  d = __fdiv_rn(amax, 127.0f);
  const float id = d != 0.f ? __fdiv_rn(1.0f, d) : 0.f;
  sum = 0;
#pragma unroll
  for (int t = 0; t < 8; ++t) words[t] = 0;
#pragma unroll
  for (int t = 0; t < 32; ++t) {
    const int q = static_cast<int>(rintf(__fmul_rn(v[t], id)));
    sum += q;
    const int pos = INTER ? ((t & 1) ? 16 + (t >> 1) : t >> 1) : t;
    words[pos >> 2] |= (static_cast<uint32_t>(q) & 0xFFu) << (8 * (pos & 3));
  }
}

// CTAs of `kern` (`threads` per CTA) resident per SM with `smem` bytes of dynamic shared memory,
// per device. Sets the kernel's opt-in shared-memory size first, only ever raising it, so that
// launches of every size seen before stay valid (and none happens while a CUDA graph is being
// captured). Defined in quant_gemv_int8.cu.
int resident_ctas(const void* kern, int device, int threads, size_t smem);

// The 4-bit LUT GEMVs' lookups (quant_gemv_tensor.cu, quant_gemv_lut.cu). Byte lanes 0..3 of w4:
// offsets (4 · a 4-bit table index, plus the table's offset in its 256-byte block) -> the f32
// values there, in the block at shared address tab (256-byte aligned): one byte_perm forms each
// address (the offset's byte under tab's upper three), where a byte_perm and an address
// multiply-add did, a quarter of the LUT path's instructions per weight. A 16-entry table's
// lookups stay conflict-free (16 words).
__device__ __forceinline__ void lut_values(uint32_t w4, uint32_t tab, float (&f)[4]) {
#pragma unroll
  for (int t = 0; t < 4; ++t) {
    // Not volatile: the address depends on the codes, read after the step's copies landed.
    asm("ld.shared.f32 %0, [%1];" : "=f"(f[t]) : "r"(__byte_perm(w4, tab, 0x7650 | t)));
  }
}

// k-split GEMVs (quant_gemv_sliced.cu, quant_gemv_lut.cu): each warp of a CTA owns a slice of k of
// every row, the CTA's warps walk the same groups of kSplitRows rows (the CTA's q-th group: rows
// (blockIdx.x + q · gridDim.x) · kSplitRows + r), and each parks its partial sum of every row in
// shared memory, part[(q · kSplitRows + r) · warps + warp]; the CTA adds them once at the end.
constexpr int kSplitRows = 4;

// Step q's partial sums of the warp's 4 rows (one per lane each) into part: a transposing
// butterfly over the lanes (6 shuffles, not 20) leaves row r's sum in lane 8r.
__device__ __forceinline__ void park_partials(float* part, const float (&v)[kSplitRows], int64_t q,
                                              int warps, int warp, int lane) {
  const bool hi16 = lane & 16, hi8 = lane & 8;
  float a0 = hi16 ? v[2] : v[0], a1 = hi16 ? v[3] : v[1];
  a0 += __shfl_xor_sync(0xffffffffu, hi16 ? v[0] : v[2], 16);
  a1 += __shfl_xor_sync(0xffffffffu, hi16 ? v[1] : v[3], 16);
  float c = hi8 ? a1 : a0;
  c += __shfl_xor_sync(0xffffffffu, hi8 ? a0 : a1, 8);
  for (int o = 4; o > 0; o >>= 1) c += __shfl_xor_sync(0xffffffffu, c, o);
  if ((lane & 7) == 0) part[(q * kSplitRows + (lane >> 3)) * warps + warp] = c;
}

// Once every warp has run its `steps`: each of the CTA's rows below n summed over the warps'
// partials, handed to store(row, sum).
template <class Store>
__device__ __forceinline__ void sum_partials(const float* part, int64_t steps, int warps, int64_t n,
                                             Store&& store) {
  __syncthreads();
  for (int64_t i = threadIdx.x; i < steps * kSplitRows; i += blockDim.x) {
    const int64_t q = i / kSplitRows,
                  row = (blockIdx.x + q * gridDim.x) * kSplitRows + i % kSplitRows;
    if (row >= n) continue;
    float t = 0.f;
    for (int w = 0; w < warps; ++w) t += part[i * warps + w];
    store(row, t);
  }
}

// A k-split GEMV's launch shape: `warps` warps of `warp_bytes` of stages each, `extra` bytes, and
// the partials sized for a grid of one CTA per SM (the fewest any launch has); as many CTAs as
// fit, at most one per row group. False where the shared memory would pass 200 KB (very many rows
// per SM: the row kernels take them).
struct SplitLaunch {
  unsigned grid;
  int threads;
  size_t smem;
};
inline bool split_launch(const void* kern, int device, int64_t n, int warps, size_t warp_bytes,
                         size_t extra, SplitLaunch& l) {
  const int64_t groups = (n + kSplitRows - 1) / kSplitRows;
  const int64_t per_cta = (groups + sm_count(device) - 1) / sm_count(device);
  l.smem = static_cast<size_t>(warps) * warp_bytes + extra +
           static_cast<size_t>(per_cta) * kSplitRows * warps * sizeof(float);
  if (l.smem > 200 * 1024) return false;
  l.threads = warps * 32;
  const int fit = resident_ctas(kern, device, l.threads, l.smem);
  l.grid = static_cast<unsigned>(
      std::min<int64_t>(groups, static_cast<int64_t>(fit) * sm_count(device)));
  return true;
}

}  // namespace loom::backends::cuda
