#include "backends/cuda/cuda_graph.h"

#include <cuda_runtime_api.h>

#include <string>
#include <vector>

#include "backends/cuda/cuda_common.h"

namespace loom::backends::cuda {

struct CudaGraph::Impl {
  int device = 0;
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  size_t nodes = 0;
  std::vector<std::shared_ptr<void>> blocks;  // scratch the replays write into
};

std::unique_ptr<CudaGraph> CudaGraph::capture(int device, const std::function<void()>& record) {
  cudaStream_t s = stream(device);
  LOOM_CUDA_CHECK(cudaSetDevice(device));
  // Relaxed: a cudaMalloc from the caching allocator is allowed during the capture (it is not
  // stream work); synchronisations still fail it.
  LOOM_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
  begin_capture_pool(device);
  std::unique_ptr<CudaGraph> g(new CudaGraph);
  g->impl_ = std::make_unique<Impl>();
  Impl& im = *g->impl_;
  im.device = device;
  std::string failure;
  try {
    record();
  } catch (const std::exception& e) {
    failure = e.what();
  }
  cudaError_t end = cudaStreamEndCapture(s, &im.graph);
  im.blocks = end_capture_pool(device);
  if (!failure.empty() || end != cudaSuccess) {
    (void)cudaGetLastError();
    if (im.graph) cudaGraphDestroy(im.graph), im.graph = nullptr;
    fail("[cuda graph] the run could not be captured on cuda:", device, ": ",
         failure.empty() ? cudaGetErrorString(end) : failure,
         " (a kernel that synchronises with the host cannot be part of a CUDA graph)");
  }
  LOOM_CUDA_CHECK(cudaGraphGetNodes(im.graph, nullptr, &im.nodes));
  LOOM_CUDA_CHECK(cudaGraphInstantiate(&im.exec, im.graph, 0));
  return g;
}

CudaGraph::~CudaGraph() {
  if (!impl_) return;
  // Replays in flight still use the graph's blocks: wait before they go back to the cache.
  cudaStreamSynchronize(stream(impl_->device));
  if (impl_->exec) cudaGraphExecDestroy(impl_->exec);
  if (impl_->graph) cudaGraphDestroy(impl_->graph);
}

void CudaGraph::replay() {
  LOOM_CUDA_CHECK(cudaSetDevice(impl_->device));
  LOOM_CUDA_CHECK(cudaGraphLaunch(impl_->exec, stream(impl_->device)));
}

size_t CudaGraph::nodes() const { return impl_->nodes; }

std::vector<double> time_pieces(int device, size_t n, const std::function<void(size_t)>& issue) {
  cudaStream_t s = stream(device);
  LOOM_CUDA_CHECK(cudaSetDevice(device));
  std::vector<cudaEvent_t> ev(n + 1);
  for (auto& e : ev) LOOM_CUDA_CHECK(cudaEventCreate(&e));
  std::vector<double> ms(n);
  try {
    LOOM_CUDA_CHECK(cudaEventRecord(ev[0], s));
    for (size_t i = 0; i < n; ++i) {
      issue(i);
      LOOM_CUDA_CHECK(cudaEventRecord(ev[i + 1], s));
    }
    LOOM_CUDA_CHECK(cudaEventSynchronize(ev[n]));
    for (size_t i = 0; i < n; ++i) {
      float t = 0;
      LOOM_CUDA_CHECK(cudaEventElapsedTime(&t, ev[i], ev[i + 1]));
      ms[i] = t;
    }
  } catch (...) {
    for (auto& e : ev) cudaEventDestroy(e);
    throw;
  }
  for (auto& e : ev) cudaEventDestroy(e);
  return ms;
}

}  // namespace loom::backends::cuda
