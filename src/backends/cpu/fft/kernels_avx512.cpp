// backends/cpu/fft/kernels_avx512.cpp — the pass with AVX-512: eight complex floats per vector
// where a pass has at least eight contiguous columns (s >= 8), the AVX2 form elsewhere (the first
// pass, whose transposed store is cheap at four lanes). Compiled for the target by the pragma, as
// in kernels_avx2.cpp.
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include <cstring>

#include "backends/cpu/fft/kernels.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx2,fma"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx2,fma")
#endif

namespace loom::cpu::fft::avx512 {

#include "backends/cpu/fft/vec_avx2.inc"

struct V8 {
  using T = __m512;
  static constexpr int W = 8;
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, T a) { _mm512_storeu_ps(p, a); }
  static T bcast(const float* p) {
    double d;
    std::memcpy(&d, p, sizeof d);
    return _mm512_castpd_ps(_mm512_set1_pd(d));
  }
  static T cmul(T a, T w) {
    T wr = _mm512_moveldup_ps(w), wi = _mm512_movehdup_ps(w);
    return _mm512_fmaddsub_ps(a, wr, _mm512_mul_ps(_mm512_permute_ps(a, 0xB1), wi));
  }
  static T mul_ni(T a) {  // (im, -re)
    const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi64(int64_t{1} << 63));
    return _mm512_xor_ps(_mm512_permute_ps(a, 0xB1), sign);
  }
  static T mul_pi(T a) {  // (-im, re)
    const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi64(int64_t{1} << 31));
    return _mm512_xor_ps(_mm512_permute_ps(a, 0xB1), sign);
  }
  static T reverse(T a) {
    return _mm512_castpd_ps(
        _mm512_permutexvar_pd(_mm512_setr_epi64(7, 6, 5, 4, 3, 2, 1, 0), _mm512_castps_pd(a)));
  }
  static T conj(T a) {
    return _mm512_xor_ps(a, _mm512_castsi512_ps(_mm512_set1_epi64(int64_t{1} << 63)));
  }
  template <int P>
  static void store_transposed(float* y, const T* a, int p) {
    store_transposed_generic<V8, P>(y, a, p);
  }
};

#include "backends/cpu/fft/kernels_impl.inc"

void run_stage(const StageView& st, const float* x, float* y, int64_t j0, int64_t j1, int64_t k0,
               int64_t k1, bool inverse, float scale) {
  if (st.s >= 8)
    run_dir<V8>(st, x, y, j0, j1, k0, k1, inverse, scale);
  else
    run_dir<V4>(st, x, y, j0, j1, k0, k1, inverse, scale);
}

int64_t real_post(const float* z, float* x, const float* tw, int64_t h, float scale) {
  return real_post_v<V8>(z, x, tw, h, scale);
}
int64_t real_pre(const float* x, float* z, const float* tw, int64_t h, float scale) {
  return real_pre_v<V8>(x, z, tw, h, scale);
}

}  // namespace loom::cpu::fft::avx512

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
