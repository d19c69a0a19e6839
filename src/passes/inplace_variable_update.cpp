// assign(v, slice_update(read(v), update, starts)) → write only the slice into v's memory.
// The slice_update becomes a write_slice (fusion class inplace: its output is its input 0, i.e.
// the variable's storage), and the assign finds its value already in place: no copy of the
// cache, only the update's bytes are written. Safe when the read feeds nothing else and no
// other read of v sits between the update and the assign.
#include "passes/pass.h"

namespace loom::passes {

void inplace_variable_update(PassContext& ctx) {
  auto& g = ctx.graph;
  const std::vector<int> uses = use_counts(ctx);
  for (size_t a = 0; a < g.nodes.size(); ++a) {
    const ir::Node& assign = g.nodes[a];
    if (assign.op != ir::op::assign) continue;
    const std::string& var = attrs_as<VariableRefAttrs>(*assign.attrs).variable;
    auto x = static_cast<size_t>(assign.inputs[0].node);
    ir::Node& update = g.nodes[x];
    if (update.op != ir::op::slice_update) continue;
    auto r = static_cast<size_t>(update.inputs[0].node);
    const ir::Node& read = g.nodes[r];
    if (read.op != ir::op::read || attrs_as<VariableRefAttrs>(*read.attrs).variable != var ||
        uses[r] != 1)
      continue;
    bool other_read = false;
    for (size_t j = x + 1; j < a; ++j)
      other_read |= g.nodes[j].op == ir::op::read &&
                    attrs_as<VariableRefAttrs>(*g.nodes[j].attrs).variable == var;
    if (other_read) continue;
    update.op = ir::op::write_slice;
    ctx.note("inplace_variable_update",
             "variable '" + var + "' is updated in place by " + update.name);
  }
}

}  // namespace loom::passes
