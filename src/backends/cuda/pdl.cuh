// Programmatic dependent launch (PDL, sm_90) for the kernels of a decode step. A step is ~500
// small kernels in a row (cuda_llm.md); each normally starts only after the previous one has
// finished and the GPU has scheduled its blocks, a gap of about a microsecond per kernel. A kernel
// launched with launch_pdl may be scheduled as soon as the previous kernel's blocks have all
// called pdl_begin(): it sits resident, waits in pdl_begin() for the previous kernel to complete
// (and its writes to be visible), and starts at once. Kernels that read inputs no earlier kernel
// writes (quantized weights) may issue those loads before pdl_begin().
//
// Rules: a kernel launched with launch_pdl must call pdl_begin() before it touches any global
// memory that an earlier kernel reads or writes; pdl_begin() in a kernel launched the ordinary way
// does nothing. Two exceptions: inputs the op's KernelContext marks settled (no kernel that may
// still run writes them: every op's last kernel waits before it triggers, so only the previous
// op's may), and values read early only as a guess that is checked against a read after
// pdl_begin() before anything depends on it (decode attention's kv_len and rope position).
// Completion is transitive (each kernel finished waiting before it finished), so waiting for the
// previous kernel is waiting for all of them. Library kernels (cuBLAS, cuDNN, cuFFT) never trigger
// early; a PDL kernel after one simply starts when it ends. LOOM_PDL=0 turns the early launch off
// (same kernels, ordinary stream order). Included only by .cu files.
#pragma once
#include <cuda_runtime.h>

#include <utility>

#include "backends/cuda/cuda_common.h"

namespace loom::backends::cuda {

// Waits for the previous kernel on the stream, then lets the next one be scheduled.
__device__ __forceinline__ void pdl_begin() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;");
#endif
}

// The two halves of pdl_begin() for a small kernel between two large ones (the x image between
// two GEMVs): pdl_trigger() first lets the next kernel be scheduled while the one before is still
// running, so its blocks take the SMs that the earlier kernel's finished blocks leave and start
// their constant-weight copies during its tail; pdl_wait() then waits as pdl_begin() does (H100,
// Mistral-7B 448.0 -> 458.2 tok/s; in decode attention it lost, 472.1 -> 467.9: the output
// projection's copies then compete with the attention's own loads). Safe anywhere: a kernel is
// launched only once every block of the one before has triggered (is resident), so by induction
// every earlier kernel is resident when a new one takes room, and each kernel still waits for the
// one before it to complete. Never an op's last kernel: KernelContext::settled_inputs counts on
// only the previous op's kernels still running when a kernel starts.
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;");
#endif
}
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// kernel<<<grid, block, smem, stream>>>(args...) as a programmatic dependent of the previous
// kernel on `stream` (unless LOOM_PDL=0).
template <class... Params, class... Args>
void launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1] = {pdl_attribute()};
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  const cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
  if (e != cudaSuccess)  // the configuration in the message: most launch errors are about it
    ::loom::fail("[cuda] kernel launch (grid ", grid.x, "x", grid.y, "x", grid.z, ", block ",
                 block.x, ", ", smem, " B of dynamic shared memory): ", cudaGetErrorString(e));
}

}  // namespace loom::backends::cuda
