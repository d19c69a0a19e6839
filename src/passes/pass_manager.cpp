#include <algorithm>
#include <map>

#include "passes/pass.h"

namespace loom::passes {

void replace_uses(PassContext& ctx, const std::vector<std::pair<ir::Value, ir::Value>>& pairs) {
  if (pairs.empty()) return;
  std::map<ir::Value, ir::Value> m(pairs.begin(), pairs.end());
  auto fix = [&](ir::Value& v) {
    auto it = m.find(v);
    while (it != m.end()) {  // follow chains a->b->c
      v = it->second;
      it = m.find(v);
    }
  };
  for (auto& n : ctx.graph.nodes)
    for (auto& v : n.inputs) fix(v);
  for (auto& v : ctx.outputs) fix(v);
}

void compact(PassContext& ctx, const std::vector<bool>& keep) {
  auto& nodes = ctx.graph.nodes;
  std::vector<int32_t> remap(nodes.size(), -1);
  std::vector<ir::Node> out;
  out.reserve(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (!keep[i]) continue;
    remap[i] = static_cast<int32_t>(out.size());
    out.push_back(std::move(nodes[i]));
  }
  auto fix = [&](ir::Value& v) {
    int32_t n = remap[static_cast<size_t>(v.node)];
    LOOM_CHECK(n >= 0, "[passes] internal error: a removed node is still used");
    v.node = n;
  };
  for (auto& n : out)
    for (auto& v : n.inputs) fix(v);
  for (auto& v : ctx.outputs) fix(v);
  nodes = std::move(out);
}

void insert_before(PassContext& ctx, size_t index, std::vector<ir::Node> nodes) {
  auto count = static_cast<int32_t>(nodes.size());
  auto at = static_cast<int32_t>(index);
  auto shift = [&](ir::Value& v) {
    if (v.node >= at) v.node += count;
  };
  for (size_t i = index; i < ctx.graph.nodes.size(); ++i)
    for (auto& v : ctx.graph.nodes[i].inputs) shift(v);
  for (auto& v : ctx.outputs) shift(v);
  ctx.graph.nodes.insert(ctx.graph.nodes.begin() + static_cast<long>(index),
                         std::make_move_iterator(nodes.begin()),
                         std::make_move_iterator(nodes.end()));
}

void run_pipeline(PassContext& ctx) {
  for (const auto& name : ctx.options.disabled_passes) {
    bool known = std::any_of(pipeline().begin(), pipeline().end(),
                             [&](const PassInfo& p) { return name == p.name; });
    LOOM_CHECK(known, "[compile] disabled_passes names unknown pass '", name, "'");
  }
  for (const auto& p : pipeline()) {
    const auto& d = ctx.options.disabled_passes;
    if (std::find(d.begin(), d.end(), p.name) != d.end()) {
      ctx.note(p.name, "disabled");
      continue;
    }
    p.run(ctx);
  }
}

}  // namespace loom::passes
