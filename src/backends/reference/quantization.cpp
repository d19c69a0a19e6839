// Reference quantization kernels: element by element in double; quantized_matmul dequantizes the
// whole weight (the oracle may; the CPU kernel never does).
#include <cmath>

#include "backends/add_norm_matmul.h"
#include "backends/cpu/quant/qmatmul.h"
#include "backends/reference/ref_util.h"
#include "ops/affine_quant.h"
#include "ops/elementwise_functors.h"
#include "ops/quant_formats.h"

namespace loom::backends::ref {
namespace {
namespace op = ir::op;
namespace fn = ops::fn;

void affine(const KernelContext& c, bool quantize, int64_t axis, int64_t block) {
  const NDArray &x = c.inputs[0], &s = c.inputs[1], &out = c.outputs[0];
  const NDArray* zp = c.inputs.size() > 2 ? &c.inputs[2] : nullptr;
  ops::AffineLayout L(x.shape(), axis, block, s.numel());
  double lo = 0, hi = 0;
  if (quantize) ops::integer_range(out.dtype(), &lo, &hi);
  for (int64_t o = 0; o < L.outer; ++o)
    for (int64_t a = 0; a < L.len; ++a)
      for (int64_t i = 0; i < L.inner; ++i) {
        int64_t e = (o * L.len + a) * L.inner + i, si = L.scale_index(o, a, i);
        double scale = load_element(s.dtype(), s.data(), si);
        double z = zp ? load_element(zp->dtype(), zp->data(), si) : 0;
        double v = load_element(x.dtype(), x.data(), e);
        store_element(out.dtype(), out.data(), e,
                      quantize ? ops::quantize_value(v, scale, z, lo, hi) : (v - z) * scale);
      }
}

void lut(const KernelContext& c) {
  const NDArray &q = c.inputs[0], &t = c.inputs[1], &out = c.outputs[0];
  int64_t entries = t.shape()[t.rank() - 1];
  int64_t per_row = t.rank() == 2 ? q.numel() / std::max<int64_t>(q.shape()[0], 1) : 0;
  for (int64_t e = 0; e < q.numel(); ++e) {
    auto idx = static_cast<int64_t>(load_element(q.dtype(), q.data(), e));
    int64_t row = per_row ? e / per_row : 0;
    store_element(out.dtype(), out.data(), e,
                  load_element(t.dtype(), t.data(), row * entries + idx));
  }
}

void blocks(const KernelContext& c) {
  const auto& a = c.attrs_as<BlockQuantAttrs>();
  const NDArray &p = c.inputs[0], &out = c.outputs[0];
  int64_t rows = out.numel() / a.k;
  cpu::quant::Format f = cpu::quant::format_from_name(a.format);
  size_t rb = cpu::quant::row_bytes(f, a.k);
  for (int64_t r = 0; r < rows; ++r)
    cpu::quant::dequantize_row(f,
                               static_cast<const uint8_t*>(p.data()) + static_cast<size_t>(r) * rb,
                               a.k, out.data_as<float>() + r * a.k);
}

// Dequantized weights [n, k] as f32 for any quantized_matmul format.
NDArray dequantized_weights(const KernelContext& c) {
  const auto& a = c.attrs_as<QuantizedMatmulAttrs>();
  NDArray w = NDArray::empty(DType::f32, {a.n, a.k});
  std::vector<NDArray> in(c.inputs.begin() + 1, c.inputs.end());
  std::vector<NDArray> out{w};
  if (a.format == "affine") {
    affine(KernelContext{in, out, nullptr, nullptr}, false, a.axis, a.block_size);
  } else if (a.format == "lut") {
    lut(KernelContext{in, out, nullptr, nullptr});
  } else {
    BlockQuantAttrs b{a.format, a.k};
    auto attrs = make_attrs(b);
    blocks(KernelContext{in, out, attrs.get(), nullptr});
  }
  return w;
}

}  // namespace

// Declared in ref_util.h (add_rms_norm_quantized_matmul reuses it).
void quantized_matmul(const KernelContext& c) {
  const auto& a = c.attrs_as<QuantizedMatmulAttrs>();
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  NDArray w = dequantized_weights(c);
  int64_t m = x.numel() / a.k;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < a.n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < a.k; ++p)
        acc += load_element(x.dtype(), x.data(), i * a.k + p) * w.data_as<float>()[j * a.k + p];
      store_element(out.dtype(), out.data(), i * a.n + j, acc);
    }
}

namespace {

// (sum, y) = add_rms_norm(a, b, gamma) over the last axis, then quantized_matmul of the normed sum
// (a temporary): exactly the unfused ops' kernels.
void add_rms_norm_quantized_matmul(const KernelContext& c) {
  const NDArray& sum = c.outputs[0];
  add_norm_then_matmul(c, NDArray(sum.dtype(), sum.shape()), add_rms_norm, quantized_matmul);
}

// quantized_matmul of x = silu(g) · u over p's halves [g, u] (a temporary of p's dtype): the
// unfused ops' arithmetic, each result rounded to the dtype as silu's and mul's outputs are.
void swiglu_quantized_matmul(const KernelContext& c) {
  const auto& a = c.attrs_as<QuantizedMatmulAttrs>();
  const NDArray& p = c.inputs[0];
  const DType t = p.dtype();
  const int64_t k = a.k, m = k ? p.numel() / (2 * k) : 0;
  NDArray x(t, Shape({m, k})), gate(t, Shape({1}));  // gate: silu's output, rounded to its dtype
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j) {
      store_element(t, gate.data(), 0, fn::silu::apply(load_element(t, p.data(), i * 2 * k + j)));
      store_element(t, x.data(), i * k + j,
                    fn::mul::apply(load_element(t, gate.data(), 0),
                                   load_element(t, p.data(), i * 2 * k + k + j)));
    }
  const NDArray in[] = {x, c.inputs[1]};
  quantized_matmul({in, c.outputs, c.attrs, c.pool});
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
  t.set(op::dequantize_lut, lut);
  t.set(op::dequantize_blocks, blocks);
  t.set(op::quantized_matmul, quantized_matmul);
  t.set(op::add_rms_norm_quantized_matmul, add_rms_norm_quantized_matmul);
  t.set(op::swiglu_quantized_matmul, swiglu_quantized_matmul);
}

}  // namespace loom::backends::ref
