// The `sample` op's definition, shared by the backends and the Llama host sampler: the per-row
// uniform draw and the f32 row sampler of the CPU backend (loom/ops.h states the semantics; the
// reference backend follows the same steps in double, the CUDA kernel in f32 on the device).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "loom/attrs.h"

namespace loom::sampling {

inline constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

// Vigna's splitmix64 finaliser (the whole generator is one call: counter-based, no state).
constexpr uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + kGolden;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The uniform in [0, 1) of row `row` (53 random bits, exact in double). constexpr, so the CUDA
// kernel calls the same code (--expt-relaxed-constexpr).
constexpr double uniform(uint64_t seed, uint64_t row) {
  return static_cast<double>(splitmix64(seed ^ (row * kGolden)) >> 11) * 0x1.0p-53;
}

// Logits as ordered: NaN counts as -inf and -0 as +0 (equal logits tie by index).
inline float canonical(float v) { return std::isnan(v) ? -INFINITY : (v == 0 ? 0.0f : v); }

// Number of candidates kept by top_k for a row of n logits.
inline int64_t top_k_count(int64_t top_k, int64_t n) { return top_k <= 0 || top_k > n ? n : top_k; }

// Scratch of sample_row (reused across rows).
struct RowScratch {
  std::vector<std::pair<float, int32_t>> cand;
  std::vector<double> cum;
};

// One row of n logits -> the picked index, as the CPU backend computes it: the top-k selection on
// the f32 logits (exact), the probabilities and their cumulative sums in double. Double matters:
// over a 49152-token vocabulary an f32 running sum drifts by more than a token's bucket, and the
// backends would pick different tokens for the same u; in double they agree unless u falls within
// ~1e-15 of a boundary. The reference backend computes the same formulas; the CUDA kernel too.
inline int64_t sample_row(const float* x, int64_t n, const SampleAttrs& a, double u,
                          RowScratch& s) {
  auto& cand = s.cand;
  cand.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    cand[static_cast<size_t>(i)] = {canonical(x[i]), static_cast<int32_t>(i)};
  auto before = [](const std::pair<float, int32_t>& p, const std::pair<float, int32_t>& q) {
    return p.first > q.first || (p.first == q.first && p.second < q.second);
  };
  auto k = static_cast<size_t>(top_k_count(a.top_k, n));
  auto mid = cand.begin() + static_cast<std::ptrdiff_t>(k);
  if (k < cand.size()) std::nth_element(cand.begin(), mid, cand.end(), before);
  std::sort(cand.begin(), mid, before);
  const double mx = cand[0].first;
  if (!std::isfinite(mx)) return cand[0].second;
  auto& cum = s.cum;
  cum.resize(k);
  double c = 0;
  for (size_t i = 0; i < k; ++i) cum[i] = c += std::exp((cand[i].first - mx) / a.temperature);
  size_t m = k;
  if (a.top_p < 1)
    for (size_t i = 0; i < k; ++i)
      if (cum[i] >= a.top_p * c) {
        m = i + 1;
        break;
      }
  const double target = u * cum[m - 1];
  for (size_t i = 0; i < m; ++i)
    if (cum[i] > target) return cand[i].second;
  return cand[m - 1].second;
}

}  // namespace loom::sampling
