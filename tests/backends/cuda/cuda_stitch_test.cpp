// Stitched regions on CUDA: generated source compiled by NVRTC (runs without a GPU: NVRTC needs
// none), the disk cache, clear errors; with a GPU, random elementwise programs against the CPU
// backend (both stitch the same graph) and the compile-once guarantees.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "backends/cuda/nvrtc_compile.h"
#include "backends/cuda/stitched.h"
#include "ir/graph.h"
#include "loom/loom.h"
#include "ops/stitched.h"

namespace loom {
namespace {

namespace nv = backends::cuda::nvrtc;

#define REQUIRE_GPU() \
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU"

using Body = std::function<Tensor(const std::vector<Tensor>&)>;

// The program text of `body` over placeholders in0..inN-1 (what the stitch pass writes).
std::string program_text(const std::vector<std::pair<Shape, DType>>& inputs, const Body& body) {
  Graph p;
  std::vector<Tensor> ph;
  for (size_t i = 0; i < inputs.size(); ++i)
    ph.push_back(p.placeholder(inputs[i].first, inputs[i].second, "in" + std::to_string(i)));
  Tensor out = body(ph);
  return ir::print_graph(*p.data(), {{out.node(), out.index()}});
}

// Every op the CUDA code generator knows, on f32, f16 and bf16 inputs and a bool input (no
// constants: a program's operands are all region inputs).
Tensor every_op(const std::vector<Tensor>& x) {
  Tensor a = x[0], b = cast(x[1], f32), c = cast(x[2], f32), m = x[3];
  Tensor y = a + b - c * a / (b + c);
  y = pow(abs(y) + c, c) + maximum(y, b) - minimum(a, c) + mod(a, b);
  y = neg(y) + abs(y) + sign(y) + square(y) + reciprocal(y + a);
  y = exp(clamp(y, -5, 5)) + log(abs(y) + b) + sqrt(abs(y)) + rsqrt(abs(y) + c);
  y = sin(y) + cos(y) + tanh(y) + sigmoid(y) + silu(y) + gelu(y) + gelu(y, true) + erf(y);
  y = floor(y) + ceil(y) + round(y);
  Tensor mask =
      logical_xor(logical_or(logical_and(equal(a, b), not_equal(a, c)), logical_not(less(a, b))),
                  logical_and(less_equal(b, c), m));
  mask = logical_or(mask, logical_and(greater(a, c), greater_equal(c, b)));
  y = where(mask, y, cast(cast(y, f16), f32) + cast(cast(y, bf16), f32) + cast(mask, f32));
  return cast(y, bf16);
}
const std::vector<std::pair<Shape, DType>> kEveryOpInputs = {
    {{4, 8}, f32}, {{4, 1}, f16}, {{8}, bf16}, {{4, 8}, boolean}};

std::string every_op_source() {
  auto prog = ops::parse_stitch_program(program_text(kEveryOpInputs, every_op));
  return backends::cuda::stitched_source(*prog);
}

// A fresh cache folder per test (tests run as separate processes in parallel under ctest).
struct CacheDir {
  std::filesystem::path path;
  CacheDir() {
    path =
        std::filesystem::temp_directory_path() / ("loom-nvrtc-test-" + std::to_string(::getpid()) +
                                                  "-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(path);
    setenv("LOOM_CACHE_DIR", path.c_str(), 1);
  }
  ~CacheDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    unsetenv("LOOM_CACHE_DIR");
  }
};

// --- without a GPU ------------------------------------------------------------------------------

TEST(CudaStitchCodegen, GeneratedSourceCompilesWithNvrtc) {
  std::string src = every_op_source();
  // The source depends on the program only: shapes never appear in it.
  EXPECT_EQ(src, every_op_source());
  EXPECT_NE(src.find("loom_body"), std::string::npos);
  auto cubin = nv::compile(src, "sm_90", "test program", {false, false});
  ASSERT_GT(cubin->size(), 1000u);
  EXPECT_EQ(std::memcmp(cubin->data(),
                        "\x7f"
                        "ELF",
                        4),
            0);  // a cubin is an ELF image
}

TEST(CudaStitchCodegen, SameProgramOtherShapesSameSource) {
  auto body = [](const std::vector<Tensor>& x) { return silu(x[0]) * x[1] + x[2]; };
  auto a = ops::parse_stitch_program(
      program_text({{{37, 301}, f32}, {{37, 301}, f32}, {{301}, f32}}, body));
  auto b = ops::parse_stitch_program(
      program_text({{{2, 5, 8}, f32}, {{2, 5, 8}, f32}, {{1, 8}, f32}}, body));
  EXPECT_EQ(backends::cuda::stitched_source(*a), backends::cuda::stitched_source(*b));
}

TEST(CudaStitchCodegen, DiskCacheIsUsedOnSecondCompile) {
  CacheDir dir;
  std::string src = every_op_source();
  nv::Stats s0 = nv::stats();
  auto t0 = std::chrono::steady_clock::now();
  auto first = nv::compile(src, "sm_90", "test", {.memory_cache = false});
  auto t1 = std::chrono::steady_clock::now();
  nv::Stats s1 = nv::stats();
  EXPECT_EQ(s1.compiles, s0.compiles + 1);
  EXPECT_EQ(s1.disk_writes, s0.disk_writes + 1);
  size_t files = 0;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir.path))
    files += e.is_regular_file() && e.path().extension() == ".cubin";
  EXPECT_EQ(files, 1u);
  // A second compile (as a new process would do: memory cache skipped) reads the disk.
  auto second = nv::compile(src, "sm_90", "test", {.memory_cache = false});
  auto t2 = std::chrono::steady_clock::now();
  nv::Stats s2 = nv::stats();
  EXPECT_EQ(s2.compiles, s1.compiles);
  EXPECT_EQ(s2.disk_hits, s1.disk_hits + 1);
  EXPECT_EQ(*first, *second);
  double compile_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  double hit_ms = std::chrono::duration<double, std::milli>(t2 - t1).count();
  std::printf("NVRTC compile %.1f ms, disk cache hit %.2f ms\n", compile_ms, hit_ms);
  EXPECT_LT(hit_ms, compile_ms);
  // And a third, through this process's memory cache, touches neither.
  nv::compile(src, "sm_90", "test");
  nv::compile(src, "sm_90", "test");
  EXPECT_GE(nv::stats().memory_hits, s2.memory_hits + 1);
  EXPECT_EQ(nv::stats().compiles, s2.compiles);
}

TEST(CudaStitchCodegen, CorruptOrUnwritableCacheFallsBackToCompiling) {
  CacheDir dir;
  std::string src = every_op_source() + "// corrupt-cache variant\n";
  auto good = nv::compile(src, "sm_90", "test", {.memory_cache = false});
  for (auto& e : std::filesystem::recursive_directory_iterator(dir.path)) {
    if (!e.is_regular_file()) continue;
    std::filesystem::resize_file(e.path(), std::filesystem::file_size(e.path()) / 2);  // truncated
  }
  nv::Stats s0 = nv::stats();
  auto again = nv::compile(src, "sm_90", "test", {.memory_cache = false});
  nv::Stats s1 = nv::stats();
  EXPECT_EQ(s1.disk_rejects, s0.disk_rejects + 1);
  EXPECT_EQ(s1.compiles, s0.compiles + 1);
  EXPECT_EQ(*again, *good);
  // Garbage with the right length is rejected by the checksum.
  for (auto& e : std::filesystem::recursive_directory_iterator(dir.path)) {
    if (!e.is_regular_file()) continue;
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.write("garbage!", 8);
  }
  auto third = nv::compile(src, "sm_90", "test", {.memory_cache = false});
  EXPECT_EQ(nv::stats().disk_rejects, s1.disk_rejects + 1);
  EXPECT_EQ(*third, *good);
  // A cache folder that cannot be created: compiling still works.
  setenv("LOOM_CACHE_DIR", "/proc/loom-cannot-create-this", 1);
  auto fourth = nv::compile(src, "sm_90", "test", {.memory_cache = false});
  EXPECT_EQ(*fourth, *good);
}

TEST(CudaStitchCodegen, CompileErrorCarriesTheNvrtcLog) {
  try {
    nv::compile("extern \"C\" __global__ void k() { undefined_thing(); }", "sm_90", "bad source",
                {false, false});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("NVRTC could not compile bad source"), std::string::npos) << m;
    EXPECT_NE(m.find("undefined_thing"), std::string::npos) << m;  // the log names the problem
  }
}

TEST(CudaStitchCodegen, MalformedProgramIsAClearError) {
  try {
    ops::parse_stitch_program("this is not a program");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[stitched] malformed program"), std::string::npos)
        << e.what();
  }
  // A stitched node whose program does not match its inputs fails when it is built.
  Graph g;
  auto x = g.placeholder({4}, f32, "x");
  std::string text =
      program_text({{{4}, f16}}, [](const std::vector<Tensor>& v) { return exp(v[0]) + v[0]; });
  try {
    ir::add_node(*g.data(), ir::op::stitched, {{x.node(), x.index()}},
                 make_attrs(StitchedAttrs{text}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the program expects f16"), std::string::npos) << e.what();
  }
}

// --- random programs ----------------------------------------------------------------------------

struct RandomProgram {
  std::vector<std::pair<Shape, DType>> inputs;
  Body body;
  int ops = 0;
};

// A chain of 2-12 elementwise ops over 1-5 inputs broadcast to a random shape. Every op takes the
// previous value and, for binary ops, another value of the program; dtypes are kept legal with
// casts (which are members too, and round).
RandomProgram random_program(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  RandomProgram r;
  const DType ft = std::vector<DType>{f32, f16, bf16}[static_cast<size_t>(uni(0, 2))];
  std::vector<int64_t> out_dims;
  for (int d = 0, rank = uni(1, 4); d < rank; ++d)
    out_dims.push_back(std::vector<int64_t>{1, 2, 3, 5, 8, 16, 33, 64}[uni(0, 7)]);
  int nin = uni(1, 5);
  for (int i = 0; i < nin; ++i) {
    std::vector<int64_t> dims = out_dims;
    if (i > 0) {  // input 0 has the full shape; the others broadcast
      for (auto& d : dims)
        if (uni(0, 2) == 0) d = 1;
      while (!dims.empty() && uni(0, 3) == 0) dims.erase(dims.begin());
    }
    DType t = (i > 0 && uni(0, 4) == 0) ? boolean : ft;
    r.inputs.push_back({Shape(dims), t});
  }
  const int len = uni(2, 12);
  r.ops = len;
  const uint64_t op_seed = rng();
  r.body = [ft, len, op_seed](const std::vector<Tensor>& in) {
    std::mt19937_64 g(op_seed);
    auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(g); };
    std::vector<Tensor> pool(in.begin(), in.end());
    auto as = [&](const Tensor& t, DType d) { return t.dtype() == d ? t : cast(t, d); };
    Tensor cur = in[0];
    for (int k = 0; k < len; ++k) {
      Tensor other = pool[static_cast<size_t>(pick(0, static_cast<int>(pool.size()) - 1))];
      Tensor x = as(cur, ft), y = as(other, ft);
      // Casts count as ops; the chain's op count is what the generator drew.
      switch (pick(0, 27)) {
        case 0:
          cur = x + y;
          break;
        case 1:
          cur = x - y;
          break;
        case 2:
          cur = x * y;
          break;
        case 3:
          cur = x / (abs(y) + 0.5);
          break;
        case 4:
          cur = maximum(x, y);
          break;
        case 5:
          cur = minimum(x, y);
          break;
        case 6:
          cur = mod(x, y);
          break;
        case 7:
          cur = pow(abs(x) + 0.5, clamp(y, -2, 2));
          break;
        case 8:
          cur = neg(x);
          break;
        case 9:
          cur = abs(x);
          break;
        case 10:
          cur = sign(x);
          break;
        case 11:
          cur = square(clamp(x, -8, 8));
          break;
        case 12:
          cur = exp(clamp(x, -8, 8));
          break;
        case 13:
          cur = log(abs(x) + 0.25);
          break;
        case 14:
          cur = sqrt(abs(x));
          break;
        case 15:
          cur = tanh(x);
          break;
        case 16:
          cur = sigmoid(x);
          break;
        case 17:
          cur = silu(x);
          break;
        case 18:
          cur = gelu(x, pick(0, 1) == 1);
          break;
        case 19:
          cur = erf(x);
          break;
        case 20:
          cur = sin(x) + cos(y);
          break;
        case 21:
          cur = floor(x * 3.0) + round(y) + ceil(x);
          break;
        case 22:
          cur = clamp(x, -1.5, 2.5);
          break;
        case 23:
          cur = where(less(x, y), x, y * 0.5);
          break;
        case 24:
          cur = cast(greater(x, y), ft);
          break;
        case 25:
          cur = where(logical_or(as(other, boolean), logical_not(equal(x, y))), x, y);
          break;
        case 26:
          cur = cast(cast(x, ft == f16 ? bf16 : f16), ft);
          break;
        case 27:
          cur = rsqrt(abs(x) + 1.0) * reciprocal(abs(y) + 1.0);
          break;
      }
      pool.push_back(cur);
    }
    // The region's output dtype varies too: sometimes a mask, sometimes f32.
    switch (pick(0, 3)) {
      case 0:
        return greater(as(cur, ft), in[0].dtype() == boolean ? cast(in[0], ft) : in[0]);
      case 1:
        return as(cur, f32);
      default:
        return as(cur, ft);
    }
  };
  return r;
}

NDArray random_input(const Shape& s, DType t, uint64_t seed) {
  if (t != boolean) return random_uniform(s, t, -3, 3, seed);
  std::mt19937_64 rng(seed);
  std::vector<double> v(static_cast<size_t>(s.numel()));
  for (auto& e : v) e = static_cast<double>(rng() & 1);
  return NDArray::from_doubles(v, s, boolean);
}

// Elements that differ beyond tolerance (NaN matches NaN, inf matches the same inf).
int64_t mismatches(const NDArray& got, const NDArray& want, double rtol, double atol) {
  auto g = got.to_doubles(), w = want.to_doubles();
  int64_t bad = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(g[i]) && std::isnan(w[i])) continue;
    if (g[i] == w[i]) continue;
    if (!(std::abs(g[i] - w[i]) <= atol + rtol * std::abs(w[i]))) ++bad;
  }
  return bad;
}

TEST(CudaStitch, RandomProgramsMatchCpu) {
  REQUIRE_GPU();
  int stitched = 0;
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    RandomProgram rp = random_program(seed);
    Graph g;
    std::vector<Tensor> ph;
    Feeds feeds;
    for (size_t i = 0; i < rp.inputs.size(); ++i) {
      std::string name = "x" + std::to_string(i);
      ph.push_back(g.placeholder(rp.inputs[i].first, rp.inputs[i].second, name));
      feeds.emplace_back(name,
                         random_input(rp.inputs[i].first, rp.inputs[i].second, seed * 131 + i));
    }
    Tensor out = rp.body(ph);
    CompileOptions gpu_opt;
    gpu_opt.device = Device::cuda(0);
    Executable cpu = g.compile({out});
    Executable gpu = g.compile({out}, gpu_opt);
    stitched += gpu.to_text().find("stitched") != std::string::npos;
    auto want = cpu.run(feeds)[0];
    auto got = gpu.run(feeds)[0];
    ASSERT_EQ(got.dtype(), want.dtype());
    ASSERT_EQ(got.shape(), want.shape());
    // f32 math differs by a few ulp between the two (CPU fast exp/tanh, CUDA expf/tanhf); a
    // floor, round, comparison or rounding cast after it can turn that into a whole step at a
    // few elements (e.g. floor(3 * tanh(x)) where one side's tanh saturates to 1). A wrong
    // operand, broadcast or formula differs almost everywhere instead.
    double tol = want.dtype() == f32 ? 2e-3 : 2e-2;
    int64_t bad = mismatches(got, want, tol, tol);
    EXPECT_LE(bad, 3 + want.numel() / 30)
        << "seed " << seed << " (" << rp.ops << " ops, " << rp.inputs.size() << " inputs)\n"
        << gpu.to_text();
    // Inputs already on the device, outputs left there: the same answer.
    Feeds dev;
    for (const auto& [n, a] : feeds) dev.emplace_back(n, to_device(a, Device::cuda(0)));
    auto again = to_host(gpu.run(dev)[0]);
    EXPECT_EQ(mismatches(again, got, 0, 0), 0) << "seed " << seed;
  }
  EXPECT_GE(stitched, 40);  // most random chains form a region
}

// Each path of the kernel: vectorised (contiguous, scalar operand, row broadcast with the inner
// dim a multiple of 4), vectorised with a tail, strided broadcast, and each output dtype.
TEST(CudaStitch, KernelPathsMatchCpu) {
  REQUIRE_GPU();
  struct Case {
    std::vector<std::pair<Shape, DType>> in;
    Body body;
  };
  std::vector<Case> cases = {
      {{{{1 << 20}, f32}, {{}, f32}},
       [](const std::vector<Tensor>& x) { return gelu(x[0] * x[1] + 1.0); }},
      {{{{1000003}, f16}, {{1000003}, f16}},
       [](const std::vector<Tensor>& x) { return silu(x[0]) * x[1]; }},
      {{{{64, 4096}, bf16}, {{4096}, bf16}, {{64, 1}, bf16}},
       [](const std::vector<Tensor>& x) { return tanh(x[0] + x[1]) * x[2]; }},
      {{{{7, 33, 5}, f32}, {{33, 1}, f32}, {{7, 1, 5}, boolean}},
       [](const std::vector<Tensor>& x) { return where(x[2], exp(x[0]), x[1] - x[0]); }},
      {{{{300, 4}, f32}, {{300, 4}, f32}},
       [](const std::vector<Tensor>& x) { return less(sigmoid(x[0]), x[1]); }},
  };
  for (size_t c = 0; c < cases.size(); ++c) {
    Graph g;
    std::vector<Tensor> ph;
    Feeds feeds;
    for (size_t i = 0; i < cases[c].in.size(); ++i) {
      std::string name = "x" + std::to_string(i);
      ph.push_back(g.placeholder(cases[c].in[i].first, cases[c].in[i].second, name));
      feeds.emplace_back(name,
                         random_input(cases[c].in[i].first, cases[c].in[i].second, 17 * c + i));
    }
    Tensor out = cases[c].body(ph);
    CompileOptions o;
    o.device = Device::cuda(0);
    Executable gpu = g.compile({out}, o);
    EXPECT_NE(gpu.to_text().find("stitched"), std::string::npos) << "case " << c;
    auto want = g.compile({out}).run(feeds)[0];
    auto got = gpu.run(feeds)[0];
    double tol = want.dtype() == f32 ? 1e-5 : 1e-2;
    EXPECT_LE(mismatches(got, want, tol, tol), want.dtype() == boolean ? 2 : 0) << "case " << c;
  }
}

TEST(CudaStitch, CompiledAtLoweringOnceAndCached) {
  REQUIRE_GPU();
  CacheDir dir;
  // A program no other test uses (the constant makes its source unique).
  auto build = [](Graph& g) {
    auto x = g.placeholder({-1, 256}, f32, "x");
    return tanh(x * 1.234567) + sigmoid(x) * x;
  };
  Graph g;
  Tensor y = build(g);
  CompileOptions o;
  o.device = Device::cuda(0);
  nv::Stats s0 = nv::stats();
  Executable exe = g.compile({y}, o);
  nv::Stats s1 = nv::stats();
  EXPECT_EQ(s1.compiles, s0.compiles + 1) << "compile() pays NVRTC";
  // Runs at other shapes reuse the kernel: nothing is compiled, looked up on disk or in memory.
  for (int64_t rows : {1, 7, 300}) {
    exe.run({{"x", random_uniform({rows, 256}, f32, -2, 2, static_cast<uint64_t>(rows))}});
  }
  nv::Stats s2 = nv::stats();
  EXPECT_EQ(s2.compiles, s1.compiles);
  EXPECT_EQ(s2.memory_hits, s1.memory_hits);
  // A second executable of the same graph: loaded from this process's caches, not compiled.
  Executable exe2 = g.compile({y}, o);
  EXPECT_EQ(nv::stats().compiles, s1.compiles);
  NDArray x = random_uniform({5, 256}, f32, -2, 2, 9);
  EXPECT_EQ(mismatches(exe2.run({{"x", x}})[0], exe.run({{"x", x}})[0], 0, 0), 0);
}

}  // namespace
}  // namespace loom
