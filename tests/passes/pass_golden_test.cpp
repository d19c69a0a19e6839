// Golden tests: tests/passes/golden/<pass>.before.ir is parsed, the pass runs, and the printed
// result must equal <pass>.after.ir. LOOM_UPDATE_GOLDEN=1 rewrites the .after files (review the
// diff!). Also checks that the IR text round-trips.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "ir/graph.h"
#include "loom/loom.h"
#include "passes/pass.h"

namespace loom {
namespace {

std::string golden_dir() {
  const char* d = std::getenv("LOOM_TEST_DATA");
  return std::string(d ? d : "tests/data") + "/../passes/golden/";
}

std::string read_file(const std::string& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string run_pass(const std::string& name, const std::string& before) {
  std::vector<ir::Value> outs;
  ir::GraphData g = ir::parse_graph(before, &outs);
  std::vector<std::string> log;
  CompileOptions opt;
  passes::PassContext ctx{g, outs, log, opt, nullptr};
  ctx.evaluate = [](const ir::Node& n, const std::vector<NDArray>& in) {
    // The compile driver evaluates on the reference backend; compile a one-op graph the same way.
    ir::GraphData one;
    std::vector<ir::Value> args;
    for (size_t i = 0; i < in.size(); ++i)
      args.push_back(ir::add_node(one, ir::op::constant, {}, make_attrs(ConstantAttrs{in[i]}))[0]);
    ir::add_node(one, n.op, args, n.attrs);
    Graph graph(std::make_shared<ir::GraphData>(one));
    std::vector<Tensor> targets;
    for (size_t k = 0; k < n.outputs.size(); ++k)
      targets.emplace_back(graph.data(), static_cast<int32_t>(one.nodes.size() - 1),
                           static_cast<int32_t>(k));
    CompileOptions ref;
    ref.device = Device::reference();
    ref.optimization_level = 0;
    return graph.compile(targets, ref).run({});
  };
  for (const auto& p : passes::pipeline())
    if (name == p.name) p.run(ctx);
  std::string text = ir::print_graph(g, outs);
  for (const auto& l : log) text = "// " + l + "\n" + text;
  return text;
}

TEST(PassGolden, MatchesAfterFiles) {
  int checked = 0;
  for (const auto& e : std::filesystem::directory_iterator(golden_dir())) {
    std::string path = e.path().string();
    if (path.size() < 10 || path.substr(path.size() - 10) != ".before.ir") continue;
    std::string name = e.path().filename().string();
    name = name.substr(0, name.size() - 10);
    std::string after_path = path.substr(0, path.size() - 10) + ".after.ir";
    std::string got = run_pass(name, read_file(path));
    if (std::getenv("LOOM_UPDATE_GOLDEN")) std::ofstream(after_path) << got;
    EXPECT_EQ(got, read_file(after_path)) << name;
    ++checked;
  }
  EXPECT_GE(checked, 3);
}

TEST(IrText, RoundTrips) {
  for (const auto& e : std::filesystem::directory_iterator(golden_dir())) {
    std::vector<ir::Value> outs;
    ir::GraphData g = ir::parse_graph(read_file(e.path().string()), &outs);
    std::string once = ir::print_graph(g, outs);
    std::vector<ir::Value> outs2;
    ir::GraphData g2 = ir::parse_graph(once, &outs2);
    EXPECT_EQ(ir::print_graph(g2, outs2), once) << e.path();
  }
}

TEST(IrText, ParseErrorsPointAtTheLine) {
  std::vector<ir::Value> outs;
  auto err = [&](const std::string& text) {
    try {
      ir::parse_graph(text, &outs);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(err("%0 = frobnicate\n").find("line 1, column 6: unknown op 'frobnicate'"),
            std::string::npos)
      << err("%0 = frobnicate\n");
  EXPECT_NE(err("%0 = placeholder {name=\"x\", dtype=\"f32\", shape=[2]}\n%1 = add(%0, %7)\n")
                .find("line 2"),
            std::string::npos);
  EXPECT_NE(err("%0 = placeholder {name=\"x\", dtype=\"f32\", shape=[2]} : f32[3]\n")
                .find("declared types differ"),
            std::string::npos);
  EXPECT_NE(err("%0 = placeholder {nme=\"x\"}\n").find("unknown field 'nme'"), std::string::npos);
  EXPECT_NE(err("%0 = placeholder {name=\"x\", dtype=\"f32\", shape=[2,3]}\n%1 = matmul(%0, %0)\n")
                .find("line 2, column 1: [matmul] (f32[2,3], f32[2,3]): inner dims differ"),
            std::string::npos);
}

}  // namespace
}  // namespace loom
