#include <algorithm>
#include <map>
#include <cstdio>
#include <unordered_map>

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

namespace {

// What a pass changed, for `loom view`'s pass before/after (docs/FORMAT.md, "[changes]" lines):
// nodes are matched by name (unnamed ones are not tracked); a node is rewritten when its op,
// attributes, output types or the names of its inputs' producers changed.
struct Snapshot {
  struct Entry {
    ir::OpId op;
    const void* attrs;
    std::vector<std::string> inputs;
    std::vector<TensorType> outputs;
  };
  std::unordered_map<std::string, Entry> by_name;
  std::vector<std::string> order;  // names in node order (deterministic output)
  size_t nodes = 0;
};

Snapshot snapshot(const ir::GraphData& g) {
  Snapshot s;
  s.nodes = g.nodes.size();
  for (const auto& n : g.nodes) {
    if (n.name.empty() || s.by_name.count(n.name)) continue;
    Snapshot::Entry e{n.op, n.attrs.get(), {}, n.outputs};
    for (const auto& v : n.inputs)
      e.inputs.push_back(g.nodes[static_cast<size_t>(v.node)].name + "#" + std::to_string(v.index));
    s.by_name.emplace(n.name, std::move(e));
    s.order.push_back(n.name);
  }
  return s;
}

void json_string(std::string& out, const std::string& s) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
}

// One log line `[changes] {"pass":..,"nodes_before":..,"nodes_after":..,"removed":[..],
// "added":[..],"rewritten":[..]}`, or nothing when the pass changed nothing.
Snapshot note_changes(PassContext& ctx, const char* pass, const Snapshot& before) {
  Snapshot after = snapshot(ctx.graph);
  std::vector<std::string> removed, added, rewritten;
  for (const auto& name : before.order)
    if (!after.by_name.count(name)) removed.push_back(name);
  for (const auto& name : after.order) {
    auto it = before.by_name.find(name);
    if (it == before.by_name.end()) {
      added.push_back(name);
      continue;
    }
    const auto &a = it->second, &b = after.by_name.at(name);
    if (a.op != b.op || a.attrs != b.attrs || a.inputs != b.inputs || a.outputs != b.outputs)
      rewritten.push_back(name);
  }
  if (removed.empty() && added.empty() && rewritten.empty() && before.nodes == after.nodes)
    return after;
  std::string line = "[changes] {\"pass\":";
  json_string(line, pass);
  line += ",\"nodes_before\":" + std::to_string(before.nodes) +
          ",\"nodes_after\":" + std::to_string(after.nodes);
  for (const auto& [key, list] : {std::pair<const char*, const std::vector<std::string>*>{
                                      "removed", &removed},
                                  {"added", &added},
                                  {"rewritten", &rewritten}}) {
    line += ",\"";
    line += key;
    line += "\":[";
    for (size_t i = 0; i < list->size(); ++i) {
      if (i) line += ',';
      json_string(line, (*list)[i]);
    }
    line += ']';
  }
  line += '}';
  ctx.log.push_back(std::move(line));
  return after;
}

}  // namespace

void run_pipeline(PassContext& ctx) {
  for (const auto& name : ctx.options.disabled_passes) {
    bool known = std::any_of(pipeline().begin(), pipeline().end(),
                             [&](const PassInfo& p) { return name == p.name; });
    LOOM_CHECK(known, "[compile] disabled_passes names unknown pass '", name, "'");
  }
  Snapshot cur = snapshot(ctx.graph);
  for (const auto& p : pipeline()) {
    const auto& d = ctx.options.disabled_passes;
    if (std::find(d.begin(), d.end(), p.name) != d.end()) {
      ctx.note(p.name, "disabled");
      continue;
    }
    p.run(ctx);
    cur = note_changes(ctx, p.name, cur);
  }
}

}  // namespace loom::passes
