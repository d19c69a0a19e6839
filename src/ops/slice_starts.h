// Reads the start offsets of dynamic_slice / slice_update from their tensor and checks that the
// region [start, start + size) fits every dim (shared by every backend's kernels).
#pragma once
#include <vector>

#include "core/element.h"
#include "loom/ndarray.h"

namespace loom::ops {

inline std::vector<int64_t> read_starts(const NDArray& starts, const Shape& base,
                                        const Shape& region, const char* op) {
  LOOM_CHECK(starts.numel() == base.rank(), "[", op, "] ", starts.numel(), " starts for rank ",
             base.rank());
  std::vector<int64_t> s(static_cast<size_t>(base.rank()));
  for (int i = 0; i < base.rank(); ++i) {
    s[static_cast<size_t>(i)] =
        static_cast<int64_t>(detail::load_element(starts.dtype(), starts.data(), i));
    LOOM_CHECK(s[static_cast<size_t>(i)] >= 0 && s[static_cast<size_t>(i)] + region[i] <= base[i],
               "[", op, "] start ", s[static_cast<size_t>(i)], " + size ", region[i], " on axis ",
               i, " exceeds dim ", base[i]);
  }
  return s;
}

}  // namespace loom::ops
