// loom/custom_op.h — registering your own op from outside the library.
#pragma once
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "loom/graph.h"
#include "loom/kernel.h"

namespace loom {

struct CustomOpDef {
  std::string name;    // unique; becomes the op's name in IR text and error messages
  int num_inputs = 1;  // -1: any number
  // Output types from input types (dims may be dynamic) and attributes; throw loom::Error
  // (e.g. with loom::fail) when the inputs do not fit.
  std::function<std::vector<TensorType>(std::span<const TensorType>, const CustomAttrs&)> infer;
  // Host kernel: used by the cpu and reference backends.
  KernelFn kernel;
};

// Registers the op; throws if the name is taken. Register before building graphs that use it.
void register_op(const CustomOpDef& def);

// Adds a node of a registered custom op.
std::vector<Tensor> custom_op(const std::string& name, const std::vector<Tensor>& inputs,
                              const CustomAttrs& attrs = {});

}  // namespace loom
