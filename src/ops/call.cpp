// call(symbol, inputs, output_types): runs a separately compiled executable (MPSGraph's
// callSymbolName:inputTensors:outputTypes:). Type inference only returns the declared types: the
// callee is not known while building (it is bound when the caller is compiled, or later), so the
// runtime resolves dynamic output dims per run by asking the bound executable
// (ExecutableImpl::output_types). The runtime runs call nodes itself; there are no kernels.
#include "ops/call.h"

#include <sstream>

#include "ops/infer_util.h"

namespace loom::ops {

std::vector<TensorType> call_output_types(const CallAttrs& a) {
  std::vector<TensorType> types;
  std::vector<std::string> names;
  std::stringstream ss(a.output_dtypes);
  for (std::string item; std::getline(ss, item, ',');) names.push_back(item);
  LOOM_CHECK(names.size() == a.output_ranks.size(), "[call] '", a.symbol, "': ", names.size(),
             " output dtypes but ", a.output_ranks.size(), " output ranks");
  size_t at = 0;
  for (size_t k = 0; k < names.size(); ++k) {
    int64_t r = a.output_ranks[k];
    LOOM_CHECK(r >= 0 && at + static_cast<size_t>(r) <= a.output_dims.size(), "[call] '", a.symbol,
               "': output ", k, " has an invalid rank ", r);
    std::vector<int64_t> dims(
        a.output_dims.begin() + static_cast<long>(at),
        a.output_dims.begin() + static_cast<long>(at + static_cast<size_t>(r)));
    at += static_cast<size_t>(r);
    for (int64_t d : dims)
      LOOM_CHECK(d >= kDynamic, "[call] '", a.symbol, "': output ", k, " has an invalid dim ", d);
    types.push_back({dtype_from_name(names[k]), Shape(dims)});
  }
  LOOM_CHECK(at == a.output_dims.size(), "[call] '", a.symbol, "': ", a.output_dims.size() - at,
             " output dims left over");
  return types;
}

void set_call_output_types(CallAttrs& a, const std::vector<TensorType>& types) {
  a.output_dtypes.clear();
  a.output_ranks.clear();
  a.output_dims.clear();
  for (size_t k = 0; k < types.size(); ++k) {
    a.output_dtypes += (k ? "," : "") + std::string(dtype_name(types[k].dtype));
    a.output_ranks.push_back(types[k].shape.rank());
    for (int64_t d : types[k].shape) a.output_dims.push_back(d);
  }
}

bool types_compatible(const TensorType& want, const TensorType& got) {
  if (want.dtype != got.dtype || want.shape.rank() != got.shape.rank()) return false;
  for (int d = 0; d < want.shape.rank(); ++d)
    if (want.shape[d] != kDynamic && got.shape[d] != kDynamic && want.shape[d] != got.shape[d])
      return false;
  return true;
}

}  // namespace loom::ops

namespace loom::ir {

void register_call_ops(OpRegistry& r) {
  r.mutable_info(op::call).infer = [](const InferContext& ctx) {
    const auto& a = ctx.attrs_as<CallAttrs>();
    if (a.symbol.empty()) ctx.fail("the call needs a symbol");
    std::vector<TensorType> out;
    try {
      out = ops::call_output_types(a);
    } catch (const Error& e) {
      ctx.fail(e.what());
    }
    if (out.empty()) ctx.fail("call '", a.symbol, "' declares no outputs");
    if (a.optional) {
      // Unbound optional calls return zeros whose dynamic dims come from input 0.
      for (size_t k = 0; k < out.size(); ++k) {
        if (out[k].shape.is_static()) continue;
        if (ctx.inputs.empty() || ctx.inputs[0].shape.rank() != out[k].shape.rank())
          ctx.fail("optional call '", a.symbol, "': output ", k, " ", out[k].to_string(),
                   " has dynamic dims, so input 0 must have its rank (they are taken from it "
                   "while unbound)");
      }
    }
    return out;
  };
}

}  // namespace loom::ir
