// matmul's shape rules, shared by type inference and every backend's kernel.
#pragma once
#include "ir/op_registry.h"

namespace loom::ops {

struct MatmulShape {
  int64_t m = 0, n = 0, k = 0;
  Shape batch;                              // broadcast batch dims
  Shape out;                                // output shape
  bool a_vector = false, b_vector = false;  // 1-D operands (promoted, then squeezed)
};

// With ctx: inference (dynamic dims allowed, errors name the op). Without: run-time shapes.
MatmulShape matmul_shape(const TensorType& a, const TensorType& b, const MatmulAttrs& attrs,
                         const ir::InferContext* ctx);

}  // namespace loom::ops
