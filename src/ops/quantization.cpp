// Quantization ops: affine quantize / dequantize (per tensor, per axis, per block), lookup-table
// dequantize, block-format dequantize (GGUF formats), and the fused quantized_matmul.
#include "ops/infer_util.h"
#include "ops/quant_formats.h"

namespace loom::ops {

const BlockFormat* find_block_format(const std::string& name) {
  // One row per format (the layouts are documented in backends/cpu/quant/qmatmul.h).
  static const BlockFormat kFormats[] = {
      {"q4_0", 32, 18},   {"q4_1", 32, 20},      {"q8_0", 32, 34},     {"q5_0", 32, 22},
      {"q5_1", 32, 24},   {"q4_k", 256, 144},    {"q5_k", 256, 176},   {"q6_k", 256, 210},
      {"iq4_nl", 32, 18}, {"affine_u4", 32, 20}, {"affine_i8", 32, 36}};
  for (const auto& f : kFormats)
    if (name == f.name) return &f;
  return nullptr;
}

std::string block_format_names() {
  return "q4_0, q4_1, q8_0, q5_0, q5_1, q4_k, q5_k, q6_k, iq4_nl, affine_u4, affine_i8";
}

// The scale / zero point layout of an affine (de)quantize: returns the normalised axis.
int check_affine_params(const InferContext& ctx, const TensorType& q, const TensorType& scale,
                        const TensorType* zp, const QuantAttrs& a) {
  int r = q.shape.rank();
  if (!is_floating(scale.dtype))
    ctx.fail("scale must be floating point, got ", dtype_name(scale.dtype));
  int64_t n_scale = scale.shape.is_static() ? scale.shape.numel() : -1;
  int axis = r ? normalize_axes(ctx, {a.axis}, r, false)[0] : 0;
  if (a.block_size < 0) ctx.fail("block_size must be >= 0, got ", a.block_size);
  if (a.block_size > 0) {
    if (scale.shape.rank() != r)
      ctx.fail("per-block scale must have rank ", r, ", got ", scale.shape.to_string());
    for (int i = 0; i < r; ++i) {
      int64_t want =
          i == axis
              ? (q.shape[i] == kDynamic ? kDynamic : (q.shape[i] + a.block_size - 1) / a.block_size)
              : q.shape[i];
      if (want != kDynamic && scale.shape[i] != kDynamic && scale.shape[i] != want)
        ctx.fail("scale shape ", scale.shape.to_string(), " does not match blocks of ",
                 a.block_size, " along axis ", axis, " of ", q.shape.to_string(), " (expected dim ",
                 i, " = ", want, ")");
    }
  } else if (n_scale != 1) {
    if (scale.shape.rank() != 1 || (scale.shape[0] != kDynamic && q.shape[axis] != kDynamic &&
                                    scale.shape[0] != q.shape[axis]))
      ctx.fail("scale ", scale.shape.to_string(),
               " is neither one value nor one per index of axis ", axis, " (", q.shape[axis], ")");
  }
  if (zp) {
    if (zp->shape != scale.shape)
      ctx.fail("zero_point shape ", zp->shape.to_string(), " differs from scale's ",
               scale.shape.to_string());
    if (zp->dtype == DType::boolean || is_complex(zp->dtype))
      ctx.fail("zero_point must be numeric");
  }
  return axis;
}

void check_quantized_matmul_x(const InferContext& ctx, const TensorType& x,
                              const QuantizedMatmulAttrs& a) {
  if (x.shape.rank() < 1) ctx.fail("x needs rank >= 1");
  int64_t xk = x.shape[x.shape.rank() - 1];
  if (xk != kDynamic && xk != a.k) ctx.fail("x has ", xk, " features, the weights ", a.k);
}

TensorType check_block_quantized_matmul(const InferContext& ctx, const TensorType& x, size_t packed,
                                        const QuantizedMatmulAttrs& a) {
  check_quantized_matmul_x(ctx, x, a);
  const auto* f = find_block_format(a.format);
  if (!f)
    ctx.fail("unknown format '", a.format, "' (known: affine, lut, ", block_format_names(), ")");
  if (a.k % f->block)
    ctx.fail("k = ", a.k, " is not a multiple of ", a.format, "'s block of ", f->block);
  const TensorType& p = ctx.inputs[packed];
  if (p.dtype != DType::u8 || p.shape != Shape({a.n, a.k / f->block * f->bytes}))
    ctx.fail("packed weights must be u8[", a.n, ",", a.k / f->block * f->bytes, "], got ",
             p.to_string());
  Shape out = x.shape;
  out[out.rank() - 1] = a.n;
  return {x.dtype, out};
}

}  // namespace loom::ops

namespace loom::ir {
namespace {
using V = std::vector<TensorType>;

bool quant_int(DType t) {
  return t == DType::i8 || t == DType::u8 || t == DType::i4 || t == DType::u4 || t == DType::i16 ||
         t == DType::i32;
}

V infer_dequantize(const InferContext& ctx) {
  ops::expect_inputs(ctx, 2, 3);
  const auto& a = ctx.attrs_as<QuantAttrs>();
  const TensorType& q = ctx.inputs[0];
  if (!quant_int(q.dtype))
    ctx.fail("quantized input must be i8, u8, i4, u4, i16 or i32, got ", dtype_name(q.dtype));
  if (!is_floating(a.dtype)) ctx.fail("result dtype must be floating point");
  ops::check_affine_params(ctx, q, ctx.inputs[1], ctx.inputs.size() > 2 ? &ctx.inputs[2] : nullptr,
                           a);
  return {{a.dtype, q.shape}};
}

V infer_quantize(const InferContext& ctx) {
  ops::expect_inputs(ctx, 2, 3);
  const auto& a = ctx.attrs_as<QuantAttrs>();
  ops::expect_float(ctx, 0);
  if (!quant_int(a.dtype))
    ctx.fail("result dtype must be i8, u8, i4, u4, i16 or i32, got ", dtype_name(a.dtype));
  ops::check_affine_params(ctx, ctx.inputs[0], ctx.inputs[1],
                           ctx.inputs.size() > 2 ? &ctx.inputs[2] : nullptr, a);
  return {{a.dtype, ctx.inputs[0].shape}};
}

V infer_lut(const InferContext& ctx) {
  const TensorType &q = ctx.inputs[0], &t = ctx.inputs[1];
  if (q.dtype != DType::u4 && q.dtype != DType::u8)
    ctx.fail("indices must be u4 or u8, got ", dtype_name(q.dtype));
  if (!is_floating(t.dtype)) ctx.fail("table must be floating point");
  int64_t entries = q.dtype == DType::u4 ? 16 : 256;
  int64_t last = t.shape.rank() ? t.shape[t.shape.rank() - 1] : -2;
  if (last != entries && last != kDynamic)
    ctx.fail("table needs ", entries, " entries per table for ", dtype_name(q.dtype),
             " indices, got shape ", t.shape.to_string());
  if (t.shape.rank() == 2 &&
      (q.shape.rank() == 0 ||
       (q.shape[0] != kDynamic && t.shape[0] != kDynamic && t.shape[0] != q.shape[0])))
    ctx.fail("per-row tables need one table per index of axis 0 (", q.shape.rank() ? q.shape[0] : 0,
             "), got ", t.shape[0]);
  if (t.shape.rank() > 2) ctx.fail("table must be [entries] or [rows, entries]");
  return {{ctx.attrs_as<LutAttrs>().dtype, q.shape}};
}

V infer_blocks(const InferContext& ctx) {
  const auto& a = ctx.attrs_as<BlockQuantAttrs>();
  const TensorType& p = ctx.inputs[0];
  const auto* f = ops::find_block_format(a.format);
  if (!f)
    ctx.fail("unknown block format '", a.format, "' (known: ", ops::block_format_names(), ")");
  if (p.dtype != DType::u8) ctx.fail("packed blocks must be u8");
  if (a.k <= 0 || a.k % f->block)
    ctx.fail("k = ", a.k, " is not a positive multiple of ", a.format, "'s block of ", f->block);
  if (p.shape.rank() < 1) ctx.fail("packed blocks need rank >= 1");
  int64_t rb = a.k / f->block * f->bytes, last = p.shape[p.shape.rank() - 1];
  if (last != kDynamic && last != rb)
    ctx.fail("rows of ", a.k, " ", a.format, " elements take ", rb, " bytes, got ", last);
  Shape out = p.shape;
  out[out.rank() - 1] = a.k;
  return {{DType::f32, out}};
}

V infer_qmatmul(const InferContext& ctx) {
  const auto& a = ctx.attrs_as<QuantizedMatmulAttrs>();
  if (a.format != "affine" && a.format != "lut") {
    ops::expect_inputs(ctx, 2, 2);
    ops::expect_float(ctx, 0);
    return {ops::check_block_quantized_matmul(ctx, ctx.inputs[0], 1, a)};
  }
  const TensorType& x = ctx.inputs[0];
  ops::expect_float(ctx, 0);
  ops::check_quantized_matmul_x(ctx, x, a);
  if (a.format == "affine") {
    ops::expect_inputs(ctx, 3, 4);
    const TensorType& q = ctx.inputs[1];
    if (q.shape != Shape({a.n, a.k}))
      ctx.fail("affine weights must be [n, k] = [", a.n, ", ", a.k, "], got ", q.shape.to_string());
    ops::check_affine_params(ctx, q, ctx.inputs[2],
                             ctx.inputs.size() > 3 ? &ctx.inputs[3] : nullptr,
                             QuantAttrs{a.axis, a.block_size, DType::f32});
  } else {
    ops::expect_inputs(ctx, 3, 3);
    if (ctx.inputs[1].shape != Shape({a.n, a.k})) ctx.fail("lut weights must be [n, k]");
  }
  Shape out = x.shape;
  out[out.rank() - 1] = a.n;
  return {{x.dtype, out}};
}

// add_rms_norm_quantized_matmul(a, b, gamma, packed) = (sum, quantized_matmul(rms_norm(sum, gamma),
// packed)) with sum = a + b: add_rms_norm's rules on a, b, gamma (norm over the last axis), then
// quantized_matmul's on the normed sum (of the sum's type) and the packed weights. Block formats
// only (the quantized_matmuls that take exactly x and packed).
V infer_add_rms_norm_qmatmul(const InferContext& ctx) {
  const auto& a = ctx.attrs_as<AddRmsNormQuantizedMatmulAttrs>();
  ops::expect_inputs(ctx, 4, 4);
  TensorType sum = ops::check_add_rms_norm(ctx, 3, -1, a.eps);
  if (!ops::find_block_format(a.format))
    ctx.fail("needs a block format (", ops::block_format_names(), "), got '", a.format, "'");
  // x is the normed sum, of the sum's type.
  TensorType y = ops::check_block_quantized_matmul(ctx, sum, 3, a.matmul());
  return {sum, y};
}

// swiglu_quantized_matmul(p, packed) = quantized_matmul(silu(g) · u, packed), [g, u] = p's halves
// along the last axis: p a float of at least rank 1 whose last dim is 2k, then quantized_matmul's
// rules (block formats) on x = p's type with k features.
V infer_swiglu_qmatmul(const InferContext& ctx) {
  const auto& a = ctx.attrs_as<QuantizedMatmulAttrs>();
  ops::expect_inputs(ctx, 2, 2);
  ops::expect_float(ctx, 0);
  if (!ops::find_block_format(a.format))
    ctx.fail("needs a block format (", ops::block_format_names(), "), got '", a.format, "'");
  TensorType x = ctx.inputs[0];
  if (x.shape.rank() < 1) ctx.fail("p must have at least one dim");
  int64_t& last = x.shape[x.shape.rank() - 1];
  if (last != kDynamic && last != 2 * a.k)
    ctx.fail("p's last dim must be 2k = ", 2 * a.k, " (gate and up halves), got ", last);
  last = a.k;
  return {ops::check_block_quantized_matmul(ctx, x, 1, a)};
}
}  // namespace

void register_quantization_ops(OpRegistry& r) {
  r.mutable_info(op::dequantize).infer = infer_dequantize;
  r.mutable_info(op::quantize).infer = infer_quantize;
  r.mutable_info(op::dequantize_lut).infer = infer_lut;
  r.mutable_info(op::dequantize_blocks).infer = infer_blocks;
  r.mutable_info(op::quantized_matmul).infer = infer_qmatmul;
  r.mutable_info(op::add_rms_norm_quantized_matmul).infer = infer_add_rms_norm_qmatmul;
  r.mutable_info(op::swiglu_quantized_matmul).infer = infer_swiglu_qmatmul;
}

}  // namespace loom::ir
