// Runs every op case on every backend against the reference backend, with static and with
// fully dynamic placeholder shapes, on fresh random inputs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <set>

#include "ir/graph.h"
#include "ir/op_registry.h"
#include "loom/package.h"
#include "ops/op_case.h"

namespace loom::testing {
namespace {

struct Tolerance {
  double rtol, atol;
};
Tolerance default_tolerance(DType t) {
  switch (t) {
    case DType::f32:
      return {2e-4, 2e-5};
    case DType::f64:
      return {1e-10, 1e-12};
    case DType::f16:
      return {4e-3, 2e-3};
    case DType::bf16:
      return {2e-2, 1e-2};
    default:
      return {0, 0};
  }
}

// Empty string when close, else a description of the first mismatch.
std::string compare(const NDArray& got, const NDArray& want, Tolerance tol) {
  if (got.type() != want.type())
    return "type " + got.type().to_string() + " vs " + want.type().to_string();
  auto a = got.to_doubles(), b = want.to_doubles();
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    if (std::isinf(b[i]) && a[i] == b[i]) continue;
    if (!(std::abs(a[i] - b[i]) <= tol.atol + tol.rtol * std::abs(b[i])))
      return "element " + std::to_string(i) + ": got " + std::to_string(a[i]) + ", want " +
             std::to_string(b[i]);
  }
  return "";
}

struct Param {
  const OpCase* c;
  bool dynamic;
};

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  std::string s = info.param.c->name + (info.param.dynamic ? "_dynamic" : "");
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s + "_" + std::to_string(info.index);
}

std::vector<Param> all_params() {
  std::vector<Param> p;
  for (const auto& c : op_cases()) {
    p.push_back({&c, false});
    p.push_back({&c, true});
  }
  return p;
}

class OpCaseTest : public ::testing::TestWithParam<Param> {};

TEST_P(OpCaseTest, CpuMatchesReference) {
  OpCase c = *GetParam().c;
  if (GetParam().dynamic)
    for (auto& in : c.inputs)
      in.declared = Shape(std::vector<int64_t>(static_cast<size_t>(in.shape.rank()), kDynamic));
  std::vector<Tensor> outs;
  Graph g = build_case(c, &outs);
  CompileOptions ref_opt;
  ref_opt.device = Device::reference();
  ref_opt.optimization_level = 0;
  Executable ref = g.compile(outs, ref_opt);
  Executable cpu = g.compile(outs);
  uint64_t seed = std::random_device{}();
  auto feeds = make_inputs(c, seed);
  auto want = ref.run(feeds);
  auto got = cpu.run(feeds);
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < got.size(); ++i) {
    Tolerance tol =
        c.rtol || c.atol ? Tolerance{c.rtol, c.atol} : default_tolerance(want[i].dtype());
    EXPECT_EQ(compare(got[i], want[i], tol), "")
        << c.name << " output " << i << " (seed " << seed << ")";
    EXPECT_EQ(got[i].shape(), want[i].shape());
  }
  // A second run on the same executable gives the same answer (plans and arenas are reused).
  auto again = cpu.run(feeds);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(compare(again[i], got[i], {0, 0}), "");
}

// The CUDA backend against the CPU backend, on the same random inputs: host feeds (copied in and
// out), then the same feeds already on the device (zero copy: outputs stay on the device).
TEST_P(OpCaseTest, CudaMatchesCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU";
  OpCase c = *GetParam().c;
  if (GetParam().dynamic)
    for (auto& in : c.inputs)
      in.declared = Shape(std::vector<int64_t>(static_cast<size_t>(in.shape.rank()), kDynamic));
  std::vector<Tensor> outs;
  Graph g = build_case(c, &outs);
  CompileOptions gpu_opt;
  gpu_opt.device = Device::cuda(0);
  Executable cpu = g.compile(outs);
  Executable gpu;
  try {
    gpu = g.compile(outs, gpu_opt);
  } catch (const Error& e) {
    // Ops without a CUDA kernel yet fail compilation clearly (never run wrong): counted as skips.
    if (std::string(e.what()).find("has no kernel on cuda") != std::string::npos)
      GTEST_SKIP() << e.what();
    throw;
  }
  uint64_t seed = std::random_device{}();
  auto feeds = make_inputs(c, seed);
  auto want = cpu.run(feeds);
  auto got = gpu.run(feeds);
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].device(), Device::cpu());
    Tolerance tol =
        c.rtol || c.atol ? Tolerance{c.rtol, c.atol} : default_tolerance(want[i].dtype());
    EXPECT_EQ(compare(got[i], want[i], tol), "")
        << c.name << " output " << i << " (seed " << seed << ")";
  }
  Feeds on_device;
  for (const auto& [name, a] : feeds) on_device.emplace_back(name, to_device(a, Device::cuda(0)));
  auto dev = gpu.run(on_device);
  for (size_t i = 0; i < dev.size(); ++i) {
    if (!feeds.empty()) {
      EXPECT_EQ(dev[i].device(), Device::cuda(0));
    }
    Tolerance tol =
        c.rtol || c.atol ? Tolerance{c.rtol, c.atol} : default_tolerance(got[i].dtype());
    EXPECT_EQ(compare(to_host(dev[i]), got[i], tol), "") << c.name << " device run, output " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(All, OpCaseTest, ::testing::ValuesIn(all_params()), param_name);

TEST(OpCaseCoverage, EveryRegisteredOpHasACase) {
  std::set<ir::OpId> used;
  for (const auto& c : op_cases()) {
    std::vector<Tensor> outs;
    Graph g = build_case(c, &outs);
    for (const auto& n : g.data()->nodes) used.insert(n.op);
  }
  const auto& reg = ir::OpRegistry::get();
  for (ir::OpId id = 0; id < ir::op::kNumBuiltin; ++id) {
    const auto& info = reg.info(id);
    // Sources, effects and in-place forms (made by passes) are tested in tests/runtime.
    if (info.is_source() || info.has_side_effects() || info.is_inplace()) continue;
    if (id == ir::op::call) continue;  // runs another executable: tests/runtime/call_test.cpp
    EXPECT_TRUE(used.count(id)) << "op '" << info.name << "' has no case in tests/ops/cases/";
  }
}

// Every case's graph (so every op with a case, the in-place ones built directly included) is
// saved as a `.loom` package and loaded back unchanged: op names and attributes serialise
// generically (names from ops.def, attributes through LOOM_FIELDS), and this checks it per op.
TEST(OpCaseCoverage, EveryCaseRoundTripsThroughAPackage) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("loom_op_cases_" + std::to_string(::getpid()) + ".loom"))
                               .string();
  std::set<ir::OpId> seen;
  for (const auto& c : op_cases()) {
    std::vector<Tensor> outs, back_outs;
    Graph g = build_case(c, &outs);
    save_graph(g, outs, path);
    Graph back = load_graph(path, &back_outs);
    EXPECT_EQ(back.to_text(back_outs), g.to_text(outs)) << c.name;
    for (const auto& n : back.data()->nodes) seen.insert(n.op);
  }
  std::filesystem::remove(path);
  EXPECT_TRUE(seen.count(ir::op::rope_write_slice));
  EXPECT_TRUE(seen.count(ir::op::rope_write_kv));
  EXPECT_TRUE(seen.count(ir::op::rope_write_kv_sdpa));
  EXPECT_TRUE(seen.count(ir::op::add_rms_norm_quantized_matmul));
}

TEST(OpCaseHarness, CompareDetectsMismatches) {
  NDArray a = NDArray::from_vector<float>({1, 2, 3}, {3});
  NDArray b = NDArray::from_vector<float>({1, 2, 3.01f}, {3});
  EXPECT_NE(compare(a, b, default_tolerance(DType::f32)), "");
  EXPECT_EQ(compare(a, a, default_tolerance(DType::f32)), "");
  EXPECT_NE(compare(a, a.astype(DType::f16), default_tolerance(DType::f32)), "");
}

}  // namespace
}  // namespace loom::testing
