// backends/cpu/fft/kernels.h — one Stockham pass, compiled once per instruction set.
#pragma once
#include <cstdint>

namespace loom::cpu::fft {

// Radix-p decimation-in-frequency Stockham pass for a transform of length n = p * m * s:
//   y[k + s*(p*j + r)] = w^(r*j) * sum_q x[k + s*(j + q*m)] * exp(-+2*pi*i*q*r/p),
//   w = exp(-+2*pi*i/(p*m)), for j in [0, m), k in [0, s).
// Pointers are interleaved complex floats. tw_jr holds w^(r*j) as [j][r-1] (broadcast when the
// inner loop runs over k), tw_rj as [r-1][j] (vector loads when the inner loop runs over j, in the
// first pass where s == 1). trig holds cos/sin(2*pi*t/p) for t < p for the odd radices.
struct StageView {
  int p;
  int64_t m, s;
  const float* tw_jr;
  const float* tw_rj;
  const float* trig;
};

// Runs the pass for j in [j0, j1) and k in [k0, k1); scale != 1 multiplies the outputs (used on
// the last pass so scaling costs no extra sweep).
using StageFn = void (*)(const StageView& st, const float* x, float* y, int64_t j0, int64_t j1,
                         int64_t k0, int64_t k1, bool inverse, float scale);

// The O(n) passes of the even-length real transforms, vectorised: pairs (k, h-k) for k in
// [1, kv); they return kv and leave the rest (middle, ends) to scalar code in fft.cpp.
// real_post: x[k] = X_k from the length-h transform z of the packed reals (may be in place).
// real_pre:  z[k] = the packed spectrum for the inverse from the half spectrum x (out of place).
using RealFn = int64_t (*)(const float* in, float* out, const float* tw, int64_t h, float scale);

constexpr int kMaxGenericRadix = 61;  // larger prime factors go through Bluestein

namespace scalar {
void run_stage(const StageView&, const float*, float*, int64_t, int64_t, int64_t, int64_t, bool,
               float);
int64_t real_post(const float*, float*, const float*, int64_t, float);
int64_t real_pre(const float*, float*, const float*, int64_t, float);
}  // namespace scalar
#if defined(__x86_64__) || defined(__i386__)
namespace avx2 {
void run_stage(const StageView&, const float*, float*, int64_t, int64_t, int64_t, int64_t, bool,
               float);
int64_t real_post(const float*, float*, const float*, int64_t, float);
int64_t real_pre(const float*, float*, const float*, int64_t, float);
}  // namespace avx2
namespace avx512 {
void run_stage(const StageView&, const float*, float*, int64_t, int64_t, int64_t, int64_t, bool,
               float);
int64_t real_post(const float*, float*, const float*, int64_t, float);
int64_t real_pre(const float*, float*, const float*, int64_t, float);
}  // namespace avx512
#endif

}  // namespace loom::cpu::fft
