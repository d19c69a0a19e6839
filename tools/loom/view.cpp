// view.cpp — `loom view`: JSON endpoints over a package, the embedded page, the HTTP server.
#include "view.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "io/package.h"
#include "ir/op_registry.h"
#include "layout.h"
#include "loom/loom.h"
#include "passes/pass.h"
#include "runtime/compile.h"
#include "runtime/executable_impl.h"
#include "view_assets.h"

namespace loom::view {
namespace {

using json = nlohmann::json;

// With a charset, cpp-httplib does not compress the answer: its Brotli at the highest quality
// takes ~7 s for the 3 MB graph of a 20 000-op model, where sending it uncompressed over
// localhost takes milliseconds.
constexpr const char* kJson = "application/json; charset=utf-8";

// JSON has no NaN/Inf: they travel as strings, as in the package header.
json num(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  return d;
}

json type_json(const TensorType& t) {
  return {{"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape.dims()}};
}

// Attribute values as short strings for the inspector; tensors by type only (the constant
// viewer pages their values).
json attrs_json(const Attrs& a) {
  json out = json::object();
  for (const auto& [name, v] : a.fields()) {
    if (const auto* t = std::get_if<NDArray>(&v))
      out[name] = t->storage() ? t->type().to_string() : "none";
    else if (const auto* str = std::get_if<std::string>(&v))
      out[name] = *str;  // unquoted: the inspector shows names and dtypes as they read
    else
      out[name] = attr_value_to_string(v);
  }
  return out;
}

int64_t query_int(const Query& q, const std::string& key, int64_t def, int64_t lo, int64_t hi) {
  auto it = q.find(key);
  if (it == q.end() || it->second.empty()) return def;
  try {
    size_t used = 0;
    int64_t v = std::stoll(it->second, &used);
    if (used != it->second.size()) throw std::invalid_argument(it->second);
    return std::clamp(v, lo, hi);
  } catch (const std::exception&) {
    fail("[view] parameter '", key, "' expects an integer, got '", it->second, "'");
  }
}

// Statistics, histogram and the heat map of a constant, computed once per constant (weights of
// an LLM are tens of MiB: the page asks again for every page of values).
struct ConstantInfo {
  json stats, histogram;
};

ConstantInfo constant_info(const NDArray& a) {
  ConstantInfo info;
  const int64_t n = a.numel();
  NDArray flat = a.contiguous().reshape({n});
  double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0, sq = 0;
  int64_t nan = 0, inf = 0, zeros = 0, finite = 0;
  constexpr int64_t kChunk = 1 << 20;  // bounded memory for the double copies
  auto for_chunks = [&](auto&& fn) {
    for (int64_t s = 0; s < n; s += kChunk) {
      int64_t len = std::min(kChunk, n - s);
      fn(flat.view({len}, {1}, s).to_doubles());
    }
  };
  for_chunks([&](const std::vector<double>& v) {
    for (double x : v) {
      if (std::isnan(x)) {
        ++nan;
        continue;
      }
      if (std::isinf(x)) {
        ++inf;
        continue;
      }
      ++finite;
      zeros += x == 0;
      lo = std::min(lo, x), hi = std::max(hi, x);
      sum += x, sq += x * x;
    }
  });
  double mean = finite ? sum / static_cast<double>(finite) : 0;
  double var = finite ? std::max(0.0, sq / static_cast<double>(finite) - mean * mean) : 0;
  info.stats = {{"count", n},
                {"min", finite ? num(lo) : json(nullptr)},
                {"max", finite ? num(hi) : json(nullptr)},
                {"mean", num(mean)},
                {"std", num(std::sqrt(var))},
                {"nan", nan},
                {"inf", inf},
                {"zeros", zeros}};
  constexpr int kBins = 64;
  std::vector<int64_t> bins(kBins, 0);
  if (finite) {
    double w = hi > lo ? (hi - lo) / kBins : 1;
    for_chunks([&](const std::vector<double>& v) {
      for (double x : v)
        if (std::isfinite(x))
          ++bins[static_cast<size_t>(std::clamp(static_cast<int>((x - lo) / w), 0, kBins - 1))];
    });
  }
  info.histogram = {
      {"lo", finite ? num(lo) : json(0)}, {"hi", finite ? num(hi) : json(0)}, {"bins", bins}};
  return info;
}

// A 2-D slice (the last two dims at leading index `slice`) of an N-D tensor, averaged down to at
// most kMax x kMax cells so that a 49152 x 576 embedding still draws as one picture.
json heat_map(const NDArray& a, int64_t slice) {
  const auto& d = a.shape().dims();
  int64_t rows = d.size() >= 2 ? d[d.size() - 2] : 1;
  int64_t cols = d.empty() ? 1 : d.back();
  int64_t slices = rows * cols > 0 ? a.numel() / (rows * cols) : 0;
  if (slices == 0) return nullptr;
  slice = std::clamp<int64_t>(slice, 0, slices - 1);
  constexpr int64_t kMax = 128;
  int64_t out_r = std::min(rows, kMax), out_c = std::min(cols, kMax);
  NDArray plane = a.contiguous()
                      .reshape({slices, rows, cols})
                      .view({rows, cols}, {cols, 1}, slice * rows * cols);
  std::vector<double> acc(static_cast<size_t>(out_r * out_c), 0);
  std::vector<int64_t> cnt(acc.size(), 0);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> row = plane.view({cols}, {1}, r * cols).to_doubles();
    int64_t orow = r * out_r / rows;
    for (int64_t c = 0; c < cols; ++c) {
      if (!std::isfinite(row[static_cast<size_t>(c)])) continue;
      size_t k = static_cast<size_t>(orow * out_c + c * out_c / cols);
      acc[k] += row[static_cast<size_t>(c)], ++cnt[k];
    }
  }
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  json cells = json::array();
  for (size_t k = 0; k < acc.size(); ++k) {
    double v = cnt[k] ? acc[k] / static_cast<double>(cnt[k]) : 0;
    lo = std::min(lo, v), hi = std::max(hi, v);
    cells.push_back(v);
  }
  return {{"slice", slice}, {"slices", slices},  {"rows", rows},
          {"cols", cols},   {"out_rows", out_r}, {"out_cols", out_c},
          {"lo", lo},       {"hi", hi},          {"cells", cells}};
}

// A `loom run --profile-json` file, checked field by field so a wrong file gets a message that
// names the problem instead of a page coloured by garbage.
json read_profile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("[view] cannot read the profile '", path, "'");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  json p = json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& why) {
    fail("[view] the profile '", path, "' is not a loom profile (loom run --profile-json): ", why);
  };
  if (p.is_discarded()) bad("not JSON");
  if (!p.is_object() || p.value("format", "") != "loom-profile")
    bad("no \"format\": \"loom-profile\"");
  if (!p.contains("nodes") || !p["nodes"].is_array()) bad("no \"nodes\" array");
  for (const auto& n : p["nodes"])
    if (!n.is_object() || !n.contains("name") || !n["name"].is_string() || !n.contains("us") ||
        !n["us"].is_number() || !n.contains("op") || !n["op"].is_string())
      bad("a node without name, op or us");
  if (!p.contains("runs") || !p["runs"].is_number_integer()) bad("no \"runs\"");
  if (!p.contains("ms_per_run") || !p["ms_per_run"].is_number()) bad("no \"ms_per_run\"");
  if (!p.contains("device") || !p["device"].is_string()) bad("no \"device\"");
  return {{"view", p["device"]},     {"runs", p["runs"]},   {"ms_per_run", p["ms_per_run"]},
          {"inputs", json::array()}, {"nodes", p["nodes"]}, {"source", path}};
}

// Random inputs for a profiling run: floats uniform in [-1, 1], integers (token ids,
// positions) and booleans zero so that gathers stay in range; dynamic dims are 1.
Feeds random_feeds(const Executable& exe) {
  Feeds feeds;
  uint64_t seed = 1;
  for (const auto& in : exe.inputs()) {
    std::vector<int64_t> dims = in.type.shape.dims();
    for (auto& x : dims)
      if (x < 0) x = 1;
    Shape shape(dims);
    if (is_floating(in.type.dtype))
      feeds.emplace_back(in.name, random_uniform(shape, in.type.dtype, -1, 1, seed++));
    else
      feeds.emplace_back(in.name, NDArray::empty(in.type.dtype, shape));
  }
  return feeds;
}

}  // namespace

// ---- one view of the package: as stored ("asis") or compiled for a device ------------------

struct ViewData {
  std::string error;
  std::string device;  // "" for as-is
  ir::GraphData graph;
  std::vector<ir::Value> outputs;
  std::vector<std::string> pass_log;
  std::string graph_json;  // cached answer of /api/graph
  std::map<int, ConstantInfo> constants;
  std::mutex constants_mutex;
  // The hierarchy and its layouts (layout.h), made on the first /api/groups or /api/layout.
  std::once_flag tree_once;
  std::unique_ptr<GroupTree> tree;
  std::unique_ptr<Layouter> layouter;
  std::string groups_json;
};

struct Viewer::State {
  std::string path, diff_path, default_view;
  std::string load_error;
  io::Package pkg;
  std::unique_ptr<io::Package> other;  // --diff
  std::string diff_error;
  std::string profile_path, profile_error;
  json profile;  // --profile, validated
  std::map<std::string, std::unique_ptr<ViewData>> views;
  std::mutex mutex;  // httplib serves requests on a thread pool

  ViewData& view(const std::string& name);
  void stage_view(ViewData& v, const std::string& device, const std::string& stage);
  std::string graph_json(const ViewData& v) const;
};

Viewer::Viewer(std::string package_path, std::string diff_path, std::string default_view,
               std::string profile_path)
    : s_(std::make_unique<State>()) {
  s_->path = std::move(package_path);
  s_->profile_path = std::move(profile_path);
  if (!s_->profile_path.empty()) {
    try {
      s_->profile = read_profile(s_->profile_path);
    } catch (const std::exception& e) {
      s_->profile_error = e.what();
    }
  }
  s_->diff_path = std::move(diff_path);
  s_->default_view = std::move(default_view);
  // The package loader validates everything (docs/FORMAT.md); its message is what the page
  // shows for a malformed package.
  try {
    s_->pkg = io::read_package(s_->path);
  } catch (const std::exception& e) {
    s_->load_error = std::string("[view] cannot open the package: ") + e.what();
  }
  if (!s_->diff_path.empty()) {
    try {
      s_->other = std::make_unique<io::Package>(io::read_package(s_->diff_path));
    } catch (const std::exception& e) {
      s_->diff_error = std::string("[view] cannot open the package to compare: ") + e.what();
    }
  }
}

Viewer::~Viewer() = default;

ViewData& Viewer::State::view(const std::string& name) {
  auto& slot = views[name];
  if (slot) return *slot;
  slot = std::make_unique<ViewData>();
  ViewData& v = *slot;
  try {
    if (!load_error.empty()) throw Error(load_error);
    if (name == "asis") {
      v.graph = pkg.graph;
      v.outputs = pkg.outputs;
      v.pass_log = pkg.pass_log;
    } else if (auto at = name.find('@'); at != std::string::npos) {
      stage_view(v, name.substr(0, at), name.substr(at + 1));
    } else {
      // Compiled through the public API, as `loom run` does: a "graph" package goes through the
      // whole pipeline, an "executable" one is lowered for the device.
      CompileOptions opt = pkg.options;
      opt.device = Device::parse(name);
      opt.profile = false;
      Executable exe = Executable::load(path, opt);
      v.device = opt.device.to_string();
      v.graph = exe.impl()->graph;
      v.outputs = exe.impl()->outputs;
      v.pass_log = exe.pass_log();
    }
    v.graph_json = graph_json(v);
  } catch (const std::exception& e) {
    v.error = std::string(e.what()).rfind("[view]", 0) == 0
                  ? e.what()
                  : std::string("[view] cannot compile for '") + name + "': " + e.what();
  }
  return v;
}

// "cpu@K": the graph after the first K slots of the pass pipeline for that device (the views
// before and after one pass). Recomputed from a graph package: an executable stores only the
// result of the whole pipeline.
void Viewer::State::stage_view(ViewData& v, const std::string& device, const std::string& stage) {
  const auto& pipe = passes::pipeline();
  char* end = nullptr;
  long k = std::strtol(stage.c_str(), &end, 10);
  if (stage.empty() || *end || k < 0 || k > static_cast<long>(pipe.size()))
    fail("[view] '", device, "@", stage, "': the stage is a pass count 0..", pipe.size());
  if (pkg.kind != "graph")
    fail("[view] ", path,
         " stores the compiled graph; the graph between passes exists only for "
         "graph packages (loom convert --graph, save_graph)");
  CompileOptions opt = pkg.options;
  opt.device = Device::parse(device);
  v.graph = pkg.graph;
  v.outputs = pkg.outputs;
  passes::PassContext ctx{v.graph, v.outputs, v.pass_log, opt, evaluate_on_reference};
  if (opt.optimization_level > 0)
    for (long slot = 0; slot < k; ++slot) {
      const auto& d = opt.disabled_passes;
      if (std::find(d.begin(), d.end(), pipe[static_cast<size_t>(slot)].name) == d.end())
        pipe[static_cast<size_t>(slot)].run(ctx);
    }
  v.device = device + "@" + stage;
}

std::string Viewer::State::graph_json(const ViewData& v) const {
  const auto& reg = ir::OpRegistry::get();
  // The nodes are written directly: a json tree of 20 000 nodes took ~1 s to build, copy and free.
  std::string nodes;
  nodes.reserve(v.graph.nodes.size() * 160);
  std::map<std::string, int> counts;
  auto str = [&](const std::string& x) { nodes += json(x).dump(); };
  for (size_t i = 0; i < v.graph.nodes.size(); ++i) {
    const ir::Node& n = v.graph.nodes[i];
    const ir::OpInfo& info = reg.info(n.op);
    counts[info.name]++;
    if (i) nodes += ',';
    nodes += "{\"id\":" + std::to_string(i) + ",\"op\":";
    str(info.name);
    nodes += ",\"name\":";
    str(n.name);
    nodes += ",\"fusion\":";
    str(ir::fusion_class_name(info.fusion));
    nodes += ",\"inputs\":[";
    for (size_t k = 0; k < n.inputs.size(); ++k)
      nodes += (k ? ",[" : "[") + std::to_string(n.inputs[k].node) + ',' +
               std::to_string(n.inputs[k].index) + ']';
    nodes += "],\"outputs\":[";
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      if (k) nodes += ',';
      nodes += type_json(n.outputs[k]).dump();
    }
    nodes += "],\"attrs\":" + (n.attrs ? attrs_json(*n.attrs).dump() : std::string("{}"));
    if (n.op == ir::op::constant)
      nodes += ",\"nbytes\":" + std::to_string(attrs_as<ConstantAttrs>(*n.attrs).value.nbytes());
    if (n.op == ir::op::read || n.op == ir::op::assign) {
      nodes += ",\"variable\":";
      str(attrs_as<VariableRefAttrs>(*n.attrs).variable);
    }
    nodes += '}';
  }
  json vars = json::array();
  for (const auto& var : v.graph.variables)
    vars.push_back(
        {{"name", var.name}, {"type", type_json(var.type())}, {"nbytes", var.initial.nbytes()}});
  json outputs = json::array();
  for (const auto& o : v.outputs) outputs.push_back({o.node, o.index});
  json op_counts = json::array();
  for (const auto& [op, c] : counts) op_counts.push_back({{"op", op}, {"count", c}});
  // "[changes] {json}" lines (what each pass removed, added, rewritten: docs/FORMAT.md) become
  // pass_changes; the rest is the readable log. Packages written before carry none.
  json log = json::array(), changes = json::array();
  for (const auto& l : v.pass_log) {
    if (l.rfind("[changes] ", 0) == 0) {
      json c = json::parse(l.substr(10), nullptr, /*allow_exceptions=*/false);
      if (c.is_object() && c.contains("pass") && c["removed"].is_array() && c["added"].is_array() &&
          c["rewritten"].is_array()) {
        changes.push_back(std::move(c));
        continue;
      }
    }
    log.push_back(l);
  }
  json rest = {{"view", v.device.empty() ? "asis" : v.device},
               {"outputs", outputs},
               {"variables", vars},
               {"op_counts", op_counts},
               {"pass_log", log},
               {"pass_changes", changes}};
  return "{\"nodes\":[" + nodes + "]," + rest.dump().substr(1);
}

namespace {

Response json_response(const json& j, int status = 200) { return {status, kJson, j.dump()}; }
Response error_response(const std::string& msg, int status = 422) {
  return json_response({{"error", msg}}, status);
}

json variables_json(const ir::GraphData& g) {
  const auto& reg = ir::OpRegistry::get();
  json out = json::array();
  for (const auto& var : g.variables) {
    json uses = json::array();
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      const ir::Node& n = g.nodes[i];
      bool names_it = (n.op == ir::op::read || n.op == ir::op::assign) &&
                      attrs_as<VariableRefAttrs>(*n.attrs).variable == var.name;
      if (!names_it) continue;
      std::string kind = n.op == ir::op::read ? "read" : "assign";
      uses.push_back({{"node", i}, {"op", reg.info(n.op).name}, {"name", n.name}, {"kind", kind}});
      // An in-place update writes the variable's memory through its read: list those too.
      auto writes_read = [&](const ir::Node& w) {  // one of its written inputs is this read
        const auto& info = reg.info(w.op);
        for (size_t k = 0; k < w.outputs.size(); ++k)
          if (const int a = info.is_inplace() ? info.aliased_input(k) : -1;
              a >= 0 && static_cast<size_t>(a) < w.inputs.size() &&
              w.inputs[static_cast<size_t>(a)].node == static_cast<int32_t>(i))
            return true;
        return false;
      };
      if (n.op == ir::op::read)
        for (size_t j = i + 1; j < g.nodes.size(); ++j)
          if (writes_read(g.nodes[j]))
            uses.push_back({{"node", j},
                            {"op", reg.info(g.nodes[j].op).name},
                            {"name", g.nodes[j].name},
                            {"kind", "write in place"}});
    }
    out.push_back(
        {{"name", var.name},
         {"type", type_json(var.type())},
         {"nbytes", var.initial.nbytes()},
         {"created", "variable declared in the graph; initial value stored in the package"},
         {"uses", uses}});
  }
  return out;
}

std::vector<std::vector<int>> consumers_of(const ir::GraphData& g) {
  std::vector<std::vector<int>> users(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const auto& in : g.nodes[i].inputs)
      if (users[static_cast<size_t>(in.node)].empty() ||
          users[static_cast<size_t>(in.node)].back() != static_cast<int>(i))
        users[static_cast<size_t>(in.node)].push_back(static_cast<int>(i));
  return users;
}

json constants_json(const ir::GraphData& g) {
  auto users = consumers_of(g);
  std::vector<int> ids;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (g.nodes[i].op == ir::op::constant) ids.push_back(static_cast<int>(i));
  auto bytes = [&](int i) {
    return attrs_as<ConstantAttrs>(*g.nodes[static_cast<size_t>(i)].attrs).value.nbytes();
  };
  std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) { return bytes(a) > bytes(b); });
  json out = json::array();
  for (int i : ids) {
    const auto& value = attrs_as<ConstantAttrs>(*g.nodes[static_cast<size_t>(i)].attrs).value;
    out.push_back({{"node", i},
                   {"name", g.nodes[static_cast<size_t>(i)].name},
                   {"type", type_json(value.type())},
                   {"nbytes", value.nbytes()},
                   {"uses", users[static_cast<size_t>(i)]}});
  }
  return out;
}

// Op counts and node-by-name changes between two graphs (nodes are matched by name; unnamed
// or auto-named ops still compare through the per-type counts).
json diff_json(const ir::GraphData& a, const ir::GraphData& b) {
  const auto& reg = ir::OpRegistry::get();
  std::map<std::string, std::pair<int, int>> counts;
  for (const auto& n : a.nodes) counts[reg.info(n.op).name].first++;
  for (const auto& n : b.nodes) counts[reg.info(n.op).name].second++;
  json ops = json::array();
  for (const auto& [op, c] : counts) ops.push_back({{"op", op}, {"a", c.first}, {"b", c.second}});
  std::map<std::string, const ir::Node*> by_name;
  for (const auto& n : b.nodes) by_name[n.name] = &n;
  json changed = json::array(), removed = json::array(), added = json::array();
  std::set<std::string> seen;
  for (const auto& n : a.nodes) {
    seen.insert(n.name);
    auto it = by_name.find(n.name);
    if (it == by_name.end()) {
      removed.push_back({{"name", n.name}, {"op", reg.info(n.op).name}});
    } else if (it->second->op != n.op || it->second->outputs != n.outputs ||
               (n.attrs && it->second->attrs && !n.attrs->equals(*it->second->attrs))) {
      changed.push_back(
          {{"name", n.name}, {"a", reg.info(n.op).name}, {"b", reg.info(it->second->op).name}});
    }
  }
  for (const auto& n : b.nodes)
    if (!seen.count(n.name)) added.push_back({{"name", n.name}, {"op", reg.info(n.op).name}});
  return {{"ops", ops},     {"changed", changed},        {"removed", removed},
          {"added", added}, {"nodes_a", a.nodes.size()}, {"nodes_b", b.nodes.size()}};
}

// Fused regions of the compiled view: each `stitched` node's `program` attribute (IR text whose
// placeholders in0..inN-1 are the node's inputs) parsed into its member ops, drawn inside the
// region box. A program that does not parse leaves the node a plain box (never an error page).
std::vector<VirtualNode> region_members(const ir::GraphData& g) {
  const auto& reg = ir::OpRegistry::get();
  std::vector<VirtualNode> out;
  const int G = static_cast<int>(g.nodes.size());
  for (int i = 0; i < G; ++i) {
    const ir::Node& n = g.nodes[static_cast<size_t>(i)];
    if (std::string(reg.info(n.op).name) != "stitched" || !n.attrs) continue;
    std::string text;
    for (const auto& [name, v] : n.attrs->fields())
      if (name == "program")
        if (const auto* s = std::get_if<std::string>(&v)) text = *s;
    if (text.empty()) continue;
    std::vector<ir::Value> outs;
    ir::GraphData prog;
    try {
      prog = ir::parse_graph(text, &outs);
    } catch (const std::exception&) {
      continue;
    }
    std::vector<int> id(prog.nodes.size(), -1);  // program node -> graph or virtual id
    std::vector<VirtualNode> members;
    bool ok = true;
    for (size_t k = 0; k < prog.nodes.size() && ok; ++k) {
      const ir::Node& m = prog.nodes[k];
      if (m.op == ir::op::placeholder) {
        const std::string& nm = attrs_as<PlaceholderAttrs>(*m.attrs).name;
        int idx = nm.size() > 2 && nm.rfind("in", 0) == 0 ? std::atoi(nm.c_str() + 2) : -1;
        if (idx < 0 || idx >= static_cast<int>(n.inputs.size())) {
          ok = false;
          break;
        }
        id[k] = n.inputs[static_cast<size_t>(idx)].node;
        continue;
      }
      VirtualNode v;
      v.op = reg.info(m.op).name;
      v.name = m.name.empty() ? v.op : m.name;
      for (const auto& in : m.inputs) {
        int src = id[static_cast<size_t>(in.node)];
        // Program placeholders stand for the node's inputs, which keep their output index.
        int index = prog.nodes[static_cast<size_t>(in.node)].op == ir::op::placeholder
                        ? n.inputs[static_cast<size_t>(std::atoi(
                                       attrs_as<PlaceholderAttrs>(
                                           *prog.nodes[static_cast<size_t>(in.node)].attrs)
                                           .name.c_str() +
                                       2))]
                              .index
                        : in.index;
        v.inputs.emplace_back(src, index);
      }
      if (!m.outputs.empty()) v.type = m.outputs[0];
      v.region = i;
      id[k] = G + static_cast<int>(out.size() + members.size());
      members.push_back(std::move(v));
    }
    if (!ok) continue;
    for (auto& m : members) out.push_back(std::move(m));
  }
  return out;
}

// Coordinates with one decimal: the layout of a 20 000-op graph stays a few MB of JSON.
void put_num(std::string& out, double v) {
  char buf[32];
  int n = std::snprintf(buf, sizeof buf, "%.1f", v);
  if (n > 2 && buf[n - 2] == '.' && buf[n - 1] == '0') n -= 2;
  out.append(buf, static_cast<size_t>(n));
}

json groups_json(const GroupTree& t) {
  json cs = json::array();
  for (const auto& c : t.containers)
    cs.push_back({{"id", c.id},
                  {"label", c.label},
                  {"kind", c.kind},
                  {"parent", c.parent},
                  {"depth", c.depth},
                  {"count", c.count},
                  {"identical", c.identical},
                  {"region_node", c.region_node},
                  {"sig", std::to_string(c.sig)}});
  json vn = json::array();
  for (size_t k = 0; k < t.virtual_nodes.size(); ++k) {
    const auto& v = t.virtual_nodes[k];
    json ins = json::array();
    for (const auto& [p, i] : v.inputs) ins.push_back({p, i});
    vn.push_back({{"id", t.num_graph_nodes + static_cast<int>(k)},
                  {"op", v.op},
                  {"name", v.name},
                  {"inputs", ins},
                  {"outputs", json::array({type_json(v.type)})},
                  {"region", v.region}});
  }
  json stubs = json::object(), chips = json::object();
  for (size_t i = 0; i < t.stubs.size(); ++i) {
    if (!t.stubs[i].empty()) stubs[std::to_string(i)] = t.stubs[i];
    if (!t.chips[i].empty()) chips[std::to_string(i)] = t.chips[i];
  }
  json hubs = json::array();
  for (size_t i = 0; i < t.hub.size(); ++i)
    if (t.hub[i]) hubs.push_back(i);
  return {{"containers", cs},      {"node_container", t.node_container},
          {"virtual_nodes", vn},   {"stubs", stubs},
          {"chips", chips},        {"hubs", hubs},
          {"build_ms", t.build_ms}};
}

std::string layout_json(const LayoutResult& r) {
  std::string o;
  o.reserve(64 + r.nodes.size() * 40 + r.edges.size() * 60);
  o += "{\"w\":";
  put_num(o, r.w);
  o += ",\"h\":";
  put_num(o, r.h);
  o += ",\"ms\":" + std::to_string(r.ms) + ",\"laid_out\":" + std::to_string(r.laid_out) +
       ",\"reused\":" + std::to_string(r.reused) + ",\"degraded\":" + std::to_string(r.degraded);
  // Flat arrays: nodes [id, x, y, w, h]*, groups [id, x, y, w, h, expanded]*.
  o += ",\"nodes\":[";
  for (size_t i = 0; i < r.nodes.size(); ++i) {
    const auto& b = r.nodes[i];
    if (i) o += ',';
    o += std::to_string(b.id) + ',';
    put_num(o, b.x), o += ',', put_num(o, b.y), o += ',', put_num(o, b.w), o += ',';
    put_num(o, b.h);
  }
  o += "],\"groups\":[";
  for (size_t i = 0; i < r.groups.size(); ++i) {
    const auto& b = r.groups[i];
    if (i) o += ',';
    o += std::to_string(b.id) + ',';
    put_num(o, b.x), o += ',', put_num(o, b.y), o += ',', put_num(o, b.w), o += ',';
    put_num(o, b.h), o += b.expanded ? ",1" : ",0";
  }
  // Edges [from, to, output index, x0, y0, x1, y1, ...].
  o += "],\"edges\":[";
  for (size_t i = 0; i < r.edges.size(); ++i) {
    const auto& e = r.edges[i];
    if (i) o += ',';
    o += '[' + std::to_string(e.from) + ',' + std::to_string(e.to) + ',' + std::to_string(e.index);
    for (float v : e.pts) o += ',', put_num(o, v);
    o += ']';
  }
  o += "]}";
  return o;
}

// Group ids of a comma-separated list ("1,5,7"), each checked.
std::set<int> parse_ids(const std::string& key, const std::string& v, const GroupTree& t) {
  std::set<int> out;
  size_t s = 0;
  while (s <= v.size()) {
    size_t e = v.find(',', s);
    if (e == std::string::npos) e = v.size();
    std::string tok = v.substr(s, e - s);
    if (!tok.empty()) {
      char* end = nullptr;
      long id = std::strtol(tok.c_str(), &end, 10);
      if (*end || id < 0 || id >= static_cast<long>(t.containers.size()))
        fail("[view] parameter '", key, "' names no group: '", tok, "' (", t.containers.size(),
             " groups)");
      out.insert(static_cast<int>(id));
    }
    s = e + 1;
  }
  return out;
}

// expanded=IDS, or expanded=all[&collapsed=IDS]: the page sends whichever is shorter, so a URL
// stays within the server's limit for thousands of groups.
std::set<int> parse_expanded(const Query& q, const GroupTree& t) {
  auto it = q.find("expanded");
  if (it == q.end() || it->second.empty()) return {};
  if (it->second != "all") return parse_ids("expanded", it->second, t);
  std::set<int> out;
  for (const auto& c : t.containers) out.insert(c.id);
  auto col = q.find("collapsed");
  if (col != q.end())
    for (int id : parse_ids("collapsed", col->second, t)) out.erase(id);
  return out;
}

}  // namespace

Response Viewer::handle(const std::string& path, const Query& query) {
  // Static files: "/" is the page.
  if (path.rfind("/api/", 0) != 0) {
    std::string name = path == "/" ? "index.html" : path.substr(1);
    for (const Asset& a : assets())
      if (name == a.name) return {200, a.content_type, std::string(a.data, a.size)};
    return {404, "text/plain", "[view] no such file: " + path};
  }
  // The global lock covers the package and the creation of views; a view's answers are computed
  // outside it (its graph is immutable, its caches have their own lock), so that a layout request
  // is not queued behind the constants pane of a 20 000-op graph.
  std::unique_lock lock(s_->mutex);
  try {
    auto view_name = [&]() {
      auto it = query.find("view");
      std::string v = it == query.end() || it->second.empty() ? "asis" : it->second;
      if (v != "asis") Device::parse(v.substr(0, v.find('@')));  // names an unknown device: clear

      return v;
    };
    if (path == "/api/summary") {
      json j = {{"path", s_->path}, {"default_view", s_->default_view}};
      if (!s_->load_error.empty()) {
        j["error"] = s_->load_error;
        return json_response(j, 422);
      }
      const auto& p = s_->pkg;
      json inputs = json::array(), outputs = json::array();
      for (const auto& n : p.graph.nodes)
        if (n.op == ir::op::placeholder)
          inputs.push_back({{"name", attrs_as<PlaceholderAttrs>(*n.attrs).name},
                            {"type", type_json(n.outputs[0])}});
      for (const auto& o : p.outputs)
        outputs.push_back({{"name", p.graph.node(o).name}, {"type", type_json(p.graph.type(o))}});
      j.update({{"version", p.version},
                {"kind", p.kind},
                {"stored_device", p.options.device.to_string()},
                {"file_bytes", p.file_bytes},
                {"data_bytes", p.data_bytes},
                {"num_nodes", p.graph.nodes.size()},
                {"inputs", inputs},
                {"outputs", outputs},
                {"diff", s_->diff_path.empty() ? json(nullptr) : json(s_->diff_path)},
                {"profile", s_->profile_path.empty() ? json(nullptr) : json(s_->profile_path)},
                {"profile_error", s_->profile_error},
                // cuda is always offered: without the backend its view says so.
                {"devices", {"cpu", "cuda", "reference"}}});
      return json_response(j);
    }
    if (path == "/api/graph" || path == "/api/ops" || path == "/api/variables" ||
        path == "/api/constants" || path == "/api/constant" || path == "/api/passes" ||
        path == "/api/groups" || path == "/api/layout") {
      ViewData& v = s_->view(view_name());
      lock.unlock();
      if (!v.error.empty()) return error_response(v.error);
      if (path == "/api/groups" || path == "/api/layout") {
        std::call_once(v.tree_once, [&] {
          v.tree = std::make_unique<GroupTree>(
              build_groups(v.graph, v.outputs, LayoutOptions{}, region_members(v.graph)));
          v.layouter = std::make_unique<Layouter>(*v.tree, LayoutOptions{});
          v.groups_json = groups_json(*v.tree).dump();
        });
        if (path == "/api/groups") return {200, kJson, v.groups_json};
        return {200, kJson, layout_json(v.layouter->layout(parse_expanded(query, *v.tree)))};
      }
      if (path == "/api/graph") return {200, kJson, v.graph_json};
      if (path == "/api/passes") return json_response({{"pass_log", v.pass_log}});
      if (path == "/api/variables") return json_response({{"variables", variables_json(v.graph)}});
      if (path == "/api/constants") return json_response({{"constants", constants_json(v.graph)}});
      if (path == "/api/ops") {
        std::map<std::string, std::vector<int>> by_op;
        const auto& reg = ir::OpRegistry::get();
        for (size_t i = 0; i < v.graph.nodes.size(); ++i)
          by_op[reg.info(v.graph.nodes[i].op).name].push_back(static_cast<int>(i));
        json ops = json::array();
        for (const auto& [op, ids] : by_op)
          ops.push_back({{"op", op}, {"count", ids.size()}, {"nodes", ids}});
        std::stable_sort(ops.begin(), ops.end(), [](const json& a, const json& b) {
          return a["count"].get<size_t>() > b["count"].get<size_t>();
        });
        return json_response({{"ops", ops}});
      }
      // /api/constant?node=N[&offset=&count=&slice=]
      int64_t id = query_int(query, "node", -1, -1, std::numeric_limits<int32_t>::max());
      if (id < 0 || id >= static_cast<int64_t>(v.graph.nodes.size()) ||
          v.graph.nodes[static_cast<size_t>(id)].op != ir::op::constant)
        return error_response("[view] node " + std::to_string(id) + " is not a constant", 404);
      const ir::Node& n = v.graph.nodes[static_cast<size_t>(id)];
      const NDArray& value = attrs_as<ConstantAttrs>(*n.attrs).value;
      std::unique_lock cache_lock(v.constants_mutex);
      auto it = v.constants.find(static_cast<int>(id));
      if (it == v.constants.end())
        it = v.constants.emplace(static_cast<int>(id), constant_info(value)).first;
      ConstantInfo info = it->second;
      cache_lock.unlock();
      int64_t offset = query_int(query, "offset", 0, 0, std::max<int64_t>(value.numel() - 1, 0));
      int64_t count = query_int(query, "count", 256, 0, 4096);
      count = std::min(count, value.numel() - offset);
      json values = json::array();
      if (count > 0) {
        NDArray flat = value.contiguous().reshape({value.numel()});
        for (double x : flat.view({count}, {1}, offset).to_doubles()) values.push_back(num(x));
      }
      // Quantized weights are packed bytes; their format (block size, scales) is an attribute of
      // the op that unpacks them, so the consumers are listed with their attributes.
      const auto& reg = ir::OpRegistry::get();
      json consumers = json::array();
      auto users = consumers_of(v.graph);
      for (int u : users[static_cast<size_t>(id)]) {
        const ir::Node& c = v.graph.nodes[static_cast<size_t>(u)];
        consumers.push_back({{"node", u},
                             {"op", reg.info(c.op).name},
                             {"name", c.name},
                             {"attrs", c.attrs ? attrs_json(*c.attrs) : json::object()}});
      }
      return json_response(
          {{"node", id},
           {"name", n.name},
           {"type", type_json(value.type())},
           {"nbytes", value.nbytes()},
           {"stats", info.stats},
           {"histogram", info.histogram},
           {"heatmap", heat_map(value, query_int(query, "slice", 0, 0, value.numel()))},
           {"values", {{"offset", offset}, {"data", values}}},
           {"consumers", consumers}});
    }
    if (path == "/api/profile" && query.count("source") && query.at("source") == "file") {
      if (s_->profile_path.empty()) return error_response("[view] no --profile file given", 404);
      if (!s_->profile_error.empty()) return error_response(s_->profile_error);
      return json_response(s_->profile);
    }
    if (path == "/api/profile") {
      // Runs the package compiled with per-op timing on random inputs (`runs` times).
      std::string name = view_name();
      if (!s_->load_error.empty()) return error_response(s_->load_error);
      CompileOptions opt = s_->pkg.options;
      opt.device = Device::parse(name == "asis" ? "cpu" : name);
      opt.profile = true;
      int64_t runs = query_int(query, "runs", 5, 1, 1000);
      Executable exe = Executable::load(s_->path, opt);
      Feeds feeds = random_feeds(exe);
      exe.run(feeds);  // warm-up: plans, arenas, first-touch pages are not what we measure
      for (auto& ns : exe.impl()->profile_ns) ns = 0;
      for (auto& c : exe.impl()->profile_calls) c = 0;
      auto t0 = std::chrono::steady_clock::now();
      for (int64_t r = 0; r < runs; ++r) exe.run(feeds);
      double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const auto& g = exe.impl()->graph;
      json nodes = json::array();
      for (size_t i = 0; i < g.nodes.size(); ++i) {
        int64_t calls = exe.impl()->profile_calls[i].load();
        if (!calls) continue;
        nodes.push_back({{"node", i},
                         {"name", g.nodes[i].name},
                         {"op", ir::OpRegistry::get().info(g.nodes[i].op).name},
                         {"us", static_cast<double>(exe.impl()->profile_ns[i].load()) /
                                    static_cast<double>(runs) / 1e3},
                         {"calls", calls}});
      }
      json inputs = json::array();
      for (const auto& [in_name, a] : feeds)
        inputs.push_back({{"name", in_name}, {"type", type_json(a.type())}});
      return json_response({{"view", name == "asis" ? "cpu" : name},
                            {"runs", runs},
                            {"ms_per_run", wall / static_cast<double>(runs) * 1e3},
                            {"inputs", inputs},
                            {"nodes", nodes}});
    }
    if (path == "/api/diff") {
      if (s_->diff_path.empty()) return error_response("[view] no --diff package given", 404);
      if (!s_->diff_error.empty()) return error_response(s_->diff_error);
      if (!s_->load_error.empty()) return error_response(s_->load_error);
      json j = diff_json(s_->pkg.graph, s_->other->graph);
      j["a"] = s_->path;
      j["b"] = s_->diff_path;
      return json_response(j);
    }
    return error_response("[view] no such endpoint: " + path, 404);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    return error_response(msg.rfind("[view]", 0) == 0 ? msg : "[view] " + msg);
  }
}

// ---- HTTP ------------------------------------------------------------------------------------

struct Server::Impl {
  Viewer& viewer;
  httplib::Server http;
  std::thread thread;
  explicit Impl(Viewer& v) : viewer(v) {}
};

Server::Server(Viewer& viewer) : impl_(std::make_unique<Impl>(viewer)) {
  impl_->http.Get(".*", [this](const httplib::Request& req, httplib::Response& res) {
    Query q;
    for (const auto& [k, v] : req.params) q[k] = v;
    Response r = impl_->viewer.handle(req.path, q);
    res.status = r.status;
    // The page is a local tool: never serve stale JSON after the package changed on disk.
    res.set_header("Cache-Control", "no-store");
    res.set_content(std::move(r.body), r.content_type.c_str());
  });
}

Server::~Server() { stop(); }

int Server::start(int port) {
  int bound = port == 0 ? impl_->http.bind_to_any_port("127.0.0.1")
                        : (impl_->http.bind_to_port("127.0.0.1", port) ? port : -1);
  if (bound < 0) fail("[view] cannot listen on 127.0.0.1:", port, " (port in use?)");
  impl_->thread = std::thread([this] { impl_->http.listen_after_bind(); });
  // cpp-httplib 0.11 has no wait_until_ready(): poll until the accept loop runs.
  while (!impl_->http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return bound;
}

void Server::stop() {
  if (impl_ && impl_->thread.joinable()) {
    impl_->http.stop();
    impl_->thread.join();
  }
}

// ---- the command -------------------------------------------------------------------------

namespace {
constexpr const char* kViewUsage =
    R"(usage: loom view MODEL.loom [--port N] [--device cpu|cuda|reference] [--diff OTHER.loom]
                  [--profile RUN.json]
  Serves a page on http://127.0.0.1:N/ (default port 8077; 0 picks a free one) that shows the
  package as stored and as compiled for a device: op navigator, graph, inspector, constants,
  variables, pass log (what each pass changed), per-op profile. --device selects the view opened
  first; --profile colours ops by the times of `loom run MODEL.loom --profile-json RUN.json`.
)";
}  // namespace

int cmd_view(int argc, char** argv) {
  std::string path, device = "asis", diff, profile;
  int port = 8077;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail("[view] ", a, " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") return std::cout << kViewUsage, 0;
    if (a == "--port") {
      std::string v = value();
      char* end = nullptr;
      long p = std::strtol(v.c_str(), &end, 10);
      if (*end || p < 0 || p > 65535) fail("[view] --port expects 0..65535, got '", v, "'");
      port = static_cast<int>(p);
    } else if (a == "--device") {
      device = value();
      Device::parse(device);
    } else if (a == "--diff") {
      diff = value();
    } else if (a == "--profile") {
      profile = value();
    } else if (!a.empty() && a[0] == '-') {
      fail("[view] unknown option '", a, "'\n", kViewUsage);
    } else if (path.empty()) {
      path = a;
    } else {
      fail("[view] more than one package given");
    }
  }
  if (path.empty()) fail("[view] no package given\n", kViewUsage);
  // SIGINT/SIGTERM are blocked before the server's threads start (they inherit the mask), so
  // this thread receives them in sigwait and stops the server cleanly.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  Viewer viewer(path, diff, device, profile);
  Server server(viewer);
  int bound = server.start(port);
  std::cout << "loom view: serving " << path << " on http://127.0.0.1:" << bound
            << "/ (Ctrl-C to stop)" << std::endl;
  int sig = 0;
  sigwait(&set, &sig);
  server.stop();
  return 0;
}

}  // namespace loom::view
