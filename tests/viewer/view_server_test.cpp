// `loom view` endpoints over real HTTP: an in-process server on an ephemeral port, every JSON
// endpoint checked against the package it serves; the page's files; a malformed package.
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ir/graph.h"
#include "loom/loom.h"
#include "loom/package.h"
#include "view.h"
#include "view_profile.h"

namespace loom::view {
namespace {

using json = nlohmann::json;

std::string tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("loom_view_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

// A small model with what the viewer shows: named weights in two blocks (constants of different
// sizes), a KV-cache-like variable (read, update, assign) and an input.
std::string make_package(bool executable) {
  Graph g;
  auto x = g.placeholder({-1, 8}, f32, "x");
  auto w0 = g.constant(
      NDArray::from_vector<float>({0, 1, 2, 3, 4, 5, 6, 7}, Shape({8, 1})).reshape({8, 1}),
      "blk.0.w");
  auto big = g.constant(random_normal({8, 32}, f32, 3), "blk.1.w");
  auto cache =
      g.variable(NDArray::from_vector<float>(std::vector<float>(32, 0), Shape({1, 32})), "cache");
  auto h = tanh(matmul(x, big));
  auto updated = add(g.read(cache), sum(h, {0}, true));
  g.assign(cache, updated);
  auto y = add(matmul(h, transpose(big, {1, 0})), mul(x, x));
  auto z = matmul(y, w0);
  std::string path = tmp_path(executable ? "exe.loom" : "graph.loom");
  if (executable)
    g.compile({z}).save(path);
  else
    save_graph(g, {z}, path);
  return path;
}

class ViewServer : public ::testing::Test {
 protected:
  void start(const std::string& path, const std::string& diff = "") {
    viewer_ = std::make_unique<Viewer>(path, diff);
    server_ = std::make_unique<Server>(*viewer_);
    port_ = server_->start(0);
    ASSERT_GT(port_, 0);
  }
  void TearDown() override {
    server_.reset();
    viewer_.reset();
  }
  // GET over HTTP; returns {status, body}.
  std::pair<int, std::string> get(const std::string& url) {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    auto r = c.Get(url.c_str());
    if (!r) return {-1, ""};
    return {r->status, r->body};
  }
  json get_json(const std::string& url, int expect = 200) {
    auto [status, body] = get(url);
    EXPECT_EQ(status, expect) << url << ": " << body;
    return json::parse(body);
  }

  std::unique_ptr<Viewer> viewer_;
  std::unique_ptr<Server> server_;
  int port_ = 0;
};

TEST_F(ViewServer, ServesThePageFromTheBinary) {
  start(make_package(false));
  auto [s, html] = get("/");
  EXPECT_EQ(s, 200);
  EXPECT_NE(html.find("loom view"), std::string::npos);
  EXPECT_NE(html.find("data-testid=\"graph-canvas\""), std::string::npos);
  for (const char* f : {"/viewer.js", "/viewer.css"}) {
    auto [fs, body] = get(f);
    EXPECT_EQ(fs, 200) << f;
    EXPECT_GT(body.size(), 1000u) << f;
  }
  EXPECT_EQ(get("/nope.js").first, 404);
  EXPECT_EQ(get("/api/nope").first, 404);
}

TEST_F(ViewServer, SummaryAndGraphMatchThePackage) {
  std::string path = make_package(false);
  start(path);
  std::vector<Tensor> outs;
  Graph g = load_graph(path, &outs);
  const auto& data = *g.data();

  json s = get_json("/api/summary");
  EXPECT_EQ(s["kind"], "graph");
  EXPECT_EQ(s["num_nodes"], data.nodes.size());
  ASSERT_EQ(s["inputs"].size(), 1u);
  EXPECT_EQ(s["inputs"][0]["name"], "x");
  EXPECT_EQ(s["inputs"][0]["type"]["shape"], json::array({-1, 8}));

  json gj = get_json("/api/graph?view=asis");
  ASSERT_EQ(gj["nodes"].size(), data.nodes.size());
  int total = 0;
  for (const auto& c : gj["op_counts"]) total += c["count"].get<int>();
  EXPECT_EQ(total, static_cast<int>(data.nodes.size()));
  for (size_t i = 0; i < data.nodes.size(); ++i) {
    const json& n = gj["nodes"][i];
    EXPECT_EQ(n["name"], data.nodes[i].name);
    ASSERT_EQ(n["inputs"].size(), data.nodes[i].inputs.size());
    for (size_t k = 0; k < data.nodes[i].inputs.size(); ++k)
      EXPECT_EQ(n["inputs"][k][0], data.nodes[i].inputs[k].node);
    if (n["op"] == "matmul") {
      EXPECT_EQ(n["fusion"], "contraction");
      EXPECT_TRUE(n["attrs"].contains("transpose_b"));
    }
  }
  EXPECT_EQ(gj["outputs"][0][0], outs[0].node());

  // Compiled for the CPU through the public API: optimised (fewer or equal ops), pass log.
  json cpu = get_json("/api/graph?view=cpu");
  EXPECT_EQ(cpu["view"], "cpu");
  EXPECT_LE(cpu["nodes"].size(), gj["nodes"].size());
  EXPECT_FALSE(cpu["pass_log"].empty());
  json ops = get_json("/api/ops?view=cpu");
  size_t n_ops = 0;
  for (const auto& o : ops["ops"]) n_ops += o["nodes"].size();
  EXPECT_EQ(n_ops, cpu["nodes"].size());
  // The compiled view updates the cache in place (KV-cache style): a write_slice or an assign.
  bool has_update = false;
  for (const auto& n : cpu["nodes"]) has_update |= n["op"] == "assign" || n["fusion"] == "inplace";
  EXPECT_TRUE(has_update);
}

TEST_F(ViewServer, ConstantsSortedBySizeWithStatsAndPages) {
  start(make_package(false));
  json c = get_json("/api/constants?view=asis")["constants"];
  ASSERT_GE(c.size(), 2u);
  for (size_t i = 1; i < c.size(); ++i) EXPECT_GE(c[i - 1]["nbytes"], c[i]["nbytes"]);
  EXPECT_EQ(c[0]["name"], "blk.1.w");
  EXPECT_EQ(c[0]["nbytes"], 8 * 32 * 4);
  EXPECT_EQ(c[0]["uses"].size(), 2u);  // matmul and transpose

  int w0 = -1;
  for (const auto& x : c)
    if (x["name"] == "blk.0.w") w0 = x["node"];
  ASSERT_GE(w0, 0);
  json v = get_json("/api/constant?view=asis&node=" + std::to_string(w0) + "&offset=2&count=3");
  EXPECT_EQ(v["stats"]["min"], 0.0);
  EXPECT_EQ(v["stats"]["max"], 7.0);
  EXPECT_DOUBLE_EQ(v["stats"]["mean"].get<double>(), 3.5);
  EXPECT_NEAR(v["stats"]["std"].get<double>(), std::sqrt(5.25), 1e-9);
  EXPECT_EQ(v["stats"]["zeros"], 1);
  int64_t hist = 0;
  for (const auto& b : v["histogram"]["bins"]) hist += b.get<int64_t>();
  EXPECT_EQ(hist, 8);
  EXPECT_EQ(v["values"]["data"], json::array({2.0, 3.0, 4.0}));
  EXPECT_EQ(v["heatmap"]["rows"], 8);
  EXPECT_EQ(v["heatmap"]["cols"], 1);
  EXPECT_EQ(v["heatmap"]["cells"].size(), 8u);
  EXPECT_EQ(v["consumers"].size(), 1u);
  EXPECT_EQ(v["consumers"][0]["op"], "matmul");

  // Not a constant, not a number: clear errors.
  json e = get_json("/api/constant?view=asis&node=0", 404);
  EXPECT_NE(e["error"].get<std::string>().find("[view]"), std::string::npos);
  e = get_json("/api/constant?view=asis&node=abc", 422);
  EXPECT_NE(e["error"].get<std::string>().find("expects an integer"), std::string::npos);
}

TEST_F(ViewServer, VariablesListEveryUse) {
  start(make_package(false));
  json vars = get_json("/api/variables?view=asis")["variables"];
  ASSERT_EQ(vars.size(), 1u);
  EXPECT_EQ(vars[0]["name"], "cache");
  std::set<std::string> kinds;
  for (const auto& u : vars[0]["uses"]) kinds.insert(u["kind"]);
  EXPECT_TRUE(kinds.count("read"));
  EXPECT_TRUE(kinds.count("assign"));
  json gj = get_json("/api/graph?view=asis");
  for (const auto& u : vars[0]["uses"]) {
    const json& n = gj["nodes"][u["node"].get<size_t>()];
    EXPECT_EQ(n["op"], u["op"]);
    if (u["kind"] != "write in place") {
      EXPECT_EQ(n["variable"], "cache");
    }
  }
}

// A decoder layer's KV-cache update compiled for the CPU is one rope_write_kv node writing both
// caches in place (fuse_kv_cache_write): each variable lists it as a write in place.
TEST_F(ViewServer, VariablesListEveryInPlaceWriteOfAFusedCacheUpdate) {
  Graph g;
  auto k = g.placeholder({1, 2, 1, 8}, f32, "k");
  auto v = g.placeholder({1, 2, 1, 8}, f32, "v");
  auto q = g.placeholder({1, 4, 1, 8}, f32, "q");
  auto pos = g.placeholder({1}, i32, "pos");
  auto at = g.placeholder({4}, i64, "at");
  auto kc = g.variable(zeros({1, 2, 16, 8}), "k_cache");
  auto vc = g.variable(zeros({1, 2, 16, 8}), "v_cache");
  RopeAttrs ro{.interleaved = true};
  auto keys = slice_update(g.read(kc), rope(k, pos, ro), at);
  auto values = slice_update(g.read(vc), v, at);
  g.assign(kc, keys);
  g.assign(vc, values);
  auto out = sdpa(rope(q, pos, ro), keys, values, {.causal = true});
  const std::string path = tmp_path("kv_update.loom");
  save_graph(g, {out}, path);
  start(path);
  json vars = get_json("/api/variables?view=cpu")["variables"];
  ASSERT_EQ(vars.size(), 2u);
  json gj = get_json("/api/graph?view=cpu");
  for (const auto& var : vars) {
    int in_place = 0;
    for (const auto& u : var["uses"])
      if (u["kind"] == "write in place") {
        ++in_place;
        EXPECT_EQ(u["op"], "rope_write_kv") << var["name"];
        EXPECT_EQ(gj["nodes"][u["node"].get<size_t>()]["op"], "rope_write_kv");
      }
    EXPECT_EQ(in_place, 1) << var["name"] << ": " << var["uses"].dump();
  }
}

TEST_F(ViewServer, ProfileTimesEveryKernel) {
  start(make_package(true));
  json p = get_json("/api/profile?view=cpu&runs=3");
  EXPECT_EQ(p["runs"], 3);
  EXPECT_GT(p["ms_per_run"].get<double>(), 0);
  ASSERT_FALSE(p["nodes"].empty());
  bool matmul = false;
  for (const auto& n : p["nodes"]) {
    EXPECT_GE(n["us"].get<double>(), 0);
    EXPECT_EQ(n["calls"], 3);
    matmul |= n["op"] == "matmul";
  }
  EXPECT_TRUE(matmul);
  EXPECT_EQ(p["inputs"][0]["type"]["shape"], json::array({1, 8}));  // dynamic dims run as 1
}

TEST_F(ViewServer, MalformedPackageIsAClearMessage) {
  std::string path = tmp_path("bad.loom");
  {
    std::ofstream f(path, std::ios::binary);
    f << "LOOMPKG" << '\0' << "garbage that is not a header";
  }
  start(path);
  json s = get_json("/api/summary", 422);
  std::string msg = s["error"];
  EXPECT_NE(msg.find("[view] cannot open the package"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[package]"), std::string::npos) << msg;
  json g = get_json("/api/graph", 422);
  EXPECT_NE(g["error"].get<std::string>().find("[package]"), std::string::npos);
  // The page itself still loads and shows the message.
  EXPECT_EQ(get("/").first, 200);

  start(tmp_path("missing.loom"));
  EXPECT_NE(get_json("/api/summary", 422)["error"].get<std::string>().find("[view]"),
            std::string::npos);
}

TEST_F(ViewServer, UnknownDeviceIsAnError) {
  start(make_package(false));
  json e = get_json("/api/graph?view=tpu", 422);
  EXPECT_NE(e["error"].get<std::string>().find("[view]"), std::string::npos);
}

TEST_F(ViewServer, DiffOfTwoPackages) {
  std::string a = make_package(false), b = make_package(true);
  start(a, b);
  json d = get_json("/api/diff");
  EXPECT_EQ(d["a"], a);
  EXPECT_EQ(d["b"], b);
  std::vector<Tensor> outs;
  EXPECT_EQ(d["nodes_a"], load_graph(a, &outs).data()->nodes.size());
  EXPECT_EQ(d["nodes_b"], load_graph(b, &outs).data()->nodes.size());
  EXPECT_FALSE(d["ops"].empty());
}

// The hierarchy and the layout come from the server: every drawn op once, edges between drawn
// ops, a clear error for an expansion naming no group.
TEST_F(ViewServer, GroupsAndLayout) {
  std::string path = make_package(false);
  start(path);
  json gj = get_json("/api/graph?view=asis");
  json t = get_json("/api/groups?view=asis");
  ASSERT_EQ(t["node_container"].size(), gj["nodes"].size());
  EXPECT_EQ(t["containers"][0]["kind"], "root");
  std::set<std::string> blocks;
  for (const auto& c : t["containers"])
    if (c["kind"] == "block") blocks.insert(c["label"]);
  EXPECT_EQ(blocks, (std::set<std::string>{"blk.0", "blk.1"}));
  size_t drawn = 0;
  for (const auto& c : t["node_container"]) drawn += c.get<int>() >= 0;
  json all = get_json("/api/layout?view=asis&expanded=all");
  ASSERT_EQ(all["nodes"].size() % 5, 0u);
  EXPECT_EQ(all["nodes"].size() / 5, drawn);
  std::set<int> ids;
  for (size_t i = 0; i < all["nodes"].size(); i += 5) ids.insert(all["nodes"][i].get<int>());
  EXPECT_EQ(ids.size(), drawn);
  for (const auto& e : all["edges"]) {
    ASSERT_GE(e.size(), 7u);  // from, to, index, two points at least
    EXPECT_LT(e[0].get<size_t>(), gj["nodes"].size());
    EXPECT_LT(e[1].get<size_t>(), gj["nodes"].size());
  }
  json top = get_json("/api/layout?view=asis");
  EXPECT_LT(top["nodes"].size(), all["nodes"].size());  // blocks collapsed
  EXPECT_EQ(top["groups"].size() / 6, blocks.size());
  // "All but these": the same answer as listing the others.
  std::string others;
  for (const auto& c : t["containers"])
    if (c["id"] != 0 && c["id"] != 1) others += (others.empty() ? "" : ",") + c["id"].dump();
  EXPECT_EQ(get_json("/api/layout?view=asis&expanded=all&collapsed=1")["nodes"],
            get_json("/api/layout?view=asis&expanded=" + others)["nodes"]);
  json e = get_json("/api/layout?view=asis&expanded=1,x", 422);
  EXPECT_NE(e["error"].get<std::string>().find("names no group"), std::string::npos);
  e = get_json("/api/layout?view=asis&expanded=100000", 422);
  EXPECT_NE(e["error"].get<std::string>().find("names no group"), std::string::npos);
  e = get_json("/api/layout?view=asis&expanded=all&collapsed=-3", 422);
  EXPECT_NE(e["error"].get<std::string>().find("'collapsed' names no group"), std::string::npos);
}

// Pass before/after: the compile pipeline records, per pass that changed something, the names it
// removed, added and rewrote ("[changes]" lines of the pass log, docs/FORMAT.md).
TEST_F(ViewServer, PassChangesOfTheCompiledView) {
  start(make_package(false));
  json asis = get_json("/api/graph?view=asis");
  json cpu = get_json("/api/graph?view=cpu");
  EXPECT_TRUE(asis["pass_changes"].empty());
  ASSERT_FALSE(cpu["pass_changes"].empty());
  for (const auto& l : cpu["pass_log"])
    EXPECT_EQ(l.get<std::string>().rfind("[changes]", 0), std::string::npos) << l;
  std::set<std::string> before, after;
  for (const auto& n : asis["nodes"]) before.insert(n["name"]);
  for (const auto& n : cpu["nodes"]) after.insert(n["name"]);
  const auto& ch = cpu["pass_changes"];
  EXPECT_EQ(ch.front()["nodes_before"], asis["nodes"].size());
  EXPECT_EQ(ch.back()["nodes_after"], cpu["nodes"].size());
  std::set<std::string> removed, added;
  for (const auto& c : ch) {
    for (const auto& n : c["removed"]) removed.insert(n);
    for (const auto& n : c["added"]) added.insert(n);
  }
  // What the passes removed and did not add back is gone; what is new was added by a pass.
  for (const auto& n : removed)
    if (!added.count(n)) {
      EXPECT_FALSE(after.count(n)) << n;
    }
  for (const auto& n : after)
    if (!before.count(n)) {
      EXPECT_TRUE(added.count(n)) << n;
    }
  for (const auto& n : before)
    if (!after.count(n)) {
      EXPECT_TRUE(removed.count(n)) << n;
    }
}

// The compiled view draws each stitched kernel as a region box holding its member ops (parsed
// from the node's program): the members are the as-is ops the stitch pass removed.
TEST_F(ViewServer, StitchedKernelsAreRegionsWithTheirMembers) {
  Graph g;
  auto x = g.placeholder({4, 8}, f32, "x");
  auto y = tanh(mul(add(mul(x, x), x), x));  // one elementwise chain: one stitched kernel
  std::string path = tmp_path("stitch.loom");
  save_graph(g, {matmul(y, g.constant(random_normal({8, 2}, f32, 1), "w"))}, path);
  start(path);
  json asis = get_json("/api/graph?view=asis");
  json cpu = get_json("/api/graph?view=cpu");
  std::set<std::string> asis_names;
  for (const auto& n : asis["nodes"]) asis_names.insert(n["name"]);
  int stitched = 0;
  for (const auto& n : cpu["nodes"]) stitched += n["op"] == "stitched";
  if (stitched == 0) GTEST_SKIP() << "no stitch pass in this pipeline";
  json t = get_json("/api/groups?view=cpu");
  std::map<int, int> members;  // region container -> member ops
  for (const auto& v : t["virtual_nodes"]) {
    int c = t["node_container"][v["id"].get<size_t>()];
    ++members[c];
    EXPECT_EQ(t["containers"][static_cast<size_t>(c)]["kind"], "region");
    EXPECT_EQ(cpu["nodes"][v["region"].get<size_t>()]["op"], "stitched");
    EXPECT_TRUE(asis_names.count(v["name"])) << v["name"];  // a member is an op of the source
    for (const auto& in : v["inputs"])
      EXPECT_LT(in[0].get<size_t>(), cpu["nodes"].size() + t["virtual_nodes"].size());
  }
  int regions = 0;
  for (const auto& c : t["containers"])
    if (c["kind"] == "region") {
      ++regions;
      EXPECT_EQ(members[c["id"].get<int>()], c["count"].get<int>());
      EXPECT_GE(c["count"].get<int>(), 2);
      EXPECT_EQ(cpu["nodes"][c["region_node"].get<size_t>()]["op"], "stitched");
    }
  EXPECT_EQ(regions, stitched);
  // Expanded, the members are drawn (ids past the graph's nodes); collapsed, the box only.
  json all = get_json("/api/layout?view=cpu&expanded=all");
  int drawn_members = 0;
  for (size_t i = 0; i < all["nodes"].size(); i += 5)
    drawn_members += all["nodes"][i].get<size_t>() >= cpu["nodes"].size();
  EXPECT_EQ(drawn_members, static_cast<int>(t["virtual_nodes"].size()));
  json top = get_json("/api/layout?view=cpu");
  for (size_t i = 0; i < top["nodes"].size(); i += 5)
    EXPECT_LT(top["nodes"][i].get<size_t>(), cpu["nodes"].size());
}

// Before/after one pass: "cpu@K" is the graph after the pipeline's first K passes, recomputed by
// the viewer; each recorded change is exactly the difference between its two stages.
TEST_F(ViewServer, GraphsBeforeAndAfterEachPass) {
  start(make_package(false));
  json cpu = get_json("/api/graph?view=cpu");
  ASSERT_FALSE(cpu["pass_changes"].empty());
  auto names = [](const json& g) {
    std::set<std::string> out;
    for (const auto& n : g["nodes"]) out.insert(n["name"]);
    return out;
  };
  for (const auto& c : cpu["pass_changes"]) {
    int slot = c["slot"];
    json before = get_json("/api/graph?view=cpu@" + std::to_string(slot));
    json after = get_json("/api/graph?view=cpu@" + std::to_string(slot + 1));
    EXPECT_EQ(before["nodes"].size(), c["nodes_before"]) << c["pass"];
    EXPECT_EQ(after["nodes"].size(), c["nodes_after"]) << c["pass"];
    auto b = names(before), a = names(after);
    for (const auto& n : c["removed"]) {
      EXPECT_TRUE(b.count(n) && !a.count(n)) << c["pass"] << " removed " << n;
    }
    for (const auto& n : c["added"]) {
      EXPECT_TRUE(!b.count(n) && a.count(n)) << c["pass"] << " added " << n;
    }
    for (const auto& n : c["rewritten"]) {
      EXPECT_TRUE(b.count(n) && a.count(n)) << c["pass"] << " rewrote " << n;
    }
  }
  // The whole pipeline is the compiled view's graph (before lowering, which does not change it).
  json all = get_json("/api/graph?view=cpu@" +
                      std::to_string(cpu["pass_changes"].back()["slot"].get<int>() + 1));
  EXPECT_EQ(names(all), names(cpu));
  EXPECT_NE(get_json("/api/graph?view=cpu@99", 422)["error"].get<std::string>().find("pass count"),
            std::string::npos);
  EXPECT_NE(get_json("/api/graph?view=tpu@1", 422)["error"].get<std::string>().find("[view]"),
            std::string::npos);
}

TEST_F(ViewServer, NoStagesOfAnExecutable) {
  start(make_package(true));
  std::string e = get_json("/api/graph?view=cpu@1", 422)["error"];
  EXPECT_NE(e.find("stores the compiled graph"), std::string::npos) << e;
}

// Packages written before pass changes existed (the checked-in v1 package) still open.
TEST_F(ViewServer, PackageOfThePreviousVersionOpens) {
  const char* data = std::getenv("LOOM_TEST_DATA");
  ASSERT_NE(data, nullptr) << "LOOM_TEST_DATA is set by ctest";
  start(std::string(data) + "/package/v1_mlp.loom");
  json gj = get_json("/api/graph?view=asis");
  EXPECT_FALSE(gj["nodes"].empty());
  EXPECT_TRUE(gj["pass_changes"].is_array());
  json lay = get_json("/api/layout?view=asis&expanded=all");
  EXPECT_FALSE(lay["nodes"].empty());
}

// `loom run --profile-json` -> `loom view --profile`: the file's per-op times are served; a file
// that is no profile is a clear message.
TEST_F(ViewServer, ProfileFromFile) {
  std::string pkg = make_package(true);
  CompileOptions opt;
  opt.profile = true;
  Executable exe = Executable::load(pkg, opt);
  Feeds feeds = {{"x", random_uniform({2, 8}, f32, -1, 1, 4)}};
  exe.run(feeds);
  exe.run(feeds);
  std::string prof = tmp_path("run.json");
  std::ofstream(prof) << profile_json(exe, 2, pkg, 1.5);
  viewer_ = std::make_unique<Viewer>(pkg, "", "asis", prof);
  server_ = std::make_unique<Server>(*viewer_);
  port_ = server_->start(0);
  json s = get_json("/api/summary");
  EXPECT_EQ(s["profile"], prof);
  EXPECT_EQ(s["profile_error"], "");
  json p = get_json("/api/profile?source=file");
  EXPECT_EQ(p["runs"], 2);
  EXPECT_EQ(p["ms_per_run"], 1.5);
  ASSERT_FALSE(p["nodes"].empty());
  json gj = get_json("/api/graph?view=cpu");
  std::set<std::string> names;
  for (const auto& n : gj["nodes"]) names.insert(n["name"]);
  for (const auto& n : p["nodes"]) {
    EXPECT_TRUE(names.count(n["name"])) << n;
    EXPECT_EQ(n["calls"], 2);
    EXPECT_GE(n["us"].get<double>(), 0);
  }
  server_.reset();
  std::string bad = tmp_path("bad_profile.json");
  std::ofstream(bad) << R"({"format": "something else", "nodes": []})";
  viewer_ = std::make_unique<Viewer>(pkg, "", "asis", bad);
  server_ = std::make_unique<Server>(*viewer_);
  port_ = server_->start(0);
  std::string msg = get_json("/api/summary")["profile_error"];
  EXPECT_NE(msg.find("not a loom profile"), std::string::npos) << msg;
  EXPECT_NE(get_json("/api/profile?source=file", 422)["error"].get<std::string>().find(
                "not a loom profile"),
            std::string::npos);
}

// Hostile packages: a header length past the file, a node reading a later node, a huge shape,
// JSON nested a million deep. Each is a message naming the problem, never a crash.
TEST_F(ViewServer, HostilePackagesAreClearMessages) {
  auto write = [](const std::string& name, const std::string& header, uint64_t header_len) {
    std::string path = tmp_path(name);
    std::ofstream f(path, std::ios::binary);
    uint32_t version = 1;
    f.write("LOOMPKG\0", 8);
    f.write(reinterpret_cast<const char*>(&version), 4);
    f.write(reinterpret_cast<const char*>(&header_len), 8);
    f << header;
    return path;
  };
  const std::string opts =
      R"("compile_options": {"device": "cpu", "optimization_level": 1, "disabled_passes": [],
          "constant_folding_max_elements": 1024, "plan_cache_capacity": 4, "num_threads": 0},
          "pass_log": [])";
  auto graph = [&](const std::string& nodes) {
    return R"({"format": "loom-package", "kind": "graph", )" + opts +
           R"(, "graph": {"variables": [], "nodes": )" + nodes + R"(, "outputs": [[0, 0]]}})";
  };
  std::string forward = graph(
      R"([{"op": "tanh", "name": "t", "inputs": [[1, 0]], "attrs": {}, "outputs": [{"dtype": "f32", "shape": [2]}]},
          {"op": "placeholder", "name": "x", "inputs": [], "attrs": {"name": {"s": "x"}, "dtype": {"s": "f32"}, "shape": {"iv": [2]}}, "outputs": [{"dtype": "f32", "shape": [2]}]}])");
  std::string huge = graph(
      R"([{"op": "placeholder", "name": "x", "inputs": [], "attrs": {"name": {"s": "x"}, "dtype": {"s": "f32"}, "shape": {"iv": [4611686018427387904, 4611686018427387904]}}, "outputs": [{"dtype": "f32", "shape": [4611686018427387904, 4611686018427387904]}]}])");
  std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
  struct Case {
    std::string name, header;
    uint64_t len;
  };
  std::vector<Case> cases = {{"len.loom", "{}", uint64_t{1} << 60},
                             {"forward.loom", forward, forward.size()},
                             {"huge.loom", huge, huge.size()},
                             {"deep.loom", deep, deep.size()}};
  for (const auto& c : cases) {
    start(write(c.name, c.header, c.len));
    json s = get_json("/api/summary", 422);
    std::string msg = s["error"];
    EXPECT_NE(msg.find("[view] cannot open the package"), std::string::npos) << c.name << msg;
    EXPECT_NE(msg.find("[package]"), std::string::npos) << c.name << ": " << msg;
    EXPECT_EQ(get_json("/api/layout", 422)["error"], msg) << c.name;
  }
}

}  // namespace
}  // namespace loom::view
