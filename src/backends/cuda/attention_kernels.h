// The CUDA sdpa kernels behind one raw-pointer entry point (issue 10): the op's kernel, the
// tests and the benchmark all call sdpa_launch, so what is tested and timed is what runs.
// Paths: `cudnn` (cuDNN's fused flash attention, attention_cudnn.cpp: f16/bf16 prefill without
// mask or kv_len, D 64/128/256, when libcudnn.so.9 loads at run time), `flash` (FlashAttention-2
// style on the tensor cores: f16/bf16 prefill, D 64/128), `decode` (split-KV flash-decoding:
// Lq <= 8, f16/bf16/f32 K/V, D 64/128/256) and `fallback` (one block per query row: every other
// case the op allows). Host-only header.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "loom/dtype.h"

namespace loom::backends::cuda {

struct DeviceError;  // cuda_common.h

struct SdpaLaunch {
  // q [B,Hq,Lq,D], k [B,Hkv,Lk,D], v [B,Hkv,Lk,Dv], out [B,Hq,Lq,Dv]: contiguous, on the device.
  const void *q = nullptr, *k = nullptr, *v = nullptr;
  void* out = nullptr;
  DType q_dtype = DType::f32, kv_dtype = DType::f32, out_dtype = DType::f32;
  int64_t B = 0, Hq = 0, Hkv = 0, Lq = 0, Lk = 0, D = 0, Dv = 0;
  // Optional bool or additive float mask, read through strides broadcast to [B,Hq,Lq,Lk].
  const void* mask = nullptr;
  DType mask_dtype = DType::boolean;
  int64_t mask_strides[4] = {};
  // Optional i32/i64 scalar on the device: attend keys [0, kv_len). Never read on the host.
  const void* kv_len = nullptr;
  DType kv_len_dtype = DType::i64;
  float scale = 1.0f;
  bool causal = false;
  // Test and tuning knobs: the flash tile configuration (-1: chosen by shape; >= 0 asks for the
  // flash kernel, so it also turns the cuDNN path off) and the decode split size in keys (0:
  // chosen by shape).
  int flash_variant = -1;
  int decode_split_keys = 0;
  // The decode kernel: -1 chosen by shape (tensor cores for f16/bf16 K/V, D 64/128, group·Lq <=
  // 16), 0 the scalar kernel, 1 tensor cores where they apply.
  int decode_kernel = -1;
  // With kv_settled: the decode kernel's copies before its wait take kv_len + this (a test of
  // the path where kv_len was not yet written then: the keys are copied again after the wait).
  int decode_early_skew = 0;
  // rope_write_kv_sdpa's decode form (attention.cu): q is not yet rotated, and this step's key
  // and value rows are written into k / v (the caches) at row `starts[2]` by the kernel itself.
  // Only where decode_rope_kv_supports(this) holds.
  struct RopeKv {
    const float *k = nullptr, *v = nullptr;  // [B, Hkv, 1, D] f32, contiguous
    const void* pos = nullptr;               // i32 / i64 [1] or [B, 1]
    DType pos_dtype = DType::i32;
    bool pos_batched = false;
    double theta = 10000, position_scale = 1;
    const void* starts = nullptr;  // i32 / i64 [4]: {0, 0, row, 0}
    DType starts_dtype = DType::i64;
    DeviceError* err = nullptr;  // where a start out of range is recorded
  } rope_kv;
  // No kernel that may still be running when this launch starts (PDL, pdl.cuh) writes k or v:
  // the decode kernel then copies its keys before it waits for the previous kernel.
  bool kv_settled = false;
  // A diagnostic of builds with -DLOOM_DECODE_TIMELINE=ON (ignored otherwise): where the
  // tensor-core decode kernel's blocks record when each reaches each step, for launch number
  // decode_timeline_seq (attention_decode.cu, timeline_mark): kDecodeTimelineSlots per block.
  // decode_timeline_rows: the buffer's room in blocks (launch * blocks + block); marks past it
  // are dropped.
  unsigned long long* decode_timeline = nullptr;
  int decode_timeline_seq = 0;
  int64_t decode_timeline_rows = 0;
  bool allow_fast = true;   // false: always the fallback kernel (the before/after baseline)
  bool allow_cudnn = true;  // false: never cuDNN (Loom's own kernels); also LOOM_SDPA_CUDNN=0
};

inline constexpr int kDecodeTimelineSlots = 10;

enum class SdpaPath { kFallback, kFlash, kDecode, kCudnn };
const char* sdpa_path_name(SdpaPath p);

// The path sdpa_launch takes for these arguments (pure function of shapes, dtypes, alignment and
// of whether cuDNN could be loaded, probed once per process). When cuDNN then fails to build or
// run a shape, sdpa_launch runs the flash kernel (or the fallback) instead and remembers it.
SdpaPath sdpa_path(const SdpaLaunch& a);
// Whether the decode kernel takes a.rope_kv (interleaved rope over every dim of an f32 q, one new
// row, a cache its tensor-core kernel reads with at most 8 query rows per kv head).
bool decode_rope_kv_supports(const SdpaLaunch& a);
// Number of flash tile configurations for head dim d (variants 0..n-1).
int sdpa_flash_variants(int64_t d);
const char* sdpa_flash_variant_name(int64_t d, int variant);

// Enqueues the attention on `stream` (device `device`: the decode path takes its scratch from
// that device's caching allocator). Throws loom::Error on launch failures.
void sdpa_launch(const SdpaLaunch& a, cudaStream_t stream, int device);

}  // namespace loom::backends::cuda
