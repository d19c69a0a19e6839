// Shape rules shared by type inference and kernels of the shape / movement ops.
#pragma once
#include <cstdint>
#include <vector>

#include "loom/attrs.h"

namespace loom::ops {

// numpy slice of a dim of size `dim`: first index and length. `step` != 0.
struct SliceDim {
  int64_t start = 0;
  int64_t length = 0;
};
SliceDim slice_dim(int64_t dim, int64_t start, int64_t end, int64_t step);

// The per-axis (start, step) of a slice on every axis of `shape` (axes not sliced: 0, 1).
struct ResolvedSlice {
  std::vector<int64_t> starts, steps;
  Shape out;
};
ResolvedSlice resolve_slice(const Shape& in, const SliceAttrs& a);  // static shapes only

// Resolves reshape's -1 / 0 entries against a static input shape.
Shape resolve_reshape(const Shape& in, const std::vector<int64_t>& target, const char* op);

}  // namespace loom::ops
