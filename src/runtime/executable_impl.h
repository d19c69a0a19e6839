// The executable: a lowered graph for one device, its variables, and per-shape plans.
#pragma once
#include <atomic>
#include <list>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "backends/backend.h"
#include "ir/graph.h"
#include "loom/executable.h"

namespace loom {

// Shapes and memory for one input-shape signature.
struct Plan {
  std::vector<TensorType> types;     // per slot
  std::vector<int64_t> offset;       // per slot: byte offset in the arena, or -1
  int64_t arena_bytes = 0;
  int64_t intermediate_bytes = 0;
};

class ExecutableImpl {
 public:
  ExecutableImpl(ir::GraphData graph, std::vector<ir::Value> outputs, const CompileOptions& options,
                 std::vector<std::string> log);

  std::vector<NDArray> run(const Feeds& feeds);
  std::shared_ptr<const Plan> plan_for(const std::vector<Shape>& input_shapes);

  ir::GraphData graph;
  std::vector<ir::Value> outputs;
  CompileOptions options;
  std::vector<std::string> log;
  backends::Backend* backend = nullptr;

  // Lowering results (shape independent).
  std::vector<const KernelFn*> kernels;   // per node (null for sources, views, assigns)
  std::vector<int> slot_base;             // per node: its first output's slot
  int num_slots = 0;
  std::vector<int> placeholders;          // node indices, in feed order
  std::vector<int> root;                  // per slot: the slot whose memory it aliases (views)
  std::vector<int> last_use;              // per slot: last node index reading it (or its views)
  std::vector<bool> output_root;          // per slot: memory handed to the caller
  std::vector<bool> read_copies;          // per node: a read that must copy (assigned later)

  // Variables: values persist across runs.
  std::vector<NDArray> variables;
  std::shared_mutex variables_mutex;
  bool has_assign = false;
  std::atomic<int64_t> variable_bytes_copied{0};
  // Profiling (CompileOptions::profile): nanoseconds and calls per node.
  std::vector<std::atomic<int64_t>> profile_ns, profile_calls;  // by assigns that were not done in place
  // Device backends: each constant node's value, uploaded once (empty on the host).
  std::vector<NDArray> device_constants;

  // Uninitialised contiguous memory of the executable's device; a copy of `a` there.
  NDArray empty(DType dtype, const Shape& shape) const;
  NDArray clone(const NDArray& a) const;

 private:
  std::shared_ptr<const Plan> make_plan(const std::vector<Shape>& input_shapes);
  void lower();

  std::mutex cache_mutex_;
  std::list<std::pair<std::string, std::shared_ptr<const Plan>>> lru_;
  std::unordered_map<std::string, decltype(lru_)::iterator> cache_;

  std::mutex arena_mutex_;
  std::vector<std::shared_ptr<Storage>> free_arenas_;

 public:
  std::shared_ptr<Storage> acquire_arena(int64_t bytes);
  void release_arena(std::shared_ptr<Storage> arena);
  size_t cached_plans();
};

}  // namespace loom
