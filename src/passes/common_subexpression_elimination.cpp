// Merges ops that compute the same thing: same op, equal attributes, same inputs. Constants
// merge when their bytes are equal. Sources with state (read) and effects never merge.
#include <cstring>
#include <unordered_map>

#include "passes/pass.h"

namespace loom::passes {
namespace {
bool same_constant(const ir::Node& a, const ir::Node& b) {
  const NDArray& x = attrs_as<ConstantAttrs>(*a.attrs).value;
  const NDArray& y = attrs_as<ConstantAttrs>(*b.attrs).value;
  if (x.type() != y.type()) return false;
  NDArray cx = x.contiguous(), cy = y.contiguous();
  return std::memcmp(cx.data(), cy.data(), cx.nbytes()) == 0;
}
}  // namespace

void common_subexpression_elimination(PassContext& ctx) {
  auto& nodes = ctx.graph.nodes;
  const auto& reg = ir::OpRegistry::get();
  std::unordered_multimap<size_t, size_t> seen;  // hash -> node index
  std::vector<bool> keep(nodes.size(), true);
  std::vector<std::pair<ir::Value, ir::Value>> repl;
  std::vector<int32_t> forward(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) forward[i] = static_cast<int32_t>(i);
  size_t merged = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    ir::Node& n = nodes[i];
    for (auto& v : n.inputs) v.node = forward[static_cast<size_t>(v.node)];
    bool is_const = n.op == ir::op::constant;
    if (!is_const && !reg.info(n.op).is_pure()) continue;
    size_t h = std::hash<int>()(n.op);
    h = detail::hash_combine(h, n.attrs->hash());
    for (const auto& v : n.inputs)
      h = detail::hash_combine(h,
                               (static_cast<size_t>(v.node) << 8) ^ static_cast<size_t>(v.index));
    auto [b, e] = seen.equal_range(h);
    bool found = false;
    for (auto it = b; it != e && !found; ++it) {
      const ir::Node& m = nodes[it->second];
      if (m.op != n.op || m.inputs != n.inputs) continue;
      if (is_const ? !same_constant(m, n) : !m.attrs->equals(*n.attrs)) continue;
      forward[i] = static_cast<int32_t>(it->second);
      for (size_t k = 0; k < n.outputs.size(); ++k)
        repl.push_back({{static_cast<int32_t>(i), static_cast<int32_t>(k)},
                        {static_cast<int32_t>(it->second), static_cast<int32_t>(k)}});
      keep[i] = false;
      found = true;
      ++merged;
    }
    if (!found) seen.emplace(h, i);
  }
  if (!merged) return;
  replace_uses(ctx, repl);
  compact(ctx, keep);
  ctx.note("cse", "merged " + std::to_string(merged) + " duplicate op(s)");
}

}  // namespace loom::passes
