// placeholder, constant, read, assign: the sources of values and the writes to state.
#include "ops/infer_util.h"

namespace loom::ir {

void register_memory_ops(OpRegistry& r) {
  r.mutable_info(op::placeholder).infer = [](const InferContext& ctx) {
    const auto& a = ctx.attrs_as<PlaceholderAttrs>();
    for (int64_t d : a.shape)
      if (d < kDynamic) ctx.fail("placeholder '", a.name, "' has invalid dim ", d);
    return std::vector<TensorType>{{a.dtype, Shape(a.shape)}};
  };
  r.mutable_info(op::constant).infer = [](const InferContext& ctx) {
    const auto& a = ctx.attrs_as<ConstantAttrs>();
    if (!a.value.defined()) ctx.fail("constant has no value");
    return std::vector<TensorType>{a.value.type()};
  };
  r.mutable_info(op::read).infer = [](const InferContext& ctx) {
    const auto& a = ctx.attrs_as<VariableRefAttrs>();
    return std::vector<TensorType>{{a.dtype, Shape(a.shape)}};
  };
  r.mutable_info(op::assign).infer = [](const InferContext& ctx) {
    const auto& a = ctx.attrs_as<VariableRefAttrs>();
    TensorType var{a.dtype, Shape(a.shape)};
    const TensorType& v = ctx.inputs[0];
    bool fits = v.dtype == var.dtype && v.shape.rank() == var.shape.rank();
    for (int i = 0; fits && i < v.shape.rank(); ++i)
      fits = v.shape[i] == kDynamic || v.shape[i] == var.shape[i];
    if (!fits)
      ctx.fail("variable '", a.variable, "' is ", var.to_string(), ", cannot assign ",
               v.to_string());
    return std::vector<TensorType>{};
  };
}

}  // namespace loom::ir
