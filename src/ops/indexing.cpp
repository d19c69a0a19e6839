// gather (numpy take along an axis), dynamic_slice, slice_update / write_slice.
#include "ops/infer_util.h"

namespace loom::ops {

// Start offsets come from a tensor (e.g. the decode position), so one executable serves every
// step; sizes are static. Out-of-range starts are a run-time error, never a silent clamp.
void check_starts(const InferContext& ctx, size_t i, int rank) {
  const TensorType& s = ctx.inputs[i];
  if (s.dtype != DType::i32 && s.dtype != DType::i64) ctx.fail("starts must be i32 or i64");
  if (s.shape.rank() != 1 || (s.shape[0] != kDynamic && s.shape[0] != rank))
    ctx.fail("starts must be a vector of ", rank, " offsets, got ", s.shape.to_string());
}

void check_slice_update(const InferContext& ctx, size_t base, size_t update, size_t starts,
                        const char* base_name, const char* update_name) {
  const TensorType &x = ctx.inputs[base], &u = ctx.inputs[update];
  // numpy's a[idx] = b: a float update of another float dtype is converted to the base's (rounded
  // to nearest, as cast does); anything else must match.
  if (u.dtype != x.dtype && !(is_floating(u.dtype) && is_floating(x.dtype)))
    ctx.fail(update_name, " (", dtype_name(u.dtype), ") and ", base_name, " (", dtype_name(x.dtype),
             ") have different dtypes: only a float ", update_name, " is converted to a float ",
             base_name, "'s dtype; cast one explicitly");
  if (u.shape.rank() != x.shape.rank())
    ctx.fail(update_name, " has rank ", u.shape.rank(), ", ", base_name, " has ", x.shape.rank());
  for (int i = 0; i < x.shape.rank(); ++i)
    if (u.shape[i] != kDynamic && x.shape[i] != kDynamic && u.shape[i] > x.shape[i])
      ctx.fail(update_name, " dim ", i, " (", u.shape[i], ") is larger than the ", base_name,
               "'s (", x.shape[i], ")");
  check_starts(ctx, starts, x.shape.rank());
}

}  // namespace loom::ops

namespace loom::ir {

using ops::check_slice_update;
using ops::check_starts;

void register_indexing_ops(OpRegistry& r) {
  r.mutable_info(op::gather).infer = [](const InferContext& ctx) {
    const TensorType& x = ctx.inputs[0];
    const TensorType& idx = ctx.inputs[1];
    if (idx.dtype != DType::i32 && idx.dtype != DType::i64) ctx.fail("indices must be i32 or i64");
    if (x.shape.rank() == 0) ctx.fail("cannot gather from a scalar");
    int axis =
        ops::normalize_axes(ctx, {ctx.attrs_as<GatherAttrs>().axis}, x.shape.rank(), false)[0];
    std::vector<int64_t> out(x.shape.dims().begin(), x.shape.dims().begin() + axis);
    out.insert(out.end(), idx.shape.dims().begin(), idx.shape.dims().end());
    out.insert(out.end(), x.shape.dims().begin() + axis + 1, x.shape.dims().end());
    return std::vector<TensorType>{{x.dtype, Shape(out)}};
  };

  r.mutable_info(op::dynamic_slice).infer = [](const InferContext& ctx) {
    const TensorType& x = ctx.inputs[0];
    const auto& sizes = ctx.attrs_as<DynamicSliceAttrs>().sizes;
    check_starts(ctx, 1, x.shape.rank());
    if (static_cast<int>(sizes.size()) != x.shape.rank())
      ctx.fail("sizes needs ", x.shape.rank(), " entries");
    for (int i = 0; i < x.shape.rank(); ++i) {
      int64_t s = sizes[static_cast<size_t>(i)];
      if (s < 0 || (x.shape[i] != kDynamic && s > x.shape[i]))
        ctx.fail("size ", s, " on axis ", i, " does not fit dim ", x.shape[i]);
    }
    return std::vector<TensorType>{{x.dtype, Shape(sizes)}};
  };
  auto update = [](const InferContext& ctx) {
    check_slice_update(ctx, 0, 1, 2, "base", "update");
    return std::vector<TensorType>{ctx.inputs[0]};
  };
  r.mutable_info(op::slice_update).infer = update;
  r.mutable_info(op::write_slice).infer = update;
}

}  // namespace loom::ir
