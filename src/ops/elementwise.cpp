// Elementwise ops: type rules. The math lives in elementwise_functors.h.
#include "ops/infer_util.h"

namespace loom::ir {
namespace {
using ops::broadcast_shapes;

enum class Rule { arithmetic, float_math, numeric_unary, compare, logical, logical_unary };

std::vector<TensorType> infer_rule(const InferContext& ctx, Rule rule) {
  const auto& in = ctx.inputs;
  auto numeric = [&](size_t i) {
    DType t = in[i].dtype;
    if (t == DType::boolean || is_packed(t) || is_complex(t))
      ctx.fail("input ", i, " has dtype ", dtype_name(t), ", which this op does not take");
  };
  switch (rule) {
    case Rule::arithmetic:
      ops::expect_same_dtype(ctx, 0, 1);
      numeric(0);
      return {{in[0].dtype, broadcast_shapes(ctx, in[0].shape, in[1].shape)}};
    case Rule::float_math:
      ops::expect_float(ctx, 0);
      return {in[0]};
    case Rule::numeric_unary:
      numeric(0);
      return {in[0]};
    case Rule::compare:
      ops::expect_same_dtype(ctx, 0, 1);
      return {{DType::boolean, broadcast_shapes(ctx, in[0].shape, in[1].shape)}};
    case Rule::logical:
      if (in[0].dtype != DType::boolean || in[1].dtype != DType::boolean)
        ctx.fail("inputs must be bool");
      return {{DType::boolean, broadcast_shapes(ctx, in[0].shape, in[1].shape)}};
    case Rule::logical_unary:
      if (in[0].dtype != DType::boolean) ctx.fail("input must be bool");
      return {in[0]};
  }
  return {};
}

void set(OpRegistry& r, OpId id, Rule rule) {
  r.mutable_info(id).infer = [rule](const InferContext& ctx) { return infer_rule(ctx, rule); };
}
}  // namespace

void register_elementwise_ops(OpRegistry& r) {
  for (OpId id : {op::add, op::sub, op::mul, op::div, op::pow, op::maximum, op::minimum, op::mod})
    set(r, id, Rule::arithmetic);
  for (OpId id : {op::reciprocal, op::exp, op::log, op::sqrt, op::rsqrt, op::sin, op::cos, op::tanh,
                  op::sigmoid, op::silu, op::gelu, op::erf, op::floor, op::ceil, op::round})
    set(r, id, Rule::float_math);
  for (OpId id : {op::neg, op::abs, op::sign, op::square, op::clamp})
    set(r, id, Rule::numeric_unary);
  for (OpId id :
       {op::equal, op::not_equal, op::less, op::less_equal, op::greater, op::greater_equal})
    set(r, id, Rule::compare);
  for (OpId id : {op::logical_and, op::logical_or, op::logical_xor}) set(r, id, Rule::logical);
  set(r, op::logical_not, Rule::logical_unary);

  r.mutable_info(op::where).infer = [](const InferContext& ctx) {
    if (ctx.inputs[0].dtype != DType::boolean) ctx.fail("condition must be bool");
    ops::expect_same_dtype(ctx, 1, 2);
    Shape s = broadcast_shapes(ctx, ctx.inputs[0].shape, ctx.inputs[1].shape);
    s = broadcast_shapes(ctx, s, ctx.inputs[2].shape);
    return std::vector<TensorType>{{ctx.inputs[1].dtype, s}};
  };
  r.mutable_info(op::cast).infer = [](const InferContext& ctx) {
    DType to = ctx.attrs_as<CastAttrs>().dtype;
    if (is_packed(to) || is_complex(to) || is_packed(ctx.inputs[0].dtype) ||
        is_complex(ctx.inputs[0].dtype))
      ctx.fail("cast between ", dtype_name(ctx.inputs[0].dtype), " and ", dtype_name(to),
               " is not supported (use quantize/dequantize for packed types)");
    return std::vector<TensorType>{{to, ctx.inputs[0].shape}};
  };
}

}  // namespace loom::ir
