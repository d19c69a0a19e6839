// Device helpers shared by the CUDA sdpa kernels (attention*.cu): async copies, exp2, the
// optional mask and kv_len inputs. Included only by .cu files.
#pragma once
#include <cstdint>

#include "backends/cuda/attention_kernels.h"
#include "backends/cuda/cuda_common.h"
#include "backends/cuda/device_util.cuh"

namespace loom::backends::cuda::attn {

constexpr float kLog2e = 1.4426950408889634f;

// 16-byte global -> shared copy that bypasses L1; pred false writes zeros (src-size 0), so rows
// past the valid keys are zeros, never stale data that could turn 0 * x into NaN.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool pred) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  int n = pred ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n));
}
// The "memory" clobber also keeps the compiler from hoisting later global loads (a decode
// block's Q) above the copies issued before it.
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// 2^x (one MUFU op; -inf gives +0).
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// The optional mask, broadcast to [B,Hq,Lq,Lk] by strides.
struct MaskView {
  const void* p;
  int dt;
  int64_t st[4];
};
// The mask's contribution to a score in the log2 domain: 0 / -inf for bool, bias * log2(e).
__device__ __forceinline__ float mask_log2(const MaskView& m, int64_t b, int64_t h, int64_t i,
                                           int64_t j) {
  int64_t o = b * m.st[0] + h * m.st[1] + i * m.st[2] + j * m.st[3];
  if (m.dt == kBool) return static_cast<const uint8_t*>(m.p)[o] ? 0.f : -INFINITY;
  return load<float>(m.dt, m.p, o) * kLog2e;
}

// The number of keys attended: kv_len read from device memory (no host sync), or Lk. An invalid
// length cannot throw from a kernel: *bad is set and the caller writes NaN rows.
__device__ __forceinline__ int64_t read_kv_len(const void* p, int dt, int64_t Lk, bool* bad) {
  *bad = false;
  if (!p) return Lk;
  int64_t n = dt == kI32 ? static_cast<int64_t>(*static_cast<const int32_t*>(p))
                         : *static_cast<const int64_t*>(p);
  if (n < 0 || n > Lk) {
    *bad = true;
    return 0;
  }
  return n;
}

inline MaskView mask_view(const SdpaLaunch& a) {
  MaskView m{a.mask, static_cast<int>(a.mask_dtype), {}};
  for (int d = 0; d < 4; ++d) m.st[d] = a.mask_strides[d];
  return m;
}

// Entry points of the fast paths (attention_flash.cu, attention_decode.cu).
bool flash_supports(const SdpaLaunch& a);
void launch_flash(const SdpaLaunch& a, cudaStream_t s);
int flash_variants(int64_t d);
const char* flash_variant_name(int64_t d, int variant);
bool decode_supports(const SdpaLaunch& a);
bool decode_rope_kv_fits(const SdpaLaunch& a);  // decode_rope_kv_supports, less allow_fast
void launch_decode(const SdpaLaunch& a, cudaStream_t s, int device);

}  // namespace loom::backends::cuda::attn
