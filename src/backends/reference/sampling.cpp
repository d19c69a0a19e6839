// Reference `sample`: the definition (loom/ops.h, ops/sampling.h) step by step in double.
#include "ops/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "backends/reference/ref_util.h"

namespace loom::backends::ref {
namespace {

void sample(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  const auto& a = c.attrs_as<SampleAttrs>();
  const int64_t n = x.shape()[x.rank() - 1], rows = out.numel();
  const auto seed = static_cast<uint64_t>(c.inputs[1].data_as<int64_t>()[0]);
  std::vector<double> v(static_cast<size_t>(n));
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < n; ++j) {
      double e = load_element(x.dtype(), x.data(), r * n + j);
      v[static_cast<size_t>(j)] = std::isnan(e) ? -INFINITY : e;
    }
    // Descending logits, ties by lower index; the first k are the candidates.
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t p, int64_t q) {
      return v[static_cast<size_t>(p)] > v[static_cast<size_t>(q)];
    });
    auto k = static_cast<size_t>(sampling::top_k_count(a.top_k, n));
    double mx = v[static_cast<size_t>(order[0])];
    int64_t pick = order[0];
    if (std::isfinite(mx)) {
      std::vector<double> cum(k);
      double s = 0;
      for (size_t i = 0; i < k; ++i)
        cum[i] = s += std::exp((v[static_cast<size_t>(order[i])] - mx) / a.temperature);
      size_t m = k;
      if (a.top_p < 1)
        for (size_t i = 0; i < k; ++i)
          if (cum[i] >= a.top_p * s) {
            m = i + 1;
            break;
          }
      double target = sampling::uniform(seed, static_cast<uint64_t>(r)) * cum[m - 1];
      size_t i = 0;
      while (i + 1 < m && !(cum[i] > target)) ++i;
      pick = order[i];
    }
    out.data_as<int32_t>()[r] = static_cast<int32_t>(pick);
  }
}

}  // namespace

void register_sampling(KernelTable& t) { t.set(ir::op::sample, sample); }

}  // namespace loom::backends::ref
