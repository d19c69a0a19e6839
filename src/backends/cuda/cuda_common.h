// Host-side helpers shared by the CUDA backend's files: error checks, the per-device stream,
// launch geometry. Included by .cpp and .cu files alike (no device code here).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

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

}  // namespace loom::backends::cuda
