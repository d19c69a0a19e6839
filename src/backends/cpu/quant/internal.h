// backends/cpu/quant/internal.h — shared by the quant kernels; not part of the API.
#pragma once
#include <cstdint>
#include <cstring>

#include "backends/cpu/quant/qmatmul.h"

namespace loom::cpu::quant::detail {

// Exact f16 -> f32 without F16C, branch-light (the kernels call it per block, so it must inline).
inline float half_to_float(uint16_t h) {
  const uint32_t w = static_cast<uint32_t>(h) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  // Normal numbers: shift the exponent/mantissa into place and rebias with one multiply
  // (0x1p-112 fixes the 127 - 15 bias difference; inf/NaN stay inf/NaN).
  uint32_t nb = (two_w >> 4) + (0xE0u << 23);
  float normalized;
  std::memcpy(&normalized, &nb, 4);
  normalized *= 0x1p-112f;
  // Subnormals: place the mantissa under a 0.5 magic exponent and subtract it.
  uint32_t db = (two_w >> 17) | (126u << 23);
  float denormalized;
  std::memcpy(&denormalized, &db, 4);
  denormalized -= 0.5f;
  uint32_t nbits, dbits;
  std::memcpy(&nbits, &normalized, 4);
  std::memcpy(&dbits, &denormalized, 4);
  const uint32_t bits = sign | (two_w < (1u << 27) ? dbits : nbits);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline float load_half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return half_to_float(h);
}

// x quantized once per call: per row, kb blocks of 32 int8 (contiguous, so SIMD loads may span
// two blocks), a scale per block and s = scale · Σq per block (it multiplies the weight-side
// offset: zero point, ggml's "m" or the −8 of q4_0).
struct ActRows {
  const int8_t* q = nullptr;  // [m][kb * 32]
  const float* d = nullptr;   // [m][kb]
  const float* s = nullptr;   // [m][kb]
  int64_t kb = 0;
};

// Computes y[i * ldy + j] for all i < m and j in [j0, j1) for an integer-dot format:
// Σ_b d_b·da_b·Σ q·qa + wm_b·s_b over the row's blocks. Each ISA defines one.
using TileFn = void (*)(Format fmt, const ActRows& a, int64_t m, const uint8_t* w, size_t rb,
                        int64_t j0, int64_t j1, float* y, int64_t ldy);
void tiles_scalar(Format fmt, const ActRows& a, int64_t m, const uint8_t* w, size_t rb, int64_t j0,
                  int64_t j1, float* y, int64_t ldy);
void tiles_avx2(Format fmt, const ActRows& a, int64_t m, const uint8_t* w, size_t rb, int64_t j0,
                int64_t j1, float* y, int64_t ldy);
void tiles_avx512(Format fmt, const ActRows& a, int64_t m, const uint8_t* w, size_t rb, int64_t j0,
                  int64_t j1, float* y, int64_t ldy);

// f32 dot products for the dequantize-then-dot formats.
float dot_f32_scalar(const float* a, const float* b, int64_t k);
float dot_f32_avx2(const float* a, const float* b, int64_t k);
float dot_f32_avx512(const float* a, const float* b, int64_t k);

// How the integer kernels see a weight block of an integer-dot format: the 32 values in storage
// order (low nibbles then high nibbles for 4-bit), their scale d and offset coefficient wm so that
// block · act = d · da · Σ q·qa + wm · s.
// For affine_u4 the storage order interleaves even/odd elements, so the activations are permuted
// into the same order when quantized (see act_permutation).
struct BlockInfo {
  size_t bytes;
  int qs_offset;  // where the quants start
  bool four_bit;  // nibble-packed (else int8)
};
inline BlockInfo block_info(Format fmt) {
  switch (fmt) {
    case Format::q4_0:
      return {18, 2, true};
    case Format::q4_1:
      return {20, 4, true};
    case Format::affine_u4:
      return {20, 4, true};
    case Format::q8_0:
      return {34, 2, false};
    case Format::affine_i8:
      return {36, 4, false};
    default:
      return {0, 0, false};
  }
}
// Offset coefficient of a block in its natural signed/unsigned domain (int8 weights signed).
inline float block_offset(Format fmt, const uint8_t* blk) {
  switch (fmt) {
    case Format::q4_0:
      return -8.0f * load_half(blk);
    case Format::q4_1:
      return load_half(blk + 2);
    case Format::affine_u4:
    case Format::affine_i8:
      return -load_half(blk + 2) * load_half(blk);
    default:
      return 0.0f;  // q8_0
  }
}

}  // namespace loom::cpu::quant::detail
