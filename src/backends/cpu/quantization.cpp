// CPU quantization kernels. quantized_matmul never materialises the float weights: block formats
// go to the quantized matmul library (integer dot products, like llama.cpp); affine and LUT
// weights are dequantized one tile of rows at a time into a cache-sized buffer and multiplied
// in f32 (exact up to f32 rounding).
#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "backends/add_norm_matmul.h"
#include "backends/cpu/cpu_util.h"
#include "backends/cpu/quant/qmatmul.h"
#include "ops/affine_quant.h"

namespace loom::backends::cpu {
namespace {
namespace op = ir::op;
namespace q = loom::cpu::quant;

// out[e] = (x[e] - zp) * scale or quantize, over rows of the [outer, len, inner] view.
void affine(const KernelContext& c, bool quantize, int64_t axis, int64_t block) {
  const NDArray &x = c.inputs[0], &s = c.inputs[1], &out = c.outputs[0];
  const NDArray* zp = c.inputs.size() > 2 ? &c.inputs[2] : nullptr;
  ops::AffineLayout L(x.shape(), axis, block, s.numel());
  std::vector<float> scale(static_cast<size_t>(s.numel())),
      zero(static_cast<size_t>(s.numel()), 0.f);
  load_run<float>(s.dtype(), s.data(), 0, 1, s.numel(), scale.data());
  if (zp) load_run<float>(zp->dtype(), zp->data(), 0, 1, zp->numel(), zero.data());
  double lo = 0, hi = 0;
  if (quantize) ops::integer_range(out.dtype(), &lo, &hi);
  int64_t rows = L.outer * L.len;
  parallel_for(
      c.pool, rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(L.inner, 1)),
      [&](int64_t b, int64_t e) {
        std::vector<float> v(static_cast<size_t>(L.inner));
        for (int64_t r = b; r < e; ++r) {
          int64_t o = r / L.len, a = r % L.len;
          load_run<float>(x.dtype(), x.data(), r * L.inner, 1, L.inner, v.data());
          for (int64_t i = 0; i < L.inner; ++i) {
            int64_t si = L.scale_index(o, a, i);
            float& f = v[static_cast<size_t>(i)];
            f = quantize
                    ? static_cast<float>(ops::quantize_value(f, scale[static_cast<size_t>(si)],
                                                             zero[static_cast<size_t>(si)], lo, hi))
                    : (f - zero[static_cast<size_t>(si)]) * scale[static_cast<size_t>(si)];
          }
          if (is_packed(out.dtype())) {
            for (int64_t i = 0; i < L.inner; ++i)
              detail::store_element(out.dtype(), out.data(), r * L.inner + i,
                                    v[static_cast<size_t>(i)]);
          } else {
            store_run<float>(out.dtype(), out.data(), r * L.inner, L.inner, v.data());
          }
        }
      });
}

// One scale / zero point value as float (the common float dtypes without the generic path).
inline float param(const NDArray& a, int64_t i) {
  switch (a.dtype()) {
    case DType::f32:
      return a.data_as<float>()[i];
    case DType::f16:
      return f16_to_f32(a.data_as<uint16_t>()[i]);
    case DType::bf16:
      return bf16_to_f32(a.data_as<uint16_t>()[i]);
    default:
      return static_cast<float>(detail::load_element(a.dtype(), a.data(), i));
  }
}

// How an affine weight [n, k] groups its scales along a row: `blocks` groups of `len` columns,
// group b of row r using scale index index(r, b). Every granularity (per tensor, per axis on
// either axis, per block on either axis) reduces to this.
struct RowGroups {
  int64_t len = 1, blocks = 1;
  int kind = 0;  // 0: index 0; 1: r * blocks + b; 2: b; 3: r; 4: (r / block) * k + b
  int64_t block = 0, k = 0;
  RowGroups(const QuantizedMatmulAttrs& a, int64_t scale_numel) : k(a.k) {
    int axis = normalize_axis(a.axis, 2);
    block = a.block_size;
    if (scale_numel == 1) {
      len = a.k;
      kind = 0;
    } else if (axis == 1 && a.block_size > 0) {
      len = a.block_size;
      blocks = (a.k + len - 1) / len;
      kind = 1;
    } else if (axis == 1) {
      len = 1;
      blocks = a.k;
      kind = 2;
    } else if (a.block_size > 0) {
      len = 1;
      blocks = a.k;
      kind = 4;
    } else {
      len = a.k;
      kind = 3;
    }
  }
  int64_t index(int64_t r, int64_t b) const {
    switch (kind) {
      case 0:
        return 0;
      case 1:
        return r * blocks + b;
      case 2:
        return b;
      case 3:
        return r;
      default:
        return (r / block) * k + b;
    }
  }
};

// Dequantizes weight rows [r0, r1) of an affine / LUT quantized_matmul into buf (row-major).
void dequantize_rows(const KernelContext& c, int64_t r0, int64_t r1, float* buf) {
  const auto& a = c.attrs_as<QuantizedMatmulAttrs>();
  const NDArray& w = c.inputs[1];
  int64_t k = a.k;
  if (a.format == "lut") {
    const NDArray& t = c.inputs[2];
    int64_t entries = t.shape()[t.rank() - 1];
    bool per_row = t.rank() == 2;
    std::vector<float> row(static_cast<size_t>(k)), table(static_cast<size_t>(entries));
    for (int64_t r = r0; r < r1; ++r) {
      load_run<float>(w.dtype(), w.data(), r * k, 1, k, row.data());
      load_run<float>(t.dtype(), t.data(), per_row ? r * entries : 0, 1, entries, table.data());
      for (int64_t i = 0; i < k; ++i)
        buf[(r - r0) * k + i] = table[static_cast<size_t>(row[static_cast<size_t>(i)])];
    }
    return;
  }
  const NDArray& s = c.inputs[2];
  const NDArray* zp = c.inputs.size() > 3 ? &c.inputs[3] : nullptr;
  RowGroups G(a, s.numel());
  for (int64_t r = r0; r < r1; ++r) {
    float* out = buf + (r - r0) * k;
    load_run<float>(w.dtype(), w.data(), r * k, 1, k, out);
    for (int64_t b = 0; b < G.blocks; ++b) {
      int64_t si = G.index(r, b);
      float sc = param(s, si), z = zp ? param(*zp, si) : 0.f;
      int64_t j1 = std::min(k, (b + 1) * G.len);
      for (int64_t j = b * G.len; j < j1; ++j) out[j] = (out[j] - z) * sc;
    }
  }
}

// Dot product with 16 independent partial sums, so the compiler vectorises it without
// reassociating floating-point math globally (-ffast-math is not used anywhere).
inline float dot_lanes(const float* a, const float* b, int64_t n) {
  float lane[16] = {};
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    for (int l = 0; l < 16; ++l) lane[l] += a[j + l] * b[j + l];
  float acc = 0;
  for (; j < n; ++j) acc += a[j] * b[j];
  for (float v : lane) acc += v;
  return acc;
}

// GEMV-shaped affine product without dequantizing: per group, y += s·(x·q) − s·z·Σx, with Σx per
// group computed once per call. Exact in real arithmetic; reads 4/8-bit weights only once.
void affine_gemv(const KernelContext& c, const float* px, int64_t m, float* py) {
  const auto& a = c.attrs_as<QuantizedMatmulAttrs>();
  const NDArray &w = c.inputs[1], &s = c.inputs[2];
  const NDArray* zp = c.inputs.size() > 3 ? &c.inputs[3] : nullptr;
  RowGroups G(a, s.numel());
  int64_t k = a.k;
  std::vector<float> xsum(static_cast<size_t>(m * G.blocks), 0.f);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t b = 0; b < G.blocks; ++b) {
      int64_t j1 = std::min(k, (b + 1) * G.len);
      float acc = 0;
      for (int64_t j = b * G.len; j < j1; ++j) acc += px[i * k + j];
      xsum[static_cast<size_t>(i * G.blocks + b)] = acc;
    }
  parallel_for(c.pool, a.n, std::max<int64_t>(1, 16384 / std::max<int64_t>(k, 1)),
               [&](int64_t r0, int64_t r1) {
                 std::vector<float> q(static_cast<size_t>(k));
                 for (int64_t r = r0; r < r1; ++r) {
                   load_run<float>(w.dtype(), w.data(), r * k, 1, k, q.data());
                   for (int64_t i = 0; i < m; ++i) {
                     const float* xr = px + i * k;
                     float acc = 0;
                     for (int64_t b = 0; b < G.blocks; ++b) {
                       int64_t j0 = b * G.len, j1 = std::min(k, j0 + G.len);
                       float dot = dot_lanes(xr + j0, q.data() + j0, j1 - j0);
                       int64_t si = G.index(r, b);
                       float sc = param(s, si), z = zp ? param(*zp, si) : 0.f;
                       acc += sc * (dot - z * xsum[static_cast<size_t>(i * G.blocks + b)]);
                     }
                     py[i * a.n + r] = acc;
                   }
                 }
               });
}

void quantized_matmul(const KernelContext& c) {
  const auto& a = c.attrs_as<QuantizedMatmulAttrs>();
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  int64_t m = x.numel() / a.k;
  std::vector<float> xf, yf;
  const float* px = x.data_as<float>();
  if (x.dtype() != DType::f32) {
    xf.resize(static_cast<size_t>(x.numel()));
    load_run<float>(x.dtype(), x.data(), 0, 1, x.numel(), xf.data());
    px = xf.data();
  }
  float* py = out.data_as<float>();
  if (out.dtype() != DType::f32) {
    yf.resize(static_cast<size_t>(out.numel()));
    py = yf.data();
  }
  if (a.format != "affine" && a.format != "lut") {
    q::qmatmul(q::format_from_name(a.format), px, m, a.k, c.inputs[1].data(), a.n, py, c.pool);
  } else if (a.format == "affine" && m <= 8 && RowGroups(a, c.inputs[2].numel()).len >= 8) {
    affine_gemv(c, px, m, py);
  } else {
    // Tiles of weight rows sized to stay in L2 (~256 KiB of f32).
    int64_t tile = std::max<int64_t>(8, (1 << 16) / std::max<int64_t>(a.k, 1));
    int64_t tiles = (a.n + tile - 1) / tile;
    auto tile_product = [&](int64_t t, std::vector<float>& buf) {
      int64_t r0 = t * tile, r1 = std::min(a.n, r0 + tile);
      buf.resize(static_cast<size_t>((r1 - r0) * a.k));
      dequantize_rows(c, r0, r1, buf.data());
      if (m <= 8) {  // GEMV-shaped: plain dot products (vectorised), no BLAS threads
        for (int64_t i = 0; i < m; ++i)
          for (int64_t r = r0; r < r1; ++r) {
            const float* wr = buf.data() + (r - r0) * a.k;
            const float* xr = px + i * a.k;
            py[i * a.n + r] = dot_lanes(xr, wr, a.k);
          }
      } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m),
                    static_cast<blasint>(r1 - r0), static_cast<blasint>(a.k), 1.f, px,
                    static_cast<blasint>(a.k), buf.data(), static_cast<blasint>(a.k), 0.f, py + r0,
                    static_cast<blasint>(a.n));
      }
    };
    if (m <= 8) {
      parallel_for(c.pool, tiles, 1, [&](int64_t b, int64_t e) {
        std::vector<float> buf;
        for (int64_t t = b; t < e; ++t) tile_product(t, buf);
      });
    } else {
      std::vector<float> buf;
      for (int64_t t = 0; t < tiles; ++t) tile_product(t, buf);
    }
  }
  if (!yf.empty()) store_run<float>(out.dtype(), out.data(), 0, out.numel(), yf.data());
}

}  // namespace

void register_quantization(KernelTable& t) {
  t.set(op::dequantize, [](const KernelContext& c) {
    const auto& a = c.attrs_as<QuantAttrs>();
    affine(c, false, a.axis, a.block_size);
  });
  t.set(op::quantize, [](const KernelContext& c) {
    const auto& a = c.attrs_as<QuantAttrs>();
    affine(c, true, a.axis, a.block_size);
  });
  t.set(op::dequantize_blocks, [](const KernelContext& c) {
    const auto& a = c.attrs_as<BlockQuantAttrs>();
    q::Format f = q::format_from_name(a.format);
    size_t rb = q::row_bytes(f, a.k);
    const NDArray &p = c.inputs[0], &out = c.outputs[0];
    int64_t rows = out.numel() / a.k;
    parallel_for(c.pool, rows, 16, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r)
        q::dequantize_row(f, static_cast<const uint8_t*>(p.data()) + static_cast<size_t>(r) * rb,
                          a.k, out.data_as<float>() + r * a.k);
    });
  });
  t.set(op::quantized_matmul, quantized_matmul);
  // add_rms_norm_quantized_matmul: this backend's add_rms_norm (the sum, and the normed x in a
  // temporary), then its quantized_matmul — the unfused pair's kernels, so bit-equal to them.
  const KernelFn *norm = t.find(op::add_rms_norm), *mm = t.find(op::quantized_matmul);
  LOOM_CHECK(norm && mm, "[cpu] register_quantization must run after register_reduction");
  t.set(op::add_rms_norm_quantized_matmul, [norm = *norm, mm = *mm](const KernelContext& c) {
    const NDArray& sum = c.outputs[0];
    add_norm_then_matmul(c, NDArray(sum.dtype(), sum.shape()), norm, mm);
  });
  // swiglu_quantized_matmul: x = silu(g) · u in f32 as a stitched region computes it (rounded
  // once, to p's dtype) into a temporary, then this backend's quantized_matmul: bit-equal to the
  // unfused ops.
  t.set(op::swiglu_quantized_matmul, [mm = *mm](const KernelContext& c) {
    const auto& a = c.attrs_as<QuantizedMatmulAttrs>();
    const NDArray& p = c.inputs[0];
    const int64_t k = a.k, m = k ? p.numel() / (2 * k) : 0;
    const NDArray pf = p.dtype() == DType::f32 ? p : p.astype(DType::f32);
    NDArray x(DType::f32, Shape({m, k}));
    parallel_for(c.pool, m, 1, [&](int64_t b, int64_t e) {
      std::vector<float> gate(static_cast<size_t>(k));
      for (int64_t i = b; i < e; ++i) {
        const float* row = pf.data_as<float>() + i * 2 * k;
        const float* g[] = {row};
        apply_f32(op::silu, nullptr, DType::f32, k, g, gate.data());
        const float* gu[] = {gate.data(), row + k};
        apply_f32(op::mul, nullptr, DType::f32, k, gu, x.data_as<float>() + i * k);
      }
    });
    const NDArray in[] = {p.dtype() == DType::f32 ? x : x.astype(p.dtype()), c.inputs[1]};
    mm({in, c.outputs, c.attrs, c.pool, c.constant_inputs & 2});
  });
}

}  // namespace loom::backends::cpu
