// Reference matmul: plain triple loop per batch, double accumulation.
#include "backends/reference/ref_util.h"
#include "ops/matmul_shape.h"

namespace loom::backends::ref {

void register_matmul(KernelTable& t) {
  t.set(ir::op::matmul, [](const KernelContext& c) {
    const NDArray &a = c.inputs[0], &b = c.inputs[1], &out = c.outputs[0];
    const auto& at = c.attrs_as<MatmulAttrs>();
    auto s = ops::matmul_shape(a.type(), b.type(), at, nullptr);
    int ra = std::max(a.rank(), 2), rb = std::max(b.rank(), 2);
    Shape abatch(std::vector<int64_t>(a.shape().dims().begin(),
                                      a.shape().dims().end() - std::min(a.rank(), 2)));
    Shape bbatch(std::vector<int64_t>(b.shape().dims().begin(),
                                      b.shape().dims().end() - std::min(b.rank(), 2)));
    (void)ra;
    (void)rb;
    auto sa = broadcast_strides(abatch, s.batch), sb = broadcast_strides(bbatch, s.batch);
    int64_t a_mat = s.m * s.k, b_mat = s.k * s.n, o_mat = s.m * s.n;
    for_each_index(s.batch, [&](int64_t bi, const std::vector<int64_t>& idx) {
      int64_t ao = dot(idx, sa) * a_mat, bo = dot(idx, sb) * b_mat, oo = bi * o_mat;
      for (int64_t i = 0; i < s.m; ++i)
        for (int64_t j = 0; j < s.n; ++j) {
          double acc = 0;
          for (int64_t p = 0; p < s.k; ++p) {
            int64_t ai = at.transpose_a ? p * s.m + i : i * s.k + p;
            int64_t bj = at.transpose_b ? j * s.k + p : p * s.n + j;
            acc += load_element(a.dtype(), a.data(), ao + ai) *
                   load_element(b.dtype(), b.data(), bo + bj);
          }
          store_element(out.dtype(), out.data(), oo + i * s.n + j, acc);
        }
    });
  });
}

}  // namespace loom::backends::ref
