// Rotary position embedding (RoPE) on the CPU, on strided [B, H, L, D] tensors with positions
// read from an integer array at run time (so a decode step needs no recompilation).
#pragma once
#include <cstdint>

#include "backends/cpu/attention/sdpa.h"
#include "loom/dtype.h"

namespace loom::cpu {

enum class RopeLayout {
  kInterleaved,  // GPT-J: rotate pairs (x0, x1), (x2, x3), ...
  kHalfSplit,    // GPT-NeoX / Llama: rotate pairs (x_i, x_{i + rotary_dim/2})
};

// For each pair index k < rotary_dim/2 and position p (read from `positions` at [b, l]):
//   angle = (p / scaling_factor) * theta^(-2k / rotary_dim)
//   (a, b) -> (a cos - b sin, b cos + a sin)
// Dims [rotary_dim, D) are copied unchanged. out may alias x (in place).
struct RopeArgs {
  const void* x = nullptr;
  DType x_dtype = DType::f32;  // f32, f16 or bf16
  int64_t B = 0, H = 0, L = 0, D = 0;
  int64_t x_strides[4] = {};

  const void* positions = nullptr;
  DType positions_dtype = DType::i32;  // i32 or i64
  int64_t positions_strides[2] = {};   // over [B, L]; stride 0 on B shares one row

  void* out = nullptr;
  DType out_dtype = DType::f32;
  int64_t out_strides[4] = {};

  RopeLayout layout = RopeLayout::kHalfSplit;
  double theta = 10000.0;
  double scaling_factor = 1.0;  // linear position scaling (positions are divided by it)
  int64_t rotary_dim = -1;      // even, <= D; -1 means D
};

void rope(const RopeArgs& a, ThreadPool* pool);

}  // namespace loom::cpu
