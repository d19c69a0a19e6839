// Recognises attention written out as separate ops (as ONNX exporters write it):
//   matmul(q, kᵀ) → [mul/div by a scalar constant] → [add mask] → softmax(last axis) → matmul(·, v)
// and replaces it with one fused `sdpa`. Applied only where every intermediate has a single use
// (so nothing else needs the scores) and the result type is unchanged; sdpa accumulates and
// normalises in f32, so it is at least as accurate as the composite.
#include <cmath>

#include "passes/pass.h"

namespace loom::passes {
namespace {

struct UseCounts {
  ir::GraphData& g;
  std::vector<int> uses;
  const ir::Node& node(ir::Value v) const { return g.node(v); }
  bool single_use(ir::Value v) const { return uses[static_cast<size_t>(v.node)] == 1; }
};

// A rank-0 (or one-element) floating constant's value.
bool scalar_constant(const ir::GraphData& g, ir::Value v, double* out) {
  const ir::Node& n = g.node(v);
  if (n.op != ir::op::constant) return false;
  const NDArray& a = attrs_as<ConstantAttrs>(*n.attrs).value;
  if (a.numel() != 1 || !is_floating(a.dtype())) return false;
  *out = a.at(0);
  return true;
}

}  // namespace

void attention_pattern(PassContext& ctx) {
  auto& g = ctx.graph;
  UseCounts G{g, std::vector<int>(g.nodes.size(), 0)};
  for (const auto& n : g.nodes)
    for (const auto& v : n.inputs) ++G.uses[static_cast<size_t>(v.node)];
  for (const auto& v : ctx.outputs) G.uses[static_cast<size_t>(v.node)] += 2;  // outputs are uses

  for (size_t i = 0; i < g.nodes.size(); ++i) {
    ir::Node& pv = g.nodes[i];
    if (pv.op != ir::op::matmul || pv.outputs[0].shape.rank() != 4) continue;
    const auto& pv_attrs = attrs_as<MatmulAttrs>(*pv.attrs);
    if (pv_attrs.transpose_a || pv_attrs.transpose_b) continue;
    ir::Value s = pv.inputs[0], v = pv.inputs[1];
    const ir::Node& sm = G.node(s);
    if (sm.op != ir::op::softmax || !G.single_use(s)) continue;
    int64_t axis = attrs_as<AxisAttrs>(*sm.attrs).axis;
    if (axis != -1 && axis != 3) continue;
    ir::Value z = sm.inputs[0];
    ir::Value mask{};
    if (G.node(z).op == ir::op::add && G.single_use(z)) {
      const ir::Node& add = G.node(z);
      // The scores side is the one that leads to a matmul (possibly through a scale).
      auto leads_to_matmul = [&](ir::Value x) {
        const ir::Node& n = G.node(x);
        return n.op == ir::op::matmul || ((n.op == ir::op::mul || n.op == ir::op::div) &&
                                          G.node(n.inputs[0]).op == ir::op::matmul);
      };
      if (leads_to_matmul(add.inputs[0])) {
        mask = add.inputs[1];
        z = add.inputs[0];
      } else if (leads_to_matmul(add.inputs[1])) {
        mask = add.inputs[0];
        z = add.inputs[1];
      } else
        continue;
    }
    double scale = 1;
    if ((G.node(z).op == ir::op::mul || G.node(z).op == ir::op::div) && G.single_use(z)) {
      const ir::Node& sc = G.node(z);
      double c;
      if (!scalar_constant(g, sc.inputs[1], &c) || c == 0) continue;
      scale = sc.op == ir::op::mul ? c : 1.0 / c;
      z = sc.inputs[0];
    }
    const ir::Node& qk = G.node(z);
    if (qk.op != ir::op::matmul || !G.single_use(z) || !(scale > 0)) continue;
    const auto& qk_attrs = attrs_as<MatmulAttrs>(*qk.attrs);
    if (qk_attrs.transpose_a) continue;
    ir::Value q = qk.inputs[0], k = qk.inputs[1];
    if (!qk_attrs.transpose_b) {
      const ir::Node& t = G.node(k);
      if (t.op != ir::op::transpose ||
          attrs_as<PermuteAttrs>(*t.attrs).perm != std::vector<int64_t>{0, 1, 3, 2})
        continue;
      k = t.inputs[0];
    }
    std::vector<ir::Value> inputs{q, k, v};
    SdpaAttrs attrs{false, scale, mask.valid(), false};
    if (mask.valid()) inputs.push_back(mask);
    // Check the fused op types out the same before committing.
    std::vector<TensorType> in_types;
    for (const auto& x : inputs) in_types.push_back(g.type(x));
    const auto& info = ir::OpRegistry::get().info(ir::op::sdpa);
    auto attrs_ptr = make_attrs(attrs);
    ir::InferContext ictx{info, *attrs_ptr, in_types, {}};
    try {
      if (info.infer(ictx) != pv.outputs) continue;
    } catch (const Error&) {
      continue;
    }
    std::string name = pv.name;
    pv.op = ir::op::sdpa;
    pv.inputs = inputs;
    pv.attrs = attrs_ptr;

    ctx.note("attention_pattern", "fused matmul-softmax-matmul at " + name + " into sdpa (scale " +
                                      std::to_string(scale) +
                                      (mask.valid() ? ", with mask)" : ")"));
  }
}

}  // namespace loom::passes
