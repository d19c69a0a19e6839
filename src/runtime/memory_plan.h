#pragma once
#include <cstdint>
#include <vector>

namespace loom {

struct BufferRequest {
  int64_t bytes = 0;
  int first_use = 0;  // step that writes it
  int last_use = 0;   // last step that reads it
};

// Assigns each buffer a 64-byte-aligned offset; returns the arena size (peak).
int64_t plan_offsets(const std::vector<BufferRequest>& buffers, std::vector<int64_t>& offsets);

}  // namespace loom
