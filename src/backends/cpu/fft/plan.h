// backends/cpu/fft/plan.h — plans (factorisation, twiddles, Bluestein chirps), the plan cache and
// the executor of one contiguous complex transform. Internal to the FFT library.
#pragma once
#include <complex>
#include <cstdint>
#include <memory>
#include <vector>

#include "backends/cpu/fft/kernels.h"

namespace loom {
class ThreadPool;
}

namespace loom::cpu::fft {

using cf = std::complex<float>;

struct ComplexPlan {
  struct Stage {
    int p = 0;
    int64_t m = 0, s = 0;
    std::vector<float> tw_jr, tw_rj, trig;
    StageView view() const { return {p, m, s, tw_jr.data(), tw_rj.data(), trig.data()}; }
  };
  int64_t n = 0;
  bool inverse = false;
  std::vector<Stage> stages;  // empty for n == 1 and for Bluestein
  // Bluestein: X_k = c_k * sum_j (x_j c_j) conj(c_{k-j}), c_k = exp(-+i*pi*k^2/n), the
  // convolution done with FFTs of a 2^a 3^b 5^c length bn >= 2n-1.
  bool bluestein = false;
  int64_t bn = 0;
  std::vector<cf> chirp;   // c_k, k < n
  std::vector<cf> kernel;  // FFT_bn(conj chirp, wrapped) / bn
  std::shared_ptr<const ComplexPlan> sub_fwd, sub_inv;
};

// Real transforms of even length n go through a complex plan of length n/2 plus a pass with the
// twiddles tw[k] = exp(-2*pi*i*k/n), k <= n/4; odd lengths through a complex plan of length n.
struct RealPlan {
  int64_t n = 0;
  std::shared_ptr<const ComplexPlan> half;  // even n
  std::vector<cf> tw;
  std::shared_ptr<const ComplexPlan> full;  // odd n
};

std::shared_ptr<const ComplexPlan> complex_plan(int64_t n, bool inverse);
std::shared_ptr<const RealPlan> real_plan(int64_t n, bool inverse);

// The factors the Stockham passes use for n, in pass order; empty when n needs Bluestein.
std::vector<int> factorize(int64_t n);

// out = scale * DFT(in) for contiguous arrays; in must not alias out. With a pool, the passes
// of one large transform are split over threads.
void execute(const ComplexPlan& plan, const cf* in, cf* out, float scale, ThreadPool* pool);

StageFn active_stage_fn();

}  // namespace loom::cpu::fft
