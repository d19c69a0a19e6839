// RoPE: for each (b, l) the cos/sin table of its position is computed once (in double, since
// position x frequency reaches 1e5 rad and f32 angles would lose the low bits) and applied to
// every head. Each row is read into an f32 buffer before it is written, so out may alias x.
#include "backends/cpu/attention/rope.h"

#include <cmath>
#include <vector>

#include "backends/cpu/attention/kernels.h"
#include "loom/error.h"
#include "loom/kernel.h"

namespace loom::cpu {
namespace {

size_t elem_size(DType t) { return t == DType::f32 ? 4 : 2; }

int64_t load_position(const RopeArgs& a, int64_t b, int64_t l) {
  const int64_t off = b * a.positions_strides[0] + l * a.positions_strides[1];
  if (a.positions_dtype == DType::i32) return static_cast<const int32_t*>(a.positions)[off];
  return static_cast<const int64_t*>(a.positions)[off];
}

void store_row(const float* src, int64_t n, DType t, void* base, int64_t off, int64_t stride) {
  char* p = static_cast<char*>(base) + off * static_cast<int64_t>(elem_size(t));
  if (t == DType::f32) {
    auto* d = reinterpret_cast<float*>(p);
    for (int64_t i = 0; i < n; ++i) d[i * stride] = src[i];
  } else if (t == DType::f16) {
    auto* d = reinterpret_cast<uint16_t*>(p);
    for (int64_t i = 0; i < n; ++i) d[i * stride] = f32_to_f16(src[i]);
  } else {
    auto* d = reinterpret_cast<uint16_t*>(p);
    for (int64_t i = 0; i < n; ++i) d[i * stride] = f32_to_bf16(src[i]);
  }
}

bool is_half_or_f32(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::bf16; }

}  // namespace

void rope(const RopeArgs& a, ThreadPool* pool) {
  LOOM_CHECK(a.x && a.out && a.positions, "[rope] x, positions and out must not be null");
  LOOM_CHECK(is_half_or_f32(a.x_dtype) && is_half_or_f32(a.out_dtype),
             "[rope] x and out must be f32, f16 or bf16; got ", dtype_name(a.x_dtype), " and ",
             dtype_name(a.out_dtype));
  LOOM_CHECK(a.positions_dtype == DType::i32 || a.positions_dtype == DType::i64,
             "[rope] positions must be i32 or i64, got ", dtype_name(a.positions_dtype));
  LOOM_CHECK(a.B >= 0 && a.H >= 0 && a.L >= 0 && a.D >= 0, "[rope] bad sizes: B=", a.B, " H=", a.H,
             " L=", a.L, " D=", a.D);
  const int64_t rd = a.rotary_dim < 0 ? a.D : a.rotary_dim;
  LOOM_CHECK(rd % 2 == 0 && rd <= a.D, "[rope] rotary_dim ", rd, " must be even and <= D=", a.D);
  LOOM_CHECK(a.theta > 0 && a.scaling_factor > 0, "[rope] theta (", a.theta,
             ") and scaling_factor (", a.scaling_factor, ") must be positive");
  if (a.B == 0 || a.H == 0 || a.L == 0 || a.D == 0) return;

  const int64_t half = rd / 2;
  std::vector<double> inv_freq(static_cast<size_t>(half));
  for (int64_t k = 0; k < half; ++k)
    inv_freq[k] = std::pow(a.theta, -2.0 * static_cast<double>(k) / static_cast<double>(rd));
  const attn::KernelSet& ks = attn::kernels(AttnIsa::kAuto);
  const bool interleaved = a.layout == RopeLayout::kInterleaved;

  parallel_for(pool, a.B * a.L, 1, [&](int64_t lo, int64_t hi) {
    std::vector<float> cs(static_cast<size_t>(2 * half)), row(static_cast<size_t>(a.D));
    for (int64_t bl = lo; bl < hi; ++bl) {
      const int64_t b = bl / a.L, l = bl % a.L;
      const double pos = static_cast<double>(load_position(a, b, l)) / a.scaling_factor;
      for (int64_t k = 0; k < half; ++k) {
        const double ang = pos * inv_freq[k];
        cs[k] = static_cast<float>(std::cos(ang));
        cs[half + k] = static_cast<float>(std::sin(ang));
      }
      for (int64_t h = 0; h < a.H; ++h) {
        const int64_t xo = b * a.x_strides[0] + h * a.x_strides[1] + l * a.x_strides[2];
        ks.convert(static_cast<const char*>(a.x) + xo * static_cast<int64_t>(elem_size(a.x_dtype)),
                   a.x_dtype, a.x_strides[3], a.D, 1.0f, row.data());
        for (int64_t k = 0; k < half; ++k) {
          const int64_t i0 = interleaved ? 2 * k : k, i1 = interleaved ? 2 * k + 1 : k + half;
          const float x0 = row[i0], x1 = row[i1], c = cs[k], s = cs[half + k];
          row[i0] = x0 * c - x1 * s;
          row[i1] = x1 * c + x0 * s;
        }
        const int64_t oo = b * a.out_strides[0] + h * a.out_strides[1] + l * a.out_strides[2];
        store_row(row.data(), a.D, a.out_dtype, a.out, oo, a.out_strides[3]);
      }
    }
  });
}

}  // namespace loom::cpu
