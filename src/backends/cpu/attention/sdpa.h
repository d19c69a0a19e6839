// Fused scaled-dot-product attention on the CPU: raw-pointer kernels that the `sdpa` graph op
// calls. Every tensor is described by a base pointer, a dtype and element strides, so views
// (a slice of a KV cache, transposed heads, a broadcast mask) are read in place without copies.
#pragma once
#include <cstdint>

#include "loom/dtype.h"

namespace loom {
class ThreadPool;
}

namespace loom::cpu {

// Instruction set used by the attention and RoPE kernels. kAuto picks the best the CPU
// supports; a forced choice the CPU lacks falls back to the best it has (tests and benchmarks
// use this to exercise every path on one machine).
enum class AttnIsa { kAuto, kScalar, kAvx2, kAvx512 };

// The ISA that `isa` resolves to on this CPU.
AttnIsa resolve_isa(AttnIsa isa);
const char* isa_name(AttnIsa isa);

// out[b,h,i,:] = softmax(scale * q[b,h,i,:] . k[b,g,j,:] + mask[b,h,i,j]) . v[b,g,j,:]
// over keys j in [0, kv_len), with g = h / (Hq / Hkv) (grouped-query attention).
// Shapes: q [B,Hq,Lq,D], k [B,Hkv,Lk,D], v [B,Hkv,Lk,Dv], mask broadcast to [B,Hq,Lq,Lk],
// out [B,Hq,Lq,Dv]. Strides are in elements (not bytes); a 0 stride broadcasts.
struct SdpaArgs {
  const void* q = nullptr;
  DType q_dtype = DType::f32;  // f32, f16 or bf16
  int64_t B = 0, Hq = 0, Lq = 0, D = 0;
  int64_t q_strides[4] = {};

  const void* k = nullptr;
  const void* v = nullptr;
  DType kv_dtype = DType::f32;  // f32, f16 or bf16 (k and v share it)
  int64_t Hkv = 0, Lk = 0, Dv = 0;
  int64_t k_strides[4] = {};
  int64_t v_strides[4] = {};

  // Optional: bool (true = attend) or an additive f32/f16/bf16 bias (may hold -inf).
  const void* mask = nullptr;
  DType mask_dtype = DType::boolean;
  int64_t mask_strides[4] = {};

  // Query i sits at position kv_len - Lq + i; keys after that position are masked.
  bool causal = false;
  float scale = 1.0f;  // the caller chooses (1/sqrt(D) by default in the graph op)
  // Attend only keys [0, kv_len) (a fixed-size cache filled up to kv_len); -1 means Lk.
  int64_t kv_len = -1;

  void* out = nullptr;
  DType out_dtype = DType::f32;  // f32, f16 or bf16
  int64_t out_strides[4] = {};

  // Tuning and test knobs. num_splits: how many key ranges each (batch, kv head, query tile)
  // is split into (0 = chosen from the thread count; >1 forces the split-K + log-sum-exp merge).
  int num_splits = 0;
  AttnIsa isa = AttnIsa::kAuto;
};

// Flash-style attention: keys are visited in blocks with an online softmax (running max and
// sum, f32), so no Lq x Lk matrix is materialised. Work is spread over B x Hkv x query tiles
// (all query heads of a group share one pass over their K/V block); when that is too little
// work for the pool (decode), key ranges are split across threads and merged by log-sum-exp.
// A row whose keys are all masked yields zeros. Throws loom::Error on bad arguments.
void sdpa(const SdpaArgs& a, ThreadPool* pool);

// Fills contiguous row-major strides for a [d0,d1,d2,d3] tensor.
inline void contiguous_strides(const int64_t dims[4], int64_t strides[4]) {
  strides[3] = 1;
  for (int i = 2; i >= 0; --i) strides[i] = strides[i + 1] * dims[i + 1];
}

}  // namespace loom::cpu
