// Normalisations over trailing axes (layer_norm, rms_norm, add_rms_norm) see a tensor as rows x
// cols, cols the product of the dims from `axis` on: every backend's norm kernels split it so.
#pragma once
#include <cstdint>

#include "loom/shape.h"

namespace loom::backends {

struct RowSplit {
  int axis;  // normalised
  int64_t rows, cols;
};

inline RowSplit row_split(const Shape& s, int64_t axis) {
  const int a = normalize_axis(axis, s.rank());
  int64_t cols = 1;
  for (int i = a; i < s.rank(); ++i) cols *= s[i];
  return {a, cols ? s.numel() / cols : 0, cols};
}

}  // namespace loom::backends
