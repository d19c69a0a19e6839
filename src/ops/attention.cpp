// Transformer ops: fused scaled-dot-product attention, rotary position embedding, and rope fused
// into the in-place KV-cache write.
#include "ops/infer_util.h"

namespace loom::ir {
namespace {

std::vector<TensorType> infer_sdpa(const InferContext& ctx) {
  const auto& a = ctx.attrs_as<SdpaAttrs>();
  size_t want = 3 + (a.has_mask ? 1 : 0) + (a.has_kv_len ? 1 : 0);
  if (ctx.inputs.size() != want)
    ctx.fail("expects ", want, " inputs (q, k, v", a.has_mask ? ", mask" : "",
             a.has_kv_len ? ", kv_len" : "", "), got ", ctx.inputs.size());
  const TensorType &q = ctx.inputs[0], &k = ctx.inputs[1], &v = ctx.inputs[2];
  for (size_t i = 0; i < 3; ++i) {
    if (ctx.inputs[i].shape.rank() != 4)
      ctx.fail("q, k and v must be [B, H, L, D]; input ", i, " has rank ",
               ctx.inputs[i].shape.rank());
    if (ctx.inputs[i].dtype != DType::f32 && ctx.inputs[i].dtype != DType::f16 &&
        ctx.inputs[i].dtype != DType::bf16)
      ctx.fail("q, k and v must be f32, f16 or bf16");
  }
  if (k.dtype != v.dtype) ctx.fail("k and v have different dtypes");
  auto known = [](int64_t x, int64_t y) { return x != kDynamic && y != kDynamic; };
  int64_t hq = q.shape[1], hkv = k.shape[1];
  if (known(hq, hkv) && (hkv == 0 || hq % hkv != 0))
    ctx.fail("q has ", hq, " heads, k has ", hkv,
             ": query heads must be a multiple of key/value heads");
  if (known(k.shape[1], v.shape[1]) && k.shape[1] != v.shape[1])
    ctx.fail("k has ", k.shape[1], " heads, v has ", v.shape[1]);
  if (known(q.shape[3], k.shape[3]) && q.shape[3] != k.shape[3])
    ctx.fail("q head dim ", q.shape[3], " differs from k's ", k.shape[3]);
  if (known(k.shape[2], v.shape[2]) && k.shape[2] != v.shape[2])
    ctx.fail("k has ", k.shape[2], " keys, v has ", v.shape[2]);
  Shape batch = ops::broadcast_shapes(ctx, Shape({q.shape[0]}), Shape({k.shape[0]}));
  if (known(q.shape[0], k.shape[0]) && q.shape[0] != k.shape[0])
    ctx.fail("batch ", q.shape[0], " vs ", k.shape[0]);
  (void)batch;
  size_t next = 3;
  if (a.has_mask) {
    const TensorType& m = ctx.inputs[next++];
    if (m.dtype != DType::boolean && !is_floating(m.dtype)) ctx.fail("mask must be bool or float");
    if (m.shape.rank() > 4) ctx.fail("mask rank ", m.shape.rank(), " > 4");
    Shape scores({q.shape[0], q.shape[1], q.shape[2], k.shape[2]});
    ops::broadcast_shapes(ctx, scores, m.shape);
  }
  if (a.has_kv_len) {
    const TensorType& n = ctx.inputs[next++];
    if ((n.dtype != DType::i32 && n.dtype != DType::i64) || n.shape.rank() > 1 ||
        (n.shape.rank() == 1 && n.shape[0] != 1 && n.shape[0] != kDynamic))
      ctx.fail("kv_len must be an i32/i64 scalar");
  }
  if (!(a.scale >= 0)) ctx.fail("scale must be >= 0 (0 = 1/sqrt(D))");
  return {{q.dtype, Shape({q.shape[0], q.shape[1], q.shape[2], v.shape[3]})}};
}

// rope's rules for x (input xi, [B, H, L, D], float) and positions (input pi, i32/i64 [L] or
// [B, L]) under the RopeAttrs.
void check_rope(const InferContext& ctx, size_t xi, size_t pi) {
  const auto& a = ctx.attrs_as<RopeAttrs>();
  const TensorType &x = ctx.inputs[xi], &p = ctx.inputs[pi];
  if (x.shape.rank() != 4) ctx.fail("x must be [B, H, L, D]");
  ops::expect_float(ctx, xi);
  if (p.dtype != DType::i32 && p.dtype != DType::i64) ctx.fail("positions must be i32 or i64");
  if (p.shape.rank() != 1 && p.shape.rank() != 2) ctx.fail("positions must be [L] or [B, L]");
  int64_t d = x.shape[3];
  if (a.rotary_dim < 0 || a.rotary_dim % 2 || (d != kDynamic && a.rotary_dim > d))
    ctx.fail("rotary_dim ", a.rotary_dim, " must be even and <= head dim ", d);
  if (d != kDynamic && a.rotary_dim == 0 && d % 2) ctx.fail("head dim ", d, " must be even");
  if (!(a.theta > 0) || !(a.position_scale > 0)) ctx.fail("theta and position_scale must be > 0");
  int64_t pl = p.shape[p.shape.rank() - 1];
  if (pl != kDynamic && x.shape[2] != kDynamic && pl != x.shape[2])
    ctx.fail("positions has ", pl, " entries for sequence length ", x.shape[2]);
}

std::vector<TensorType> infer_rope(const InferContext& ctx) {
  check_rope(ctx, 0, 1);
  return {ctx.inputs[0]};
}

// rope_write_slice(cache, x, positions, starts) = write_slice(cache, rope(x, positions), starts):
// rope's rules on x and positions, then slice_update's on the cache and the rotated x (same rank,
// fits; the cache's dtype or another float dtype, the rotated rows then converted to the cache's)
// and the starts. The result is the cache (written in place).
std::vector<TensorType> infer_rope_write_slice(const InferContext& ctx) {
  check_rope(ctx, 1, 2);
  ops::check_slice_update(ctx, 0, 1, 3, "cache", "x");
  return {ctx.inputs[0]};
}

// rope_write_kv(k_cache, v_cache, k, v, positions, starts [, q]) = rope_write_slice(k_cache, k,
// positions, starts) and write_slice(v_cache, v, starts) [and rope(q, positions)]: each part's
// rules. Results: both caches (written in place) [and the rotated q].
std::vector<TensorType> infer_rope_write_kv(const InferContext& ctx) {
  if (ctx.inputs.size() != 6 && ctx.inputs.size() != 7)
    ctx.fail("expects 6 or 7 inputs (k_cache, v_cache, k, v, positions, starts [, q]), got ",
             ctx.inputs.size());
  check_rope(ctx, 2, 4);
  ops::check_slice_update(ctx, 0, 2, 5, "k_cache", "k");
  ops::check_slice_update(ctx, 1, 3, 5, "v_cache", "v");
  std::vector<TensorType> out = {ctx.inputs[0], ctx.inputs[1]};
  if (ctx.inputs.size() == 7) {
    check_rope(ctx, 6, 4);
    out.push_back(ctx.inputs[6]);
  }
  return out;
}

// rope_write_kv_sdpa(k_cache, v_cache, k, v, positions, starts, q [, mask] [, kv_len]) =
// rope_write_kv(k_cache, v_cache, k, v, positions, starts, q) -> (k_cache', v_cache', q'), then
// sdpa(q', k_cache', v_cache' [, mask] [, kv_len]): each part's rules (errors under this op's
// name). Results: both caches (written in place) and the attention.
std::vector<TensorType> infer_rope_write_kv_sdpa(const InferContext& ctx) {
  const auto& a = ctx.attrs_as<RopeSdpaAttrs>();
  const size_t want = 7 + (a.has_mask ? 1 : 0) + (a.has_kv_len ? 1 : 0);
  if (ctx.inputs.size() != want)
    ctx.fail("expects ", want, " inputs (k_cache, v_cache, k, v, positions, starts, q",
             a.has_mask ? ", mask" : "", a.has_kv_len ? ", kv_len" : "", "), got ",
             ctx.inputs.size());
  const auto rope_attrs = make_attrs(a.rope());
  const auto kv =
      infer_rope_write_kv(InferContext{ctx.info, *rope_attrs, ctx.inputs.subspan(0, 7), {}});
  std::vector<TensorType> sdpa_in = {kv[2], kv[0], kv[1]};
  for (size_t i = 7; i < want; ++i) sdpa_in.push_back(ctx.inputs[i]);
  const auto sdpa_attrs = make_attrs(a.sdpa());
  const auto out = infer_sdpa(InferContext{ctx.info, *sdpa_attrs, sdpa_in, {}});
  return {kv[0], kv[1], out[0]};
}

}  // namespace

void register_attention_ops(OpRegistry& r) {
  r.mutable_info(op::sdpa).infer = infer_sdpa;
  r.mutable_info(op::rope).infer = infer_rope;
  r.mutable_info(op::rope_write_slice).infer = infer_rope_write_slice;
  r.mutable_info(op::rope_write_kv).infer = infer_rope_write_kv;
  r.mutable_info(op::rope_write_kv).inplace_outputs = 2;  // the two caches
  r.mutable_info(op::rope_write_kv_sdpa).infer = infer_rope_write_kv_sdpa;
  r.mutable_info(op::rope_write_kv_sdpa).inplace_outputs = 2;
}

}  // namespace loom::ir
