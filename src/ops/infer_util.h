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
// slice_update's rules (src/ops/indexing.cpp): the update (input `update`) has the base's dtype and
// rank and fits in it; starts as check_starts. The names are the inputs' names in messages.
void check_slice_update(const InferContext& ctx, size_t base, size_t update, size_t starts,
                        const char* base_name, const char* update_name);

// Checks the scale / zero point of an affine (de)quantize against q; returns the normalised axis.
int check_affine_params(const InferContext& ctx, const TensorType& q, const TensorType& scale,
                        const TensorType* zero_point, const QuantAttrs& attrs);

}  // namespace loom::ops
