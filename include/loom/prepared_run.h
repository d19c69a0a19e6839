// loom/prepared_run.h — a run of one executable at fixed input shapes, prepared once: the plan,
// the arena, the outputs and device-resident input buffers are allocated up front, every kernel's
// inputs/outputs are bound once, and on CUDA (PrepareOptions::cuda_graph) the whole run is
// captured as a CUDA graph after a first eager run and replayed from then on. A run then makes no
// allocation, no planning and no host synchronisation: what an LLM decode step needs.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "loom/executable.h"

namespace loom {

struct PrepareOptions {
  // CUDA executables: capture the run as a CUDA graph on the second run() and replay it after.
  // When the run cannot be captured (a kernel that synchronises with the host), runs stay eager
  // and graph_status() says why. All work of a GPU goes through one stream, so no other thread
  // may issue work to that GPU during the capturing run (it would be captured too).
  bool cuda_graph = true;
};

class PreparedRun {
 public:
  PreparedRun() = default;
  // Shapes of every input, by placeholder name. Throws like Executable::run on unknown names or
  // shapes that do not fit. Executables with call sites are not supported (their callees plan and
  // allocate per run).
  PreparedRun(const Executable& exe, const std::vector<std::pair<std::string, Shape>>& shapes,
              const PrepareOptions& options = {});

  // Writes inputs (host or same-device arrays of the prepared dtype and shape), ordered before the
  // next run. Host inputs are staged and sent to the device in one copy.
  void set_inputs(const Feeds& feeds);
  // The device buffer of an input (write it with device kernels of your own, e.g. feed back a
  // token sampled on the device).
  NDArray input(const std::string& name) const;
  // Runs (eager, or a replay of the captured graph). Asynchronous on a device: read outputs with
  // to_host, which waits for the run. Not thread-safe: one PreparedRun per thread.
  void run();
  // The executable's outputs, on its device; the same buffers each run (overwritten).
  const std::vector<NDArray>& outputs() const;

  // Pipelined runs, for loops whose next input comes out of the last run (LLM decoding).
  // enqueue() stages the host `feeds` in pinned memory of its own, runs, then on the device copies
  // outputs into inputs of the next run (`feedback`: same dtype and shape) and the outputs listed
  // in `read` into pinned host memory; none of it waits for the device, so the host queues run
  // i + 1 (a CUDA graph launch costs the host ~0.25 us per node) while run i is on the GPU.
  // wait(ticket) blocks until that run is done and returns its `read` outputs on the host. At
  // most two runs are in flight: enqueueing a third first waits for the oldest. Host backends run
  // at once.
  struct Feedback {
    int output;         // index into outputs()
    std::string input;  // placeholder name
  };
  uint64_t enqueue(const Feeds& feeds, const std::vector<Feedback>& feedback = {},
                   const std::vector<int>& read = {});
  std::vector<NDArray> wait(uint64_t ticket);

  // Runs the steps eagerly `repeats` times with the inputs as they are (on CUDA each step timed
  // by device events, elsewhere by the host clock) and returns time per op type per run, slowest
  // first. Runs the model like run() does (variables are written).
  std::string profile(int repeats = 10);

  bool graph_captured() const;
  // "captured: N nodes", "eager (not on CUDA)", "eager (capture failed: ...)", "not yet".
  std::string graph_status() const;
  int64_t runs() const;

  bool valid() const { return impl_ != nullptr; }

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace loom
