// backends/cpu/fft/kernels_scalar.cpp — the portable pass: one complex at a time, no target flags.
#include <cstring>

#include "backends/cpu/fft/kernels.h"

namespace loom::cpu::fft::scalar {

#include "backends/cpu/fft/kernels_impl.inc"

void run_stage(const StageView& st, const float* x, float* y, int64_t j0, int64_t j1, int64_t k0,
               int64_t k1, bool inverse, float scale) {
  run_dir<V1>(st, x, y, j0, j1, k0, k1, inverse, scale);
}

int64_t real_post(const float*, float*, const float*, int64_t, float) { return 1; }
int64_t real_pre(const float*, float*, const float*, int64_t, float) { return 1; }

}  // namespace loom::cpu::fft::scalar
