// softmax, log_softmax, layer_norm, rms_norm, add_rms_norm: row-wise reductions fused with
// elementwise math.
#include "ops/infer_util.h"

namespace loom::ops {

void check_norm(const InferContext& ctx, const TensorType& x, int64_t axis_attr, double eps,
                size_t first_param, size_t end_param) {
  if (x.shape.rank() == 0) ctx.fail("needs an input of rank >= 1");
  int axis = normalize_axes(ctx, {axis_attr}, x.shape.rank(), false)[0];
  if (!(eps >= 0)) ctx.fail("eps must be >= 0, got ", eps);
  for (size_t i = first_param; i < end_param; ++i) {
    const TensorType& p = ctx.inputs[i];
    expect_float(ctx, i);
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
}

TensorType check_add_rms_norm(const InferContext& ctx, size_t end_param, int64_t axis, double eps) {
  expect_same_dtype(ctx, 0, 1);
  expect_float(ctx, 0);
  TensorType sum{ctx.inputs[0].dtype,
                 broadcast_shapes(ctx, ctx.inputs[0].shape, ctx.inputs[1].shape)};
  check_norm(ctx, sum, axis, eps, 2, end_param);
  return sum;
}

}  // namespace loom::ops

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
    ops::expect_inputs(ctx, 1, ctx.info.id == op::layer_norm ? 3 : 2);
    ops::expect_float(ctx, 0);
    const auto& a = ctx.attrs_as<NormAttrs>();
    ops::check_norm(ctx, ctx.inputs[0], a.axis, a.eps, 1, ctx.inputs.size());
    return std::vector<TensorType>{ctx.inputs[0]};
  };
  r.mutable_info(op::layer_norm).infer = norm;
  r.mutable_info(op::rms_norm).infer = norm;

  // add_rms_norm(a, b[, gamma]): `add`'s rules for a and b (same dtype, numpy broadcasting: a graph
  // whose dynamic dims broadcast at run time still means what the unfused graph meant), then
  // rms_norm's rules on the sum. Outputs: the sum and its norm, both of the sum's type.
  r.mutable_info(op::add_rms_norm).infer = [](const InferContext& ctx) {
    ops::expect_inputs(ctx, 2, 3);
    const auto& a = ctx.attrs_as<NormAttrs>();
    TensorType sum = ops::check_add_rms_norm(ctx, ctx.inputs.size(), a.axis, a.eps);
    return std::vector<TensorType>{sum, sum};
  };
}

}  // namespace loom::ir
