// Per-ISA instantiations of kernel_body.inc. Each namespace defines the vector primitives with a
// function-level target attribute, so the library builds without -march flags and the right set
// is picked at run time (__builtin_cpu_supports) — one binary runs on any x86-64.
#include "backends/cpu/attention/kernels.h"

// GCC 12's AVX-512 headers build "undefined" vectors as `__m512 __Y = __Y;`, which trips
// -Wuninitialized in every caller once inlined (a known false positive).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace loom::cpu::attn {
namespace {

// exp(x) constants (Cephes expf): x = n ln2 + r, |r| <= ln2/2, e^r by a degree-7 polynomial.
constexpr float kExpLo = -87.33654f, kExpHi = 88.37626f;
constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f,
                kP3 = 4.1665795894e-2f, kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;

namespace scalar {
#define LOOM_T
using V = float;
constexpr int64_t kW = 1;
constexpr int kQkRows = 4, kPvRows = 4;
constexpr AttnIsa kIsa = AttnIsa::kScalar;
inline V vzero() { return 0.0f; }
inline V vset1(float x) { return x; }
inline V vload(const float* p) { return *p; }
inline V vload_tail(const float* p, int64_t) { return *p; }
inline V vload_f16(const uint16_t* p) { return f16_to_f32(*p); }
inline V vload_bf16(const uint16_t* p) { return bf16_to_f32(*p); }
inline void vstore(float* p, V x) { *p = x; }
inline V vfma(V a, V b, V c) { return a * b + c; }
inline V vmul(V a, V b) { return a * b; }
inline V vadd(V a, V b) { return a + b; }
inline V vsub(V a, V b) { return a - b; }
inline V vmax(V a, V b) { return a > b ? a : b; }
inline float vhmax(V a) { return a; }
inline float vhsum(V a) { return a; }
inline void vhsum4(V a, V b, V c, V d, float* out) {
  out[0] = a;
  out[1] = b;
  out[2] = c;
  out[3] = d;
}
inline V vexp(V x) { return x < kExpLo ? 0.0f : std::exp(x); }
#include "backends/cpu/attention/kernel_body.inc"
#undef LOOM_T
}  // namespace scalar

namespace avx2 {
#define LOOM_T __attribute__((target("avx2,fma,f16c")))
using V = __m256;
constexpr int64_t kW = 8;
// 16 ymm registers: 2 rows x 4 keys (+4 k, 1 q) and 2 rows x 4 vectors (+4 v, 1 p) fit.
constexpr int kQkRows = 2, kPvRows = 2;
constexpr AttnIsa kIsa = AttnIsa::kAvx2;
LOOM_T inline __m256i tail_mask(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
LOOM_T inline V vzero() { return _mm256_setzero_ps(); }
LOOM_T inline V vset1(float x) { return _mm256_set1_ps(x); }
LOOM_T inline V vload(const float* p) { return _mm256_loadu_ps(p); }
LOOM_T inline V vload_tail(const float* p, int64_t n) {
  return _mm256_maskload_ps(p, tail_mask(n));
}
LOOM_T inline V vload_f16(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
LOOM_T inline V vload_bf16(const uint16_t* p) {
  __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
LOOM_T inline void vstore(float* p, V x) { _mm256_storeu_ps(p, x); }
LOOM_T inline V vfma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
LOOM_T inline V vmul(V a, V b) { return _mm256_mul_ps(a, b); }
LOOM_T inline V vadd(V a, V b) { return _mm256_add_ps(a, b); }
LOOM_T inline V vsub(V a, V b) { return _mm256_sub_ps(a, b); }
LOOM_T inline V vmax(V a, V b) { return _mm256_max_ps(a, b); }
LOOM_T inline float vhmax(V a) {
  __m128 x = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  x = _mm_max_ps(x, _mm_movehl_ps(x, x));
  x = _mm_max_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}
LOOM_T inline float vhsum(V a) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}
// Four horizontal sums at once (a transposing hadd tree): ~3 ops per sum instead of ~6.
LOOM_T inline void vhsum4(V a, V b, V c, V d, float* out) {
  V t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)));
}
LOOM_T inline V vexp(V x) {
  const V under = _mm256_cmp_ps(x, _mm256_set1_ps(kExpLo), _CMP_GE_OQ);  // -inf -> exactly 0
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(kExpLo)), _mm256_set1_ps(kExpHi));
  V n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  V r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  V p = _mm256_set1_ps(kP0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP5));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), under);
}
#include "backends/cpu/attention/kernel_body.inc"
#undef LOOM_T
}  // namespace avx2

namespace avx512 {
#define LOOM_T __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,f16c")))
using V = __m512;
constexpr int64_t kW = 16;
// 32 zmm registers: 4 rows x 4 keys (16 accumulators + 4 k + 1 q) and 4 rows x 4 vectors.
constexpr int kQkRows = 4, kPvRows = 4;
constexpr AttnIsa kIsa = AttnIsa::kAvx512;
LOOM_T inline V vzero() { return _mm512_setzero_ps(); }
LOOM_T inline V vset1(float x) { return _mm512_set1_ps(x); }
LOOM_T inline V vload(const float* p) { return _mm512_loadu_ps(p); }
LOOM_T inline V vload_tail(const float* p, int64_t n) {
  return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1u), p);
}
LOOM_T inline V vload_f16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
LOOM_T inline V vload_bf16(const uint16_t* p) {
  __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
LOOM_T inline void vstore(float* p, V x) { _mm512_storeu_ps(p, x); }
LOOM_T inline V vfma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
LOOM_T inline V vmul(V a, V b) { return _mm512_mul_ps(a, b); }
LOOM_T inline V vadd(V a, V b) { return _mm512_add_ps(a, b); }
LOOM_T inline V vsub(V a, V b) { return _mm512_sub_ps(a, b); }
LOOM_T inline V vmax(V a, V b) { return _mm512_max_ps(a, b); }
LOOM_T inline float vhmax(V a) { return _mm512_reduce_max_ps(a); }
LOOM_T inline float vhsum(V a) { return _mm512_reduce_add_ps(a); }
LOOM_T inline __m256 fold(V a) {
  return _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
}
LOOM_T inline void vhsum4(V a, V b, V c, V d, float* out) {
  __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(fold(a), fold(b)), _mm256_hadd_ps(fold(c), fold(d)));
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)));
}
LOOM_T inline V vexp(V x) {
  const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(kExpLo), _CMP_GE_OQ);
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(kExpLo)), _mm512_set1_ps(kExpHi));
  V n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  V r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  V p = _mm512_set1_ps(kP0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP5));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  // scalef computes p * 2^n without building the exponent bits by hand.
  return _mm512_maskz_mov_ps(keep, _mm512_scalef_ps(p, n));
}
#include "backends/cpu/attention/kernel_body.inc"
#undef LOOM_T
}  // namespace avx512

bool has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
bool has_avx512() {
  return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

}  // namespace

const KernelSet& kernels(AttnIsa isa) {
  switch (resolve_isa(isa)) {
    case AttnIsa::kAvx512:
      return avx512::kSet;
    case AttnIsa::kAvx2:
      return avx2::kSet;
    default:
      return scalar::kSet;
  }
}

}  // namespace loom::cpu::attn

namespace loom::cpu {

AttnIsa resolve_isa(AttnIsa isa) {
  // F16C ships with every AVX2 CPU (Haswell, Zen), so it is not probed separately.
  static const AttnIsa best = attn::has_avx512() ? AttnIsa::kAvx512
                              : attn::has_avx2() ? AttnIsa::kAvx2
                                                 : AttnIsa::kScalar;
  if (isa == AttnIsa::kAuto) return best;
  return static_cast<int>(isa) <= static_cast<int>(best) ? isa : best;
}

const char* isa_name(AttnIsa isa) {
  switch (isa) {
    case AttnIsa::kAvx512:
      return "avx512";
    case AttnIsa::kAvx2:
      return "avx2";
    case AttnIsa::kScalar:
      return "scalar";
    default:
      return "auto";
  }
}

}  // namespace loom::cpu
