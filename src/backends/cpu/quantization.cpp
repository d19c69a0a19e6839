// CPU quantization kernels. quantized_matmul never materialises the float weights: block formats
// go to the quantized matmul library (integer dot products, like llama.cpp); affine and LUT
// weights are dequantized one tile of rows at a time into a cache-sized buffer and multiplied
// in f32 (exact up to f32 rounding).
#include <cblas.h>

#include <algorithm>

#include "backends/cpu/cpu_util.h"
#include "backends/cpu/quant/qmatmul.h"
#include "ops/affine_quant.h"

namespace loom::backends::cpu {
namespace {
namespace op = ir::op;
namespace q = loom::cpu::quant;

q::Format format_of(const std::string& name) {
  for (int i = 0; i < q::kNumFormats; ++i)
    if (q::format_name(static_cast<q::Format>(i)) == name) return static_cast<q::Format>(i);
  fail("[quantized_matmul] unknown block format '", name, "'");
}

// out[e] = (x[e] - zp) * scale or quantize, over rows of the [outer, len, inner] view.
void affine(const KernelContext& c, bool quantize, int64_t axis, int64_t block) {
  const NDArray &x = c.inputs[0], &s = c.inputs[1], &out = c.outputs[0];
  const NDArray* zp = c.inputs.size() > 2 ? &c.inputs[2] : nullptr;
  ops::AffineLayout L(x.shape(), axis, block, s.numel());
  std::vector<float> scale(static_cast<size_t>(s.numel())), zero(static_cast<size_t>(s.numel()), 0.f);
  load_run<float>(s.dtype(), s.data(), 0, 1, s.numel(), scale.data());
  if (zp) load_run<float>(zp->dtype(), zp->data(), 0, 1, zp->numel(), zero.data());
  double lo = 0, hi = 0;
  if (quantize) ops::integer_range(out.dtype(), &lo, &hi);
  int64_t rows = L.outer * L.len;
  parallel_for(c.pool, rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(L.inner, 1)), [&](int64_t b, int64_t e) {
    std::vector<float> v(static_cast<size_t>(L.inner));
    for (int64_t r = b; r < e; ++r) {
      int64_t o = r / L.len, a = r % L.len;
      load_run<float>(x.dtype(), x.data(), r * L.inner, 1, L.inner, v.data());
      for (int64_t i = 0; i < L.inner; ++i) {
        int64_t si = L.scale_index(o, a, i);
        float& f = v[static_cast<size_t>(i)];
        f = quantize ? static_cast<float>(ops::quantize_value(f, scale[static_cast<size_t>(si)], zero[static_cast<size_t>(si)], lo, hi))
                     : (f - zero[static_cast<size_t>(si)]) * scale[static_cast<size_t>(si)];
      }
      if (is_packed(out.dtype())) {
        for (int64_t i = 0; i < L.inner; ++i) detail::store_element(out.dtype(), out.data(), r * L.inner + i, v[static_cast<size_t>(i)]);
      } else {
        store_run<float>(out.dtype(), out.data(), r * L.inner, L.inner, v.data());
      }
    }
  });
}

// Dequantizes weight rows [r0, r1) of an affine / LUT quantized_matmul into buf (row-major).
void dequantize_rows(const KernelContext& c, int64_t r0, int64_t r1, float* buf) {
  const auto& a = c.attrs_as<QuantizedMatmulAttrs>();
  const NDArray& w = c.inputs[1];
  int64_t k = a.k;
  std::vector<float> row(static_cast<size_t>(k));
  if (a.format == "lut") {
    const NDArray& t = c.inputs[2];
    int64_t entries = t.shape()[t.rank() - 1];
    bool per_row = t.rank() == 2;
    for (int64_t r = r0; r < r1; ++r) {
      load_run<float>(w.dtype(), w.data(), r * k, 1, k, row.data());
      std::vector<float> table(static_cast<size_t>(entries));
      load_run<float>(t.dtype(), t.data(), per_row ? r * entries : 0, 1, entries, table.data());
      for (int64_t i = 0; i < k; ++i) buf[(r - r0) * k + i] = table[static_cast<size_t>(row[static_cast<size_t>(i)])];
    }
    return;
  }
  const NDArray& s = c.inputs[2];
  const NDArray* zp = c.inputs.size() > 3 ? &c.inputs[3] : nullptr;
  ops::AffineLayout L(w.shape(), a.axis, a.block_size, s.numel());
  int axis = normalize_axis(a.axis, 2);
  for (int64_t r = r0; r < r1; ++r) {
    load_run<float>(w.dtype(), w.data(), r * k, 1, k, row.data());
    for (int64_t i = 0; i < k; ++i) {
      int64_t si = axis == 0 ? L.scale_index(0, r, i) : L.scale_index(r, i, 0);
      double z = zp ? detail::load_element(zp->dtype(), zp->data(), si) : 0;
      buf[(r - r0) * k + i] = static_cast<float>((row[static_cast<size_t>(i)] - z) * detail::load_element(s.dtype(), s.data(), si));
    }
  }
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
    q::qmatmul(format_of(a.format), px, m, a.k, c.inputs[1].data(), a.n, py, c.pool);
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
            float acc = 0;
            for (int64_t p = 0; p < a.k; ++p) acc += xr[p] * wr[p];
            py[i * a.n + r] = acc;
          }
      } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m), static_cast<blasint>(r1 - r0),
                    static_cast<blasint>(a.k), 1.f, px, static_cast<blasint>(a.k), buf.data(), static_cast<blasint>(a.k), 0.f,
                    py + r0, static_cast<blasint>(a.n));
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
    q::Format f = format_of(a.format);
    size_t rb = q::row_bytes(f, a.k);
    const NDArray &p = c.inputs[0], &out = c.outputs[0];
    int64_t rows = out.numel() / a.k;
    parallel_for(c.pool, rows, 16, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r)
        q::dequantize_row(f, static_cast<const uint8_t*>(p.data()) + static_cast<size_t>(r) * rb, a.k, out.data_as<float>() + r * a.k);
    });
  });
  t.set(op::quantized_matmul, quantized_matmul);
}

}  // namespace loom::backends::cpu
