// Memory planning: intermediates live in one arena per run; buffers whose lifetimes do not
// overlap share bytes. Greedy by size (largest first), each placed at the lowest offset that
// does not collide with an already placed buffer alive at the same time.
#include "runtime/memory_plan.h"

#include <algorithm>

namespace loom {

int64_t plan_offsets(const std::vector<BufferRequest>& buffers, std::vector<int64_t>& offsets) {
  constexpr int64_t kAlign = 64;
  std::vector<size_t> order(buffers.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return buffers[a].bytes > buffers[b].bytes; });
  offsets.assign(buffers.size(), 0);
  std::vector<size_t> placed;
  int64_t peak = 0;
  for (size_t i : order) {
    const auto& b = buffers[i];
    int64_t size = (b.bytes + kAlign - 1) / kAlign * kAlign;
    // Intervals already taken by buffers alive at the same time, sorted by offset.
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (size_t j : placed) {
      const auto& o = buffers[j];
      if (o.first_use <= b.last_use && b.first_use <= o.last_use)
        busy.push_back({offsets[j], offsets[j] + (o.bytes + kAlign - 1) / kAlign * kAlign});
    }
    std::sort(busy.begin(), busy.end());
    int64_t at = 0;
    for (const auto& [lo, hi] : busy) {
      if (at + size <= lo) break;
      at = std::max(at, hi);
    }
    offsets[i] = at;
    peak = std::max(peak, at + size);
    placed.push_back(i);
  }
  return peak;
}

}  // namespace loom
