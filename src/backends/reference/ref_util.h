// Helpers for the reference backend: slow, obviously correct, wide accumulation.
#pragma once
#include <cstring>
#include <vector>

#include "backends/backend.h"
#include "core/element.h"

namespace loom::backends::ref {

using detail::load_element;
using detail::store_element;

// Strides (in elements) to read a contiguous `in` as if broadcast to `out` (0 on broadcast dims).
inline std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  std::vector<int64_t> st(static_cast<size_t>(out.rank()), 0);
  int64_t s = 1;
  for (int i = in.rank() - 1; i >= 0; --i) {
    int o = i + out.rank() - in.rank();
    st[static_cast<size_t>(o)] = in[i] == 1 ? 0 : s;
    s *= in[i];
  }
  return st;
}

// Calls fn(out_flat, idx) for every multi-index of `shape` in row-major order.
template <class F>
void for_each_index(const Shape& shape, F&& fn) {
  int64_t n = shape.numel();
  std::vector<int64_t> idx(static_cast<size_t>(shape.rank()), 0);
  for (int64_t flat = 0; flat < n; ++flat) {
    fn(flat, idx);
    for (int d = shape.rank() - 1; d >= 0; --d) {
      if (++idx[static_cast<size_t>(d)] < shape[d]) break;
      idx[static_cast<size_t>(d)] = 0;
    }
  }
}

inline int64_t dot(const std::vector<int64_t>& idx, const std::vector<int64_t>& strides) {
  int64_t o = 0;
  for (size_t i = 0; i < idx.size(); ++i) o += idx[i] * strides[i];
  return o;
}

// Copies one element (any dtype, packed included).
inline void copy_element(DType t, const void* src, int64_t si, void* dst, int64_t di) {
  int bits = dtype_bits(t);
  if (bits < 8) {
    store_element(t, dst, di, load_element(t, src, si));
    return;
  }
  size_t es = static_cast<size_t>(bits / 8);
  std::memcpy(static_cast<char*>(dst) + static_cast<size_t>(di) * es,
              static_cast<const char*>(src) + static_cast<size_t>(si) * es, es);
}

// Kernels other reference kernels reuse (fused ops computed as their unfused parts).
// slice_update / write_slice: writes input 1 into the output at the starts (input 2), after
// copying the base (input 0) unless writing in place; `op` names the op in range errors.
void write_region(const KernelContext& c, const char* op);
// rope(x, positions) into outputs[0].
void rope(const KernelContext& c);
// rope_write_kv as its parts run on a backend: rope_write on the keys, write on the values, rope on
// q (the reference backend's kernels, or the CPU backend's own).
KernelFn rope_write_kv_from(KernelFn rope_write, KernelFn write, KernelFn rope);
// rope_write_kv_sdpa as a backend's rope_write_kv kernel, then its sdpa kernel (the rotated q in
// a temporary); starts out of range are reported under the fused op's name.
KernelFn rope_write_kv_sdpa_from(KernelFn rope_write_kv, KernelFn sdpa);
// add_rms_norm(a, b[, gamma]) into outputs[0] (sum) and outputs[1] (normed), NormAttrs.
void add_rms_norm(const KernelContext& c);
// quantized_matmul(x, weights...) into outputs[0], QuantizedMatmulAttrs.
void quantized_matmul(const KernelContext& c);

void register_elementwise(KernelTable& t);
void register_reduction(KernelTable& t);
void register_normalization(KernelTable& t);
void register_matmul(KernelTable& t);
void register_movement(KernelTable& t);
void register_attention(KernelTable& t);
void register_quantization(KernelTable& t);
void register_fft(KernelTable& t);
void register_conv(KernelTable& t);  // after register_elementwise: wraps its complex-capable ops
void register_stitched(KernelTable& t);
void register_sampling(KernelTable& t);

}  // namespace loom::backends::ref
