// conv, max_pool, avg_pool, global_max_pool, global_avg_pool: NC... layout, 1 or 2 spatial dims,
// ONNX semantics (geometry in ops/conv_shape.h, shared with the kernels).
#include "ops/conv_shape.h"
#include "ops/infer_util.h"

namespace loom::ir {
namespace {

void expect_nc(const InferContext& ctx, const TensorType& x) {
  if (x.shape.rank() != 3 && x.shape.rank() != 4)
    ctx.fail("input must be [B, C, W] or [B, C, H, W], got rank ", x.shape.rank());
}

// [B, C or O, out...] from the window's output dims (1-D lives in the width).
Shape nc_out(const Shape& x, int64_t channels, const ops::Window2d& g) {
  std::vector<int64_t> out{x[0], channels};
  if (x.rank() == 4) out.push_back(g.oh);
  out.push_back(g.ow);
  return Shape(out);
}

}  // namespace

void register_conv_ops(OpRegistry& r) {
  r.mutable_info(op::conv).infer = [](const InferContext& ctx) {
    ops::expect_inputs(ctx, 2, 3);
    ops::expect_float(ctx, 0);
    ops::expect_same_dtype(ctx, 0, 1);
    if (ctx.inputs.size() == 3) ops::expect_same_dtype(ctx, 0, 2);
    const TensorType &x = ctx.inputs[0], &w = ctx.inputs[1];
    const auto& a = ctx.attrs_as<ConvAttrs>();
    expect_nc(ctx, x);
    if (w.shape.rank() != x.shape.rank())
      ctx.fail("weight must be [O, C / groups, k...] of the input's rank ", x.shape.rank(),
               ", got ", w.shape.to_string());
    if (a.groups < 1) ctx.fail("groups must be >= 1, got ", a.groups);
    int64_t c = x.shape[1], o = w.shape[0], cg = w.shape[1];
    if (c != kDynamic && c % a.groups != 0)
      ctx.fail("groups ", a.groups, " does not divide the ", c, " input channels");
    if (o != kDynamic && o % a.groups != 0)
      ctx.fail("groups ", a.groups, " does not divide the ", o, " output channels");
    if (c != kDynamic && cg != kDynamic && cg * a.groups != c)
      ctx.fail("channel mismatch: input has ", c, " channels, weight expects ", cg, " x ", a.groups,
               " groups = ", cg * a.groups);
    if (ctx.inputs.size() == 3) {
      const Shape& b = ctx.inputs[2].shape;
      if (b.rank() != 1 || (b[0] != kDynamic && o != kDynamic && b[0] != o))
        ctx.fail("bias must be [", o, "], got ", b.to_string());
    }
    auto g =
        ops::window_2d(ops::spatial_dims(x.shape), ops::spatial_dims(w.shape), a.strides, a.pads,
                       a.dilations, false, [&](const std::string& m) -> void { ctx.fail(m); });
    return std::vector<TensorType>{{x.dtype, nc_out(x.shape, o, g)}};
  };

  auto pool = [](const InferContext& ctx) {
    ops::expect_float(ctx, 0);
    const TensorType& x = ctx.inputs[0];
    const auto& a = ctx.attrs_as<PoolAttrs>();
    expect_nc(ctx, x);
    auto g = ops::window_2d(ops::spatial_dims(x.shape), a.kernel, a.strides, a.pads, a.dilations,
                            a.ceil_mode, [&](const std::string& m) -> void { ctx.fail(m); });
    // A window made only of padding would have no input to reduce.
    if (g.ph >= (g.kh - 1) * g.dh + 1 || g.phe >= (g.kh - 1) * g.dh + 1 ||
        g.pw >= (g.kw - 1) * g.dw + 1 || g.pwe >= (g.kw - 1) * g.dw + 1)
      ctx.fail("pads must be smaller than the kernel extent");
    return std::vector<TensorType>{{x.dtype, nc_out(x.shape, x.shape[1], g)}};
  };
  r.mutable_info(op::max_pool).infer = pool;
  r.mutable_info(op::avg_pool).infer = pool;

  auto global = [](const InferContext& ctx) {
    ops::expect_float(ctx, 0);
    const TensorType& x = ctx.inputs[0];
    if (x.shape.rank() < 3) ctx.fail("input must be [B, C, spatial...], got rank ", x.shape.rank());
    std::vector<int64_t> out = x.shape.dims();
    for (size_t i = 2; i < out.size(); ++i) out[i] = 1;
    return std::vector<TensorType>{{x.dtype, Shape(out)}};
  };
  r.mutable_info(op::global_max_pool).infer = global;
  r.mutable_info(op::global_avg_pool).infer = global;
}

}  // namespace loom::ir
