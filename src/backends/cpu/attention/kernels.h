// Inner loops of the attention kernels, one set per instruction set. Everything here works on
// f32 rows; the driver (sdpa.cpp) converts f16/bf16 and strided data into f32 blocks first.
// Buffers the driver owns (q rows, scores, accumulators, packed K/V) are padded to a multiple of
// kPad floats, so vector loops over them need no tail handling; rows read straight from a
// caller's f32 K/V (row length d or dv) are read with masked tails.
#pragma once
#include <cstdint>

#include "backends/cpu/attention/sdpa.h"
#include "loom/dtype.h"

namespace loom::cpu::attn {

inline constexpr int64_t kPad = 16;
inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

struct KernelSet {
  AttnIsa isa;
  // dst[i] = scale * src[i * stride] as f32, for i < n (src of dtype f32/f16/bf16).
  void (*convert)(const void* src, DType dt, int64_t stride, int64_t n, float scale, float* dst);
  // s[r, j] = q[r, :d] . k[j, :d] for r < rows, j < n. q rows padded; k rows exactly d long.
  void (*qk)(const float* q, int64_t q_ld, int64_t rows, const float* k, int64_t k_ld, int64_t n,
             int64_t d, float* s, int64_t s_ld);
  // Online softmax over one key block of n_pad (multiple of kPad) columns, -inf where masked:
  // updates the running max m and sum l per row, replaces s by exp(s - m_new) and rescales the
  // accumulator rows (acc_ld floats, a multiple of kPad) by exp(m_old - m_new).
  void (*softmax)(float* s, int64_t s_ld, int64_t rows, int64_t n_pad, float* m, float* l,
                  float* acc, int64_t acc_ld);
  // acc[r, :dv] += sum_j p[r, j] * v[j, :dv] for r < rows, j < n. v rows exactly dv long.
  void (*pv)(const float* p, int64_t p_ld, int64_t rows, int64_t n, const float* v, int64_t v_ld,
             int64_t dv, float* acc, int64_t acc_ld);
};

const KernelSet& kernels(AttnIsa isa);

}  // namespace loom::cpu::attn
