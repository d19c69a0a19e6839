// stitch: groups connected elementwise ops into regions, each replaced by one `stitched` node whose
// kernel evaluates the whole region per element (src/ops/stitched.h). Intermediates of a region
// are never written to memory: a chain of k ops reads its inputs once and writes one output
// instead of k round trips, and launches one kernel instead of k.
//
// A region grows backwards from its last op (the root): a producer joins when it is elementwise,
// carries stitchable dtypes, has the root's shape (so no member is recomputed over a broadcast it
// did not need), is not a compile target, and every consumer of it is already in the region (so no
// intermediate is needed outside). Producers are considered latest first, which makes "all
// consumers already in" exact. The stitched node takes the root's place in program order.
#include <algorithm>
#include <map>
#include <queue>
#include <set>

#include "ops/stitched.h"
#include "passes/pass.h"

namespace loom::passes {
namespace {

constexpr size_t kMaxInputs = 16;  // kernel parameters stay small; larger regions split

bool eligible(const ir::GraphData& g, const ir::Node& n) {
  const ir::OpInfo& info = ir::OpRegistry::get().info(n.op);
  if (info.fusion != ir::FusionClass::elementwise || n.outputs.size() != 1) return false;
  if (!ops::stitchable_dtype(n.outputs[0].dtype)) return false;
  for (const ir::Value& v : n.inputs)
    if (!ops::stitchable_dtype(g.type(v).dtype)) return false;
  return true;
}

// Same rank and dims (dynamic dims must be dynamic at the same places).
bool same_shape(const Shape& a, const Shape& b) { return a.dims() == b.dims(); }

}  // namespace

void stitch(PassContext& ctx) {
  if (!fusion_allowed(ctx, "stitch", ir::op::stitched)) return;
  auto& g = ctx.graph;
  const size_t n = g.nodes.size();
  std::vector<std::vector<int>> consumers(n);
  for (size_t i = 0; i < n; ++i)
    for (const ir::Value& v : g.nodes[i].inputs)
      consumers[static_cast<size_t>(v.node)].push_back(static_cast<int>(i));
  std::vector<bool> is_target(n, false);
  for (const ir::Value& v : ctx.outputs) is_target[static_cast<size_t>(v.node)] = true;

  std::vector<int> region(n, -1);
  std::map<size_t, ir::Value> bypass;  // absorbed expand nodes -> the value they broadcast
  int absorbed = 0;
  std::vector<bool> keep(n, true);
  std::map<std::string, int> op_counts;
  int regions = 0, stitched_ops = 0;
  size_t largest = 0;
  for (size_t root = n; root-- > 0;) {
    if (region[root] != -1 || !eligible(g, g.nodes[root])) continue;
    const Shape& shape = g.nodes[root].outputs[0].shape;
    const int id = static_cast<int>(root);
    std::vector<int> members{id};
    region[root] = id;
    std::set<ir::Value> inputs;  // values from outside the region
    std::priority_queue<int> candidates;
    auto visit = [&](int m) {
      for (const ir::Value& v : g.nodes[static_cast<size_t>(m)].inputs) candidates.push(v.node);
    };
    visit(id);
    while (!candidates.empty()) {
      int p = candidates.top();
      candidates.pop();
      while (!candidates.empty() && candidates.top() == p) candidates.pop();
      auto pu = static_cast<size_t>(p);
      if (region[pu] != -1) continue;
      const ir::Node& pn = g.nodes[pu];
      bool local = !is_target[pu] && same_shape(pn.outputs[0].shape, shape) &&
                   std::all_of(consumers[pu].begin(), consumers[pu].end(),
                               [&](int c) { return region[static_cast<size_t>(c)] == id; });
      if (local && eligible(g, pn)) {
        region[pu] = id;
        members.push_back(p);
        visit(p);
      } else if (local && pn.op == ir::op::expand && ops::stitchable_dtype(pn.outputs[0].dtype)) {
        // A leading broadcast: the region reads the expand's input with broadcast strides
        // instead (expand(x) to the region's shape is x broadcast, which is how every input is
        // read), so the expanded copy is never written.
        region[pu] = id;
        bypass[pu] = pn.inputs[0];
      }
    }
    size_t expands = 0;
    for (const auto& [b, v] : bypass) expands += region[b] == id;
    if (members.size() + expands < 2) {
      region[root] = -2;  // alone: stays a plain op
      continue;
    }
    std::sort(members.begin(), members.end());
    // A member's operand, looking through absorbed expands.
    auto source = [&](ir::Value v) {
      for (auto it = bypass.find(static_cast<size_t>(v.node)); it != bypass.end();
           it = bypass.find(static_cast<size_t>(v.node)))
        v = it->second;
      return v;
    };
    auto collect_inputs = [&] {
      inputs.clear();
      for (int m : members)
        for (const ir::Value& u : g.nodes[static_cast<size_t>(m)].inputs) {
          ir::Value v = source(u);
          if (region[static_cast<size_t>(v.node)] != id) inputs.insert(v);
        }
    };
    collect_inputs();
    // The node's shape is the broadcast of its inputs: without the expands, some input must
    // still carry the region's full shape (else the expands stay, as plain inputs).
    if (expands && std::none_of(inputs.begin(), inputs.end(), [&](const ir::Value& v) {
          return same_shape(g.type(v).shape, shape);
        })) {
      for (auto it = bypass.begin(); it != bypass.end();)
        it = region[it->first] == id ? (region[it->first] = -2, bypass.erase(it)) : std::next(it);
      expands = 0;
      collect_inputs();
      if (members.size() < 2) {
        region[root] = -2;
        continue;
      }
    }
    if (inputs.size() > kMaxInputs) {
      // Too many inputs for one kernel: leave these ops unstitched (rare; logged).
      for (int m : members) region[static_cast<size_t>(m)] = -2;
      for (auto it = bypass.begin(); it != bypass.end();)
        it = region[it->first] == id ? (region[it->first] = -2, bypass.erase(it)) : std::next(it);
      ctx.note("stitch", "left a region of " + std::to_string(members.size()) + " ops with " +
                             std::to_string(inputs.size()) + " inputs unstitched (limit " +
                             std::to_string(kMaxInputs) + ")");
      continue;
    }

    // The program: placeholders for the inputs (in first-use order), then the members.
    ir::GraphData prog;
    std::map<ir::Value, ir::Value> remap;
    std::vector<ir::Value> node_inputs;
    for (int m : members)
      for (const ir::Value& u : g.nodes[static_cast<size_t>(m)].inputs) {
        ir::Value v = source(u);
        if (region[static_cast<size_t>(v.node)] == id || remap.count(v)) continue;
        auto a = std::make_shared<PlaceholderAttrs>();
        a->name = "in" + std::to_string(node_inputs.size());
        a->dtype = g.type(v).dtype;
        a->shape = g.type(v).shape.dims();
        remap[v] = ir::add_node(prog, ir::op::placeholder, {}, make_attrs(*a))[0];
        node_inputs.push_back(v);
      }
    for (int m : members) {
      const ir::Node& mn = g.nodes[static_cast<size_t>(m)];
      std::vector<ir::Value> ins;
      for (const ir::Value& v : mn.inputs) ins.push_back(remap.at(source(v)));
      remap[{m, 0}] = ir::add_node(prog, mn.op, ins, mn.attrs, mn.name)[0];
      ++op_counts[ir::OpRegistry::get().info(mn.op).name];
    }
    ir::Node node;
    node.op = ir::op::stitched;
    node.name = g.nodes[root].name;
    node.inputs = node_inputs;
    node.attrs = make_attrs(StitchedAttrs{ir::print_graph(prog, {remap.at({id, 0})})});
    node.outputs = g.nodes[root].outputs;
    for (int m : members) keep[static_cast<size_t>(m)] = false;
    for (const auto& [b, v] : bypass)
      if (region[b] == id) keep[b] = false;
    keep[root] = true;
    g.nodes[root] = std::move(node);
    ++regions;
    absorbed += static_cast<int>(expands);
    stitched_ops += static_cast<int>(members.size());
    largest = std::max(largest, members.size());
  }
  if (!regions) return;
  compact(ctx, keep);
  std::string counts;
  for (const auto& [name, c] : op_counts)
    counts += (counts.empty() ? "" : ", ") + name + " ×" + std::to_string(c);
  ctx.note("stitch", std::to_string(stitched_ops) + " elementwise op(s) into " +
                         std::to_string(regions) + " kernel(s) (largest " +
                         std::to_string(largest) + " ops): " + counts +
                         (absorbed ? "; " + std::to_string(absorbed) +
                                         " expand(s) read as broadcasts instead of copies"
                                   : ""));
}

}  // namespace loom::passes
