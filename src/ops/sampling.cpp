// sample: temperature / top-k / top-p sampling of the last axis (semantics: loom/ops.h and
// ops/sampling.h, shared by every backend).
#include "ops/infer_util.h"

namespace loom::ir {

void register_sampling_ops(OpRegistry& r) {
  r.mutable_info(op::sample).infer = [](const InferContext& ctx) {
    const auto& a = ctx.attrs_as<SampleAttrs>();
    if (!(a.temperature > 0)) ctx.fail("temperature must be > 0, got ", a.temperature);
    if (a.top_k < 0) ctx.fail("top_k must be >= 0 (0: every logit), got ", a.top_k);
    if (!(a.top_p > 0 && a.top_p <= 1)) ctx.fail("top_p must be in (0, 1], got ", a.top_p);
    const TensorType &x = ctx.inputs[0], &seed = ctx.inputs[1];
    if (x.dtype != DType::f32 && x.dtype != DType::f16 && x.dtype != DType::bf16)
      ctx.fail("logits must be f32, f16 or bf16, got ", dtype_name(x.dtype));
    if (x.shape.rank() == 0) ctx.fail("logits need a vocabulary axis (rank >= 1)");
    if (x.shape[x.shape.rank() - 1] == 0) ctx.fail("the vocabulary axis is empty");
    if (seed.dtype != DType::i64 || seed.shape.rank() != 0)
      ctx.fail("seed must be a scalar i64 tensor, got ", seed.to_string());
    std::vector<int64_t> out(x.shape.dims().begin(), x.shape.dims().end() - 1);
    return std::vector<TensorType>{{DType::i32, Shape(out)}};
  };
}

}  // namespace loom::ir
