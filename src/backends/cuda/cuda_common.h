// Host-side helpers shared by the CUDA backend's files: error checks, the per-device stream,
// launch geometry. Included by .cpp and .cu files alike (no device code here).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "backends/backend.h"
#include "loom/error.h"

// Every CUDA runtime call goes through this: a failure becomes loom::Error naming the call.
#define LOOM_CUDA_CHECK(call)                                                                  \
  do {                                                                                         \
    cudaError_t loom_err_ = (call);                                                            \
    if (loom_err_ != cudaSuccess)                                                              \
      ::loom::fail("[cuda] ", #call, ": ", cudaGetErrorString(loom_err_), " (", __FILE__, ":", \
                   __LINE__, ")");                                                             \
  } while (0)

// After a kernel launch: launch-configuration errors surface here, not at the next sync.
#define LOOM_CUDA_LAUNCHED() LOOM_CUDA_CHECK(cudaGetLastError())

namespace loom::backends::cuda {

// The backend of device `index` (created on first use; throws when there is no such GPU).
Backend& backend(int index);
// Number of usable GPUs (0 when the driver or the device is missing; never throws).
int device_count();

// The stream every kernel and copy of a device is issued on (one per device: work is ordered, so
// the caching allocator can hand a freed block to the next kernel without events).
cudaStream_t stream(int device);
// Makes `c`'s device current and returns its stream.
cudaStream_t stream_for(const KernelContext& c);

// A scratch device buffer from the caching allocator, returned to it when the pointer dies.
std::shared_ptr<Storage> scratch(int device, size_t bytes);
// kSplitCounters ints of `device`, zeroed when its backend is made, for kernels whose last block to
// finish a share of the work completes it (the split-KV decode's merge); kernels leave them zero.
// The decode merge counts per (batch, kv head) of a one-wave launch: at most 2 per SM.
constexpr int kSplitCounters = 4096;
int* split_counters(int device);
// Multiprocessors of `device` (queried once per device): grid sizes of one-wave kernels.
int sm_count(int device);
// Device pointers kernels may read with 16-byte vector loads or copies.
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
// A switch from the environment, for A/B runs: on unless `name` is set to "0...".
bool env_on(const char* name);
// The launch attribute that makes a kernel a programmatic dependent of the previous kernel on
// its stream (pdl.cuh; allowed unless LOOM_PDL=0).
cudaLaunchAttribute pdl_attribute();

// Errors kernels cannot throw (an index or slice start out of range, found on the device without
// copying the value to the host): the first one is recorded in mapped host memory, the kernel
// clamps and goes on, and the backend raises it as loom::Error at its next synchronisation
// (a copy to the host or synchronize()). Codes name the op; values are printed in the message.
struct DeviceError {
  int code;  // 0: none; kErr*
  int axis;
  long long value, size, dim;
};
enum : int {
  kErrNone = 0,
  kErrDynamicSlice = 1,
  kErrSliceUpdate = 2,
  kErrGather = 3,
  kErrRopeWriteSlice = 4,
  kErrRopeWriteKv = 5,
  kErrRopeWriteKvSdpa = 6
};
// Device pointer of `device`'s error record (host-mapped; reset after it is raised).
DeviceError* device_error(int device);
// Raises (and clears) a recorded device error. Call after the stream was synchronised.
void raise_device_error(int device);

// Stream capture (CUDA graphs, cuda_graph.cpp): while a capture is open on a device, blocks that
// kernels free go to a pool private to the capture instead of the shared cache (the graph replays
// into them later, so nothing outside may get them); end_capture_pool hands them to the graph.
void begin_capture_pool(int device);
std::vector<std::shared_ptr<void>> end_capture_pool(int device);

// Blocks of 256 threads, enough to cover n (capped: kernels use grid-stride loops).
inline unsigned blocks_for(int64_t n, int threads = 256) {
  int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 8 ? 65535 * 8 : b));
}

void register_elementwise(KernelTable& t);
void register_reduction(KernelTable& t);
void register_matmul(KernelTable& t);
void register_movement(KernelTable& t);
void register_attention(KernelTable& t);
void register_quantization(KernelTable& t);
// Issue 9's FFT / spectral / conv families; register_complex wraps the elementwise kernels.
void register_complex(KernelTable& t);
void register_fft(KernelTable& t);
void register_spectral(KernelTable& t);
void register_conv(KernelTable& t);
// sample (sampling.cu): top-k / top-p sampling, one block per row.
void register_sampling(KernelTable& t);

}  // namespace loom::backends::cuda
