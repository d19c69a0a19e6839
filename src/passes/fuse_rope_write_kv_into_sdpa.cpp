// A decoder layer's cache update and the attention that reads it —
//   rope_write_kv(k_cache, v_cache, k, v, positions, starts, q) -> (k_cache', v_cache', q'),
//   sdpa(q', k_cache', v_cache' [, mask] [, kv_len])
// — become one rope_write_kv_sdpa node. On a GPU the decode step then runs the
// attention kernel alone: it rotates q as it loads it and writes this step's key and value rows
// itself (Mistral-7B on an H100: rope_write_kv was 3.9-4.2 us of each layer's critical path).
//
// The fused node takes rope_write_kv's slot (the caches' later uses stay after it), so the
// sdpa's mask and kv_len must be defined before that slot, and the rotated q must have no use
// but the sdpa's and not be a compile target. Runs right after fuse_kv_cache_write, which makes
// the rope_write_kv.
#include <map>

#include "passes/pass.h"

namespace loom::passes {

void fuse_rope_write_kv_into_sdpa(PassContext& ctx) {
  if (!fusion_allowed(ctx, "fuse_rope_write_kv_into_sdpa", ir::op::rope_write_kv_sdpa)) return;
  auto& g = ctx.graph;
  const size_t n = g.nodes.size();
  std::map<ir::Value, int> value_uses;  // node inputs and compile targets
  for (const ir::Node& u : g.nodes)
    for (const ir::Value& v : u.inputs) ++value_uses[v];
  for (const ir::Value& v : ctx.outputs) ++value_uses[v];
  const auto& info = ir::OpRegistry::get().info(ir::op::rope_write_kv_sdpa);
  std::vector<bool> keep(n, true);
  std::map<ir::Value, ir::Value> moved;
  int fused = 0;
  for (size_t si = 0; si < n; ++si) {
    const ir::Node& sd = g.nodes[si];
    if (sd.op != ir::op::sdpa) continue;
    const auto ri = static_cast<size_t>(sd.inputs[0].node);
    const ir::Node& kv = g.nodes[ri];
    const auto r = static_cast<int32_t>(ri);
    if (kv.op != ir::op::rope_write_kv || kv.inputs.size() != 7 || sd.inputs[0].index != 2 ||
        sd.inputs[1] != ir::Value{r, 0} || sd.inputs[2] != ir::Value{r, 1})
      continue;
    if (value_uses[{r, 2}] != 1) continue;  // the rotated q: this sdpa's alone, not a target
    bool early = true;  // the sdpa's mask and kv_len exist at rope_write_kv's slot
    for (size_t i = 3; i < sd.inputs.size(); ++i)
      early &= static_cast<size_t>(sd.inputs[i].node) < ri;
    if (!early) continue;
    const auto& ra = loom::attrs_as<RopeAttrs>(*kv.attrs);
    const auto& sa = loom::attrs_as<SdpaAttrs>(*sd.attrs);
    auto attrs =
        make_attrs(RopeSdpaAttrs{ra.interleaved, ra.theta, ra.position_scale, ra.rotary_dim,
                                 sa.causal, sa.scale, sa.has_mask, sa.has_kv_len});
    std::vector<ir::Value> inputs = kv.inputs;
    inputs.insert(inputs.end(), sd.inputs.begin() + 3, sd.inputs.end());
    std::vector<TensorType> in_types;
    for (const auto& v : inputs) in_types.push_back(g.type(v));
    const std::vector<TensorType> want = {kv.outputs[0], kv.outputs[1], sd.outputs[0]};
    try {
      if (info.infer(ir::InferContext{info, *attrs, in_types, {}}) != want) continue;
    } catch (const Error&) {
      continue;
    }
    ir::Node& at = g.nodes[ri];
    at.op = ir::op::rope_write_kv_sdpa;
    at.inputs = std::move(inputs);
    at.outputs = want;
    at.attrs = attrs;
    moved[{static_cast<int32_t>(si), 0}] = {r, 2};
    keep[si] = false;
    ++fused;
  }
  if (!fused) return;
  remap_and_compact(ctx, moved, keep);
  ctx.note("fuse_rope_write_kv_into_sdpa",
           "fused " + std::to_string(fused) + " cache write(s) into the attention that reads them");
}

}  // namespace loom::passes
