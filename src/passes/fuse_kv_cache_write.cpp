// A decoder layer's cache update — rope_write_slice(k_cache, k, positions, starts) and
// write_slice(v_cache, v, starts) at the same starts — becomes one rope_write_kv node, which also
// takes over a rope(q, positions) with the same attributes (the layer's queries). On a GPU a
// decode step then runs one small kernel per layer for what took three (Mistral-7B on an H100:
// rope_write_slice 4.0 us, the value write 2.5, the query rope 3.0).
//
// The fused node takes the later write's slot; every use of a value it takes over must come after
// that slot, and the rope's output must not be a compile target. The kernel reads v and q while
// writing the caches, so neither may be (a view of) a variable read, and the two caches must be
// different (and float: the kernels convert values as floats). Runs right after
// fuse_rope_into_write_slice, which makes the rope_write_slice.
#include <algorithm>
#include <map>

#include "passes/pass.h"

namespace loom::passes {
namespace {

// The node that owns v's memory: v's producer, or through views the first non-view one.
const ir::Node& memory_root(const ir::GraphData& g, ir::Value v) {
  const auto& reg = ir::OpRegistry::get();
  while (reg.info(g.node(v).op).is_view() && !g.node(v).inputs.empty()) v = g.node(v).inputs[0];
  return g.node(v);
}

}  // namespace

void fuse_kv_cache_write(PassContext& ctx) {
  if (!fusion_allowed(ctx, "fuse_kv_cache_write", ir::op::rope_write_kv)) return;
  auto& g = ctx.graph;
  const size_t n = g.nodes.size();
  // The first node that uses each node's values (n: none; compile targets are used at the end).
  std::vector<size_t> first_user(n, n);
  std::vector<bool> is_target(n, false);
  for (size_t i = n; i-- > 0;)
    for (const ir::Value& v : g.nodes[i].inputs) first_user[static_cast<size_t>(v.node)] = i;
  for (const ir::Value& v : ctx.outputs) is_target[static_cast<size_t>(v.node)] = true;
  // Whether every use of the node's values comes after `slot`.
  auto used_after = [&](size_t node, size_t slot) { return first_user[node] > slot; };
  auto reads_variable = [&](ir::Value v) { return memory_root(g, v).op == ir::op::read; };

  const auto& info = ir::OpRegistry::get().info(ir::op::rope_write_kv);
  std::vector<bool> keep(n, true), taken(n, false);
  std::map<ir::Value, ir::Value> moved;
  int fused = 0, with_q = 0;
  for (size_t ki = 0; ki < n; ++ki) {
    const ir::Node& kw = g.nodes[ki];
    if (kw.op != ir::op::rope_write_slice || taken[ki]) continue;
    const ir::Value positions = kw.inputs[2], starts = kw.inputs[3];
    // The value write: the first write_slice at the same starts into another float cache that
    // can join it (whichever of the two comes first has no use before the other's slot).
    size_t vi = n;
    for (size_t j = 0; j < n && vi == n; ++j) {
      const ir::Node& w = g.nodes[j];
      if (w.op == ir::op::write_slice && !taken[j] && w.inputs[2] == starts &&
          w.inputs[0] != kw.inputs[0] && is_floating(w.outputs[0].dtype) &&
          !reads_variable(w.inputs[1]) && used_after(std::min(ki, j), std::max(ki, j)))
        vi = j;
    }
    if (vi == n) continue;
    const size_t slot = std::max(ki, vi), first = std::min(ki, vi);
    const ir::Node& vw = g.nodes[vi];
    std::vector<ir::Value> inputs = {kw.inputs[0], vw.inputs[0], kw.inputs[1],
                                     vw.inputs[1], positions,    starts};
    // The queries' rope: same positions and attributes, used only after the slot.
    size_t qi = n;
    for (size_t j = 0; j < slot && qi == n; ++j) {
      const ir::Node& r = g.nodes[j];
      if (r.op == ir::op::rope && !taken[j] && r.inputs[1] == positions &&
          r.attrs->equals(*kw.attrs) && !is_target[j] && used_after(j, slot) &&
          !reads_variable(r.inputs[0]))
        qi = j;
    }
    if (qi != n) inputs.push_back(g.nodes[qi].inputs[0]);
    std::vector<TensorType> in_types;
    for (const auto& v : inputs) in_types.push_back(g.type(v));
    std::vector<TensorType> want = {kw.outputs[0], vw.outputs[0]};
    if (qi != n) want.push_back(g.nodes[qi].outputs[0]);
    try {
      if (info.infer(ir::InferContext{info, *kw.attrs, in_types, {}}) != want) continue;
    } catch (const Error&) {
      continue;
    }
    // The fused node takes the later write's slot and keeps its name.
    ir::Node& at = g.nodes[slot];
    moved[{static_cast<int32_t>(ki), 0}] = {static_cast<int32_t>(slot), 0};
    moved[{static_cast<int32_t>(vi), 0}] = {static_cast<int32_t>(slot), 1};
    if (qi != n) {
      moved[{static_cast<int32_t>(qi), 0}] = {static_cast<int32_t>(slot), 2};
      keep[qi] = false, taken[qi] = true, ++with_q;
    }
    at.op = ir::op::rope_write_kv;
    at.inputs = std::move(inputs);
    at.outputs = std::move(want);
    at.attrs = kw.attrs;  // (at may be kw itself)
    keep[first] = false;
    taken[ki] = taken[vi] = true;
    ++fused;
  }
  if (!fused) return;
  remap_and_compact(ctx, moved, keep);
  ctx.note("fuse_kv_cache_write", "fused " + std::to_string(fused) +
                                      " key / value cache write pair(s) into rope_write_kv (" +
                                      std::to_string(with_q) + " with the queries' rope)");
}

}  // namespace loom::passes
