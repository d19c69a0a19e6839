// Reductions: sum mean max min prod over axes; argmax / argmin along one axis.
#include "ops/infer_util.h"

namespace loom::ir {

void register_reduction_ops(OpRegistry& r) {
  auto reduce = [](const InferContext& ctx) {
    const auto& a = ctx.attrs_as<ReduceAttrs>();
    const TensorType& x = ctx.inputs[0];
    if (x.dtype == DType::boolean || is_packed(x.dtype) || is_complex(x.dtype))
      ctx.fail("cannot reduce dtype ", dtype_name(x.dtype));
    if (ctx.info.id == op::reduce_mean && !is_floating(x.dtype))
      ctx.fail("mean needs a float input");
    auto axes = ops::normalize_axes(ctx, a.axes, x.shape.rank(), true);
    std::vector<int64_t> out;
    for (int i = 0; i < x.shape.rank(); ++i) {
      bool reduced = std::find(axes.begin(), axes.end(), i) != axes.end();
      if (!reduced)
        out.push_back(x.shape[i]);
      else if (a.keepdims)
        out.push_back(1);
    }
    return std::vector<TensorType>{{x.dtype, Shape(out)}};
  };
  for (OpId id : {op::reduce_sum, op::reduce_mean, op::reduce_max, op::reduce_min, op::reduce_prod})
    r.mutable_info(id).infer = reduce;

  auto arg = [](const InferContext& ctx) {
    const auto& a = ctx.attrs_as<ArgReduceAttrs>();
    const TensorType& x = ctx.inputs[0];
    if (x.dtype == DType::boolean || is_packed(x.dtype) || is_complex(x.dtype))
      ctx.fail("cannot reduce dtype ", dtype_name(x.dtype));
    if (x.shape.rank() == 0) ctx.fail("needs an input of rank >= 1");
    int axis = ops::normalize_axes(ctx, {a.axis}, x.shape.rank(), false)[0];
    if (x.shape[axis] == 0) ctx.fail("axis ", a.axis, " is empty");
    std::vector<int64_t> out;
    for (int i = 0; i < x.shape.rank(); ++i) {
      if (i != axis)
        out.push_back(x.shape[i]);
      else if (a.keepdims)
        out.push_back(1);
    }
    return std::vector<TensorType>{{DType::i64, Shape(out)}};
  };
  r.mutable_info(op::argmax).infer = arg;
  r.mutable_info(op::argmin).infer = arg;
}

}  // namespace loom::ir
