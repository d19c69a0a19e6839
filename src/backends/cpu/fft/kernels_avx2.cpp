// backends/cpu/fft/kernels_avx2.cpp — the pass with AVX2 + FMA. Every function in this file is
// compiled for that target (the pragma is the function-level target attribute applied to the
// whole file), so the library builds without -march flags and fft.cpp calls in only after
// __builtin_cpu_supports says the CPU has it.
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include <cstring>

#include "backends/cpu/fft/kernels.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

namespace loom::cpu::fft::avx2 {

// The vector type first, then the templates that use it.
// clang-format off
#include "backends/cpu/fft/vec_avx2.inc"
#include "backends/cpu/fft/kernels_impl.inc"
// clang-format on

void run_stage(const StageView& st, const float* x, float* y, int64_t j0, int64_t j1, int64_t k0,
               int64_t k1, bool inverse, float scale) {
  run_dir<V4>(st, x, y, j0, j1, k0, k1, inverse, scale);
}

int64_t real_post(const float* z, float* x, const float* tw, int64_t h, float scale) {
  return real_post_v<V4>(z, x, tw, h, scale);
}
int64_t real_pre(const float* x, float* z, const float* tw, int64_t h, float scale) {
  return real_pre_v<V4>(x, z, tw, h, scale);
}

}  // namespace loom::cpu::fft::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
