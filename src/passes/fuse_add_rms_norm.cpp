// rms_norm(add(a, b), gamma) becomes one add_rms_norm whose outputs are the sum (it replaces the
// add for its other users, e.g. the next residual add) and the norm (it replaces the rms_norm).
// A decoder layer does this twice; on a GPU the two small kernels' launches are much of a decode
// step's time, and the fused kernel also reads the sum from registers instead of memory.
//
// Only broadcast-free adds: a, b and the sum of one type (dynamic dims at the same places). The
// fused op broadcasts like `add`, so a run whose dynamic dims do broadcast still computes the
// unfused graph's values, on a slower path.
#include <map>
#include <set>

#include "passes/pass.h"

namespace loom::passes {

void fuse_add_rms_norm(PassContext& ctx) {
  if (!fusion_allowed(ctx, "fuse_add_rms_norm", ir::op::add_rms_norm)) return;
  auto& g = ctx.graph;
  const size_t n = g.nodes.size();
  // Where each value's users are, to keep program order when the fused node takes a slot.
  std::vector<std::vector<size_t>> users(n);
  for (size_t i = 0; i < n; ++i)
    for (const ir::Value& v : g.nodes[i].inputs) users[static_cast<size_t>(v.node)].push_back(i);

  std::vector<bool> keep(n, true);
  std::map<ir::Value, ir::Value> moved;  // old value -> its replacement (applied once, below)
  std::set<size_t> taken;                // adds already fused (an add feeding two norms)
  int fused = 0;
  for (size_t i = 0; i < n; ++i) {
    const ir::Node& norm = g.nodes[i];
    if (norm.op != ir::op::rms_norm) continue;
    const ir::Value s = norm.inputs[0];
    const auto k = static_cast<size_t>(s.node);
    const ir::Node& add = g.nodes[k];
    if (add.op != ir::op::add || taken.count(k)) continue;
    const TensorType& t = add.outputs[0];
    if (g.type(add.inputs[0]) != t || g.type(add.inputs[1]) != t) continue;
    if (norm.inputs.size() > 1 && norm.inputs[1] == s) continue;  // rms_norm(s, s)
    // The fused node takes the add's slot when gamma is defined before the add (gamma may be a
    // sum that an earlier fusion moved to its norm's slot), else the norm's slot when no other
    // user of the sum comes before the norm; otherwise (rare) the ops stay apart.
    bool gamma_first = true;
    if (norm.inputs.size() > 1) {
      auto it = moved.find(norm.inputs[1]);
      gamma_first = static_cast<size_t>((it == moved.end() ? norm.inputs[1] : it->second).node) < k;
    }
    bool users_after = true;
    for (size_t u : users[k]) users_after = users_after && u >= i;
    if (!gamma_first && !users_after) continue;
    const size_t slot = gamma_first ? k : i;

    ir::Node f;
    f.op = ir::op::add_rms_norm;
    f.name = g.nodes[slot].name;  // the pass log tracks nodes by name
    f.inputs = {add.inputs[0], add.inputs[1]};
    if (norm.inputs.size() > 1) f.inputs.push_back(norm.inputs[1]);
    f.attrs = norm.attrs;
    f.outputs = {t, norm.outputs[0]};
    std::vector<TensorType> in_types;
    for (const auto& v : f.inputs) in_types.push_back(g.type(v));
    const auto& info = ir::OpRegistry::get().info(ir::op::add_rms_norm);
    try {
      if (info.infer(ir::InferContext{info, *f.attrs, in_types, {}}) != f.outputs) continue;
    } catch (const Error&) {
      continue;
    }
    const auto at = static_cast<int32_t>(slot);
    moved[s] = {at, 0};
    moved[{static_cast<int32_t>(i), 0}] = {at, 1};
    keep[slot == k ? i : k] = false;
    taken.insert(k);
    g.nodes[slot] = std::move(f);
    ++fused;
  }
  if (!fused) return;
  remap_and_compact(ctx, moved, keep);
  ctx.note("fuse_add_rms_norm",
           "fused " + std::to_string(fused) + " add → rms_norm pair(s) into add_rms_norm");
}

}  // namespace loom::passes
