// AVX2 and AVX-512 VNNI kernels for the integer-dot formats. Every function that uses wide
// registers carries a target attribute instead of the file being built with -m flags, so nothing
// here (including inlined library code) can leak AVX instructions into code run on older CPUs;
// qmatmul.cpp only calls these after __builtin_cpu_supports said yes.
//
// A tile is MR rows of x by NR rows of W, accumulated in MR·NR f32 vectors over all of k; the NR
// weight blocks are unpacked once per step and reused for the MR activation rows.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "backends/cpu/quant/internal.h"

#define LOOM_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define LOOM_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace loom::cpu::quant::detail {
namespace {

// ---------------- AVX-512 VNNI: two blocks (64 values) per step ----------------

// 4-bit: each block's 16 bytes go to two 128-bit lanes; the second lane is shifted right by 4,
// giving [low nibbles, high nibbles] = storage order without any cross-lane shuffle of results.
LOOM_AVX512 inline __m512i unpack4_x2(const uint8_t* q0, const uint8_t* q1) {
  const __m256i a =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q0)));
  const __m256i b =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q1)));
  const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
  const long long s = 0x0004000400040004LL;
  const __m512i shifts = _mm512_set_epi64(s, s, 0, 0, s, s, 0, 0);
  return _mm512_and_si512(_mm512_srlv_epi16(v, shifts), _mm512_set1_epi8(0x0F));
}
LOOM_AVX512 inline __m512i unpack4_x1(const uint8_t* q0) {
  const __m256i a =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q0)));
  const __m256i lo = _mm256_and_si256(a, _mm256_set1_epi8(0x0F));
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(a, 4), _mm256_set1_epi8(0x0F));
  return _mm512_zextsi256_si512(_mm256_blend_epi32(lo, hi, 0xF0));
}
// int8 weights: flip the sign bit so they are q + 128 as unsigned bytes (vpdpbusd's u8 side).
LOOM_AVX512 inline __m512i unpack8_x2(const uint8_t* q0, const uint8_t* q1) {
  const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q0));
  const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q1));
  return _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1),
                          _mm512_set1_epi8(static_cast<char>(0x80)));
}
LOOM_AVX512 inline __m512i unpack8_x1(const uint8_t* q0) {
  const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q0));
  return _mm512_zextsi256_si512(_mm256_xor_si256(a, _mm256_set1_epi8(static_cast<char>(0x80))));
}
// [s0 × 8 lanes, s1 × 8 lanes]: the int32 lanes 0..7 of a step hold block 0, 8..15 block 1.
LOOM_AVX512 inline __m512 spread2(__m128 v) {
  const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(v));
}
// Two f16 fields `bb` bytes apart (the same field of two consecutive blocks), spread as above.
LOOM_AVX512 inline __m512 half_pair(const uint8_t* p, size_t bb) {
  uint16_t h0, h1;
  std::memcpy(&h0, p, 2);
  std::memcpy(&h1, p + bb, 2);
  const uint32_t h = static_cast<uint32_t>(h0) | static_cast<uint32_t>(h1) << 16;
  return spread2(_mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(h))));
}
LOOM_AVX512 inline __m512 float_pair(const float* p) {
  return spread2(_mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
LOOM_AVX512 inline float half1(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}
// Scale d and offset coefficient wm (see block_offset) of two consecutive blocks, spread as above.
// Formats with a second f16 (q4_1's m, the affine zero point) keep it next to d, so one 32-bit
// load per block and one conversion give both. int8 formats also carry the −128·d that undoes
// the sign-bit flip in unpack8.
template <Format F>
LOOM_AVX512 inline void scales_pair(const uint8_t* blk, size_t bb, __m512* ws, __m512* wm) {
  if constexpr (F == Format::q4_0 || F == Format::q8_0) {
    *ws = half_pair(blk, bb);  // wm = c·ws is applied through the activation side (tile512)
    *wm = *ws;
  } else {
    uint32_t u0, u1;
    std::memcpy(&u0, blk, 4);
    std::memcpy(&u1, blk + bb, 4);
    const __m512 f = _mm512_castps128_ps512(_mm_cvtph_ps(
        _mm_cvtsi64_si128(static_cast<long long>(static_cast<uint64_t>(u1) << 32 | u0))));
    // f = [d0, x0, d1, x1]
    *ws =
        _mm512_permutexvar_ps(_mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0), f);
    const __m512 x =
        _mm512_permutexvar_ps(_mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1), f);
    if constexpr (F == Format::q4_1) *wm = x;
    if constexpr (F == Format::affine_u4)
      *wm = _mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), x), *ws);
    if constexpr (F == Format::affine_i8)
      *wm = _mm512_mul_ps(_mm512_sub_ps(_mm512_set1_ps(-128.0f), x), *ws);
  }
}
LOOM_AVX512 inline __m512 pair(float s0, float s1) {
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(s0)),
                                             _mm256_castps_pd(_mm256_set1_ps(s1)), 1));
}

template <Format F, int MR, int NR>
LOOM_AVX512 void tile512(const ActRows& a, int64_t i0, const uint8_t* w, size_t rb,
                         const BlockInfo& info, int64_t j0, float* y, int64_t ldy) {
  constexpr bool kFour = F == Format::q4_0 || F == Format::q4_1 || F == Format::affine_u4;
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_setzero_ps();
  const int64_t kb = a.kb;
  const size_t bb = info.bytes;
  const int qo = info.qs_offset;
  const uint8_t* rows[NR];
  for (int r = 0; r < NR; ++r) rows[r] = w + (j0 + r) * rb;
  int64_t b = 0;
  for (; b + 2 <= kb; b += 2) {
    __m512i wq[NR];
    __m512 ws[NR], wm[NR];
    for (int r = 0; r < NR; ++r) {
      const uint8_t* blk = rows[r] + b * bb;
      wq[r] = kFour ? unpack4_x2(blk + qo, blk + bb + qo) : unpack8_x2(blk + qo, blk + bb + qo);
      scales_pair<F>(blk, bb, &ws[r], &wm[r]);
    }
    for (int i = 0; i < MR; ++i) {
      const int64_t ai = (i0 + i) * kb + b;
      const __m512i av = _mm512_loadu_si512(a.q + ai * 32);
      // s / 8: each block's s is added on all 8 of its int32 lanes before the horizontal sum.
      const __m512 as = float_pair(a.d + ai);
      if constexpr (F == Format::q4_0 || F == Format::q8_0) {
        // wm = c·d, so the block is d·(da·Σq·qa + c·s): one fma less per tile entry.
        const __m512 cs =
            _mm512_mul_ps(float_pair(a.s + ai), _mm512_set1_ps(F == Format::q4_0 ? -1.0f : -16.0f));
        for (int r = 0; r < NR; ++r) {
          const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq[r], av);
          const __m512 t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), as, cs);
          acc[i][r] = _mm512_fmadd_ps(t, ws[r], acc[i][r]);
        }
      } else {
        const __m512 ss = _mm512_mul_ps(float_pair(a.s + ai), _mm512_set1_ps(0.125f));
        for (int r = 0; r < NR; ++r) {
          const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq[r], av);
          acc[i][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(ws[r], as), acc[i][r]);
          acc[i][r] = _mm512_fmadd_ps(wm[r], ss, acc[i][r]);
        }
      }
    }
  }
  if (b < kb) {  // odd block count: one block in the low half, zeros above
    __m512i wq[NR];
    __m512 ws[NR], wm[NR];
    for (int r = 0; r < NR; ++r) {
      const uint8_t* blk = rows[r] + b * bb;
      wq[r] = kFour ? unpack4_x1(blk + qo) : unpack8_x1(blk + qo);
      ws[r] = pair(half1(blk), 0.0f);
      wm[r] = pair(block_offset(F, blk) + (kFour ? 0.0f : -128.0f * half1(blk)), 0.0f);
      wm[r] = _mm512_mul_ps(wm[r], _mm512_set1_ps(0.125f));
    }
    for (int i = 0; i < MR; ++i) {
      const int64_t ai = (i0 + i) * kb + b;
      const __m512i av = _mm512_zextsi256_si512(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q + ai * 32)));
      const __m512 as = pair(a.d[ai], 0.0f), ss = pair(a.s[ai], 0.0f);
      for (int r = 0; r < NR; ++r) {
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq[r], av);
        acc[i][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(ws[r], as), acc[i][r]);
        acc[i][r] = _mm512_fmadd_ps(wm[r], ss, acc[i][r]);
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < NR; ++r) y[(i0 + i) * ldy + j0 + r] = _mm512_reduce_add_ps(acc[i][r]);
}

template <Format F, int NR>
LOOM_AVX512 void rows512(const ActRows& a, int64_t m, const uint8_t* w, size_t rb,
                         const BlockInfo& info, int64_t j0, float* y, int64_t ldy) {
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) tile512<F, 4, NR>(a, i, w, rb, info, j0, y, ldy);
  switch (m - i) {
    case 3:
      tile512<F, 3, NR>(a, i, w, rb, info, j0, y, ldy);
      break;
    case 2:
      tile512<F, 2, NR>(a, i, w, rb, info, j0, y, ldy);
      break;
    case 1:
      tile512<F, 1, NR>(a, i, w, rb, info, j0, y, ldy);
      break;
    default:
      break;
  }
}

template <Format F>
LOOM_AVX512 void tiles512(const ActRows& a, int64_t m, const uint8_t* w, size_t rb, int64_t j0,
                          int64_t j1, float* y, int64_t ldy) {
  const BlockInfo info = block_info(F);
  int64_t j = j0;
  for (; j + 4 <= j1; j += 4) rows512<F, 4>(a, m, w, rb, info, j, y, ldy);
  for (; j < j1; ++j) rows512<F, 1>(a, m, w, rb, info, j, y, ldy);
}

// ---------------- AVX2: one block (32 values) per step ----------------

LOOM_AVX2 inline __m256i unpack4_avx2(const uint8_t* q) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
  const __m128i lo = _mm_and_si128(v, _mm_set1_epi8(0x0F));
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), _mm_set1_epi8(0x0F));
  return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

// vpmaddubsw is u8 × s8 with int16 saturation: nibbles (≤ 15) cannot saturate; int8 weights use
// |w| × sign(a, w) (|w| ≤ 128, |a| ≤ 127, so a pair sums to at most 32512).
template <Format F, int MR, int NR>
LOOM_AVX2 void tile256(const ActRows& a, int64_t i0, const uint8_t* w, size_t rb,
                       const BlockInfo& info, int64_t j0, float* y, int64_t ldy) {
  constexpr bool kFour = F == Format::q4_0 || F == Format::q4_1 || F == Format::affine_u4;
  __m256 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < NR; ++r) acc[i][r] = _mm256_setzero_ps();
  const int64_t kb = a.kb;
  const size_t bb = info.bytes;
  const int qo = info.qs_offset;
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < kb; ++b) {
    __m256i wq[NR];
    float ws[NR], wm[NR];
    for (int r = 0; r < NR; ++r) {
      const uint8_t* blk = w + (j0 + r) * rb + b * bb;
      wq[r] = kFour ? unpack4_avx2(blk + qo)
                    : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + qo));
      uint16_t h;
      std::memcpy(&h, blk, 2);
      ws[r] = _cvtsh_ss(h);
      wm[r] = block_offset(F, blk) * 0.125f;  // spread over the block's 8 lanes
    }
    for (int i = 0; i < MR; ++i) {
      const int64_t ai = (i0 + i) * kb + b;
      const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q + ai * 32));
      const float da = a.d[ai], sa = a.s[ai];
      for (int r = 0; r < NR; ++r) {
        const __m256i p16 =
            kFour ? _mm256_maddubs_epi16(wq[r], av)
                  : _mm256_maddubs_epi16(_mm256_abs_epi8(wq[r]), _mm256_sign_epi8(av, wq[r]));
        const __m256i p32 = _mm256_madd_epi16(p16, ones);
        acc[i][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32), _mm256_set1_ps(ws[r] * da), acc[i][r]);
        if (F != Format::q8_0) acc[i][r] = _mm256_add_ps(acc[i][r], _mm256_set1_ps(wm[r] * sa));
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < NR; ++r) {
      const __m128 h =
          _mm_add_ps(_mm256_castps256_ps128(acc[i][r]), _mm256_extractf128_ps(acc[i][r], 1));
      const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
      y[(i0 + i) * ldy + j0 + r] = _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)));
    }
}

template <Format F, int NR>
LOOM_AVX2 void rows256(const ActRows& a, int64_t m, const uint8_t* w, size_t rb,
                       const BlockInfo& info, int64_t j0, float* y, int64_t ldy) {
  // 16 ymm registers: 2 x rows × 4 weight rows of accumulators leaves room for the operands.
  int64_t i = 0;
  for (; i + 2 <= m; i += 2) tile256<F, 2, NR>(a, i, w, rb, info, j0, y, ldy);
  if (i < m) tile256<F, 1, NR>(a, i, w, rb, info, j0, y, ldy);
}

template <Format F>
LOOM_AVX2 void tiles256(const ActRows& a, int64_t m, const uint8_t* w, size_t rb, int64_t j0,
                        int64_t j1, float* y, int64_t ldy) {
  const BlockInfo info = block_info(F);
  int64_t j = j0;
  for (; j + 4 <= j1; j += 4) rows256<F, 4>(a, m, w, rb, info, j, y, ldy);
  for (; j < j1; ++j) rows256<F, 1>(a, m, w, rb, info, j, y, ldy);
}

}  // namespace

#define LOOM_QUANT_DISPATCH(fn)                                  \
  switch (fmt) {                                                 \
    case Format::q4_0:                                           \
      return fn<Format::q4_0>(a, m, w, rb, j0, j1, y, ldy);      \
    case Format::q4_1:                                           \
      return fn<Format::q4_1>(a, m, w, rb, j0, j1, y, ldy);      \
    case Format::q8_0:                                           \
      return fn<Format::q8_0>(a, m, w, rb, j0, j1, y, ldy);      \
    case Format::affine_u4:                                      \
      return fn<Format::affine_u4>(a, m, w, rb, j0, j1, y, ldy); \
    case Format::affine_i8:                                      \
      return fn<Format::affine_i8>(a, m, w, rb, j0, j1, y, ldy); \
    default:                                                     \
      return;                                                    \
  }

void tiles_avx512(Format fmt, const ActRows& a, int64_t m, const uint8_t* w, size_t rb, int64_t j0,
                  int64_t j1, float* y, int64_t ldy) {
  LOOM_QUANT_DISPATCH(tiles512)
}

void tiles_avx2(Format fmt, const ActRows& a, int64_t m, const uint8_t* w, size_t rb, int64_t j0,
                int64_t j1, float* y, int64_t ldy){LOOM_QUANT_DISPATCH(tiles256)}

LOOM_AVX512 float dot_f32_avx512(const float* a, const float* b, int64_t k) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t t = 0;
  for (; t + 32 <= k; t += 32) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + t), _mm512_loadu_ps(b + t), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + t + 16), _mm512_loadu_ps(b + t + 16), acc1);
  }
  if (t + 16 <= k) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + t), _mm512_loadu_ps(b + t), acc0);
    t += 16;
  }
  if (t < k) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (k - t)) - 1);
    acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, a + t), _mm512_maskz_loadu_ps(mask, b + t),
                           acc1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

LOOM_AVX2 float dot_f32_avx2(const float* a, const float* b, int64_t k) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + 16 <= k; t += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + t), _mm256_loadu_ps(b + t), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + t + 8), _mm256_loadu_ps(b + t + 8), acc1);
  }
  const __m256 acc = _mm256_add_ps(acc0, acc1);
  const __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
  float s = _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)));
  for (; t < k; ++t) s += a[t] * b[t];
  return s;
}

}  // namespace loom::cpu::quant::detail
