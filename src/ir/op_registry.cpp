#include "ir/op_registry.h"

#include "loom/error.h"

namespace loom::ir {

const char* fusion_class_name(FusionClass c) {
  switch (c) {
    case FusionClass::source:
      return "source";
    case FusionClass::effect:
      return "effect";
    case FusionClass::elementwise:
      return "elementwise";
    case FusionClass::reduction:
      return "reduction";
    case FusionClass::normalization:
      return "normalization";
    case FusionClass::contraction:
      return "contraction";
    case FusionClass::view:
      return "view";
    case FusionClass::movement:
      return "movement";
    case FusionClass::creation:
      return "creation";
    case FusionClass::inplace:
      return "inplace";
    case FusionClass::fused:
      return "fused";
    case FusionClass::custom:
      return "custom";
    case FusionClass::call:
      return "call";
  }
  return "?";
}

void InferContext::throw_error(const std::string& msg) const {
  std::string s = "[" + info.name + "] (";
  for (size_t i = 0; i < inputs.size(); ++i) s += (i ? ", " : "") + inputs[i].to_string();
  s += "): " + msg;
  throw Error(s);
}

OpRegistry::OpRegistry() {
  // Generated rows: name, fusion class, arity, attribute struct — straight from ops.def.
#define LOOM_OP(op_name, fusion_class, op_arity, attrs_type)   \
  {                                                            \
    OpInfo i;                                                  \
    i.id = op::op_name;                                        \
    i.name = #op_name;                                         \
    i.fusion = FusionClass::fusion_class;                      \
    i.arity = op_arity;                                        \
    i.default_attrs = [] { return make_attrs(attrs_type{}); }; \
    ops_.push_back(std::move(i));                              \
  }
#include "ops/ops.def"
#undef LOOM_OP
  register_memory_ops(*this);
  register_elementwise_ops(*this);
  register_reduction_ops(*this);
  register_normalization_ops(*this);
  register_matmul_ops(*this);
  register_shape_ops(*this);
  register_indexing_ops(*this);
  register_attention_ops(*this);
  register_quantization_ops(*this);
  register_fft_ops(*this);
  register_call_ops(*this);
  register_conv_ops(*this);
  register_stitched_ops(*this);
  register_sampling_ops(*this);
  for (const auto& i : ops_)
    LOOM_CHECK(i.infer, "[registry] op '", i.name, "' has no type inference registered");
}

OpRegistry& OpRegistry::get() {
  static OpRegistry r;
  return r;
}

OpId OpRegistry::find(const std::string& name) const {
  std::lock_guard lock(mutex_);
  for (const auto& i : ops_)
    if (i.name == name) return i.id;
  fail("[registry] unknown op '", name, "'");
}

bool OpRegistry::contains(const std::string& name) const {
  std::lock_guard lock(mutex_);
  for (const auto& i : ops_)
    if (i.name == name) return true;
  return false;
}

OpId OpRegistry::add(OpInfo info) {
  std::lock_guard lock(mutex_);
  for (const auto& i : ops_)
    LOOM_CHECK(i.name != info.name, "[registry] op '", info.name, "' is already registered");
  LOOM_CHECK(info.infer, "[registry] op '", info.name, "' needs a type inference function");
  info.id = static_cast<OpId>(ops_.size());
  ops_.push_back(std::move(info));
  return ops_.back().id;
}

}  // namespace loom::ir
