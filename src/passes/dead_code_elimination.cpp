// Removes ops whose results reach no output and no assign.
#include "passes/pass.h"

namespace loom::passes {

void dead_code_elimination(PassContext& ctx) {
  auto& nodes = ctx.graph.nodes;
  const auto& reg = ir::OpRegistry::get();
  std::vector<bool> live(nodes.size(), false);
  for (const auto& v : ctx.outputs) live[static_cast<size_t>(v.node)] = true;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (reg.info(nodes[i].op).has_side_effects()) live[i] = true;
  // Placeholders stay: they are the executable's signature even when unused.
  for (size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].op == ir::op::placeholder) live[i] = true;
  for (size_t i = nodes.size(); i-- > 0;)
    if (live[i])
      for (const auto& v : nodes[i].inputs) live[static_cast<size_t>(v.node)] = true;
  size_t removed = 0;
  for (bool l : live) removed += !l;
  if (!removed) return;
  compact(ctx, live);
  ctx.note("dce", "removed " + std::to_string(removed) + " unused op(s)");
}

}  // namespace loom::passes
