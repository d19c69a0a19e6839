// layout.h — the graph layout of `loom view` (issue 11), in C++ on the server.
//
// Why per group: a flat layered layout of a 20 000-op LLM graph takes tens of seconds to minutes
// in every engine (shared/reference/viewer.md §4). The graph becomes a hierarchy (blocks named
// `blk.N` / `layers.N` / ..., fused regions, then `section i/N` slices of any level with more
// than section_max children); each group is laid out on its own with its expanded children as
// fixed boxes; identical groups (32 transformer blocks) share one layout through a structural
// hash; constants are chips inside their consumer and high fan-out values (positions, masks,
// RoPE tables) stubs at each use, so no edge spans the whole graph. Per group: longest-path
// layering with program order as tie-break, a fixed number of barycenter sweeps, Brandes–Köpf
// coordinates, under a time budget; groups of one depth in parallel. Deterministic: the same
// graph and expansion state always give the same coordinates.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace loom::view {

struct LayoutOptions {
  int section_max = 500;         // a level with more children is split into sections...
  int section_size = 300;        // ...of this many children each
  int hub_fanout = 8;            // a value with more consumers is drawn as a stub at each use
  int sweeps = 4;                // barycenter sweeps (down + up) per group
  double group_budget_ms = 200;  // past it a group skips its remaining sweeps
  int threads = 0;               // 0: hardware concurrency
};

// A member op of a fused region that is no graph node (a stitched kernel's program): drawn like
// a node, with an id >= the graph's node count.
struct VirtualNode {
  std::string op, name;
  std::vector<std::pair<int, int>> inputs;  // (node id, output index): graph or virtual ids
  TensorType type;
  int region = -1;  // the graph node (the fused op) it belongs to
};

// The hierarchy of one graph: built once per view.
struct GroupTree {
  struct Item {
    bool group = false;
    int id = 0;  // node id or container id
  };
  struct Edge {
    int a = 0, b = 0;                 // item indices in the container
    int from = 0, to = 0, index = 0;  // the value: producer node, its output, consumer node
  };
  struct Container {
    int id = 0, parent = -1, depth = 0;
    std::string label, kind;  // kind: root, block, region, section
    int region_node = -1;     // kind region: the fused graph node it expands
    std::vector<Item> items;  // in program order
    std::vector<Edge> edges;
    int count = 0;      // ops inside, recursively
    uint64_t sig = 0;   // structural hash: equal for identical groups
    int identical = 1;  // containers sharing this signature (blocks and regions)
  };
  int num_graph_nodes = 0;
  std::vector<VirtualNode> virtual_nodes;     // id = num_graph_nodes + index
  std::vector<Container> containers;          // [0] is the root
  std::vector<int> node_container;            // per node (graph then virtual): -1 for chips
  std::vector<uint8_t> chip, hub;             // constants drawn inside consumers; stubbed hubs
  std::vector<std::vector<int>> stubs;        // per node: the hubs it consumes
  std::vector<std::vector<int>> chips;        // per node: the chip constants it consumes
  std::vector<std::pair<float, float>> size;  // per node: box width, height
  double build_ms = 0;
};

// regions: fused graph nodes whose members are given as virtual nodes (their `region`).
GroupTree build_groups(const ir::GraphData& g, const std::vector<ir::Value>& outputs,
                       const LayoutOptions& opt, std::vector<VirtualNode> virtual_nodes = {});

// The block a name belongs to ("blk.3" of "blk.3.attn_q.weight"), or "".
std::string block_of(const std::string& name);

// One layered drawing: item positions (top-left), size, and a polyline per edge.
struct Layered {
  std::vector<double> x, y;
  double w = 0, h = 0;
  std::vector<std::vector<float>> routes;  // x0 y0 x1 y1 ... per edge, in the edges' order
  bool degraded = false;                   // ran out of budget: fewer sweeps
};
// items: sizes in program order; edges: (a, b) item pairs (a > b is drawn reversed).
Layered layered(const std::vector<std::pair<float, float>>& sizes,
                const std::vector<std::pair<int, int>>& edges, int sweeps,
                std::chrono::steady_clock::time_point deadline);

struct LayoutResult {
  struct Box {
    int id = 0;
    float x = 0, y = 0, w = 0, h = 0;
    bool expanded = false;
  };
  struct Route {
    int from = 0, to = 0, index = 0;
    std::vector<float> pts;
  };
  double w = 0, h = 0;
  std::vector<Box> nodes, groups;
  std::vector<Route> edges;
  int laid_out = 0;  // groups laid out by this request
  int reused = 0;    // groups answered from the cache (identical or unchanged)
  int degraded = 0;  // groups that ran out of their time budget
  double ms = 0;
};

// Lays out a tree for any expansion state, caching every group's layout by its structural key
// (signature + the keys of its expanded children): expanding a group lays out that group and
// re-lays out its ancestors only. Thread-safe.
class Layouter {
 public:
  Layouter(const GroupTree& tree, LayoutOptions opt);
  ~Layouter();
  // expanded: container ids (the root always is); ids out of range are an error.
  LayoutResult layout(const std::set<int>& expanded);

 private:
  struct Cached;
  const GroupTree& t_;
  LayoutOptions opt_;
  std::mutex mutex_;
  std::map<uint64_t, std::shared_ptr<const Cached>> cache_;
};

}  // namespace loom::view
