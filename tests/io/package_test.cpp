// `.loom` packages: round trips (graph and executable), zero-copy loading, the checked-in v1
// package (format stability) and one test per validation rule.
#include "io/package.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backends/cpu/quant/qmatmul.h"
#include "ir/graph.h"
#include "loom/loom.h"
#include "loom/package.h"

namespace loom {
namespace {

using json = nlohmann::json;

std::string tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("loom_pkg_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

std::string data_dir() {
  const char* d = std::getenv("LOOM_TEST_DATA");
  return std::string(d ? d : "tests/data") + "/package";
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}
void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// A package split into its header and data section, to be edited and put back together.
struct Parts {
  json header;
  std::vector<uint8_t> data;
};
Parts split(const std::vector<uint8_t>& b) {
  uint64_t len;
  std::memcpy(&len, b.data() + 12, 8);
  Parts p;
  p.header = json::parse(b.begin() + 20, b.begin() + 20 + static_cast<long>(len));
  uint64_t start = (20 + len + 63) / 64 * 64;
  p.data.assign(b.begin() + static_cast<long>(start), b.end());
  return p;
}
std::vector<uint8_t> join(const Parts& p, uint32_t version = 1) {
  std::string h = p.header.dump();
  std::vector<uint8_t> b(20);
  std::memcpy(b.data(), "LOOMPKG", 8);
  std::memcpy(b.data() + 8, &version, 4);
  uint64_t len = h.size();
  std::memcpy(b.data() + 12, &len, 8);
  b.insert(b.end(), h.begin(), h.end());
  b.resize((b.size() + 63) / 64 * 64, 0);
  b.insert(b.end(), p.data.begin(), p.data.end());
  return b;
}

// A graph touching every kind of attribute value: strings, dtypes, int lists, doubles (±1e300
// clamp defaults, NaN pad value), bools, enums, tensors (constants, a variable), multi-output ops.
struct Model {
  Graph g;
  std::vector<Tensor> outputs;
};
Model make_model() {
  Model m;
  Graph& g = m.g;
  auto x = g.placeholder({-1, 8}, f32, "x");
  auto w = g.constant(random_normal({8, 16}, f32, 1, 0, 0.3), "w");
  auto b = g.constant(random_normal({16}, f32, 2), "b");
  auto h = gelu(matmul(x, w) + b, true);
  auto parts = split(h, {4, 12}, 1);
  auto s = slice(parts[1], {0, 2}, {kSliceEnd, kSliceEnd}, {0, 1}, {1, 2});
  auto p = pad(s, {0, 1}, {0, 2}, PadMode::constant, NAN);
  auto v = g.variable(zeros({8}, f32), "acc");
  auto r = g.read(v);
  g.assign(v, r + sum(x, {0}));
  auto y = softmax(clamp(parts[0], -3, 1e300), -1);
  auto z = cast(argmax(p, 1, true), f32);
  auto half = cast(layer_norm(transpose(parts[0]), {}, {}, {.axis = -1, .eps = 1e-3}), f16);
  m.outputs = {y, z, r, half, w};
  return m;
}

TEST(Package, GraphRoundTripKeepsTheIrText) {
  Model m = make_model();
  std::string path = tmp_path("graph.loom");
  save_graph(m.g, m.outputs, path);
  std::vector<Tensor> outs;
  Graph back = load_graph(path, &outs);
  EXPECT_EQ(back.to_text(outs), m.g.to_text(m.outputs));
  io::Package pkg = io::read_package(path);
  EXPECT_EQ(pkg.kind, "graph");
  EXPECT_EQ(pkg.version, 1u);

  auto in = random_uniform({3, 8}, f32, -1, 1, 7);
  auto a = m.g.compile(m.outputs).run({{"x", in}});
  auto b = back.compile(outs).run({{"x", in}});
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].type(), b[i].type()) << i;
    auto va = a[i].to_doubles(), vb = b[i].to_doubles();
    for (size_t k = 0; k < va.size(); ++k)
      if (!(std::isnan(va[k]) && std::isnan(vb[k]))) {
        ASSERT_EQ(va[k], vb[k]) << i << "," << k;
      }
  }
  std::filesystem::remove(path);
}

TEST(Package, ConstantsAreZeroCopyViewsOfTheMapping) {
  Model m = make_model();
  std::string path = tmp_path("zc.loom");
  save_graph(m.g, m.outputs, path);
  io::Package pkg = io::read_package(path);
  int constants = 0;
  for (const auto& n : pkg.graph.nodes) {
    if (n.op != ir::op::constant) continue;
    const NDArray& a = attrs_as<ConstantAttrs>(*n.attrs).value;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data()) % 64, 0u);
    // External storage: exactly the tensor's bytes (owned host storage is rounded up).
    EXPECT_EQ(a.storage()->size(), a.nbytes());
    ++constants;
  }
  EXPECT_GE(constants, 2);
  std::filesystem::remove(path);
}

TEST(Package, ExecutableRoundTripSkipsPassesAndKeepsTheLog) {
  Model m = make_model();
  auto exe = m.g.compile(m.outputs);
  std::string path = tmp_path("exe.loom");
  exe.save(path);
  auto back = Executable::load(path);
  EXPECT_EQ(back.to_text(), exe.to_text());
  EXPECT_EQ(back.variable_names(), exe.variable_names());
  ASSERT_EQ(back.inputs().size(), 1u);
  EXPECT_EQ(back.inputs()[0].name, "x");
  auto log = back.pass_log();
  for (const auto& l : exe.pass_log())
    if (l.rfind("[lower]", 0) != 0) {
      EXPECT_NE(std::find(log.begin(), log.end(), l), log.end()) << l;
    }
  EXPECT_EQ(io::read_package(path).kind, "executable");

  auto in = random_uniform({2, 8}, f32, -1, 1, 9);
  for (int run = 0; run < 2; ++run) {  // twice: the variable accumulates
    auto a = exe.run({{"x", in}});
    auto b = back.run({{"x", in}});
    for (size_t i = 0; i < a.size(); ++i) {
      auto va = a[i].to_doubles(), vb = b[i].to_doubles();
      ASSERT_EQ(va.size(), vb.size());
      for (size_t k = 0; k < va.size(); ++k)
        if (!(std::isnan(va[k]) && std::isnan(vb[k]))) {
          ASSERT_EQ(va[k], vb[k]) << i;
        }
    }
  }
  // Lowered again for another device.
  CompileOptions ref;
  ref.device = Device::reference();
  EXPECT_EQ(Executable::load(path, ref).device(), Device::reference());
  std::filesystem::remove(path);
}

// A compiled residual add + rms_norm is one two-output add_rms_norm node; it is stored, loaded
// (type inference re-runs) and run like any other node.
TEST(Package, ExecutableRoundTripKeepsAddRmsNorm) {
  Graph g;
  auto x = g.placeholder({-1, 16}, f32, "x");
  auto r = g.placeholder({-1, 16}, f32, "r");
  auto h = x + r;
  auto y = rms_norm(h, g.constant(random_uniform({16}, f32, 0.5, 1.5, 4), "gamma"));
  auto exe = g.compile({y, h * 2.0});
  ASSERT_NE(exe.to_text().find("add_rms_norm"), std::string::npos) << exe.to_text();
  std::string path = tmp_path("add_rms_norm.loom");
  exe.save(path);
  auto back = Executable::load(path);
  EXPECT_EQ(back.to_text(), exe.to_text());
  Feeds in{{"x", random_uniform({3, 16}, f32, -1, 1, 5)},
           {"r", random_uniform({3, 16}, f32, -1, 1, 6)}};
  auto a = exe.run(in), b = back.run(in);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].to_doubles(), b[i].to_doubles()) << i;
  std::filesystem::remove(path);
}

// A compiled KV-cache write of rotated keys is one in-place rope_write_slice node; it is stored,
// loaded (type inference re-runs) and runs like any other node, writing the loaded variable.
TEST(Package, ExecutableRoundTripKeepsRopeWriteSlice) {
  Graph g;
  auto k = g.placeholder({1, 2, -1, 8}, f32, "k");
  auto pos = g.placeholder({-1}, i32, "pos");
  auto at = g.placeholder({4}, i64, "at");
  auto cache = g.variable(zeros({1, 2, 6, 8}), "k_cache");
  auto keys = slice_update(g.read(cache), rope(k, pos, {.interleaved = true, .rotary_dim = 4}), at);
  g.assign(cache, keys);
  auto exe = g.compile({keys * 2.0});
  ASSERT_NE(exe.to_text().find("rope_write_slice("), std::string::npos) << exe.to_text();
  std::string path = tmp_path("rope_write_slice.loom");
  exe.save(path);
  auto back = Executable::load(path);
  EXPECT_EQ(back.to_text(), exe.to_text());
  Feeds in{{"k", random_uniform({1, 2, 2, 8}, f32, -1, 1, 5)},
           {"pos", NDArray::from_vector<int32_t>({3, 4}, {2})},
           {"at", NDArray::from_vector<int64_t>({0, 0, 3, 0}, {4})}};
  auto a = exe.run(in), b = back.run(in);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].to_doubles(), b[i].to_doubles()) << i;
  EXPECT_EQ(exe.variable("k_cache").to_doubles(), back.variable("k_cache").to_doubles());
  EXPECT_NE(back.variable("k_cache").to_doubles(), zeros({1, 2, 6, 8}).to_doubles());
  std::filesystem::remove(path);
}

// A residual add + rms_norm whose norm feeds a quantized_matmul compiles (fuse_add_rms_norm, then
// fuse_add_rms_norm_into_quantized_matmul) to one two-output add_rms_norm_quantized_matmul node; it
// is stored, loaded (type inference re-runs) and run like any other node.
TEST(Package, ExecutableRoundTripKeepsAddRmsNormQuantizedMatmul) {
  namespace q = cpu::quant;
  const int64_t n = 8, k = 64;
  NDArray w = random_uniform({n, k}, f32, -1, 1, 7);
  const auto rb = static_cast<int64_t>(q::row_bytes(q::Format::q4_0, k));
  NDArray packed(u8, {n, rb});
  for (int64_t r = 0; r < n; ++r)
    q::quantize_row(q::Format::q4_0, w.data_as<float>() + r * k, k,
                    packed.data_as<uint8_t>() + r * rb);
  Graph g;
  auto x = g.placeholder({-1, k}, f32, "x");
  auto r = g.placeholder({-1, k}, f32, "r");
  auto h = x + r;
  auto normed = rms_norm(h, g.constant(random_uniform({k}, f32, 0.5, 1.5, 4), "gamma"));
  auto y = quantized_matmul(normed, g.constant(packed, "w"), "q4_0", n, k);
  auto exe = g.compile({y, h * 2.0});
  ASSERT_NE(exe.to_text().find("add_rms_norm_quantized_matmul("), std::string::npos)
      << exe.to_text();
  std::string path = tmp_path("add_rms_norm_quantized_matmul.loom");
  exe.save(path);
  auto back = Executable::load(path);
  EXPECT_EQ(back.to_text(), exe.to_text());
  Feeds in{{"x", random_uniform({3, k}, f32, -1, 1, 5)},
           {"r", random_uniform({3, k}, f32, -1, 1, 6)}};
  auto a = exe.run(in), b = back.run(in);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].to_doubles(), b[i].to_doubles()) << i;
  std::filesystem::remove(path);
}

TEST(Package, TiedConstantsAreStoredOnce) {
  Graph g;
  auto x = g.placeholder({4}, f32, "x");
  NDArray w = random_normal({1024}, f32, 3);
  auto y = x * g.constant(w.view({4}, {1}, 0)) + g.constant(w.view({4}, {1}, 0));
  std::string path = tmp_path("tied.loom");
  save_graph(g, {y}, path);
  io::Package pkg = io::read_package(path);
  EXPECT_EQ(pkg.data_bytes, 64u);
  std::filesystem::remove(path);
}

// ---- format stability: a package written by version 1, checked in -----------------------------

TEST(Package, LoadsTheCheckedInV1Package) {
  std::string dir = data_dir();
  if (std::getenv("LOOM_REGENERATE_PACKAGE_GOLDEN")) {
    Graph g;
    auto x = g.placeholder({-1, 4}, f32, "x");
    auto w1 = g.constant(random_normal({4, 8}, f32, 11, 0, 0.5), "w1");
    auto b1 = g.constant(random_normal({8}, f32, 12, 0, 0.1), "b1");
    auto w2 = g.constant(random_normal({8, 3}, f32, 13, 0, 0.5), "w2");
    auto y = softmax(matmul(tanh(matmul(x, w1) + b1), w2), -1);
    auto exe = g.compile({y});
    std::filesystem::create_directories(dir);
    exe.save(dir + "/v1_mlp.loom");
    auto in = random_uniform({2, 4}, f32, -1, 1, 5);
    in.save_npy(dir + "/v1_mlp_input.npy");
    exe.run({{"x", in}})[0].save_npy(dir + "/v1_mlp_output.npy");
  }
  auto exe = Executable::load(dir + "/v1_mlp.loom");
  auto in = NDArray::load_npy(dir + "/v1_mlp_input.npy");
  auto want = NDArray::load_npy(dir + "/v1_mlp_output.npy").to_vector<float>();
  auto got = exe.run({{"x", in}})[0].to_vector<float>();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6) << i;
  EXPECT_EQ(io::read_package(dir + "/v1_mlp.loom").version, 1u);
}

// ---- never trust the file ----------------------------------------------------------------------

class PackageErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    Model m = make_model();
    base_path_ = tmp_path("base.loom");
    save_graph(m.g, m.outputs, base_path_);
    base_ = read_bytes(base_path_);
  }
  void TearDown() override { std::filesystem::remove(base_path_); }

  // Loads `bytes` from a file and returns the error message ("" if it loaded).
  std::string error_of(const std::vector<uint8_t>& bytes) {
    std::string p = tmp_path("bad.loom");
    write_bytes(p, bytes);
    try {
      load_graph(p);
    } catch (const Error& e) {
      std::filesystem::remove(p);
      return e.what();
    }
    std::filesystem::remove(p);
    return "";
  }
  std::string edited(const std::function<void(json&)>& edit) {
    Parts p = split(base_);
    edit(p.header);
    return error_of(join(p));
  }
  json& node(json& h, const std::string& op, int nth = 0) {
    for (auto& n : h["graph"]["nodes"])
      if (n["op"] == op && nth-- == 0) return n;
    throw std::runtime_error("no such node");
  }

  std::string base_path_;
  std::vector<uint8_t> base_;
};

#define EXPECT_ERROR_HAS(msg, text)                                           \
  do {                                                                        \
    std::string m_ = (msg);                                                   \
    EXPECT_NE(m_.find(text), std::string::npos) << "message: '" << m_ << "'"; \
    EXPECT_EQ(m_.rfind("[package] ", 0), 0u) << m_;                           \
  } while (0)

TEST_F(PackageErrors, MissingFileAndPrefix) {
  try {
    load_graph("/nonexistent/x.loom");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.loom: cannot open"), std::string::npos);
  }
  EXPECT_ERROR_HAS(error_of({}), "too short");
  auto b = base_;
  b[0] = 'X';
  EXPECT_ERROR_HAS(error_of(b), "bad magic");
  EXPECT_ERROR_HAS(error_of(join(split(base_), kPackageVersion + 1)),
                   "format version " + std::to_string(kPackageVersion + 1) + " is not supported");
  b = base_;
  uint64_t huge = 1ull << 60;
  std::memcpy(b.data() + 12, &huge, 8);
  EXPECT_ERROR_HAS(error_of(b), "runs past the end");
  b = base_;
  b[20] = 'x';
  EXPECT_ERROR_HAS(error_of(b), "not valid JSON");
  b = base_;
  b.resize(base_.size() - 100);
  EXPECT_ERROR_HAS(error_of(b), "outside the data section");
}

TEST_F(PackageErrors, HeaderStructure) {
  EXPECT_ERROR_HAS(edited([](json& h) { h = json::array(); }), "must be a JSON object");
  EXPECT_ERROR_HAS(edited([](json& h) { h.erase("graph"); }), "has no 'graph'");
  EXPECT_ERROR_HAS(edited([](json& h) { h["kind"] = "model"; }), "kind must be");
  EXPECT_ERROR_HAS(edited([](json& h) { h["graph"]["nodes"] = 3; }),
                   "graph.nodes must be an array");
  EXPECT_ERROR_HAS(edited([](json& h) { h["compile_options"]["device"] = "tpu"; }), "device");
}

TEST_F(PackageErrors, OpsAttributesAndInputs) {
  EXPECT_ERROR_HAS(edited([&](json& h) { node(h, "gelu")["op"] = "frobnicate"; }),
                   "unknown op 'frobnicate'");
  EXPECT_ERROR_HAS(edited([&](json& h) {
                     node(h, "gelu")["attrs"]["bogus"] = {{"i", 1}};
                   }),
                   "unknown field 'bogus'");
  EXPECT_ERROR_HAS(edited([&](json& h) {
                     node(h, "gelu")["attrs"]["tanh_approximation"] = {{"s", "x"}};
                   }),
                   "wrong type");
  EXPECT_ERROR_HAS(edited([&](json& h) {
                     node(h, "softmax")["attrs"]["axis"] = {{"i", 7}};
                   }),
                   "(softmax)");
  EXPECT_ERROR_HAS(edited([&](json& h) {
                     node(h, "gelu")["inputs"][0] = {99, 0};
                   }),
                   "not defined before it");
  EXPECT_ERROR_HAS(edited([&](json& h) {
                     node(h, "gelu")["inputs"][0] = {0, 5};
                   }),
                   "refers to output 5");
  EXPECT_ERROR_HAS(edited([&](json& h) { node(h, "gelu")["inputs"] = json::array(); }),
                   "takes 1 inputs");
  EXPECT_ERROR_HAS(edited([&](json& h) {
                     node(h, "read")["attrs"]["variable"] = {{"s", "nope"}};
                   }),
                   "unknown variable 'nope'");
  EXPECT_ERROR_HAS(edited([&](json& h) {
                     node(h, "gelu")["outputs"][0]["shape"] = {1, 2};
                   }),
                   "differ from the inferred");
  EXPECT_ERROR_HAS(edited([&](json& h) {
                     h["graph"]["outputs"][0] = {1000, 0};
                   }),
                   "graph.outputs[0]");
  EXPECT_ERROR_HAS(
      edited([&](json& h) { h["graph"]["variables"].push_back(h["graph"]["variables"][0]); }),
      "defined twice");
}

TEST_F(PackageErrors, TensorReferences) {
  auto tref = [&](json& h) -> json& { return node(h, "constant")["attrs"]["value"]["t"]; };
  EXPECT_ERROR_HAS(edited([&](json& h) { tref(h)["dtype"] = "f31"; }), "unknown dtype 'f31'");
  EXPECT_ERROR_HAS(edited([&](json& h) { tref(h)["offset"] = 3; }), "not a multiple of 64");
  EXPECT_ERROR_HAS(edited([&](json& h) { tref(h)["offset"] = 1 << 30; }),
                   "outside the data section");
  EXPECT_ERROR_HAS(edited([&](json& h) { tref(h)["offset"] = -64; }), "not a multiple of 64");
  EXPECT_ERROR_HAS(edited([&](json& h) { tref(h)["nbytes"] = 4; }), "does not match");
  EXPECT_ERROR_HAS(edited([&](json& h) { tref(h)["shape"] = {-1, 8}; }), "invalid dim");
  EXPECT_ERROR_HAS(edited([&](json& h) {
                     tref(h)["shape"] = {1 << 30, 1 << 30, 1 << 30};
                   }),
                   "too large");
  EXPECT_ERROR_HAS(edited([&](json& h) { tref(h)["offset"] = 1.5; }), "must be an integer");
  EXPECT_ERROR_HAS(edited([&](json& h) { tref(h)["offset"] = UINT64_MAX; }), "out of range");
}

}  // namespace
}  // namespace loom
