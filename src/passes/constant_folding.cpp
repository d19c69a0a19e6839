// Evaluates pure ops whose inputs are all constants, replacing them by constants.
#include "passes/pass.h"

namespace loom::passes {

void constant_folding(PassContext& ctx) {
  auto& nodes = ctx.graph.nodes;
  const auto& reg = ir::OpRegistry::get();
  size_t folded = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    ir::Node& n = nodes[i];
    const auto& info = reg.info(n.op);
    if (!info.is_pure() || info.fusion == ir::FusionClass::custom) continue;
    bool all_const = true;
    std::vector<NDArray> in;
    for (const auto& v : n.inputs) {
      const ir::Node& src = ctx.graph.node(v);
      if (src.op != ir::op::constant) {
        all_const = false;
        break;
      }
      in.push_back(attrs_as<ConstantAttrs>(*src.attrs).value);
    }
    if (!all_const) continue;
    bool small = true;
    for (const auto& t : n.outputs)
      small = small && t.shape.is_static() &&
              t.shape.numel() <= ctx.options.constant_folding_max_elements;
    if (!small) continue;
    // Never make the model bigger: folding dequantize, expand or tile of a constant would
    // replace compact weights by large ones (and hide them from quantized_matmul fusion).
    size_t in_bytes = 0, out_bytes = 0;
    for (const auto& a : in) in_bytes += a.nbytes();
    for (const auto& t : n.outputs) out_bytes += storage_bytes(t.dtype, t.shape.numel());
    if (out_bytes > in_bytes && !in.empty()) continue;
    std::vector<NDArray> out = ctx.evaluate(n, in);
    // The node becomes a constant in place (ops with several outputs are left alone); its inputs
    // may become dead, which the next DCE removes.
    if (out.size() != 1) continue;
    n.op = ir::op::constant;
    n.inputs.clear();
    n.attrs = make_attrs(ConstantAttrs{out[0]});
    ++folded;
  }
  if (folded)
    ctx.note("constant_folding", "folded " + std::to_string(folded) + " op(s) into constants");
}

}  // namespace loom::passes
