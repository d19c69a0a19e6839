// Where tests of prepared / pipelined runs run: the CPU backend, and on a GPU (when there is one)
// eager and as a replayed CUDA graph.
#pragma once
#include <string>
#include <vector>

#include "loom/loom.h"

namespace loom::testing {

struct RunMode {
  Device device;
  bool cuda_graph = false;
  std::string name() const { return device.to_string() + (cuda_graph ? " graph" : ""); }
};

inline std::vector<RunMode> run_modes() {
  std::vector<RunMode> modes{{Device::cpu(), false}};
  if (cuda_device_count() > 0) {
    modes.push_back({Device::cuda(0), false});
    modes.push_back({Device::cuda(0), true});
  }
  return modes;
}

}  // namespace loom::testing
