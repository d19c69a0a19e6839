// Rotary position embedding math shared by the rope kernel (attention.cu) and rope_write_slice
// (movement.cu, rope fused into the KV-cache write): the work split and the per-item math, in
// double as the reference does (position x frequency reaches 1e5 rad). Where the results go is
// the caller's. Included only by .cu files.
#pragma once
#include <cmath>

#include "backends/cuda/device_util.cuh"
#include "loom/kernel.h"

namespace loom::backends::cuda {

// Rotary pairs whose frequencies travel in the kernel's parameters (rotary dims up to 256).
constexpr int kRopeFreqs = 128;

// rope over a contiguous x [B, H, L, D] at positions [L] or [B, L] (read on the device).
struct RopeArgs {
  const void *x, *pos;
  int dx, dp;
  int64_t B, H, L, D, rd, half;
  int pos_rank;
  bool pos_batched, interleaved;
  double theta, position_scale;
  // theta^(-2k / rd) per pair k, computed on the host as the CPU backend does: the device then
  // spends no pow per item (and agrees with the CPU's frequencies exactly). Unused past
  // kRopeFreqs pairs, where the device computes them.
  double inv_freq[kRopeFreqs];
};

inline RopeArgs rope_args(const RopeAttrs& at, const NDArray& x, const NDArray& p) {
  RopeArgs a{};
  a.x = x.data(), a.pos = p.data();
  a.dx = static_cast<int>(x.dtype()), a.dp = static_cast<int>(p.dtype());
  a.B = x.shape()[0], a.H = x.shape()[1], a.L = x.shape()[2], a.D = x.shape()[3];
  a.rd = at.rotary_dim ? at.rotary_dim : a.D;
  a.half = a.rd / 2;
  a.pos_rank = p.rank();
  a.pos_batched = p.rank() == 2 && p.shape()[0] != 1;
  a.interleaved = at.interleaved;
  a.theta = at.theta;
  a.position_scale = at.position_scale;
  for (int64_t k = 0; k < a.half && k < kRopeFreqs; ++k)
    a.inv_freq[k] = std::pow(a.theta, -2.0 * static_cast<double>(k) / static_cast<double>(a.rd));
  return a;
}

// Work items (one thread each): per row of x, one per rotated pair and one per pass-through dim.
inline int64_t rope_items(const RopeArgs& a) { return a.B * a.H * a.L * (a.half + a.D - a.rd); }

// Work item t: the pair (i0, i1) of rotary dim k of its row, or one pass-through dim [rd, D).
// Calls put(row, d, value) for each dim d it produces; row is ((b * H) + h) * L + l.
template <class Put>
__device__ __forceinline__ void rope_item(const RopeArgs& a, int64_t t, Put&& put) {
  const int64_t per_row = a.half + (a.D - a.rd);
  const int64_t row = t / per_row, k = t % per_row;
  const int64_t base = row * a.D;
  if (k >= a.half) {
    const int64_t d = a.rd + (k - a.half);
    put(row, d, load<double>(a.dx, a.x, base + d));
    return;
  }
  const int64_t l = row % a.L, b = row / (a.H * a.L);
  const int64_t pi = a.pos_rank == 2 ? (a.pos_batched ? b : 0) * a.L + l : l;
  const int64_t i0 = a.interleaved ? 2 * k : k, i1 = a.interleaved ? 2 * k + 1 : k + a.half;
  // Both loads first: x does not depend on the position.
  const double x0 = load<double>(a.dx, a.x, base + i0), x1 = load<double>(a.dx, a.x, base + i1);
  const double pos = load<double>(a.dp, a.pos, pi) / a.position_scale;
  const double freq = k < kRopeFreqs
                          ? a.inv_freq[k]
                          : pow(a.theta, -2.0 * static_cast<double>(k) / static_cast<double>(a.rd));
  double sn, cs;
  sincos(pos * freq, &sn, &cs);
  put(row, i0, x0 * cs - x1 * sn);
  put(row, i1, x1 * cs + x0 * sn);
}

}  // namespace loom::backends::cuda
