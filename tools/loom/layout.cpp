// layout.cpp — groups, structural hashing and the per-group layered layout of `loom view`.
#include "layout.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "ir/op_registry.h"
#include "loom/error.h"

namespace loom::view {
namespace {

constexpr float kNodeH = 34, kChipRow = 16, kGroupW = 210, kGroupH = 48;
constexpr float kLayerGap = 30, kNodeGap = 16, kDummyW = 8, kPad = 14, kHeader = 26;

uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h * 0xff51afd7ed558ccdull;
}
uint64_t hash_str(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

bool is_sep(char c) { return c == '/' || c == '.' || c == '_' || c == ':'; }

std::string shape_str(const TensorType& t) {
  std::string s = std::string(dtype_name(t.dtype)) + "[";
  const auto& d = t.shape.dims();
  for (size_t i = 0; i < d.size(); ++i) {
    if (i) s += ",";
    s += d[i] < 0 ? "?" : std::to_string(d[i]);
  }
  return s + "]";
}

}  // namespace

std::string block_of(const std::string& name) {
  // (?:^|[/._:])((?:blk|layers?|blocks?|h|encoder[._]layer|decoder[._]layer)[._/](\d+))(?=[._/:]|$)
  static const char* kWords[] = {
      "encoder.layer", "encoder_layer", "decoder.layer", "decoder_layer", "layers",
      "layer",         "blocks",        "block",         "blk",           "h"};
  for (size_t s = 0; s < name.size(); ++s) {
    if (s > 0 && !is_sep(name[s - 1])) continue;
    for (const char* w : kWords) {
      size_t n = std::char_traits<char>::length(w);
      if (name.compare(s, n, w) != 0) continue;
      size_t p = s + n;
      if (p >= name.size() || !(name[p] == '.' || name[p] == '_' || name[p] == '/')) continue;
      size_t d = p + 1, e = d;
      while (e < name.size() && std::isdigit(static_cast<unsigned char>(name[e]))) ++e;
      if (e == d) continue;
      if (e < name.size() &&
          !(name[e] == '.' || name[e] == '_' || name[e] == '/' || name[e] == ':'))
        continue;
      // "dequantize_blocks_7" is an op's generated name (op_N), not block 7.
      if (e == name.size() && name[p] == '_') continue;
      std::string out = name.substr(s, e - s);
      std::replace(out.begin(), out.end(), '/', '.');
      return out;
    }
  }
  return "";
}

// ---- the hierarchy --------------------------------------------------------------------------

GroupTree build_groups(const ir::GraphData& g, const std::vector<ir::Value>& outputs,
                       const LayoutOptions& opt, std::vector<VirtualNode> vnodes) {
  auto t0 = std::chrono::steady_clock::now();
  const auto& reg = ir::OpRegistry::get();
  GroupTree t;
  const int G = static_cast<int>(g.nodes.size());
  const int N = G + static_cast<int>(vnodes.size());
  t.num_graph_nodes = G;
  t.virtual_nodes = std::move(vnodes);
  // Uniform access to graph and virtual nodes.
  std::vector<std::string> op(N), name(N), variable(N);
  std::vector<std::vector<std::pair<int, int>>> inputs(N);
  std::vector<std::string> out_type(N);
  std::vector<int> region_of(N, -1);
  for (int i = 0; i < G; ++i) {
    const ir::Node& n = g.nodes[static_cast<size_t>(i)];
    op[i] = reg.info(n.op).name;
    name[i] = n.name;
    for (const auto& v : n.inputs) inputs[i].emplace_back(v.node, v.index);
    if ((n.op == ir::op::read || n.op == ir::op::assign) && n.attrs)
      variable[i] = attrs_as<VariableRefAttrs>(*n.attrs).variable;
    if (!n.outputs.empty()) out_type[i] = shape_str(n.outputs[0]);
  }
  std::vector<uint8_t> is_region(G, 0);
  for (int k = 0; k < N - G; ++k) {
    const VirtualNode& v = t.virtual_nodes[static_cast<size_t>(k)];
    int i = G + k;
    op[i] = v.op, name[i] = v.name, inputs[i] = v.inputs, region_of[i] = v.region;
    out_type[i] = shape_str(v.type);
    LOOM_CHECK(v.region >= 0 && v.region < G, "[view] virtual node of an unknown region");
    is_region[static_cast<size_t>(v.region)] = 1;
    for (const auto& [p, idx] : v.inputs)
      LOOM_CHECK(p >= 0 && p < N, "[view] virtual node input out of range");
  }
  // A region's members replace it: its consumers are drawn from its last member.
  std::vector<std::vector<int>> users(N);
  for (int i = 0; i < N; ++i)
    for (const auto& [p, k] : inputs[i]) {
      auto& u = users[static_cast<size_t>(p)];
      if (u.empty() || u.back() != i) u.push_back(i);
    }
  std::set<int> is_output;
  for (const auto& o : outputs) is_output.insert(o.node);

  t.chip.assign(N, 0);
  t.hub.assign(N, 0);
  t.stubs.assign(N, {});
  t.chips.assign(N, {});
  for (int i = 0; i < G; ++i)
    if (g.nodes[static_cast<size_t>(i)].op == ir::op::constant && !users[i].empty() &&
        !is_output.count(i))
      t.chip[i] = 1;
  for (int i = 0; i < N; ++i)
    if (!t.chip[i] && static_cast<int>(users[i].size()) > opt.hub_fanout) t.hub[i] = 1;

  // Block of each node: from its name, its variable, the names of the constants it consumes;
  // else the block of its consumers, else of its producers, else the top level.
  std::vector<std::string> block_names;
  std::unordered_map<std::string, int> block_index;
  constexpr int kRoot = -2, kNone = -1, kLater = -3;
  auto explicit_of = [&](const std::string& nm) {
    std::string b = block_of(nm);
    if (b.empty()) return kNone;
    auto [it, fresh] = block_index.emplace(b, static_cast<int>(block_names.size()));
    if (fresh) block_names.push_back(b);
    return it->second;
  };
  std::vector<int> grp(N, kNone);
  for (int i = 0; i < N; ++i) {
    if (t.chip[i] || region_of[i] >= 0) continue;
    int b = explicit_of(name[i]);
    if (b == kNone && !variable[i].empty()) b = explicit_of(variable[i]);
    if (b == kNone)
      for (const auto& [p, k] : inputs[i])
        if (t.chip[p]) {
          int c = explicit_of(name[p]);
          if (c != kNone) {
            b = c;
            break;
          }
          if (!name[p].empty() && name[p].rfind("constant_", 0) != 0) b = kRoot;
        }
    if (b == kNone && (op[i] == "placeholder" || t.hub[i])) b = kRoot;
    grp[i] = b;
  }
  // An unnamed op computed from an op named in a block belongs to that block (the residual add
  // after a block's down projection), so every block of a stack holds the same ops.
  std::vector<uint8_t> named(N, 0);
  for (int i = 0; i < G; ++i) named[i] = grp[i] >= 0;
  for (int i = 0; i < G; ++i) {
    if (t.chip[i] || grp[i] != kNone) continue;
    for (const auto& [p, k] : inputs[i])
      if (p < G && named[p] && grp[p] > grp[i]) grp[i] = grp[p];
  }
  for (int i = G - 1; i >= 0; --i) {
    if (t.chip[i] || grp[i] != kNone) continue;
    int best = kNone;
    for (int u : users[i]) {
      int v = u < G ? grp[u] : grp[region_of[u]];
      if (v >= 0 && (best < 0 || v < best))
        best = v;
      else if (v == kRoot && best == kNone)
        best = kRoot;
    }
    grp[i] = best == kNone ? kLater : best;
  }
  for (int i = 0; i < G; ++i) {
    if (t.chip[i] || grp[i] != kLater) continue;
    int best = kRoot;
    for (const auto& [p, k] : inputs[i])
      if (!t.chip[p] && p < G && grp[p] >= 0 && grp[p] > best) best = grp[p];
    grp[i] = best;
  }

  // Containers: root, blocks, regions (fused nodes with members) inside their node's block.
  auto mk = [&](std::string label, std::string kind, int parent) {
    GroupTree::Container c;
    c.id = static_cast<int>(t.containers.size());
    c.label = std::move(label), c.kind = std::move(kind), c.parent = parent;
    t.containers.push_back(std::move(c));
    return t.containers.back().id;
  };
  mk("graph", "root", -1);
  std::vector<int> block_c(block_names.size());
  for (size_t b = 0; b < block_names.size(); ++b) block_c[b] = mk(block_names[b], "block", 0);
  t.node_container.assign(N, -1);
  std::vector<int> region_c(G, -1);
  // Items with their program position, sorted below: a group sits where its first op is.
  std::vector<std::vector<std::pair<int, GroupTree::Item>>> items(t.containers.size());
  for (int i = 0; i < G; ++i) {
    if (t.chip[i]) continue;
    int c = grp[i] >= 0 ? block_c[static_cast<size_t>(grp[i])] : 0;
    if (is_region[i]) {
      // The fused node is drawn as a region box holding its members.
      std::string label = op[i] + (name[i].empty() ? "" : " " + name[i]);
      int rc = mk(label, "region", c);
      t.containers[static_cast<size_t>(rc)].region_node = i;
      region_c[i] = rc;
      items.resize(t.containers.size());
      items[static_cast<size_t>(c)].push_back({i, {true, rc}});
      t.node_container[i] = rc;  // the region node itself: the box
      continue;
    }
    items[static_cast<size_t>(c)].push_back({i, {false, i}});
    t.node_container[i] = c;
  }
  for (int i = G; i < N; ++i) {
    int rc = region_c[region_of[i]];
    items[static_cast<size_t>(rc)].push_back({i, {false, i}});
    t.node_container[i] = rc;
  }
  for (size_t b = 0; b < block_c.size(); ++b) {
    auto& its = items[static_cast<size_t>(block_c[b])];
    if (its.empty()) continue;
    int first = its.front().first;
    for (const auto& [pos, it] : its) first = std::min(first, pos);
    items[0].push_back({first, {true, block_c[b]}});
  }
  for (size_t c = 0; c < items.size(); ++c) {
    auto& its = items[c];
    std::stable_sort(its.begin(), its.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [pos, it] : its) t.containers[c].items.push_back(it);
  }
  // Oversized levels become `section i/N` groups in program order.
  size_t fixed = t.containers.size();
  for (size_t c = 0; c < fixed; ++c) {
    if (static_cast<int>(t.containers[c].items.size()) <= opt.section_max) continue;
    std::vector<GroupTree::Item> old = std::move(t.containers[c].items);
    t.containers[c].items.clear();
    size_t per = static_cast<size_t>(std::max(1, opt.section_size));
    size_t n = (old.size() + per - 1) / per;
    for (size_t s = 0; s < n; ++s) {
      std::string label =
          t.containers[c].label + " · section " + std::to_string(s + 1) + "/" + std::to_string(n);
      int sc = mk(label, "section", static_cast<int>(c));
      auto& sec = t.containers[static_cast<size_t>(sc)];
      for (size_t k = s * per; k < std::min(old.size(), (s + 1) * per); ++k) {
        sec.items.push_back(old[k]);
        if (old[k].group)
          t.containers[static_cast<size_t>(old[k].id)].parent = sc;
        else
          t.node_container[old[k].id] = sc;
      }
      t.containers[c].items.push_back({true, sc});
    }
  }
  // Depths top-down (sections moved groups one level down).
  std::function<void(int, int)> set_depth = [&](int c, int d) {
    t.containers[static_cast<size_t>(c)].depth = d;
    for (const auto& it : t.containers[static_cast<size_t>(c)].items)
      if (it.group) set_depth(it.id, d + 1);
  };
  set_depth(0, 0);

  // Each edge belongs to the lowest container holding both ends, joining two of its items.
  auto chain_of = [&](int node) {
    std::vector<int> a;
    for (int c = t.node_container[node]; c >= 0; c = t.containers[static_cast<size_t>(c)].parent)
      a.push_back(c);
    return a;
  };
  std::vector<std::unordered_map<int, int>> item_index(t.containers.size());
  for (const auto& c : t.containers)
    for (size_t k = 0; k < c.items.size(); ++k)
      item_index[static_cast<size_t>(c.id)][c.items[k].group ? -1 - c.items[k].id : c.items[k].id] =
          static_cast<int>(k);
  // The item of container `lca` that holds `node` (the node itself or a group above it).
  auto item_in = [&](int lca, int node, const std::vector<int>& chain) {
    if (chain[0] == lca) {
      // The region node is the region box's item in its parent, never an item of itself.
      auto it = item_index[static_cast<size_t>(lca)].find(node);
      if (it != item_index[static_cast<size_t>(lca)].end()) return it->second;
    }
    for (size_t k = 0; k + 1 < chain.size(); ++k)
      if (chain[k + 1] == lca) return item_index[static_cast<size_t>(lca)].at(-1 - chain[k]);
    return -1;
  };
  std::vector<std::set<std::pair<int, int>>> seen(t.containers.size());
  for (int i = 0; i < N; ++i) {
    if (t.chip[i]) continue;
    for (const auto& [p0, k] : inputs[i]) {
      int p = p0;
      if (t.chip[p]) {
        if (std::find(t.chips[i].begin(), t.chips[i].end(), p) == t.chips[i].end())
          t.chips[i].push_back(p);
        continue;
      }
      if (t.hub[p]) {
        if (std::find(t.stubs[i].begin(), t.stubs[i].end(), p) == t.stubs[i].end())
          t.stubs[i].push_back(p);
        continue;
      }
      // A member reading a region's own inputs: fine. A region node's users see the region box.
      auto cp = chain_of(p), cn = chain_of(i);
      std::unordered_set<int> cn_set(cn.begin(), cn.end());
      int lca = -1;
      for (int c : cp)
        if (cn_set.count(c)) {
          lca = c;
          break;
        }
      if (lca < 0) continue;
      // For a region node, chain[0] is its region container; as an item it lives in the parent.
      int a = item_in(lca, p, cp), b = item_in(lca, i, cn);
      if (a < 0 || b < 0 || a == b) continue;
      if (!seen[static_cast<size_t>(lca)].insert({a, b}).second) continue;
      t.containers[static_cast<size_t>(lca)].edges.push_back({a, b, p, i, k});
    }
  }

  // Box sizes: structural (op, shape, chips), not names, so identical blocks share a layout.
  t.size.assign(N, {0.f, 0.f});
  for (int i = 0; i < N; ++i) {
    if (t.chip[i]) continue;
    float w = std::max(120.f, 7.2f * static_cast<float>(op[i].size()) + 24.f);
    w = std::max(w, 6.f * static_cast<float>(out_type[i].size()) + 20.f);
    size_t chips = t.chips[i].size() + t.stubs[i].size();
    if (chips) w = std::max(w, static_cast<float>(std::min<size_t>(chips, 4)) * 58.f + 12.f);
    t.size[i] = {std::min(w, 320.f), kNodeH + (chips ? kChipRow : 0.f)};
  }

  // Counts and structural signatures, bottom-up.
  std::function<void(int)> finish = [&](int ci) {
    auto& c = t.containers[static_cast<size_t>(ci)];
    uint64_t h = hash_str(c.kind == "section" ? "section" : "group");
    int count = 0;
    for (const auto& it : c.items) {
      if (it.group) {
        finish(it.id);
        const auto& ch = t.containers[static_cast<size_t>(it.id)];
        count += ch.count;
        h = mix(h, ch.sig);
      } else {
        ++count;
        h = mix(h, hash_str(op[it.id]));
        h = mix(h, hash_str(out_type[it.id]));
        h = mix(h, t.chips[it.id].size() * 131 + t.stubs[it.id].size());
      }
    }
    if (c.region_node >= 0) h = mix(h, hash_str(op[c.region_node]));
    for (const auto& e : c.edges) h = mix(h, static_cast<uint64_t>(e.a) << 32 | e.b);
    c.count = count;
    c.sig = h;
  };
  finish(0);
  std::unordered_map<uint64_t, int> sig_count;
  for (const auto& c : t.containers) ++sig_count[c.sig];
  for (auto& c : t.containers)
    c.identical = (c.kind == "block" || c.kind == "region") ? sig_count[c.sig] : 1;
  t.build_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return t;
}

// ---- one layered drawing --------------------------------------------------------------------

namespace {

// Brandes–Köpf horizontal coordinates (centres) for layers of vertices in their final order.
// Four alignments (up/down x left/right) with type-1 conflicts marked, compacted through the
// block graph, aligned to the narrowest and balanced (average of the two medians).
std::vector<double> brandes_koepf(const std::vector<std::vector<int>>& layers,
                                  const std::vector<std::vector<int>>& preds,
                                  const std::vector<std::vector<int>>& succs,
                                  const std::vector<float>& width,
                                  const std::vector<uint8_t>& dummy) {
  const size_t V = width.size();
  std::vector<int> order(V, 0);
  for (const auto& row : layers)
    for (size_t i = 0; i < row.size(); ++i)
      order[static_cast<size_t>(row[i])] = static_cast<int>(i);
  // Type-1 conflicts: a non-inner segment crossing an inner one (dummy-dummy) loses.
  std::set<std::pair<int, int>> conflicts;
  auto add_conflict = [&](int a, int b) { conflicts.insert({std::min(a, b), std::max(a, b)}); };
  for (size_t l = 1; l < layers.size(); ++l) {
    const auto& prev = layers[l - 1];
    const auto& row = layers[l];
    int k0 = 0, scan = 0;
    for (size_t i = 0; i < row.size(); ++i) {
      int v = row[i];
      int w = -1;
      if (dummy[static_cast<size_t>(v)])
        for (int u : preds[static_cast<size_t>(v)])
          if (dummy[static_cast<size_t>(u)]) w = u;
      int k1 = w >= 0 ? order[static_cast<size_t>(w)] : static_cast<int>(prev.size());
      if (w >= 0 || i + 1 == row.size()) {
        for (size_t s = static_cast<size_t>(scan); s <= i; ++s)
          for (int u : preds[static_cast<size_t>(row[s])]) {
            int up = order[static_cast<size_t>(u)];
            if ((up < k0 || k1 < up) &&
                !(dummy[static_cast<size_t>(u)] && dummy[static_cast<size_t>(row[s])]))
              add_conflict(u, row[s]);
          }
        scan = static_cast<int>(i) + 1;
        k0 = k1;
      }
    }
  }
  auto has_conflict = [&](int a, int b) {
    return conflicts.count({std::min(a, b), std::max(a, b)}) > 0;
  };
  auto sep = [&](int a, int b) {
    float gap = dummy[static_cast<size_t>(a)] && dummy[static_cast<size_t>(b)] ? kDummyW : kNodeGap;
    return (width[static_cast<size_t>(a)] + width[static_cast<size_t>(b)]) / 2 + gap;
  };
  std::vector<std::vector<double>> xss;
  for (int vert = 0; vert < 2; ++vert)
    for (int horiz = 0; horiz < 2; ++horiz) {
      std::vector<std::vector<int>> L = layers;
      if (vert) std::reverse(L.begin(), L.end());
      if (horiz)
        for (auto& row : L) std::reverse(row.begin(), row.end());
      const auto& nb = vert ? succs : preds;
      std::vector<int> root(V), align(V), pos(V);
      for (const auto& row : L)
        for (size_t i = 0; i < row.size(); ++i) {
          size_t v = static_cast<size_t>(row[i]);
          root[v] = align[v] = row[i];
          pos[v] = static_cast<int>(i);
        }
      for (const auto& row : L) {
        int prev_idx = -1;
        for (int v : row) {
          std::vector<int> ws = nb[static_cast<size_t>(v)];
          if (ws.empty()) continue;
          std::sort(ws.begin(), ws.end(), [&](int a, int b) {
            return pos[static_cast<size_t>(a)] < pos[static_cast<size_t>(b)];
          });
          double mp = (static_cast<double>(ws.size()) - 1) / 2;
          for (int i = static_cast<int>(std::floor(mp)); i <= static_cast<int>(std::ceil(mp));
               ++i) {
            int w = ws[static_cast<size_t>(i)];
            if (align[static_cast<size_t>(v)] == v && prev_idx < pos[static_cast<size_t>(w)] &&
                !has_conflict(v, w)) {
              align[static_cast<size_t>(w)] = v;
              align[static_cast<size_t>(v)] = root[static_cast<size_t>(v)] =
                  root[static_cast<size_t>(w)];
              prev_idx = pos[static_cast<size_t>(w)];
            }
          }
        }
      }
      // Block graph: root of the left neighbour -> root, weighted by the separation.
      std::unordered_map<int, std::vector<std::pair<int, double>>> in, out;
      std::map<std::pair<int, int>, double> bw;
      for (const auto& row : L)
        for (size_t i = 1; i < row.size(); ++i) {
          int u = root[static_cast<size_t>(row[i - 1])], v = root[static_cast<size_t>(row[i])];
          double s = sep(row[i - 1], row[i]);
          auto [it, fresh] = bw.emplace(std::make_pair(u, v), s);
          if (!fresh) it->second = std::max(it->second, s);
        }
      std::vector<int> roots;
      for (size_t v = 0; v < V; ++v)
        if (root[v] == static_cast<int>(v)) roots.push_back(static_cast<int>(v));
      std::unordered_map<int, int> indeg;
      for (const auto& [e, s] : bw) {
        out[e.first].push_back({e.second, s});
        in[e.second].push_back({e.first, s});
        ++indeg[e.second];
      }
      // Kahn order (roots ascending: deterministic).
      std::vector<int> topo, stack;
      for (auto it = roots.rbegin(); it != roots.rend(); ++it)
        if (!indeg[*it]) stack.push_back(*it);
      while (!stack.empty()) {
        int u = stack.back();
        stack.pop_back();
        topo.push_back(u);
        for (const auto& [w, s] : out[u])
          if (--indeg[w] == 0) stack.push_back(w);
      }
      std::unordered_map<int, double> xs;
      for (int u : topo) {
        double x = 0;
        for (const auto& [p, s] : in[u]) x = std::max(x, xs[p] + s);
        xs[u] = x;
      }
      for (auto it = topo.rbegin(); it != topo.rend(); ++it) {
        double mn = std::numeric_limits<double>::infinity();
        for (const auto& [w, s] : out[*it]) mn = std::min(mn, xs[w] - s);
        if (mn != std::numeric_limits<double>::infinity()) xs[*it] = std::max(xs[*it], mn);
      }
      std::vector<double> x(V);
      for (size_t v = 0; v < V; ++v) x[v] = xs[root[v]] * (horiz ? -1 : 1);
      xss.push_back(std::move(x));
    }
  // Align to the narrowest alignment, then balance.
  auto extent = [&](const std::vector<double>& x) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (size_t v = 0; v < V; ++v) {
      lo = std::min(lo, x[v] - width[v] / 2);
      hi = std::max(hi, x[v] + width[v] / 2);
    }
    return std::make_pair(lo, hi);
  };
  size_t best = 0;
  double best_w = std::numeric_limits<double>::infinity();
  for (size_t k = 0; k < 4; ++k) {
    auto [lo, hi] = extent(xss[k]);
    if (hi - lo < best_w) best_w = hi - lo, best = k;
  }
  auto [blo, bhi] = extent(xss[best]);
  for (size_t k = 0; k < 4; ++k) {
    auto [lo, hi] = extent(xss[k]);
    double d = (k % 2 == 0) ? blo - lo : bhi - hi;  // left alignments: left edges, right: right
    for (auto& v : xss[k]) v += d;
  }
  std::vector<double> x(V);
  for (size_t v = 0; v < V; ++v) {
    double a[4] = {xss[0][v], xss[1][v], xss[2][v], xss[3][v]};
    std::sort(a, a + 4);
    x[v] = (a[1] + a[2]) / 2;
  }
  return x;
}

}  // namespace

Layered layered(const std::vector<std::pair<float, float>>& sizes,
                const std::vector<std::pair<int, int>>& edges, int sweeps,
                std::chrono::steady_clock::time_point deadline) {
  const int n = static_cast<int>(sizes.size());
  Layered out;
  std::vector<std::vector<int>> ipreds(n), isuccs(n);
  for (auto [a, b] : edges) {
    if (a > b) std::swap(a, b);  // a cycle between groups: drawn reversed
    ipreds[static_cast<size_t>(b)].push_back(a);
    isuccs[static_cast<size_t>(a)].push_back(b);
  }
  // Longest-path layering in program order; sources sit just above their first user.
  std::vector<int> layer(n, 0);
  for (int i = 0; i < n; ++i)
    for (int p : ipreds[static_cast<size_t>(i)])
      layer[static_cast<size_t>(i)] =
          std::max(layer[static_cast<size_t>(i)], layer[static_cast<size_t>(p)] + 1);
  for (int i = n - 1; i >= 0; --i)
    if (ipreds[static_cast<size_t>(i)].empty() && !isuccs[static_cast<size_t>(i)].empty()) {
      int lo = std::numeric_limits<int>::max();
      for (int s : isuccs[static_cast<size_t>(i)]) lo = std::min(lo, layer[static_cast<size_t>(s)]);
      layer[static_cast<size_t>(i)] = std::max(0, lo - 1);
    }
  int L = 0;
  for (int i = 0; i < n; ++i) L = std::max(L, layer[static_cast<size_t>(i)] + 1);
  // Vertices: items, then one dummy per layer crossed by a long edge.
  std::vector<float> vw, vh;
  std::vector<int> vl(layer.begin(), layer.end());
  std::vector<uint8_t> dummy(static_cast<size_t>(n), 0);
  for (const auto& s : sizes) vw.push_back(s.first), vh.push_back(s.second);
  std::vector<std::vector<int>> vp(n), vs(n);
  std::vector<std::vector<int>> chains;
  for (auto [a0, b0] : edges) {
    int a = std::min(a0, b0), b = std::max(a0, b0);
    std::vector<int> chain{a};
    int prev = a;
    for (int l = layer[static_cast<size_t>(a)] + 1; l < layer[static_cast<size_t>(b)]; ++l) {
      int d = static_cast<int>(vw.size());
      vw.push_back(kDummyW), vh.push_back(0), vl.push_back(l), dummy.push_back(1);
      vp.push_back({prev}), vs.push_back({});
      vs[static_cast<size_t>(prev)].push_back(d);
      chain.push_back(d);
      prev = d;
    }
    vs[static_cast<size_t>(prev)].push_back(b);
    vp[static_cast<size_t>(b)].push_back(prev);
    chain.push_back(b);
    if (a0 > b0) std::reverse(chain.begin(), chain.end());
    chains.push_back(std::move(chain));
  }
  const size_t V = vw.size();
  std::vector<std::vector<int>> layers(static_cast<size_t>(L));
  for (size_t v = 0; v < V; ++v) layers[static_cast<size_t>(vl[v])].push_back(static_cast<int>(v));
  // Crossing reduction: barycenter sweeps down and up, stable (program order breaks ties).
  std::vector<double> pos(V, 0);
  auto renumber = [&](const std::vector<int>& row) {
    for (size_t i = 0; i < row.size(); ++i)
      pos[static_cast<size_t>(row[i])] = static_cast<double>(i);
  };
  for (const auto& row : layers) renumber(row);
  auto sweep = [&](std::vector<int>& row, const std::vector<std::vector<int>>& nb) {
    std::vector<std::pair<double, int>> key(row.size());
    for (size_t i = 0; i < row.size(); ++i) {
      const auto& ns = nb[static_cast<size_t>(row[i])];
      double k = pos[static_cast<size_t>(row[i])];
      if (!ns.empty()) {
        double s = 0;
        for (int u : ns) s += pos[static_cast<size_t>(u)];
        k = s / static_cast<double>(ns.size());
      }
      key[i] = {k, static_cast<int>(i)};
    }
    std::sort(key.begin(), key.end());
    std::vector<int> next(row.size());
    for (size_t i = 0; i < row.size(); ++i) next[i] = row[static_cast<size_t>(key[i].second)];
    row = std::move(next);
    renumber(row);
  };
  for (int it = 0; it < sweeps; ++it) {
    if (std::chrono::steady_clock::now() > deadline) {
      out.degraded = true;
      break;
    }
    for (int l = 1; l < L; ++l) sweep(layers[static_cast<size_t>(l)], vp);
    for (int l = L - 2; l >= 0; --l) sweep(layers[static_cast<size_t>(l)], vs);
  }
  std::vector<double> x = V ? brandes_koepf(layers, vp, vs, vw, dummy) : std::vector<double>{};
  double min_x = std::numeric_limits<double>::infinity(), max_x = -min_x;
  for (size_t v = 0; v < V; ++v) {
    min_x = std::min(min_x, x[v] - vw[v] / 2);
    max_x = std::max(max_x, x[v] + vw[v] / 2);
  }
  if (!V) min_x = max_x = 0;
  std::vector<double> ly(static_cast<size_t>(L) + 1, 0);
  for (int l = 0; l < L; ++l) {
    float h = 0;
    for (int v : layers[static_cast<size_t>(l)]) h = std::max(h, vh[static_cast<size_t>(v)]);
    ly[static_cast<size_t>(l) + 1] = ly[static_cast<size_t>(l)] + h + kLayerGap;
  }
  for (int i = 0; i < n; ++i) {
    out.x.push_back(x[static_cast<size_t>(i)] - vw[static_cast<size_t>(i)] / 2 - min_x);
    out.y.push_back(ly[static_cast<size_t>(layer[static_cast<size_t>(i)])]);
  }
  out.w = max_x - min_x;
  out.h = std::max(ly[static_cast<size_t>(L)] - kLayerGap, 0.0);
  for (const auto& ch : chains) {
    std::vector<float> pts;
    for (size_t k = 0; k < ch.size(); ++k) {
      size_t v = static_cast<size_t>(ch[k]);
      double cx = x[v] - min_x, l0 = ly[static_cast<size_t>(vl[v])];
      double yy;
      if (k == 0)
        yy = dummy[v] ? l0 : l0 + vh[v];
      else if (k + 1 == ch.size())
        yy = l0;
      else
        yy = l0 + (ly[static_cast<size_t>(vl[v]) + 1] - l0 - kLayerGap) / 2;
      // A reversed chain starts at the consumer: leave from the producer's bottom anyway.
      if (k == 0 && ch.size() > 1 && vl[static_cast<size_t>(ch[1])] < vl[v]) yy = l0;
      if (k + 1 == ch.size() && ch.size() > 1 && vl[static_cast<size_t>(ch[k - 1])] > vl[v])
        yy = l0 + vh[v];
      pts.push_back(static_cast<float>(cx));
      pts.push_back(static_cast<float>(yy));
    }
    out.routes.push_back(std::move(pts));
  }
  return out;
}

// ---- the layouter ---------------------------------------------------------------------------

struct Layouter::Cached {
  Layered lay;
  std::vector<std::pair<float, float>> sizes;  // per item, as laid out
};

Layouter::Layouter(const GroupTree& tree, LayoutOptions opt) : t_(tree), opt_(opt) {}
Layouter::~Layouter() = default;

LayoutResult Layouter::layout(const std::set<int>& expanded_in) {
  auto t0 = std::chrono::steady_clock::now();
  const int C = static_cast<int>(t_.containers.size());
  for (int id : expanded_in)
    LOOM_CHECK(id >= 0 && id < C, "[view] no group ", id, " to expand (", C, " groups)");
  std::vector<uint8_t> exp(static_cast<size_t>(C), 0);
  exp[0] = 1;
  for (int id : expanded_in) exp[static_cast<size_t>(id)] = 1;
  // A group is visible when all its ancestors are expanded; visible expanded ones need layouts.
  std::vector<int> need;  // containers to lay out, parents before children
  std::function<void(int)> visit = [&](int c) {
    need.push_back(c);
    for (const auto& it : t_.containers[static_cast<size_t>(c)].items)
      if (it.group && exp[static_cast<size_t>(it.id)]) visit(it.id);
  };
  visit(0);
  // Keys bottom-up: signature + the items' sizes + the keys of expanded children.
  std::vector<uint64_t> key(static_cast<size_t>(C), 0);
  std::vector<std::vector<std::pair<float, float>>> sizes(static_cast<size_t>(C));
  std::vector<std::shared_ptr<const Cached>> lay(static_cast<size_t>(C));
  int max_depth = 0;
  for (int c : need) max_depth = std::max(max_depth, t_.containers[static_cast<size_t>(c)].depth);
  LayoutResult res;
  std::atomic<int> degraded{0};
  for (int d = max_depth; d >= 0; --d) {
    std::vector<int> level;
    for (int c : need)
      if (t_.containers[static_cast<size_t>(c)].depth == d) level.push_back(c);
    // Sizes and keys (children of this level are done).
    for (int c : level) {
      const auto& ct = t_.containers[static_cast<size_t>(c)];
      uint64_t h = ct.sig;
      auto& sz = sizes[static_cast<size_t>(c)];
      for (const auto& it : ct.items) {
        std::pair<float, float> s;
        if (!it.group) {
          s = t_.size[static_cast<size_t>(it.id)];
        } else if (!exp[static_cast<size_t>(it.id)]) {
          s = {kGroupW, kGroupH};
        } else {
          const auto& inner = lay[static_cast<size_t>(it.id)]->lay;
          s = {static_cast<float>(std::max<double>(inner.w + 2 * kPad, kGroupW)),
               static_cast<float>(inner.h + kHeader + kPad)};
          h = mix(h, key[static_cast<size_t>(it.id)]);
        }
        h = mix(h, static_cast<uint64_t>(std::lround(s.first * 4)) << 32 |
                       static_cast<uint64_t>(std::lround(s.second * 4)));
        sz.push_back(s);
      }
      key[static_cast<size_t>(c)] = h;
    }
    // Distinct keys missing from the cache: laid out in parallel, each once.
    std::vector<int> todo;
    {
      std::lock_guard lock(mutex_);
      std::set<uint64_t> queued;
      for (int c : level) {
        auto it = cache_.find(key[static_cast<size_t>(c)]);
        if (it != cache_.end()) {
          lay[static_cast<size_t>(c)] = it->second;
          ++res.reused;
        } else if (queued.insert(key[static_cast<size_t>(c)]).second) {
          todo.push_back(c);
        } else {
          ++res.reused;
        }
      }
    }
    std::vector<std::shared_ptr<const Cached>> made(todo.size());
    auto work = [&](size_t k) {
      int c = todo[k];
      const auto& ct = t_.containers[static_cast<size_t>(c)];
      std::vector<std::pair<int, int>> edges;
      for (const auto& e : ct.edges) edges.emplace_back(e.a, e.b);
      auto deadline = std::chrono::steady_clock::now() +
                      std::chrono::microseconds(static_cast<int64_t>(opt_.group_budget_ms * 1e3));
      auto cached = std::make_shared<Cached>();
      cached->lay = layered(sizes[static_cast<size_t>(c)], edges, opt_.sweeps, deadline);
      cached->sizes = sizes[static_cast<size_t>(c)];
      if (cached->lay.degraded) ++degraded;
      made[k] = std::move(cached);
    };
    int threads = opt_.threads > 0
                      ? opt_.threads
                      : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    threads = std::min<int>(threads, static_cast<int>(todo.size()));
    if (threads <= 1) {
      for (size_t k = 0; k < todo.size(); ++k) work(k);
    } else {
      std::atomic<size_t> next{0};
      std::vector<std::thread> pool;
      for (int i = 0; i < threads; ++i)
        pool.emplace_back([&] {
          for (size_t k; (k = next++) < todo.size();) work(k);
        });
      for (auto& th : pool) th.join();
    }
    res.laid_out += static_cast<int>(todo.size());
    {
      std::lock_guard lock(mutex_);
      for (size_t k = 0; k < todo.size(); ++k) cache_[key[static_cast<size_t>(todo[k])]] = made[k];
    }
    for (int c : level)
      if (!lay[static_cast<size_t>(c)]) {
        std::lock_guard lock(mutex_);
        lay[static_cast<size_t>(c)] = cache_.at(key[static_cast<size_t>(c)]);
      }
  }
  res.degraded = degraded.load();
  // Absolute boxes and routes, top-down.
  const auto& root = lay[0]->lay;
  res.w = root.w + 2 * kPad;
  res.h = root.h + 2 * kPad;
  std::function<void(int, double, double)> place = [&](int c, double ox, double oy) {
    const auto& ct = t_.containers[static_cast<size_t>(c)];
    const Cached& cl = *lay[static_cast<size_t>(c)];
    for (size_t i = 0; i < ct.items.size(); ++i) {
      const auto& it = ct.items[i];
      double x = ox + cl.lay.x[i], y = oy + cl.lay.y[i];
      auto s = cl.sizes[i];
      LayoutResult::Box b{it.id, static_cast<float>(x), static_cast<float>(y), s.first, s.second,
                          false};
      if (!it.group) {
        res.nodes.push_back(b);
      } else {
        b.expanded = exp[static_cast<size_t>(it.id)] != 0;
        res.groups.push_back(b);
        if (b.expanded) place(it.id, x + kPad, y + kHeader);
      }
    }
    for (size_t k = 0; k < ct.edges.size(); ++k) {
      const auto& e = ct.edges[k];
      LayoutResult::Route r{e.from, e.to, e.index, cl.lay.routes[k]};
      for (size_t i = 0; i < r.pts.size(); i += 2) {
        r.pts[i] += static_cast<float>(ox);
        r.pts[i + 1] += static_cast<float>(oy);
      }
      res.edges.push_back(std::move(r));
    }
  };
  place(0, kPad, kPad);
  res.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace loom::view
