// The CUDA backend: one per GPU, a stream per GPU, a caching allocator, host <-> device copies.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "backends/cuda/cuda_common.h"
#include "backends/cuda/stitched.h"

namespace loom::backends::cuda {
namespace {

// Caching allocator: cudaMalloc/cudaFree synchronise the device and cost tens of microseconds, so
// freed blocks are kept in size classes and handed out again. All work of a device runs on one
// stream, so a block freed on the host can be reused by the next kernel without an event: the
// stream orders the new use after the old one.
class CachingAllocator {
 public:
  explicit CachingAllocator(int device) : device_(device) {}
  ~CachingAllocator() = default;  // the process is ending: the driver frees device memory

  // Size classes: 512-byte granules below 1 MiB, then multiples of 1 MiB (bounded waste).
  static size_t round(size_t bytes) {
    if (bytes < (size_t{1} << 20)) return (bytes + 511) & ~size_t{511};
    return (bytes + (size_t{1} << 20) - 1) & ~((size_t{1} << 20) - 1);
  }

  void* take(size_t bytes) {
    {
      std::lock_guard lock(mutex_);
      if (capturing_)  // blocks freed earlier in this capture first (stream order keeps it safe)
        for (size_t i = 0; i < capture_free_.size(); ++i)
          if (capture_free_[i].second == bytes) {
            void* p = capture_free_[i].first;
            capture_free_.erase(capture_free_.begin() + static_cast<long>(i));
            return p;
          }
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= bytes;
        return p;
      }
    }
    void* p = nullptr;
    LOOM_CUDA_CHECK(cudaSetDevice(device_));
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {
      // Out of memory: give the cache back to the driver and try once more.
      (void)cudaGetLastError();
      release_cache();
      LOOM_CUDA_CHECK(cudaMalloc(&p, bytes));
    } else {
      LOOM_CUDA_CHECK(e);
    }
    return p;
  }
  void give(void* p, size_t bytes) {
    std::lock_guard lock(mutex_);
    if (capturing_) {
      capture_free_.emplace_back(p, bytes);
      return;
    }
    free_[bytes].push_back(p);
    cached_ += bytes;
  }
  void begin_capture() {
    std::lock_guard lock(mutex_);
    LOOM_CHECK(!capturing_, "[cuda] a capture is already open on cuda:", device_);
    capturing_ = true;
  }
  // The blocks freed during the capture, owned by the result (back to the cache when it dies).
  std::vector<std::shared_ptr<void>> end_capture() {
    std::lock_guard lock(mutex_);
    capturing_ = false;
    std::vector<std::shared_ptr<void>> kept;
    for (auto [p, bytes] : capture_free_) {
      size_t b = bytes;
      kept.emplace_back(p, [this, b](void* q) { give(q, b); });
    }
    capture_free_.clear();
    return kept;
  }
  void release_cache() {
    std::lock_guard lock(mutex_);
    cudaStreamSynchronize(cuda::stream(device_));
    for (auto& [size, list] : free_)
      for (void* p : list) cudaFree(p);
    free_.clear();
    cached_ = 0;
  }

 private:
  int device_;
  std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
  bool capturing_ = false;
  std::vector<std::pair<void*, size_t>> capture_free_;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int index) : index_(index), alloc_(index) {
    LOOM_CUDA_CHECK(cudaSetDevice(index));
    // Non-blocking: never serialised against the legacy default stream of other libraries.
    LOOM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    // Kernels write errors straight into host memory: reading it costs nothing after a sync.
    LOOM_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&error_host_), sizeof(DeviceError),
                                  cudaHostAllocMapped));
    std::memset(error_host_, 0, sizeof(DeviceError));
    LOOM_CUDA_CHECK(
        cudaHostGetDevicePointer(reinterpret_cast<void**>(&error_device_), error_host_, 0));
    LOOM_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&counters_), kSplitCounters * sizeof(int)));
    LOOM_CUDA_CHECK(cudaMemsetAsync(counters_, 0, kSplitCounters * sizeof(int), stream_));
  }
  Device device() const override { return Device::cuda(index_); }
  const char* name() const override { return "cuda"; }
  const KernelFn* kernel(ir::OpId op) const override { return table().find(op); }
  // A stitched region is compiled (NVRTC) here, at lowering, not on its first run.
  KernelFn specialize(const ir::Node& node) const override {
    return node.op == ir::op::stitched ? make_stitched_kernel(node, index_) : KernelFn{};
  }

  std::shared_ptr<Storage> allocate(size_t bytes) const override {
    size_t size = CachingAllocator::round(std::max<size_t>(bytes, 1));
    void* p = alloc_.take(size);
    auto* a = &alloc_;
    std::shared_ptr<void> keep(p, [a, size](void* q) { a->give(q, size); });
    return Storage::external(p, bytes, std::move(keep), device());
  }

  void copy(void* dst, const Device& dst_device, const void* src, const Device& src_device,
            size_t bytes) const override {
    if (!bytes) return;
    bool dst_dev = dst_device.kind == Device::Kind::cuda;
    bool src_dev = src_device.kind == Device::Kind::cuda;
    if (dst_dev != src_dev && bytes >= kStagedCopy) {
      LOOM_CUDA_CHECK(cudaSetDevice(index_));
      staged_copy(dst, src, bytes, dst_dev);
      raise_error();
      return;
    }
    copy_async(dst, dst_device, src, src_device, bytes);
    // Host destinations are read right after; host sources may be freed right after (pageable
    // memory is staged before cudaMemcpyAsync returns, but a sync keeps this obviously safe).
    if (!dst_dev || !src_dev) {
      LOOM_CUDA_CHECK(cudaStreamSynchronize(stream_));
      raise_error();
    }
  }
  void synchronize() const override {
    LOOM_CUDA_CHECK(cudaStreamSynchronize(stream_));
    raise_error();
  }
  std::shared_ptr<Storage> allocate_host(size_t bytes) const override {
    LOOM_CUDA_CHECK(cudaSetDevice(index_));
    void* p = nullptr;
    LOOM_CUDA_CHECK(cudaMallocHost(&p, std::max<size_t>(bytes, 1)));
    std::shared_ptr<void> keep(p, [](void* q) { cudaFreeHost(q); });
    return Storage::external(p, bytes, std::move(keep));
  }
  void copy_async(void* dst, const Device& dst_device, const void* src, const Device& src_device,
                  size_t bytes) const override {
    if (!bytes) return;
    const bool dst_dev = dst_device.kind == Device::Kind::cuda;
    const bool src_dev = src_device.kind == Device::Kind::cuda;
    LOOM_CUDA_CHECK(cudaSetDevice(index_));
    LOOM_CUDA_CHECK(
        cudaMemcpyAsync(dst, src, bytes,
                        dst_dev ? (src_dev ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                : (src_dev ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost),
                        stream_));
  }
  std::shared_ptr<void> marker() const override {
    LOOM_CUDA_CHECK(cudaSetDevice(index_));
    cudaEvent_t e = nullptr;
    LOOM_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    std::shared_ptr<void> m(e, [](void* p) { cudaEventDestroy(static_cast<cudaEvent_t>(p)); });
    LOOM_CUDA_CHECK(cudaEventRecord(e, stream_));
    return m;
  }
  void wait_marker(const std::shared_ptr<void>& m) const override {
    if (!m) return;
    LOOM_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(m.get())));
    raise_error();
  }
  DeviceError* error_device() const { return error_device_; }
  int* counters() const { return counters_; }
  void raise_error() const {
    volatile DeviceError* e = error_host_;
    if (e->code == kErrNone) return;
    DeviceError r{e->code, e->axis, e->value, e->size, e->dim};
    e->code = kErrNone;
    const char* op = r.code == kErrDynamicSlice      ? "dynamic_slice"
                     : r.code == kErrSliceUpdate     ? "slice_update"
                     : r.code == kErrRopeWriteSlice  ? "rope_write_slice"
                     : r.code == kErrRopeWriteKv     ? "rope_write_kv"
                     : r.code == kErrRopeWriteKvSdpa ? "rope_write_kv_sdpa"
                                                     : "gather";
    if (r.code == kErrGather)
      fail("[", op, "] index ", r.value, " is out of range for axis ", r.axis, " of size ", r.dim,
           " (found on cuda:", index_, "; rows of that index were read from 0)");
    fail("[", op, "] start ", r.value, " + size ", r.size, " on axis ", r.axis, " exceeds dim ",
         r.dim, " (found on cuda:", index_, "; the start was clamped)");
  }

  cudaStream_t stream() const { return stream_; }
  CachingAllocator& allocator() const { return alloc_; }
  // An event recorded on one stream and waited on by the other: GPU-side ordering only. One event
  // serves all calls: cudaStreamWaitEvent captures the event's state when it is called.
  void wait_for_stream(void* external) const override {
    join(static_cast<cudaStream_t>(external), stream_);
  }
  void signal_stream(void* external) const override {
    join(stream_, static_cast<cudaStream_t>(external));
  }

 private:
  static const KernelTable& table() {
    static const KernelTable t = [] {
      KernelTable k;
      register_elementwise(k);
      register_reduction(k);
      register_matmul(k);
      register_movement(k);
      register_attention(k);
      register_quantization(k);
      register_complex(k);  // after register_elementwise: wraps its kernels
      register_fft(k);
      register_spectral(k);
      register_conv(k);
      register_sampling(k);
      register_stitched(k);  // generated per program (stitched.h)
      return k;
    }();
    return t;
  }

  // Large host <-> device copies go through two pinned buffers of our own, in chunks: the DMA
  // engine runs at full speed on pinned memory, and copying chunk i+1 on the host overlaps the
  // transfer of chunk i (pageable copies are staged by the driver one at a time).
  static constexpr size_t kStagedCopy = size_t{1} << 20, kStageChunk = size_t{8} << 20;
  void staged_copy(void* dst, const void* src, size_t bytes, bool to_device) const {
    std::lock_guard lock(stage_mutex_);
    if (!stage_[0]) {
      for (int b = 0; b < 2; ++b) {
        LOOM_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&stage_[b]), kStageChunk));
        LOOM_CUDA_CHECK(cudaEventCreateWithFlags(&stage_done_[b], cudaEventDisableTiming));
        LOOM_CUDA_CHECK(cudaEventRecord(stage_done_[b], stream_));
      }
    }
    auto* d = static_cast<uint8_t*>(dst);
    const auto* h = static_cast<const uint8_t*>(src);
    if (to_device) {
      for (size_t off = 0, i = 0; off < bytes; off += kStageChunk, ++i) {
        size_t n = std::min(kStageChunk, bytes - off);
        int b = static_cast<int>(i % 2);
        LOOM_CUDA_CHECK(cudaEventSynchronize(stage_done_[b]));  // its last transfer is done
        std::memcpy(stage_[b], h + off, n);
        LOOM_CUDA_CHECK(cudaMemcpyAsync(d + off, stage_[b], n, cudaMemcpyHostToDevice, stream_));
        LOOM_CUDA_CHECK(cudaEventRecord(stage_done_[b], stream_));
      }
      LOOM_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the source may be freed on return
      return;
    }
    // Device to host: chunk i+1 is in flight while chunk i is copied out of its buffer.
    const size_t chunks = (bytes + kStageChunk - 1) / kStageChunk;
    auto issue = [&](size_t i) {
      size_t off = i * kStageChunk, n = std::min(kStageChunk, bytes - off);
      int b = static_cast<int>(i % 2);
      LOOM_CUDA_CHECK(cudaMemcpyAsync(stage_[b], h + off, n, cudaMemcpyDeviceToHost, stream_));
      LOOM_CUDA_CHECK(cudaEventRecord(stage_done_[b], stream_));
    };
    issue(0);
    for (size_t i = 0; i < chunks; ++i) {
      if (i + 1 < chunks) issue(i + 1);
      int b = static_cast<int>(i % 2);
      LOOM_CUDA_CHECK(cudaEventSynchronize(stage_done_[b]));
      size_t off = i * kStageChunk, n = std::min(kStageChunk, bytes - off);
      std::memcpy(d + off, stage_[b], n);
    }
  }

  void join(cudaStream_t first, cudaStream_t then) const {
    std::lock_guard lock(event_mutex_);
    LOOM_CUDA_CHECK(cudaSetDevice(index_));
    if (!event_) LOOM_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
    LOOM_CUDA_CHECK(cudaEventRecord(event_, first));
    LOOM_CUDA_CHECK(cudaStreamWaitEvent(then, event_, 0));
  }

  int index_;
  cudaStream_t stream_ = nullptr;
  mutable std::mutex event_mutex_;
  mutable cudaEvent_t event_ = nullptr;
  mutable std::mutex stage_mutex_;
  mutable uint8_t* stage_[2] = {nullptr, nullptr};  // pinned, kStageChunk each
  mutable cudaEvent_t stage_done_[2] = {nullptr, nullptr};
  mutable CachingAllocator alloc_;
  DeviceError* error_host_ = nullptr;    // mapped pinned memory ...
  DeviceError* error_device_ = nullptr;  // ... and its device address
  int* counters_ = nullptr;              // split_counters
};

std::mutex g_mutex;
std::map<int, std::unique_ptr<CudaBackend>>& backends() {
  static std::map<int, std::unique_ptr<CudaBackend>> b;
  return b;
}

CudaBackend& get(int index) {
  std::lock_guard lock(g_mutex);
  auto& b = backends()[index];
  if (!b) {
    int n = device_count();
    LOOM_CHECK(index >= 0 && index < n, "[cuda] device cuda:", index, " is not available (", n,
               " GPU(s) found)");
    b = std::make_unique<CudaBackend>(index);
  }
  return *b;
}

}  // namespace

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

Backend& backend(int index) { return get(index); }

cudaStream_t stream(int device) { return get(device).stream(); }

cudaStream_t stream_for(const KernelContext& c) {
  int dev = c.outputs.empty() ? 0 : c.outputs[0].device().index;
  CudaBackend& b = get(dev);
  LOOM_CUDA_CHECK(cudaSetDevice(dev));
  return b.stream();
}

std::shared_ptr<Storage> scratch(int device, size_t bytes) { return get(device).allocate(bytes); }

int sm_count(int device) {
  static std::mutex m;
  static std::map<int, int> counts;
  std::lock_guard lock(m);
  auto it = counts.find(device);
  if (it != counts.end()) return it->second;
  int n = 0;
  LOOM_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
  return counts[device] = n;
}

bool env_on(const char* name) {
  const char* e = std::getenv(name);
  return !(e && e[0] == '0');
}

cudaLaunchAttribute pdl_attribute() {
  static const bool on = env_on("LOOM_PDL");
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = on ? 1 : 0;
  return attr;
}

DeviceError* device_error(int device) { return get(device).error_device(); }
int* split_counters(int device) { return get(device).counters(); }
void raise_device_error(int device) { get(device).raise_error(); }

void begin_capture_pool(int device) { get(device).allocator().begin_capture(); }
std::vector<std::shared_ptr<void>> end_capture_pool(int device) {
  return get(device).allocator().end_capture();
}

}  // namespace loom::backends::cuda
