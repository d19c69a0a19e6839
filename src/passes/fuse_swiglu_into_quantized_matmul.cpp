// A gated FFN's down projection of its SwiGLU, quantized_matmul(silu(p[..., :k]) · p[..., k:], W)
// with p the gate / up product (merge_parallel_matmuls makes p and its two slices), becomes one
// swiglu_quantized_matmul(p, W). On a GPU the decode GEMV forms x = silu(g) · u where it quantizes
// x (every CTA for short rows, one small kernel for long ones): x is never stored, and the
// silu · mul kernel and its launch go (one per decoder layer and token).
//
// Only where the halves are exactly p's along the last axis (step 1), the gate half's one use is a
// silu whose one use is the mul, the up half's one use is the same mul (either operand order), the
// mul's one use is the matmul's x, and none of them is a compile target. p may have other uses.
// The fused node takes the matmul's slot (p and the weights are defined before it). Runs after
// merge_parallel_matmuls and before stitch, which would take the silu and the mul into a region.
#include <map>

#include "passes/pass.h"

namespace loom::passes {
namespace {

// Which half of a last axis of 2k the slice node takes: 0 for [0, k), 1 for [k, 2k), else -1.
int half_of(const ir::Node& s, int rank, int64_t k) {
  const auto& a = attrs_as<SliceAttrs>(*s.attrs);
  if (a.axes.size() != 1 || a.starts.size() != 1 || a.ends.size() != 1 || a.steps.size() > 1)
    return -1;
  if (!a.steps.empty() && a.steps[0] != 1) return -1;
  if (a.axes[0] != -1 && a.axes[0] != rank - 1) return -1;
  if (a.starts[0] == 0 && a.ends[0] == k) return 0;
  if (a.starts[0] == k && a.ends[0] >= 2 * k) return 1;
  return -1;
}

}  // namespace

void fuse_swiglu_into_quantized_matmul(PassContext& ctx) {
  static constexpr const char* kPass = "fuse_swiglu_into_quantized_matmul";
  if (!fusion_allowed(ctx, kPass, ir::op::swiglu_quantized_matmul)) return;
  auto& g = ctx.graph;
  const size_t n = g.nodes.size();
  std::map<ir::Value, std::vector<size_t>> users;  // dead users count: they would read the value
  for (size_t i = 0; i < n; ++i)
    for (const ir::Value& v : g.nodes[i].inputs) users[v].push_back(i);
  std::map<ir::Value, bool> targets;
  for (const ir::Value& v : ctx.outputs) targets[v] = true;
  // The node of v's one use (v not a target), or -1.
  auto only_user = [&](int32_t node) -> long {
    const ir::Value v{node, 0};
    const auto it = users.find(v);
    if (it == users.end() || it->second.size() != 1 || targets.count(v)) return -1;
    return static_cast<long>(it->second[0]);
  };

  const auto& info = ir::OpRegistry::get().info(ir::op::swiglu_quantized_matmul);
  std::vector<bool> keep(n, true);
  int fused = 0;
  std::string where;
  for (size_t j = 0; j < n; ++j) {
    const ir::Node& mm = g.nodes[j];
    if (mm.op != ir::op::quantized_matmul || mm.inputs.size() != 2) continue;
    const ir::Node& mul = g.node(mm.inputs[0]);
    if (mul.op != ir::op::mul || mm.inputs[0].index != 0 ||
        only_user(mm.inputs[0].node) != static_cast<long>(j))
      continue;
    const auto& qa = attrs_as<QuantizedMatmulAttrs>(*mm.attrs);
    // The mul's operands: silu(gate half) and the up half, in either order.
    int32_t act = -1, up = -1;
    for (const ir::Value& v : mul.inputs) {
      const ir::Node& o = g.node(v);
      if (o.op == ir::op::silu && act < 0)
        act = v.node;
      else if (o.op == ir::op::slice)
        up = v.node;
    }
    if (act < 0 || up < 0 || only_user(act) != mm.inputs[0].node ||
        only_user(up) != mm.inputs[0].node)
      continue;
    const ir::Value gate_v = g.nodes[static_cast<size_t>(act)].inputs[0];
    const ir::Node& gate = g.node(gate_v);
    const ir::Node& upn = g.nodes[static_cast<size_t>(up)];
    if (gate.op != ir::op::slice || only_user(gate_v.node) != act ||
        gate.inputs[0] != upn.inputs[0])
      continue;
    const ir::Value p = gate.inputs[0];
    const int rank = g.type(p).shape.rank();
    if (half_of(gate, rank, qa.k) != 0 || half_of(upn, rank, qa.k) != 1) continue;

    ir::Node f;
    f.op = ir::op::swiglu_quantized_matmul;
    f.name = mm.name;  // the pass log tracks nodes by name
    f.inputs = {p, mm.inputs[1]};
    f.attrs = mm.attrs;
    f.outputs = mm.outputs;
    std::vector<TensorType> in_types;
    for (const auto& v : f.inputs) in_types.push_back(g.type(v));
    try {  // p's type must give the matmul's (no broadcast in the mul, one dtype)
      if (info.infer(ir::InferContext{info, *f.attrs, in_types, {}}) != f.outputs) continue;
    } catch (const Error&) {
      continue;
    }
    for (const int32_t r : {gate_v.node, up, act, mm.inputs[0].node})
      keep[static_cast<size_t>(r)] = false;
    where += (where.empty() ? "" : ", ") + f.name + " (" + qa.format + ", " + std::to_string(qa.n) +
             "x" + std::to_string(qa.k) + ")";
    g.nodes[j] = std::move(f);
    ++fused;
  }
  if (!fused) return;
  remap_and_compact(ctx, {}, keep);
  ctx.note(kPass, "fused " + std::to_string(fused) +
                      " silu · mul → quantized_matmul into swiglu_quantized_matmul at " + where);
}

}  // namespace loom::passes
