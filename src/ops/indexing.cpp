// gather (numpy take along an axis).
#include "ops/infer_util.h"

namespace loom::ir {

void register_indexing_ops(OpRegistry& r) {
  r.mutable_info(op::gather).infer = [](const InferContext& ctx) {
    const TensorType& x = ctx.inputs[0];
    const TensorType& idx = ctx.inputs[1];
    if (idx.dtype != DType::i32 && idx.dtype != DType::i64) ctx.fail("indices must be i32 or i64");
    if (x.shape.rank() == 0) ctx.fail("cannot gather from a scalar");
    int axis = ops::normalize_axes(ctx, {ctx.attrs_as<GatherAttrs>().axis}, x.shape.rank(), false)[0];
    std::vector<int64_t> out(x.shape.dims().begin(), x.shape.dims().begin() + axis);
    out.insert(out.end(), idx.shape.dims().begin(), idx.shape.dims().end());
    out.insert(out.end(), x.shape.dims().begin() + axis + 1, x.shape.dims().end());
    return std::vector<TensorType>{{x.dtype, Shape(out)}};
  };
}

}  // namespace loom::ir
