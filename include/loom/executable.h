// loom/executable.h — compiling a graph and running it.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "loom/device.h"
#include "loom/ndarray.h"

namespace loom {

class Executable;

struct CompileOptions {
  Device device = Device::cpu();
  // 0: verify and lower only; 1: run the optimisation pipeline (default).
  int optimization_level = 1;
  // Passes to skip, by name (see Executable::pass_log and docs/ADDING_A_PASS.md).
  std::vector<std::string> disabled_passes;
  // Constants larger than this (elements) are not produced by constant folding.
  int64_t constant_folding_max_elements = int64_t{1} << 20;
  // Plans (shapes + memory plan) kept per input-shape signature; least recently used go first.
  size_t plan_cache_capacity = 64;
  // Worker threads for the CPU backend; 0: all cores.
  int num_threads = 0;
  // Time every kernel (per op type); see Executable::profile_report. Costs ~50 ns per op.
  bool profile = false;
  // Executables for the graph's `call` sites, by symbol (see loom::call). Compiling checks each
  // one's signature against its call sites; a required call site whose symbol is missing is an
  // error, an optional one stays unbound. Rebind later with Executable::bind.
  std::map<std::string, Executable> callables;
};

using Feeds = std::vector<std::pair<std::string, NDArray>>;

struct PlanStats {
  int64_t arena_bytes = 0;         // the memory plan's peak: one arena per run
  int64_t intermediate_bytes = 0;  // sum of all intermediates, had none been reused
  int steps = 0;                   // kernels launched per run
};

class ExecutableImpl;

class Executable {
 public:
  Executable() = default;
  explicit Executable(std::shared_ptr<ExecutableImpl> impl) : impl_(std::move(impl)) {}

  // Runs the graph. Inputs are matched by placeholder name; every placeholder must be fed, with
  // its dtype and a shape that fits its (possibly dynamic) declared shape. Safe to call from
  // several threads at once (runs that assign variables are serialised).
  std::vector<NDArray> run(const Feeds& inputs) const;
  // Per-run options.
  struct RunOptions {
    // CUDA only: the caller's cudaStream_t. The run first waits for the work already queued on it
    // (e.g. kernels of the app that wrote its device inputs), and the stream then waits for the
    // run's work — GPU-side, the host never blocks (with device inputs and outputs). Loom's work
    // is sequenced with the app's own, as MPSGraph does with a shared command buffer.
    void* cuda_stream = nullptr;
  };
  std::vector<NDArray> run(const Feeds& inputs, const RunOptions& options) const;

  struct Signature {
    std::string name;
    TensorType type;
  };
  std::vector<Signature> inputs() const;
  std::vector<Signature> outputs() const;
  Device device() const;

  // Variables: current values (a copy), overwrite, and reset to the initial values.
  NDArray variable(const std::string& name) const;
  void set_variable(const std::string& name, const NDArray& value);
  void reset_variables();
  std::vector<std::string> variable_names() const;

  // What each pass changed, in order ("[cse] merged mul_4 into mul_2").
  std::vector<std::string> pass_log() const;
  // IR text of the graph as compiled for the device.
  std::string to_text() const;
  // Memory plan figures for the given input shapes (plans them if not cached).
  PlanStats plan_stats(const std::vector<std::pair<std::string, Shape>>& input_shapes) const;
  size_t cached_plans() const;
  // Bytes held by the executable's constants (weights), as compiled.
  int64_t constant_bytes() const;
  // With CompileOptions::profile: time per op type over all runs so far, slowest first.
  std::string profile_report() const;
  // Bytes copied into variables by assigns so far (in-place updates copy none).
  int64_t variable_bytes_copied() const;

  // Callables (`call` sites, docs/ARCHITECTURE.md "Calls"): the symbols the graph calls, and the
  // executable bound to one (invalid while unbound).
  std::vector<std::string> call_symbols() const;
  Executable callable(const std::string& symbol) const;
  // Binds `callee` to `symbol` without recompiling: checks its signature against every call site
  // (inputs, outputs: dtype, rank, static dims), its device and that no call would recurse. Runs
  // that start afterwards use it; runs in flight finish with the old binding. Thread-safe.
  void bind(const std::string& symbol, const Executable& callee);
  // Removes the binding: optional call sites then return zeros, required ones fail the run with
  // "[call] 'symbol': no executable is bound".
  void unbind(const std::string& symbol);

  // Packages (docs/FORMAT.md; implemented in loom_io, src/io/package.cpp). save writes the
  // optimised graph, variables' initial values, outputs, options and pass log to one `.loom`
  // file; load memory-maps it (constants stay in the mapping) and lowers the stored graph for
  // options.device without re-running the passes.
  // Callables are stored by symbol: embedded as nested packages (embed_callables), or left unbound
  // to be bound at load through options.callables (which also overrides embedded ones).
  void save(const std::string& path, bool embed_callables = true) const;
  static Executable load(const std::string& path, const CompileOptions& options = {});

  bool valid() const { return impl_ != nullptr; }
  const std::shared_ptr<ExecutableImpl>& impl() const { return impl_; }

 private:
  std::shared_ptr<ExecutableImpl> impl_;
};

}  // namespace loom
