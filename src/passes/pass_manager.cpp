#include <algorithm>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

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

std::vector<int> use_counts(const PassContext& ctx) {
  std::vector<int> uses(ctx.graph.nodes.size(), 0);
  for (const auto& n : ctx.graph.nodes)
    for (const auto& v : n.inputs) ++uses[static_cast<size_t>(v.node)];
  for (const auto& v : ctx.outputs) ++uses[static_cast<size_t>(v.node)];
  return uses;
}

bool fusion_allowed(PassContext& ctx, const char* pass, ir::OpId fused) {
  if (ctx.options.device.kind == Device::Kind::reference) return false;
  if (ctx.device_has_kernel && !ctx.device_has_kernel(fused)) {
    ctx.note(pass, "skipped: " + ctx.options.device.to_string() + " has no " +
                       std::string(ir::OpRegistry::get().info(fused).name) + " kernel");
    return false;
  }
  return true;
}

void remap_and_compact(PassContext& ctx, const std::map<ir::Value, ir::Value>& moved,
                       const std::vector<bool>& keep) {
  auto fix = [&](ir::Value& v) {
    if (auto it = moved.find(v); it != moved.end()) v = it->second;
  };
  for (auto& node : ctx.graph.nodes)
    for (auto& v : node.inputs) fix(v);
  for (auto& v : ctx.outputs) fix(v);
  compact(ctx, keep);
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
// attributes, output types or its inputs (producer names) changed. Kept as hashes: snapshots of
// a 20 000-node graph after every pass must cost milliseconds, not the compile's time.
uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h * 0xff51afd7ed558ccdull;
}

struct Snapshot {
  std::string arena;                // the names of named nodes, in node order, back to back
  std::vector<size_t> offset;       // name i is arena[offset[i], offset[i + 1])
  std::vector<uint64_t> name_hash;  // per name
  // Open addressing, name hash -> content hash (0 marks an empty slot: hashes are made odd).
  std::vector<std::pair<uint64_t, uint64_t>> table;
  size_t nodes = 0;
  size_t size() const { return name_hash.size(); }
  std::string name(size_t i) const { return arena.substr(offset[i], offset[i + 1] - offset[i]); }
  const uint64_t* find(uint64_t name) const {
    for (size_t k = name & (table.size() - 1);; k = (k + 1) & (table.size() - 1)) {
      if (table[k].first == name) return &table[k].second;
      if (table[k].first == 0) return nullptr;
    }
  }
  void insert(uint64_t name, uint64_t content) {  // the first of duplicate names counts
    for (size_t k = name & (table.size() - 1);; k = (k + 1) & (table.size() - 1)) {
      if (table[k].first == name) return;
      if (table[k].first == 0) {
        table[k] = {name, content};
        return;
      }
    }
  }
};

Snapshot snapshot(const ir::GraphData& g) {
  Snapshot s;
  s.nodes = g.nodes.size();
  std::vector<uint64_t> nh(g.nodes.size());
  std::hash<std::string> hs;
  for (size_t i = 0; i < g.nodes.size(); ++i) nh[i] = hs(g.nodes[i].name) | 1;
  size_t cap = 16;
  while (cap < 2 * g.nodes.size()) cap *= 2;
  s.table.assign(cap, {0, 0});
  s.offset.reserve(g.nodes.size() + 1);
  s.offset.push_back(0);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& n = g.nodes[i];
    if (n.name.empty()) continue;
    uint64_t c = mix(n.op, reinterpret_cast<uintptr_t>(n.attrs.get()));
    for (const auto& v : n.inputs) c = mix(mix(c, nh[static_cast<size_t>(v.node)]), v.index);
    for (const auto& t : n.outputs) {
      c = mix(c, static_cast<uint64_t>(t.dtype));
      for (int64_t d : t.shape.dims()) c = mix(c, static_cast<uint64_t>(d));
    }
    s.arena += n.name;
    s.offset.push_back(s.arena.size());
    s.name_hash.push_back(nh[i]);
    s.insert(nh[i], c);
  }
  return s;
}

// One log line `[changes] {"pass":..,"nodes_before":..,"nodes_after":..,"removed":[..],
// "added":[..],"rewritten":[..]}`, or nothing when the pass changed nothing.
Snapshot note_changes(PassContext& ctx, const char* pass, size_t slot, const Snapshot& before) {
  Snapshot after = snapshot(ctx.graph);
  std::vector<std::string> removed, added, rewritten;
  for (size_t i = 0; i < before.size(); ++i)
    if (!after.find(before.name_hash[i])) removed.push_back(before.name(i));
  for (size_t i = 0; i < after.size(); ++i) {
    const uint64_t* was = before.find(after.name_hash[i]);
    if (!was)
      added.push_back(after.name(i));
    else if (*was != *after.find(after.name_hash[i]))
      rewritten.push_back(after.name(i));
  }
  if (removed.empty() && added.empty() && rewritten.empty() && before.nodes == after.nodes)
    return after;
  // slot: the pass's position in pipeline() (dce runs twice): the graph before it is the result
  // of slots [0, slot), which `loom view` recomputes for its before/after views.
  nlohmann::ordered_json j = {{"pass", pass},
                              {"slot", slot},
                              {"nodes_before", before.nodes},
                              {"nodes_after", after.nodes},
                              {"removed", removed},
                              {"added", added},
                              {"rewritten", rewritten}};
  // Op names are user text: bytes that are not UTF-8 become U+FFFD instead of throwing.
  std::string line =
      "[changes] " + j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  ctx.log.push_back(std::move(line));
  return after;
}

}  // namespace

void run_pipeline(PassContext& ctx) {
  // CompileOptions::disabled_passes, plus LOOM_DISABLE_PASSES=a,b (before/after timings of a
  // pass in programs that build their graphs themselves, e.g. the LLM benchmarks).
  std::vector<std::string> d = ctx.options.disabled_passes;
  if (const char* env = std::getenv("LOOM_DISABLE_PASSES")) {
    std::stringstream list(env);
    for (std::string name; std::getline(list, name, ',');)
      if (!name.empty()) d.push_back(name);
  }
  for (const auto& name : d) {
    bool known = std::any_of(pipeline().begin(), pipeline().end(),
                             [&](const PassInfo& p) { return name == p.name; });
    LOOM_CHECK(known, "[compile] disabled_passes names unknown pass '", name, "'");
  }
  Snapshot cur = snapshot(ctx.graph);
  for (size_t slot = 0; slot < pipeline().size(); ++slot) {
    const PassInfo& p = pipeline()[slot];
    if (std::find(d.begin(), d.end(), p.name) != d.end()) {
      ctx.note(p.name, "disabled");
      continue;
    }
    p.run(ctx);
    cur = note_changes(ctx, p.name, slot, cur);
  }
}

}  // namespace loom::passes
