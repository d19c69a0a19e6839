// Helpers shared by the op families' type inference.
#pragma once
#include <algorithm>
#include <vector>

#include "ir/op_registry.h"

namespace loom::ops {

using ir::InferContext;

// numpy broadcasting with dynamic dims: a dynamic dim against 1 stays dynamic, against n is n
// (checked again at run time), two different known dims (neither 1) are an error.
Shape broadcast_shapes(const InferContext& ctx, const Shape& a, const Shape& b);
// Same, for run-time shapes (all static); throws with `what` in the message.
Shape broadcast_static(const Shape& a, const Shape& b, const char* what);

void expect_inputs(const InferContext& ctx, size_t min, size_t max);
void expect_same_dtype(const InferContext& ctx, size_t a, size_t b);
void expect_float(const InferContext& ctx, size_t i);
// Normalises each axis against `rank`; duplicates are an error. Empty means all axes if
// `empty_is_all`.
std::vector<int> normalize_axes(const InferContext& ctx, const std::vector<int64_t>& axes, int rank,
                                bool empty_is_all);

// starts (input i) of dynamic_slice / slice_update: an i32/i64 vector of `rank` offsets.
void check_starts(const InferContext& ctx, size_t i, int rank);
// slice_update's rules (src/ops/indexing.cpp): the update (input `update`) has the base's dtype,
// or both are floating (the update is then converted to the base's dtype), has its rank and fits
// in it; starts as check_starts. The names are the inputs' names in messages.
void check_slice_update(const InferContext& ctx, size_t base, size_t update, size_t starts,
                        const char* base_name, const char* update_name);

// The norms' rules (src/ops/normalization.cpp) for x under (axis, eps) and the parameters gamma /
// beta at inputs [first_param, end_param): the normalised dims' shape (or broadcastable to it),
// any float dtype.
void check_norm(const InferContext& ctx, const TensorType& x, int64_t axis, double eps,
                size_t first_param, size_t end_param);
// add_rms_norm's rules: `add`'s on inputs 0 and 1 (same float dtype, numpy broadcasting), then
// check_norm on the sum with gamma at inputs [2, end_param). Returns the sum's type.
TensorType check_add_rms_norm(const InferContext& ctx, size_t end_param, int64_t axis, double eps);
// quantized_matmul's rules (src/ops/quantization.cpp) for x (its dtype checked by the caller):
// rank >= 1, k features.
void check_quantized_matmul_x(const InferContext& ctx, const TensorType& x,
                              const QuantizedMatmulAttrs& attrs);
// The same for x and a block format's packed weights (input `packed`): returns y's type.
TensorType check_block_quantized_matmul(const InferContext& ctx, const TensorType& x, size_t packed,
                                        const QuantizedMatmulAttrs& attrs);

// Checks the scale / zero point of an affine (de)quantize against q; returns the normalised axis.
int check_affine_params(const InferContext& ctx, const TensorType& q, const TensorType& scale,
                        const TensorType* zero_point, const QuantAttrs& attrs);

}  // namespace loom::ops
