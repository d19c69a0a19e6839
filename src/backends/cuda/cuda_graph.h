// backends/cuda/cuda_graph.h — CUDA graphs: the kernels a piece of host code issues on a device's
// stream, captured once and replayed with one launch (no per-kernel launch cost, no host work per
// kernel). Host-only header (no CUDA types), so the runtime can use it behind LOOM_HAS_CUDA.
#pragma once
#include <functional>
#include <memory>
#include <vector>

namespace loom::backends::cuda {

class CudaGraph {
 public:
  // Captures — does not run — what `record` issues on cuda:`device`'s stream. The work must not
  // synchronise with the host or copy from pageable host memory; a kernel that does fails the
  // capture, which throws "[cuda graph] ...". Blocks that kernels take from the caching allocator
  // during the capture stay reserved for the graph while it lives.
  static std::unique_ptr<CudaGraph> capture(int device, const std::function<void()>& record);
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  // Launches the graph on the device's stream (asynchronous, ordered after earlier work).
  void replay();
  // Kernels and copies in the graph.
  size_t nodes() const;

 private:
  CudaGraph() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// GPU milliseconds of each of `n` pieces of work that `issue(i)` puts on cuda:`device`'s stream
// (events between the pieces, one synchronisation at the end): per-kernel profiles of eager runs.
std::vector<double> time_pieces(int device, size_t n, const std::function<void(size_t)>& issue);

}  // namespace loom::backends::cuda
