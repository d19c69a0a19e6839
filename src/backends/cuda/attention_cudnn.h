// sdpa prefill through cuDNN's fused flash attention (cudnn-frontend graph API, one SDPA node).
// attention_cudnn.cpp is the only file that sees cudnn_frontend.h; libcudnn.so.9 is dlopen'ed
// on first use, so nothing links cuDNN. Without the library (or built with LOOM_CUDNN off, or
// LOOM_SDPA_CUDNN=0 in the environment) the path is never taken and the flash kernel runs.
// Host-only header.
#pragma once
#include <cuda_runtime_api.h>

#include <string>

#include "backends/cuda/attention_kernels.h"

namespace loom::backends::cuda::attn {

// True when this build has the cuDNN path, LOOM_SDPA_CUDNN is not "0", and libcudnn.so.9 (then
// libcudnn.so) loads and reports version >= 9. Probed once per process (thread-safe).
bool cudnn_available();
// Why cudnn_available() is false ("" when it is true), and the loaded cuDNN version (e.g. 91900;
// 0 when none). Both probe like cudnn_available().
const char* cudnn_unavailable_reason();
int cudnn_version();

// The shapes and dtypes the cuDNN path takes (pure function of the arguments, availability
// aside): q/k/v/out all f16 or all bf16, D == Dv in {64, 128, 256}, Lq > 8, no mask and no
// kv_len, Lq <= Lk when causal (bottom-right alignment), Hq a multiple of Hkv, 16-byte aligned
// pointers.
bool cudnn_supports(const SdpaLaunch& a);

// Enqueues the attention on `stream` through cuDNN. Returns false with nothing enqueued when the
// graph for this shape cannot be built or executed (the failure is remembered for the key: no
// second try) or when a stream capture is open and the plan or handle would have to be created
// first; the caller then runs its own kernel. Plans are built once per (B, Hq, Hkv, Lq, Lk, D,
// dtype, causal, scale, device) and kept (bounded cache). Never syncs the host: capturable once
// the plan exists (the eager first run of a CUDA graph builds it). `why`, when given, receives the
// reason of a false return.
bool cudnn_launch(const SdpaLaunch& a, cudaStream_t stream, int device, std::string* why = nullptr);

}  // namespace loom::backends::cuda::attn
