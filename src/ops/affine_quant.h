// The arithmetic of affine quantization, shared by every backend: q viewed as [outer, len, inner]
// around the quantization axis, with the scale (and zero point) indexed per tensor, per axis
// index, or per block of `block` indices along the axis.
#pragma once
#include <cmath>
#include <cstdint>

#include "loom/ndarray.h"

namespace loom::ops {

struct AffineLayout {
  int64_t outer = 1, len = 1, inner = 1;
  int kind = 0;  // 0 per tensor, 1 per axis, 2 per block
  int64_t block = 0, nblocks = 1;

  AffineLayout(const Shape& q, int64_t axis_attr, int64_t block_size, int64_t scale_numel) {
    int r = q.rank();
    int axis = r ? normalize_axis(axis_attr, r) : 0;
    for (int i = 0; i < r; ++i) {
      if (i < axis)
        outer *= q[i];
      else if (i == axis)
        len = q[i];
      else
        inner *= q[i];
    }
    if (block_size > 0) {
      kind = 2;
      block = block_size;
      nblocks = (len + block - 1) / block;
    } else {
      kind = scale_numel == 1 ? 0 : 1;
    }
  }
  // Index into the scale / zero point of element (o, a, i).
  int64_t scale_index(int64_t o, int64_t a, int64_t i) const {
    if (kind == 0) return 0;
    if (kind == 1) return a;
    return (o * nblocks + a / block) * inner + i;
  }
};

// Round half to even, then clamp to the integer dtype's range (i4 -8..7, u4 0..15, ...).
inline double quantize_value(double x, double scale, double zero_point, double lo, double hi) {
  double q = std::nearbyint(x / scale) + zero_point;
  if (std::isnan(q)) return 0;
  return q < lo ? lo : (q > hi ? hi : q);
}

inline void integer_range(DType t, double* lo, double* hi) {
  switch (t) {
    case DType::i4:
      *lo = -8;
      *hi = 7;
      return;
    case DType::u4:
      *lo = 0;
      *hi = 15;
      return;
    case DType::i8:
      *lo = -128;
      *hi = 127;
      return;
    case DType::u8:
      *lo = 0;
      *hi = 255;
      return;
    case DType::i16:
      *lo = -32768;
      *hi = 32767;
      return;
    default:
      *lo = -2147483648.0;
      *hi = 2147483647.0;
      return;
  }
}

}  // namespace loom::ops
