// Executables: run-time input checks, dynamic shapes and the plan cache, variables, memory
// planning, thread safety, custom ops, dispatch overhead.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <thread>

#include "error_of.h"
#include "loom/loom.h"
#include "loom/prepared_run.h"
#include "runtime/thread_pool.h"

namespace loom {
namespace {

using testing::error_of;

TEST(Run, InputErrorsAreClear) {
  Graph g;
  auto x = g.placeholder({-1, 3}, f32, "x");
  auto exe = g.compile({x * 2.0});
  EXPECT_NE(error_of([&] {
              exe.run({{"y", zeros({2, 3})}});
            }).find("no input named 'y' (inputs: x)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { exe.run({}); }).find("missing input 'x'"), std::string::npos);
  EXPECT_NE(error_of([&] {
              exe.run({{"x", zeros({2, 4})}});
            }).find("must have shape [?,3], got [2,4]"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              exe.run({{"x", zeros({2, 3}, i32)}});
            }).find("must be f32, got i32"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              exe.run({{"x", zeros({2, 3})}, {"x", zeros({2, 3})}});
            }).find("fed twice"),
            std::string::npos);
}

TEST(Build, ShapeErrorsNameTheOp) {
  Graph g;
  auto a = g.placeholder({2, 3}, f32, "a");
  auto b = g.placeholder({4, 5}, f32, "b");
  auto c = g.placeholder({2, 3}, i32, "c");
  EXPECT_EQ(error_of([&] { matmul(a, b); }),
            "[matmul] (f32[2,3], f32[4,5]): inner dims differ: [2,3] x [4,5] (3 vs 4)");
  EXPECT_NE(error_of([&] {
              a + b;
            }).find("[add] (f32[2,3], f32[4,5]): shapes [2,3] and [4,5] do not broadcast"),
            std::string::npos);
  EXPECT_NE(error_of([&] { a + c; }).find("different dtypes (f32 vs i32); cast one explicitly"),
            std::string::npos);
  EXPECT_NE(error_of([&] { exp(c); }).find("[exp]"), std::string::npos);
  EXPECT_NE(error_of([&] { sum(a, {2}); }).find("axis 2 is out of range for rank 2"),
            std::string::npos);
  EXPECT_NE(error_of([&] { reshape(a, {4, -1}); }).find("[reshape]"), std::string::npos);
  EXPECT_NE(error_of([&] { transpose(a, {0, 0}); }).find("not a permutation"), std::string::npos);
  EXPECT_NE(error_of([&] { slice(a, {0}, {1}, {0}, {0}); }).find("step is 0"), std::string::npos);
  Graph other;
  auto o = other.placeholder({2, 3}, f32, "a");
  EXPECT_NE(error_of([&] { a + o; }).find("inputs come from different graphs"), std::string::npos);
  EXPECT_NE(error_of([&] { g.placeholder({1}, f32, "a"); }).find("already used"),
            std::string::npos);
}

TEST(Run, DynamicDimMismatchAtRunTimeIsAnError) {
  Graph g;
  auto a = g.placeholder({-1}, f32, "a");
  auto b = g.placeholder({-1}, f32, "b");
  auto exe = g.compile({a + b});
  EXPECT_EQ(exe.run({{"a", zeros({4})}, {"b", zeros({4})}})[0].shape(), Shape({4}));
  EXPECT_EQ(exe.run({{"a", zeros({4})}, {"b", zeros({1})}})[0].shape(), Shape({4}));
  EXPECT_NE(error_of([&] {
              exe.run({{"a", zeros({4})}, {"b", zeros({3})}});
            }).find("do not broadcast"),
            std::string::npos);
}

TEST(Run, OneExecutableServesEveryShapeWithABoundedCache) {
  Graph g;
  auto x = g.placeholder({1, -1}, f32, "tokens");
  auto y = softmax(x * 3.0);
  CompileOptions opt;
  opt.plan_cache_capacity = 4;
  auto exe = g.compile({y}, opt);
  for (int64_t n = 1; n <= 10; ++n) {
    auto in = random_uniform({1, n}, f32, -1, 1, static_cast<uint64_t>(n));
    auto out = exe.run({{"tokens", in}})[0];
    ASSERT_EQ(out.shape(), Shape({1, n}));
    double s = 0;
    for (float v : out.to_vector<float>()) s += v;
    EXPECT_NEAR(s, 1.0, 1e-5);
  }
  EXPECT_EQ(exe.cached_plans(), 4u);
}

TEST(Variables, PersistAcrossRunsAndReadSeesEarlierValue) {
  Graph g;
  auto counter = g.variable(NDArray::from_vector<float>({0, 0}, {2}), "counter");
  auto step = g.placeholder({2}, f32, "step");
  auto before = g.read(counter);
  g.assign(counter, before + step);
  auto after = g.read(counter);
  auto exe = g.compile({before, after});
  auto s = NDArray::from_vector<float>({1, 2}, {2});
  for (int i = 0; i < 3; ++i) {
    auto r = exe.run({{"step", s}});
    EXPECT_EQ(r[0].to_vector<float>(), (std::vector<float>{float(i), 2.f * i}));
    EXPECT_EQ(r[1].to_vector<float>(), (std::vector<float>{float(i + 1), 2.f * (i + 1)}));
  }
  EXPECT_EQ(exe.variable("counter").to_vector<float>(), (std::vector<float>{3, 6}));
  exe.reset_variables();
  EXPECT_EQ(exe.variable("counter").to_vector<float>(), (std::vector<float>{0, 0}));
  exe.set_variable("counter", NDArray::from_vector<float>({5, 5}, {2}));
  EXPECT_EQ(exe.run({{"step", s}})[1].to_vector<float>(), (std::vector<float>{6, 7}));
  EXPECT_THROW(exe.set_variable("counter", zeros({3})), Error);
  EXPECT_THROW(exe.variable("nope"), Error);
  // A second executable of the same graph has its own state.
  auto exe2 = g.compile({after});
  EXPECT_EQ(exe2.run({{"step", s}})[0].to_vector<float>(), (std::vector<float>{1, 2}));
}

TEST(Variables, AssignChecksTypes) {
  Graph g;
  auto v = g.variable(zeros({2, 3}), "v");
  auto x = g.placeholder({2, 4}, f32, "x");
  EXPECT_NE(
      error_of([&] { g.assign(v, x); }).find("variable 'v' is f32[2,3], cannot assign f32[2,4]"),
      std::string::npos);
  auto d = g.placeholder({-1, 3}, f32, "d");
  g.assign(v, d);  // dynamic: checked per run
  auto exe = g.compile({});
  EXPECT_NO_THROW(exe.run({{"x", zeros({2, 4})}, {"d", zeros({2, 3})}}));
  EXPECT_NE(error_of([&] {
              exe.run({{"x", zeros({2, 4})}, {"d", zeros({5, 3})}});
            }).find("[assign]"),
            std::string::npos);
}

TEST(MemoryPlan, ReusesBuffersByLiveness) {
  // A chain of 20 elementwise ops on 1 MiB tensors: only two intermediates are alive at once.
  Graph g;
  auto x = g.placeholder({256, 1024}, f32, "x");
  Tensor t = x;
  for (int i = 0; i < 20; ++i) t = (i % 2) ? exp(t * 0.5) : tanh(t);
  CompileOptions unstitched;
  unstitched.disabled_passes = {"stitch"};  // stitched, the chain has no intermediates at all
  auto exe = g.compile({t}, unstitched);
  auto stats = exe.plan_stats({{"x", Shape({256, 1024})}});
  EXPECT_GT(stats.intermediate_bytes, 25 * (1 << 20));
  EXPECT_LE(stats.arena_bytes, 2 * (1 << 20));
  // Stitched (the default), the 30 ops are one kernel writing only the output.
  auto fused = g.compile({t}).plan_stats({{"x", Shape({256, 1024})}});
  EXPECT_EQ(fused.steps, 1);
  EXPECT_EQ(fused.intermediate_bytes, 0);
  auto in0 = random_uniform({256, 1024}, f32, -1, 1, 4);
  auto a = exe.run({{"x", in0}})[0].to_vector<float>();
  auto b = g.compile({t}).run({{"x", in0}})[0].to_vector<float>();
  for (size_t i = 0; i < a.size(); i += 331) EXPECT_NEAR(a[i], b[i], 1e-5);
  // And the planned run is still right.
  auto in = random_uniform({256, 1024}, f32, -1, 1, 3);
  CompileOptions ref;
  ref.device = Device::reference();
  auto want = g.compile({t}, ref).run({{"x", in}})[0].to_vector<float>();
  auto got = exe.run({{"x", in}})[0].to_vector<float>();
  for (size_t i = 0; i < got.size(); i += 997) EXPECT_NEAR(got[i], want[i], 1e-5);
}

TEST(Concurrency, ManyThreadsRunOneExecutable) {
  Graph g;
  auto x = g.placeholder({-1, 64}, f32, "x");
  auto w = g.constant(random_normal({64, 64}, f32, 9));
  auto y = softmax(matmul(tanh(matmul(x, w)), w));
  auto exe = g.compile({y});
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        int64_t rows = 1 + (t + i) % 5;
        auto in = random_uniform({rows, 64}, f32, -1, 1, static_cast<uint64_t>(t * 100 + i));
        auto a = exe.run({{"x", in}})[0].to_vector<float>();
        auto b = exe.run({{"x", in}})[0].to_vector<float>();
        if (a != b || static_cast<int64_t>(a.size()) != rows * 64) ++bad;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(Concurrency, ThreadPoolBackToBackJobsOfChangingSizes) {
  // Consecutive jobs with different chunk counts: a worker waking late must never touch the next
  // job's counters (this once lost a chunk count and hung a 512-token prefill).
  ThreadPool pool(4);
  for (int i = 0; i < 20000; ++i) {
    int64_t n = 1 + (i * 7919) % 97;
    std::atomic<int64_t> sum{0};
    pool.parallel_for(n, 1 + i % 3, [&](int64_t b, int64_t e) {
      for (int64_t j = b; j < e; ++j) sum += j;
    });
    ASSERT_EQ(sum.load(), n * (n - 1) / 2) << "job " << i;
  }
}

TEST(CustomOp, RegisteredFromOutsideRunsOnCpuAndReference) {
  CustomOpDef def;
  def.name = "test.square_plus";
  def.num_inputs = 1;
  def.infer = [](std::span<const TensorType> in, const CustomAttrs& a) {
    if (!is_floating(in[0].dtype)) fail("input must be float");
    return std::vector<TensorType>{in[0]};
  };
  def.kernel = [](const KernelContext& c) {
    float add = static_cast<float>(c.attrs_as<CustomAttrs>().floats.at(0));
    NDArray x = c.inputs[0].astype(f32);
    auto* o = c.outputs[0].data_as<float>();
    for (int64_t i = 0; i < x.numel(); ++i)
      o[i] = x.data_as<float>()[i] * x.data_as<float>()[i] + add;
  };
  register_op(def);
  EXPECT_THROW(register_op(def), Error);  // names are unique
  Graph g;
  auto x = g.placeholder({-1}, f32, "x");
  CustomAttrs attrs;
  attrs.floats = {0.5};
  auto y = custom_op("test.square_plus", {x}, attrs)[0] + 1.0;
  auto in = NDArray::from_vector<float>({1, 2, 3}, {3});
  EXPECT_EQ(g.compile({y}).run({{"x", in}})[0].to_vector<float>(),
            (std::vector<float>{2.5, 5.5, 10.5}));
  CompileOptions ref;
  ref.device = Device::reference();
  EXPECT_EQ(g.compile({y}, ref).run({{"x", in}})[0].to_vector<float>(),
            (std::vector<float>{2.5, 5.5, 10.5}));
  auto i = g.placeholder({2}, i32, "i");
  EXPECT_NE(error_of([&] {
              custom_op("test.square_plus", {i});
            }).find("[test.square_plus] (i32[2]): input must be float"),
            std::string::npos);
  EXPECT_NE(error_of([&] { custom_op("nope", {i}); }).find("unknown op 'nope'"), std::string::npos);
  EXPECT_NE(g.to_text({y}).find("test.square_plus"), std::string::npos);
}

// KernelContext::settled_inputs in a prepared run: an input the step before writes is not settled
// (a GPU kernel must wait for it), the others are; the first step has none.
TEST(PreparedRun, SettledInputsLeaveOutWhatTheStepBeforeWrote) {
  static std::vector<uint64_t> seen;
  static const bool registered = [] {
    CustomOpDef def;
    def.name = "test.record_settled";
    def.num_inputs = 2;
    def.infer = [](std::span<const TensorType> in, const CustomAttrs&) {
      return std::vector<TensorType>{in[0]};
    };
    def.kernel = [](const KernelContext& c) {  // out = a + b, and what was settled
      seen.push_back(c.settled_inputs);
      const auto *a = c.inputs[0].data_as<float>(), *b = c.inputs[1].data_as<float>();
      auto* o = c.outputs[0].data_as<float>();
      for (int64_t i = 0; i < c.outputs[0].numel(); ++i) o[i] = a[i] + b[i];
    };
    register_op(def);
    return true;
  }();
  ASSERT_TRUE(registered);
  Graph g;
  auto x = g.placeholder({5}, f32, "x");
  auto first = custom_op("test.record_settled", {x, x})[0];           // the run's first step
  auto after = custom_op("test.record_settled", {exp(first), x})[0];  // exp's output: not settled
  NDArray in = NDArray::from_vector<float>({0.3f, -1.1f, 0.7f, 0.05f, -0.4f}, {5});
  PreparedRun run(g.compile({after}), {{"x", Shape({5})}});
  run.set_inputs({{"x", in}});
  seen.clear();
  run.run();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], 0u);
  EXPECT_EQ(seen[1], 2u);  // x only
  const auto got = run.outputs()[0].to_vector<float>();
  for (int i = 0; i < 5; ++i) {
    const float v = in.data_as<float>()[i];
    EXPECT_NEAR(got[static_cast<size_t>(i)], std::exp(v + v) + v, 1e-5f) << i;
  }
}

TEST(Compile, PassLogAndDisabledPasses) {
  Graph g;
  auto x = g.placeholder({4}, f32, "x");
  auto c = g.constant(NDArray::from_vector<float>({1, 2, 3, 4}, {4}));
  auto folded = exp(c) * 2.0;                 // constant-folded
  auto dup1 = x * folded, dup2 = x * folded;  // CSE
  auto unused = tanh(x);                      // DCE
  (void)unused;
  auto exe = g.compile({dup1 + dup2});
  std::string log;
  for (const auto& l : exe.pass_log()) log += l + "\n";
  EXPECT_NE(log.find("[constant_folding] folded"), std::string::npos) << log;
  EXPECT_NE(log.find("[cse] merged 1"), std::string::npos) << log;
  EXPECT_NE(log.find("[dce] removed"), std::string::npos) << log;
  CompileOptions none;
  none.disabled_passes = {"cse", "constant_folding", "dce"};
  auto plain = g.compile({dup1 + dup2}, none);
  auto in = NDArray::from_vector<float>({1, 2, 3, 4}, {4});
  auto a = exe.run({{"x", in}})[0].to_vector<float>(),
       b = plain.run({{"x", in}})[0].to_vector<float>();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-4 * std::abs(b[i]));
  CompileOptions bad;
  bad.disabled_passes = {"fusion9000"};
  EXPECT_NE(error_of([&] { g.compile({dup1}, bad); }).find("unknown pass 'fusion9000'"),
            std::string::npos);
  // The same through the environment (programs that compile internally, e.g. benchmarks).
  setenv("LOOM_DISABLE_PASSES", "cse,dce", 1);
  auto env_off = g.compile({dup1 + dup2});
  setenv("LOOM_DISABLE_PASSES", "fusion9000", 1);
  std::string env_err = error_of([&] { g.compile({dup1}); });
  unsetenv("LOOM_DISABLE_PASSES");
  std::string env_log;
  for (const auto& l : env_off.pass_log()) env_log += l + "\n";
  EXPECT_NE(env_log.find("[cse] disabled"), std::string::npos) << env_log;
  EXPECT_EQ(env_log.find("[cse] merged"), std::string::npos) << env_log;
  EXPECT_NE(env_log.find("[constant_folding] folded"), std::string::npos) << env_log;
  EXPECT_NE(env_err.find("unknown pass 'fusion9000'"), std::string::npos) << env_err;
  bad.disabled_passes = {};
  bad.device = Device::cuda(0);
#ifndef LOOM_HAS_CUDA
  EXPECT_NE(error_of([&] { g.compile({dup1}, bad); }).find("no CUDA backend"), std::string::npos);
#endif
}

// A Llama-like stack (pre-norm residual blocks, dynamic rows): fuse_add_rms_norm turns every
// residual add + the norm after it into one add_rms_norm, and the outputs equal the unfused
// graph's bit for bit on the CPU (same math per element; f16 norms read the rounded sum).
// add_rms_norm on bad inputs: a clear error naming the op and the problem, at build time for
// static shapes and at run time for dynamic ones that turn out not to broadcast.
TEST(Compile, AddRmsNormRejectsBadInputs) {
  Graph g;
  auto a = g.placeholder({2, 64}, f32, "a");
  auto b3 = g.placeholder({3, 64}, f32, "b3");
  auto h = g.placeholder({2, 64}, f16, "h");
  auto gamma = g.placeholder({32}, f32, "g");
  std::string shape_err = error_of([&] { add_rms_norm(a, b3); });
  EXPECT_NE(shape_err.find("add_rms_norm"), std::string::npos) << shape_err;
  EXPECT_NE(shape_err.find("broadcast"), std::string::npos) << shape_err;
  std::string dtype_err = error_of([&] { add_rms_norm(a, h); });
  EXPECT_NE(dtype_err.find("add_rms_norm"), std::string::npos) << dtype_err;
  EXPECT_NE(dtype_err.find("dtype"), std::string::npos) << dtype_err;
  std::string gamma_err = error_of([&] { add_rms_norm(a, a, gamma); });
  EXPECT_NE(gamma_err.find("add_rms_norm"), std::string::npos) << gamma_err;

  Graph d;
  auto x = d.placeholder({-1, 64}, f32, "x");
  auto y = d.placeholder({-1, 64}, f32, "y");
  auto exe = d.compile({add_rms_norm(x, y)[1]});
  std::string run_err = error_of([&] {
    exe.run({{"x", random_uniform({3, 64}, f32, -1, 1, 1)},
             {"y", random_uniform({2, 64}, f32, -1, 1, 2)}});
  });
  EXPECT_NE(run_err.find("add_rms_norm"), std::string::npos) << run_err;
}

// add_rms_norm_quantized_matmul on bad inputs: errors naming the op and the problem, at build time
// for static shapes (add_rms_norm's rules on a, b, gamma; quantized_matmul's on the normed x and
// the packed weights; block formats only) and at run time, on the CPU and the reference, for
// dynamic rows that turn out not to broadcast.
TEST(Compile, AddRmsNormQuantizedMatmulRejectsBadInputs) {
  const int64_t n = 4, k = 64;  // q4_0: rows of 2 blocks of 18 bytes
  Graph g;
  auto a = g.placeholder({2, k}, f32, "a");
  auto b3 = g.placeholder({3, k}, f32, "b3");
  auto h = g.placeholder({2, k}, f16, "h");
  auto gamma = g.placeholder({k}, f32, "g");
  auto gamma32 = g.placeholder({32}, f32, "g32");
  auto a32 = g.placeholder({2, 32}, f32, "a32");
  auto packed = g.constant(zeros({n, 36}, u8), "w");
  auto wide = g.constant(zeros({n, 40}, u8), "w40");
  auto fused = [&](const Tensor& x, const Tensor& y, const Tensor& gm, const Tensor& p,
                   const std::string& format = "q4_0") {
    return [=] { add_rms_norm_quantized_matmul(x, y, gm, p, format, n, k); };
  };
  auto expect_error = [](const std::function<void()>& f, const std::string& what) {
    std::string err = error_of(f);
    EXPECT_NE(err.find("add_rms_norm_quantized_matmul"), std::string::npos) << err;
    EXPECT_NE(err.find(what), std::string::npos) << err;
  };
  expect_error(fused(a, b3, gamma, packed), "broadcast");
  expect_error(fused(a, h, gamma, packed), "dtype");
  expect_error(fused(a, a, gamma32, packed), "does not match the normalised dims");
  expect_error(fused(a32, a32, gamma32, packed), "x has 32 features, the weights 64");
  expect_error(fused(a, a, gamma, wide), "packed weights must be u8[4,36]");
  expect_error(fused(a, a, gamma, packed, "affine"), "needs a block format");
  expect_error(fused(a, a, gamma, packed, "q9_9"), "needs a block format");

  for (Device dev : {Device::cpu(), Device::reference()}) {
    SCOPED_TRACE(dev.to_string());
    Graph d;
    auto x = d.placeholder({-1, k}, f32, "x");
    auto y = d.placeholder({-1, k}, f32, "y");
    auto out =
        add_rms_norm_quantized_matmul(x, y, d.constant(random_uniform({k}, f32, 0.5, 1.5, 3)),
                                      d.constant(zeros({n, 36}, u8)), "q4_0", n, k);
    CompileOptions o;
    o.device = dev;
    auto exe = d.compile({out[1]}, o);
    std::string run_err = error_of([&] {
      exe.run({{"x", random_uniform({3, k}, f32, -1, 1, 1)},
               {"y", random_uniform({2, k}, f32, -1, 1, 2)}});
    });
    EXPECT_NE(run_err.find("add_rms_norm_quantized_matmul"), std::string::npos) << run_err;
  }
}

// swiglu_quantized_matmul on bad inputs: errors naming the op and the problem at build time (p's
// last dim must hold both halves, 2k; block formats only; quantized_matmul's rules on the packed
// weights; float p), and at run time for a dynamic last dim that turns out wrong.
TEST(Compile, SwigluQuantizedMatmulRejectsBadInputs) {
  const int64_t n = 4, k = 64;  // q4_0: rows of 2 blocks of 18 bytes
  Graph g;
  auto p = g.placeholder({2, 2 * k}, f32, "p");
  auto p_half = g.placeholder({2, k}, f32, "p_half");
  auto pi = g.placeholder({2, 2 * k}, i32, "pi");
  auto w = g.constant(zeros({n, 36}, u8), "w");
  auto w5 = g.constant(zeros({5, 36}, u8), "w5");
  auto expect_error = [](const std::function<void()>& f, const std::string& what) {
    std::string err = error_of(f);
    EXPECT_NE(err.find("swiglu_quantized_matmul"), std::string::npos) << err;
    EXPECT_NE(err.find(what), std::string::npos) << err;
  };
  expect_error([&] { swiglu_quantized_matmul(p_half, w, "q4_0", n, k); },
               "p's last dim must be 2k = 128 (gate and up halves), got 64");
  expect_error([&] { swiglu_quantized_matmul(p, w, "affine", n, k); }, "needs a block format");
  expect_error([&] { swiglu_quantized_matmul(p, w5, "q4_0", n, k); },
               "packed weights must be u8[4,36]");
  expect_error([&] { swiglu_quantized_matmul(pi, w, "q4_0", n, k); }, "i32");

  Graph d;
  auto pd = d.placeholder({2, -1}, f32, "p");
  auto exe = d.compile({swiglu_quantized_matmul(pd, d.constant(zeros({n, 36}, u8)), "q4_0", n, k)});
  std::string run_err = error_of([&] {
    exe.run({{"p", random_uniform({2, 100}, f32, -1, 1, 1)}});
  });
  EXPECT_NE(run_err.find("swiglu_quantized_matmul"), std::string::npos) << run_err;
  EXPECT_NE(run_err.find("got 100"), std::string::npos) << run_err;
}

TEST(Compile, FusesResidualAddAndRmsNorm) {
  for (DType dt : {f32, f16}) {
    Graph g;
    auto x = g.placeholder({-1, 64}, dt, "x");
    auto w = [&](int64_t r, int64_t c, uint64_t seed) {
      return g.constant(random_normal({r, c}, f32, seed, 0, 0.2).astype(dt));
    };
    auto gamma = [&](uint64_t seed) {
      return g.constant(random_uniform({64}, f32, 0.5, 1.5, seed).astype(dt));
    };
    Tensor h = x;
    for (uint64_t l = 0; l < 2; ++l) {
      h = h + matmul(rms_norm(h, gamma(10 * l + 1)), w(64, 64, 10 * l + 2));
      Tensor n = rms_norm(h, gamma(10 * l + 3));
      h = h + matmul(silu(matmul(n, w(64, 96, 10 * l + 4))) * matmul(n, w(64, 96, 10 * l + 5)),
                     w(96, 64, 10 * l + 6));
    }
    Tensor out = matmul(rms_norm(h, gamma(99), {.axis = -1, .eps = 1e-5}), w(64, 32, 100));
    auto fused = g.compile({out, h});
    CompileOptions off;
    off.disabled_passes = {"fuse_add_rms_norm"};
    auto plain = g.compile({out, h}, off);
    std::string log;
    for (const auto& l : fused.pass_log()) log += l + "\n";
    // Layer 0's first norm reads the input (no add); the other four follow a residual add.
    EXPECT_NE(log.find("[fuse_add_rms_norm] fused 4 add → rms_norm pair(s)"), std::string::npos)
        << log;
    EXPECT_NE(fused.to_text().find("add_rms_norm"), std::string::npos);
    EXPECT_EQ(plain.to_text().find("add_rms_norm"), std::string::npos);
    auto in = random_uniform({3, 64}, f32, -2, 2, 5).astype(dt);
    auto a = fused.run({{"x", in}}), b = plain.run({{"x", in}});
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_EQ(a[i].to_doubles(), b[i].to_doubles()) << dtype_name(dt) << " output " << i;
    // The reference device runs op by op (it is the oracle).
    CompileOptions ref;
    ref.device = Device::reference();
    EXPECT_EQ(g.compile({out, h}, ref).to_text().find("add_rms_norm"), std::string::npos);
  }
}

TEST(Compile, FoldsViewsOfConstants) {
  Graph g;
  auto c = g.constant(NDArray::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}));
  auto x = g.placeholder({3, 2}, f32, "x");
  auto exe = g.compile({reshape(exp(c), {3, 2}) + x});
  std::string log;
  for (const auto& l : exe.pass_log()) log += l + "\n";
  EXPECT_NE(log.find("[constant_folding] folded 2 op(s)"), std::string::npos) << log;
  auto out = exe.run({{"x", zeros({3, 2})}})[0].to_vector<float>();
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(out[static_cast<size_t>(i)], std::exp(i + 1.0), 1e-4);
}

TEST(Dispatch, PerOpOverheadIsSmall) {
  // 200 tiny ops; the per-op cost of the runtime (not the math) is what this measures.
  Graph g;
  auto x = g.placeholder({4}, f32, "x");
  Tensor t = x;
  for (int i = 0; i < 200; ++i) t = (i % 2) ? t + x : t * x;
  auto exe = g.compile({t});
  auto in = random_uniform({4}, f32, 0.5, 1, 1);
  for (int i = 0; i < 10; ++i) exe.run({{"x", in}});
  auto t0 = std::chrono::steady_clock::now();
  int reps = 200;
  for (int i = 0; i < reps; ++i) exe.run({{"x", in}});
  double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
      reps / 200;
  RecordProperty("us_per_op", std::to_string(us));
  std::printf("dispatch: %.3f us per op\n", us);
  EXPECT_LT(us, 20.0);  // generous bound for noisy CI; the benchmark records the real figure
}

}  // namespace
}  // namespace loom
