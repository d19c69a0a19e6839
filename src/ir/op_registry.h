// The op registry: one OpInfo per op — generated rows for built-ins (ops.def), plus ops that
// users register at run time through loom/custom_op.h.
#pragma once
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "loom/kernel.h"

namespace loom::ir {

enum class FusionClass {
  source,
  effect,
  elementwise,
  reduction,
  normalization,
  contraction,
  view,
  movement,
  creation,
  inplace,
  fused,
  custom,
  call  // runs another executable (src/ops/call.cpp): never folded, merged or inlined
};
const char* fusion_class_name(FusionClass c);

struct OpInfo;

struct InferContext {
  const OpInfo& info;
  const Attrs& attrs;
  std::span<const TensorType> inputs;
  // Values of inputs known now (constants), else null; empty span when none are known.
  std::span<const NDArray* const> values;

  template <class T>
  const T& attrs_as() const {
    return loom::attrs_as<T>(attrs);
  }
  const NDArray* value(size_t i) const { return i < values.size() ? values[i] : nullptr; }
  // Throws "[op] (f32[2,3], f32[4]): message".
  template <class... Args>
  [[noreturn]] void fail(const Args&... args) const {
    throw_error(detail::concat(args...));
  }
  [[noreturn]] void throw_error(const std::string& msg) const;
};

using InferFn = std::function<std::vector<TensorType>(const InferContext&)>;

struct OpInfo {
  OpId id = 0;
  std::string name;
  FusionClass fusion = FusionClass::custom;
  int arity = 0;                            // -1: variadic
  std::function<AttrsPtr()> default_attrs;  // attrs of the op's struct, default-initialised
  InferFn infer;
  KernelFn host_kernel;  // user-registered ops only: runs on cpu and reference backends

  // Traits read by passes.
  bool is_source() const { return fusion == FusionClass::source; }
  bool has_side_effects() const { return fusion == FusionClass::effect; }
  // Pure: result depends only on inputs and attrs (CSE and constant folding may touch it).
  bool is_pure() const {
    return fusion != FusionClass::effect && fusion != FusionClass::source &&
           fusion != FusionClass::inplace && fusion != FusionClass::call;
  }
  bool is_view() const { return fusion == FusionClass::view; }
  // Writes into input 0's memory and returns it (output aliases input 0, a kernel still runs);
  // outputs 0 .. inplace_outputs - 1 alias inputs of the same index, later ones are new arrays.
  bool is_inplace() const { return fusion == FusionClass::inplace; }
  int inplace_outputs = 1;
  // The input whose memory output k is (a view's output, an in-place op's written inputs), or -1.
  int aliased_input(size_t k) const {
    if (is_view()) return k == 0 ? 0 : -1;
    return is_inplace() && k < static_cast<size_t>(inplace_outputs) ? static_cast<int>(k) : -1;
  }
};

class OpRegistry {
 public:
  static OpRegistry& get();
  const OpInfo& info(OpId id) const { return ops_[id]; }
  OpInfo& mutable_info(OpId id) { return ops_[id]; }
  // Throws naming the op if unknown.
  OpId find(const std::string& name) const;
  bool contains(const std::string& name) const;
  OpId add(OpInfo info);
  size_t size() const { return ops_.size(); }

 private:
  OpRegistry();
  std::deque<OpInfo> ops_;  // deque: references stay valid as users add ops
  mutable std::mutex mutex_;
};

// Each op family file registers the inference of its ops here (called once by the registry).
void register_memory_ops(OpRegistry& r);
void register_elementwise_ops(OpRegistry& r);
void register_reduction_ops(OpRegistry& r);
void register_normalization_ops(OpRegistry& r);
void register_matmul_ops(OpRegistry& r);
void register_shape_ops(OpRegistry& r);
void register_indexing_ops(OpRegistry& r);
void register_attention_ops(OpRegistry& r);
void register_quantization_ops(OpRegistry& r);
void register_fft_ops(OpRegistry& r);
void register_call_ops(OpRegistry& r);
void register_conv_ops(OpRegistry& r);
void register_stitched_ops(OpRegistry& r);
void register_sampling_ops(OpRegistry& r);

}  // namespace loom::ir
