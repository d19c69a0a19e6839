// softmax, log_softmax, layer_norm, rms_norm: row-wise reductions fused with elementwise math.
#include "ops/infer_util.h"

namespace loom::ir {

void register_normalization_ops(OpRegistry& r) {
  auto softmax = [](const InferContext& ctx) {
    ops::expect_float(ctx, 0);
    ops::normalize_axes(ctx, {ctx.attrs_as<AxisAttrs>().axis}, ctx.inputs[0].shape.rank(), false);
    return std::vector<TensorType>{ctx.inputs[0]};
  };
  r.mutable_info(op::softmax).infer = softmax;
  r.mutable_info(op::log_softmax).infer = softmax;

  auto norm = [](const InferContext& ctx) {
    size_t max_inputs = ctx.info.id == op::layer_norm ? 3 : 2;
    ops::expect_inputs(ctx, 1, max_inputs);
    ops::expect_float(ctx, 0);
    const TensorType& x = ctx.inputs[0];
    const auto& a = ctx.attrs_as<NormAttrs>();
    if (x.shape.rank() == 0) ctx.fail("needs an input of rank >= 1");
    int axis = ops::normalize_axes(ctx, {a.axis}, x.shape.rank(), false)[0];
    if (!(a.eps >= 0)) ctx.fail("eps must be >= 0, got ", a.eps);
    // gamma / beta: the normalised dims' shape (or broadcastable to it), any float dtype.
    for (size_t i = 1; i < ctx.inputs.size(); ++i) {
      const TensorType& p = ctx.inputs[i];
      ops::expect_float(ctx, i);
      int norm_rank = x.shape.rank() - axis;
      if (p.shape.rank() > norm_rank)
        ctx.fail("input ", i, " has rank ", p.shape.rank(), ", more than the ", norm_rank,
                 " normalised dims");
      for (int d = 0; d < p.shape.rank(); ++d) {
        int64_t pd = p.shape[d], xd = x.shape[x.shape.rank() - p.shape.rank() + d];
        if (pd != 1 && pd != kDynamic && xd != kDynamic && pd != xd)
          ctx.fail("input ", i, " ", p.shape.to_string(), " does not match the normalised dims of ",
                   x.shape.to_string());
      }
    }
    return std::vector<TensorType>{x};
  };
  r.mutable_info(op::layer_norm).infer = norm;
  r.mutable_info(op::rms_norm).infer = norm;
}

}  // namespace loom::ir
