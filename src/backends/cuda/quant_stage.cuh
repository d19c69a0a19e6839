// Shared-memory staging of packed weights for the decode GEMVs (quant_gemv_int8.cu,
// quant_gemv_tensor.cu): each warp copies its rows' bytes into shared memory with 16-byte
// cp.async a few steps ahead of the one it computes, so many bytes are in flight per SM without
// registers holding them. Included only by .cu files.
#pragma once
#include <cstddef>
#include <cstdint>

#include "backends/cuda/cuda_common.h"

namespace loom::backends::cuda {

// 16-byte global -> shared copy that bypasses L1; reads only `bytes` (1..16) of the source and
// zero-fills the rest (the last unit of the weights may end mid-unit).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int bytes) {
  const auto s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes)
               : "memory");
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

}  // namespace loom::backends::cuda
