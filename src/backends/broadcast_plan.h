// Broadcasting as loops see it: the output's dims collapsed (size-1 dims dropped, adjacent dims
// merged where every input broadcasts them alike), each input's element strides over them (0 =
// broadcast). Shared by the CPU kernels and the CUDA stitched kernels; the last dim is the inner
// loop.
#pragma once
#include <cstdint>
#include <vector>

#include "loom/shape.h"

namespace loom::backends {

struct BroadcastPlan {
  std::vector<int64_t> dims;                  // collapsed output dims
  std::vector<std::vector<int64_t>> strides;  // per input, per collapsed dim (0 = broadcast)
};

inline BroadcastPlan plan_broadcast(const Shape& out, const std::vector<Shape>& ins) {
  int r = out.rank();
  std::vector<std::vector<int64_t>> full;  // per input, per out dim
  for (const Shape& s : ins) {
    std::vector<int64_t> st(static_cast<size_t>(r), 0);
    int64_t acc = 1;
    for (int i = s.rank() - 1; i >= 0; --i) {
      int o = i + r - s.rank();
      st[static_cast<size_t>(o)] = s[i] == 1 ? 0 : acc;
      acc *= s[i];
    }
    full.push_back(st);
  }
  BroadcastPlan p;
  p.strides.resize(ins.size());
  for (int d = 0; d < r; ++d) {
    int64_t n = out[d];
    if (n == 1) continue;  // size-1 dims contribute nothing
    bool merge = !p.dims.empty();
    for (size_t i = 0; merge && i < ins.size(); ++i) {
      int64_t prev = p.strides[i].back(), cur = full[i][static_cast<size_t>(d)];
      merge = (prev == 0 && cur == 0) || (prev != 0 && cur != 0 && prev == cur * n);
    }
    if (merge) {
      p.dims.back() *= n;
      for (size_t i = 0; i < ins.size(); ++i) p.strides[i].back() = full[i][static_cast<size_t>(d)];
    } else {
      p.dims.push_back(n);
      for (size_t i = 0; i < ins.size(); ++i)
        p.strides[i].push_back(full[i][static_cast<size_t>(d)]);
    }
  }
  if (p.dims.empty()) {
    p.dims.push_back(1);
    for (auto& s : p.strides) s.push_back(0);
  }
  return p;
}

}  // namespace loom::backends
