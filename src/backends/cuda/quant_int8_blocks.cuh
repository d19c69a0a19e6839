// The packed block formats the int8-activation GEMVs read (quant_gemv_int8.cu, the k-split one in
// quant_gemv_sliced.cu), x's int8 layout in their shared memory, and the parse of a staged block.
// Included only by .cu files.
#pragma once
#include <cstdint>

#include "backends/cuda/device_util.cuh"
#include "backends/cuda/quant_matmul.h"

namespace loom::backends::cuda {

// Block layouts: BYTES per block, QS where its codes start, FOUR for 4-bit codes, ALIGN4 when
// blocks are 4-byte aligned (codes read as words, else as half-words), INTER for affine_u4's
// nibble pairs; offset16(h, d) is the block's m_w from its scale d and the half-word h at byte 2
// (CPU: block_offset in cpu/quant/internal.h).
template <int F>
struct Blk;
template <>
struct Blk<kQ4_0> {
  static constexpr int BYTES = 18, QS = 2;
  static constexpr bool FOUR = true, ALIGN4 = false, INTER = false;
  static __device__ float offset16(uint32_t, float d) { return -8.f * d; }
};
template <>
struct Blk<kQ4_1> {
  static constexpr int BYTES = 20, QS = 4;
  static constexpr bool FOUR = true, ALIGN4 = true, INTER = false;
  static __device__ float offset16(uint32_t m, float) { return h2f(static_cast<uint16_t>(m)); }
};
template <>
struct Blk<kQ8_0> {
  static constexpr int BYTES = 34, QS = 2;
  static constexpr bool FOUR = false, ALIGN4 = false, INTER = false;
  static __device__ float offset16(uint32_t, float) { return 0.f; }
};
template <>
struct Blk<kAffineU4Blocks> {  // element 2i in the low nibble of byte i, 2i+1 in the high one
  static constexpr int BYTES = 20, QS = 4;
  static constexpr bool FOUR = true, ALIGN4 = true, INTER = true;
  static __device__ float offset16(uint32_t z, float d) {
    return -h2f(static_cast<uint16_t>(z)) * d;
  }
};
template <>
struct Blk<kAffineI8Blocks> {
  static constexpr int BYTES = 36, QS = 4;
  static constexpr bool FOUR = false, ALIGN4 = true, INTER = false;
  static __device__ float offset16(uint32_t z, float d) {
    return -h2f(static_cast<uint16_t>(z)) * d;
  }
};

template <class B>
constexpr int kCodeWords = B::FOUR ? 4 : 8;  // 4-byte words of codes per block

// x in shared memory: the int8 codes of row mi, block b are two int4 (elements 0-15, 16-31),
// stored per group of 32 blocks as [32 first halves][32 second halves]: the 32 lanes of a warp,
// which take 32 consecutive blocks, then load 512 consecutive bytes (no bank conflicts).
__device__ __forceinline__ int x_slot(int kbp, int mi, int b) {
  return 2 * (mi * kbp + (b & ~31)) + (b & 31);
}

// The block at byte `off` of a stage slot. 2-byte aligned blocks (q4_0, q8_0): read the NC + 1
// aligned words around it and, when it starts at 2 mod 4, shift by a half-word: one prmt per
// code word; lanes 18 or 34 bytes apart hit a bank at most twice per load. 4-byte aligned ones
// (q4_1, affine_u4, affine_i8): their words as they are; lanes 20 or 36 bytes apart never share
// a bank.
template <class B>
__device__ __forceinline__ void parse_staged(const uint8_t* slot, int off, float& dw, float& wm,
                                             int (&cw)[kCodeWords<B>]) {
  constexpr int NC = kCodeWords<B>;
  const auto* p = reinterpret_cast<const uint32_t*>(slot) + (off >> 2);
  if constexpr (B::ALIGN4) {  // d and m / zero point in the first word, then the codes
    const uint32_t h = p[0];
    dw = h2f(static_cast<uint16_t>(h));
    wm = B::offset16(h >> 16, dw);
#pragma unroll
    for (int u = 0; u < NC; ++u) cw[u] = static_cast<int>(p[1 + u]);
  } else {
    uint32_t wd[NC + 1];
#pragma unroll
    for (int u = 0; u <= NC; ++u) wd[u] = p[u];
    const bool half = off & 2;
    dw = h2f(static_cast<uint16_t>(half ? wd[0] >> 16 : wd[0]));
    wm = B::offset16(0, dw);  // q4_0 / q8_0: from the scale alone
    const uint32_t sel = half ? 0x7654u : 0x5432u;
#pragma unroll
    for (int u = 0; u < NC; ++u) cw[u] = static_cast<int>(__byte_perm(wd[u], wd[u + 1], sel));
  }
}

}  // namespace loom::backends::cuda
