// matmul: numpy semantics (batch dims broadcast, 1-D operands promoted), optional transposes.
#include "ops/infer_util.h"
#include "ops/matmul_shape.h"

namespace loom::ops {

MatmulShape matmul_shape(const TensorType& a, const TensorType& b, const MatmulAttrs& attrs,
                         const InferContext* ctx) {
  auto fail = [&](auto... args) {
    if (ctx) ctx->fail(args...);
    loom::fail("[matmul] ", args...);
  };
  if (a.shape.rank() == 0 || b.shape.rank() == 0) fail("operands must have rank >= 1");
  MatmulShape s;
  Shape as = a.shape, bs = b.shape;
  s.a_vector = as.rank() == 1;
  s.b_vector = bs.rank() == 1;
  if (s.a_vector) as = Shape({1, as[0]});
  if (s.b_vector) bs = Shape({bs[0], 1});
  int ra = as.rank(), rb = bs.rank();
  s.m = attrs.transpose_a ? as[ra - 1] : as[ra - 2];
  int64_t ka = attrs.transpose_a ? as[ra - 2] : as[ra - 1];
  int64_t kb = attrs.transpose_b ? bs[rb - 1] : bs[rb - 2];
  s.n = attrs.transpose_b ? bs[rb - 2] : bs[rb - 1];
  if (ka != kb && ka != kDynamic && kb != kDynamic)
    fail("inner dims differ: ", a.shape.to_string(), (attrs.transpose_a ? "^T" : ""), " x ",
         b.shape.to_string(), (attrs.transpose_b ? "^T" : ""), " (", ka, " vs ", kb, ")");
  s.k = ka != kDynamic ? ka : kb;
  Shape ab(std::vector<int64_t>(as.dims().begin(), as.dims().end() - 2));
  Shape bb(std::vector<int64_t>(bs.dims().begin(), bs.dims().end() - 2));
  s.batch = ctx ? broadcast_shapes(*ctx, ab, bb) : broadcast_static(ab, bb, "matmul");
  std::vector<int64_t> out = s.batch.dims();
  if (!s.a_vector) out.push_back(s.m);
  if (!s.b_vector) out.push_back(s.n);
  s.out = Shape(out);
  return s;
}

}  // namespace loom::ops

namespace loom::ir {
void register_matmul_ops(OpRegistry& r) {
  r.mutable_info(op::matmul).infer = [](const InferContext& ctx) {
    ops::expect_same_dtype(ctx, 0, 1);
    DType t = ctx.inputs[0].dtype;
    if (t == DType::boolean || is_packed(t) || is_complex(t))
      ctx.fail("matmul does not take ", dtype_name(t), " (packed weights go through dequantize)");
    auto s = ops::matmul_shape(ctx.inputs[0], ctx.inputs[1], ctx.attrs_as<MatmulAttrs>(), &ctx);
    return std::vector<TensorType>{{t, s.out}};
  };
}
}  // namespace loom::ir
