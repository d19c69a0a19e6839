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
  std::vector<TensorType> types;  // per slot
  std::vector<int64_t> offset;    // per slot: byte offset in the arena, or -1
  int64_t arena_bytes = 0;
  int64_t intermediate_bytes = 0;
  // Calls: the CallBindings version whose callees last confirmed the call outputs' types (a plan
  // made under other bindings is re-checked, not remade, when callees are swapped).
  mutable std::atomic<uint64_t> bindings_version{0};
};

class ExecutableImpl;
// The executables bound to an executable's call symbols: an immutable snapshot, replaced as a
// whole by bind/unbind, so that a run sees one consistent set from start to end.
struct CallBindings {
  std::vector<std::shared_ptr<ExecutableImpl>> callee;  // per call symbol; null: unbound
  uint64_t version = 0;                                 // unique across all executables
};

class ExecutableImpl {
 public:
  ExecutableImpl(ir::GraphData graph, std::vector<ir::Value> outputs, const CompileOptions& options,
                 std::vector<std::string> log);

  std::vector<NDArray> run(const Feeds& feeds);
  // bindings: the call bindings of the run (null: the current ones).
  std::shared_ptr<const Plan> plan_for(const std::vector<Shape>& input_shapes,
                                       const CallBindings* bindings = nullptr);

  // --- calls (src/ops/call.cpp) ---
  // Output types for inputs of these shapes without running (from the cached plan); checks the
  // shapes against the declared inputs. What a caller's plan asks of its callees.
  std::vector<TensorType> output_types(const std::vector<Shape>& input_shapes,
                                       const std::string& symbol);
  // Runs with inputs in placeholder order (a call site's values): no name matching, no copies of
  // contiguous inputs, outputs stay on the executable's device.
  std::vector<NDArray> run_inputs(std::vector<NDArray> inputs, const std::string& symbol);
  std::shared_ptr<const CallBindings> bindings() const;
  // Binds (callee null: unbinds) after checking signature, device and recursion.
  void bind(const std::string& symbol, std::shared_ptr<ExecutableImpl> callee);
  std::vector<std::string> call_symbols;  // distinct symbols, sorted
  std::vector<int> call_symbol;           // per node: index in call_symbols, -1 if not a call
  std::vector<int> call_nodes;

  ir::GraphData graph;
  std::vector<ir::Value> outputs;
  CompileOptions options;
  std::vector<std::string> log;
  backends::Backend* backend = nullptr;

  // Lowering results (shape independent).
  std::vector<const KernelFn*> kernels;  // per node (null for sources, views, assigns)
  std::vector<std::unique_ptr<KernelFn>> specialized;  // kernels made for one node (lowering)
  std::vector<int> slot_base;                          // per node: its first output's slot
  int num_slots = 0;
  std::vector<int> placeholders;          // node indices, in feed order
  std::vector<int> root;                  // per slot: the slot whose memory it aliases (views)
  std::vector<int> last_use;              // per slot: last node index reading it (or its views)
  std::vector<bool> output_root;          // per slot: memory handed to the caller
  std::vector<bool> read_copies;          // per node: a read that must copy (assigned later)
  std::vector<uint64_t> constant_inputs;  // per node: KernelContext::constant_inputs

  // Variables: values persist across runs.
  std::vector<NDArray> variables;
  std::shared_mutex variables_mutex;
  bool has_assign = false;
  std::atomic<int64_t> variable_bytes_copied{0};
  // Profiling (CompileOptions::profile): nanoseconds and calls per node.
  std::vector<std::atomic<int64_t>> profile_ns,
      profile_calls;  // by assigns that were not done in place
  // Device backends: each constant node's value, uploaded once (empty on the host).
  std::vector<NDArray> device_constants;

  // Uninitialised contiguous memory of the executable's device; a copy of `a` there.
  NDArray empty(DType dtype, const Shape& shape) const;
  NDArray clone(const NDArray& a) const;

 private:
  std::shared_ptr<const Plan> make_plan(const std::vector<Shape>& input_shapes,
                                        const CallBindings& bindings);
  void lower();
  std::vector<NDArray> execute(std::vector<NDArray> inputs);
  // Calls: set up symbols and the initial bindings (options.callables).
  void init_calls();
  std::vector<TensorType> call_types(size_t node, const std::vector<TensorType>& in,
                                     const CallBindings& b);
  bool calls_valid(const Plan& plan, const CallBindings& b);
  void run_call(size_t node, std::vector<NDArray>& slots, const Plan& plan, const CallBindings& b);
  void check_callee(const std::string& symbol, const ExecutableImpl& callee) const;

  mutable std::mutex bindings_mutex_;
  std::shared_ptr<const CallBindings> bindings_;

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
