// CPU `sample`: rows in parallel chunks, each through sampling::sample_row (selection on the f32
// logits: nth_element for top_k, then a sort of the k candidates, so top_k = 0 or >= V sorts the
// whole row; probabilities and cumulative sums in double, as the reference).
#include "ops/sampling.h"

#include "backends/cpu/cpu_util.h"

namespace loom::backends::cpu {
namespace {

void sample(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  const auto& a = c.attrs_as<SampleAttrs>();
  const int64_t n = x.shape()[x.rank() - 1], rows = out.numel();
  const auto seed = static_cast<uint64_t>(c.inputs[1].data_as<int64_t>()[0]);
  parallel_for(c.pool, rows, 1, [&](int64_t b, int64_t e) {
    std::vector<float> v(static_cast<size_t>(n));
    sampling::RowScratch scratch;
    for (int64_t r = b; r < e; ++r) {
      load_run<float>(x.dtype(), x.data(), r * n, 1, n, v.data());
      double u = sampling::uniform(seed, static_cast<uint64_t>(r));
      out.data_as<int32_t>()[r] =
          static_cast<int32_t>(sampling::sample_row(v.data(), n, a, u, scratch));
    }
  });
}

}  // namespace

void register_sampling(KernelTable& t) { t.set(ir::op::sample, sample); }

}  // namespace loom::backends::cpu
