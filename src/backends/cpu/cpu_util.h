// CPU backend helpers: dtype conversion of contiguous runs, dim collapsing for broadcasting.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "backends/backend.h"
#include "backends/broadcast_plan.h"
#include "core/element.h"
#include "runtime/thread_pool.h"

namespace loom::backends::cpu {

// Loads n elements starting at element `off` with element stride `stride` (0 = broadcast),
// converting to T.
template <class T>
inline void load_run(DType t, const void* base, int64_t off, int64_t stride, int64_t n, T* dst) {
  auto go = [&](auto* p, auto conv) {
    p += off;
    if (stride == 1)
      for (int64_t i = 0; i < n; ++i) dst[i] = conv(p[i]);
    else {
      T v = conv(p[0]);
      for (int64_t i = 0; i < n; ++i) dst[i] = stride ? conv(p[i * stride]) : v;
    }
  };
  auto id = [](auto v) { return static_cast<T>(v); };
  switch (t) {
    case DType::f32:
      go(static_cast<const float*>(base), id);
      return;
    case DType::f64:
      go(static_cast<const double*>(base), id);
      return;
    case DType::f16:
      go(static_cast<const uint16_t*>(base),
         [](uint16_t h) { return static_cast<T>(f16_to_f32(h)); });
      return;
    case DType::bf16:
      go(static_cast<const uint16_t*>(base),
         [](uint16_t h) { return static_cast<T>(bf16_to_f32(h)); });
      return;
    case DType::i8:
      go(static_cast<const int8_t*>(base), id);
      return;
    case DType::u8:
    case DType::boolean:
      go(static_cast<const uint8_t*>(base), id);
      return;
    case DType::i16:
      go(static_cast<const int16_t*>(base), id);
      return;
    case DType::i32:
      go(static_cast<const int32_t*>(base), id);
      return;
    case DType::i64:
      go(static_cast<const int64_t*>(base), id);
      return;
    case DType::u4:
    case DType::i4:
      if (stride == 1 && off % 2 == 0) {  // unpack whole bytes: low nibble = even index
        // Branch-free (random nibbles would mispredict a sign test) and vectorisable;
        // ((v ^ 8) - 8) sign-extends a 4-bit value.
        const auto* p = static_cast<const uint8_t*>(base) + off / 2;
        int64_t pairs = n / 2;
        if (t == DType::i4) {
          for (int64_t i = 0; i < pairs; ++i) {
            dst[2 * i] = static_cast<T>(((p[i] & 15) ^ 8) - 8);
            dst[2 * i + 1] = static_cast<T>(((p[i] >> 4) ^ 8) - 8);
          }
        } else {
          for (int64_t i = 0; i < pairs; ++i) {
            dst[2 * i] = static_cast<T>(p[i] & 15);
            dst[2 * i + 1] = static_cast<T>(p[i] >> 4);
          }
        }
        if (n % 2) dst[n - 1] = static_cast<T>(detail::load_element(t, base, off + n - 1));
        return;
      }
      [[fallthrough]];
    default:
      for (int64_t i = 0; i < n; ++i)
        dst[i] = static_cast<T>(detail::load_element(t, base, off + i * stride));
  }
}

// Stores n contiguous elements from T, converting (integers saturate, bool is != 0).
template <class T>
inline void store_run(DType t, void* base, int64_t off, int64_t n, const T* src) {
  switch (t) {
    case DType::f32: {
      auto* p = static_cast<float*>(base) + off;
      for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(src[i]);
      return;
    }
    case DType::f64: {
      auto* p = static_cast<double*>(base) + off;
      for (int64_t i = 0; i < n; ++i) p[i] = static_cast<double>(src[i]);
      return;
    }
    case DType::f16: {
      auto* p = static_cast<uint16_t*>(base) + off;
      for (int64_t i = 0; i < n; ++i) p[i] = f32_to_f16(static_cast<float>(src[i]));
      return;
    }
    case DType::bf16: {
      auto* p = static_cast<uint16_t*>(base) + off;
      for (int64_t i = 0; i < n; ++i) p[i] = f32_to_bf16(static_cast<float>(src[i]));
      return;
    }
    case DType::boolean: {
      auto* p = static_cast<uint8_t*>(base) + off;
      for (int64_t i = 0; i < n; ++i) p[i] = src[i] != 0;
      return;
    }
    case DType::i64: {
      auto* p = static_cast<int64_t*>(base) + off;
      for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int64_t>(src[i]);
      return;
    }
    case DType::i32: {
      auto* p = static_cast<int32_t*>(base) + off;
      for (int64_t i = 0; i < n; ++i) p[i] = detail::saturate<int32_t>(static_cast<double>(src[i]));
      return;
    }
    default:
      for (int64_t i = 0; i < n; ++i)
        detail::store_element(t, base, off + i, static_cast<double>(src[i]));
  }
}

using backends::BroadcastPlan;  // src/backends/broadcast_plan.h
using backends::plan_broadcast;

// Walks an elementwise-shaped kernel's output (c.outputs[0]) in tiles of at most `tile` elements
// of one row, over c.pool: for every tile, each input is seen as a run of `n` values of type T
// (in place when it is unit-stride T already, else loaded, converted and broadcast by stride into
// a per-task buffer), then `body(state, out_offset, n, inputs)` runs. `make_state()` runs once
// per parallel task (its scratch buffers). Shared by the elementwise and stitched kernels.
template <class T, class MakeState, class Body>
void walk_tiles(const KernelContext& c, DType compute, int64_t tile, int64_t grain,
                MakeState&& make_state, Body&& body) {
  const NDArray& out = c.outputs[0];
  if (out.numel() == 0) return;
  std::vector<Shape> shapes;
  for (const auto& in : c.inputs) shapes.push_back(in.shape());
  const BroadcastPlan p = plan_broadcast(out.shape(), shapes);
  const int64_t inner = p.dims.back();
  const int64_t rows = out.numel() / std::max<int64_t>(inner, 1);
  const int64_t tiles_per_row = (inner + tile - 1) / tile;
  const size_t nin = c.inputs.size();
  parallel_for(c.pool, rows * tiles_per_row, grain, [&](int64_t b, int64_t e) {
    auto state = make_state();
    // Reused across calls on this thread: small ops run this many times per model step.
    thread_local std::vector<T> buf;
    if (buf.size() < nin * static_cast<size_t>(tile)) buf.resize(nin * static_cast<size_t>(tile));
    const T* ptr_small[8];  // no allocation for the usual few inputs
    std::vector<const T*> ptr_big(nin > 8 ? nin : 0);
    const T** ptr = nin > 8 ? ptr_big.data() : ptr_small;
    std::vector<int64_t> idx(p.dims.size() - 1);
    for (int64_t t = b; t < e; ++t) {
      const int64_t row = t / tiles_per_row, col = (t % tiles_per_row) * tile;
      const int64_t n = std::min(tile, inner - col);
      int64_t rem = row;  // the row's multi-index, for each input's offset
      for (int d = static_cast<int>(idx.size()) - 1; d >= 0; --d) {
        idx[static_cast<size_t>(d)] = rem % p.dims[static_cast<size_t>(d)];
        rem /= p.dims[static_cast<size_t>(d)];
      }
      for (size_t i = 0; i < nin; ++i) {
        int64_t off = 0;
        for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * p.strides[i][d];
        const int64_t st = p.strides[i].back();
        off += col * st;
        const NDArray& in = c.inputs[i];
        if (st == 1 && in.dtype() == compute) {
          ptr[i] = static_cast<const T*>(in.data()) + off;  // read in place
        } else {
          T* dst = buf.data() + i * static_cast<size_t>(tile);
          load_run<T>(in.dtype(), in.data(), off, st, n, dst);
          ptr[i] = dst;
        }
      }
      body(state, row * inner + col, n, ptr);
    }
  });
}

void register_elementwise(KernelTable& t);
void register_reduction(KernelTable& t);
void register_matmul(KernelTable& t);
void register_movement(KernelTable& t);
void register_attention(KernelTable& t);
void register_quantization(KernelTable& t);
void register_fft(KernelTable& t);
void register_conv(KernelTable& t);  // after register_elementwise: wraps its complex-capable ops
void register_stitched(KernelTable& t);
void register_sampling(KernelTable& t);
// The CPU kernel of one stitched node, its program parsed once (CpuBackend::specialize).
KernelFn make_stitched_kernel(const ir::Node& node);
// One elementwise op over n f32 values (bool as 0/1, casts round to `out`): the stitched kernel's
// building block, the same loops as the op's own kernel.
void apply_f32(ir::OpId op, const Attrs* attrs, DType out, int64_t n, const float* const* in,
               float* o);

}  // namespace loom::backends::cpu
