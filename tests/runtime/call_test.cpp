// Calls to separately compiled executables (issue 8): one and several outputs, nested calls,
// dynamic shapes through a call, rebinding (also while other threads run), optional call sites,
// signature / missing symbol / recursion errors, zero-copy inputs, packages with callables, and
// timings (rebinding; call overhead vs the same ops inlined) for docs/BENCHMARKS.md.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "loom/custom_op.h"
#include "loom/loom.h"
#include "loom/package.h"

namespace loom {
namespace {

#define EXPECT_THROW_HAS(stmt, text)                                              \
  do {                                                                            \
    try {                                                                         \
      stmt;                                                                       \
      ADD_FAILURE() << "no error, expected one containing: " << (text);           \
    } catch (const Error& e) {                                                    \
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what(); \
    }                                                                             \
  } while (0)

std::vector<float> vec(const NDArray& a) { return a.to_vector<float>(); }

// y = x * k (x: f32[-1]).
Executable scale_exe(float k, Shape shape = Shape({-1})) {
  Graph g;
  auto x = g.placeholder(shape, f32, "x");
  return g.compile({x * static_cast<double>(k)});
}

// z = call("s", x) + 1, x: f32[3].
struct Caller {
  Graph g;
  Tensor z;
  explicit Caller(bool optional = false, const std::string& symbol = "s") {
    auto x = g.placeholder({3}, f32, "x");
    z = call(symbol, {x}, {{f32, Shape({3})}}, {.optional = optional})[0] + 1.0;
  }
  Executable compile(std::map<std::string, Executable> callables) {
    CompileOptions o;
    o.callables = std::move(callables);
    return g.compile({z}, o);
  }
};

NDArray x3() { return NDArray::from_vector<float>({1, 2, 3}, {3}); }

TEST(Call, OneOutput) {
  Caller c;
  auto exe = c.compile({{"s", scale_exe(2)}});
  EXPECT_EQ(vec(exe.run({{"x", x3()}})[0]), (std::vector<float>{3, 5, 7}));
  EXPECT_EQ(exe.call_symbols(), std::vector<std::string>{"s"});
  EXPECT_TRUE(exe.callable("s").valid());
  EXPECT_NE(exe.to_text().find("call"), std::string::npos);
}

TEST(Call, SeveralOutputs) {
  Graph cg;
  auto a = cg.placeholder({-1}, f32, "a");
  auto b = cg.placeholder({-1}, f32, "b");
  auto callee = cg.compile({a + b, a * b, sum(a)});
  Graph g;
  auto x = g.placeholder({3}, f32, "x");
  auto y = g.placeholder({3}, f32, "y");
  auto outs = call("pair", {x, y}, {{f32, Shape({3})}, {f32, Shape({3})}, {f32, Shape({})}});
  ASSERT_EQ(outs.size(), 3u);
  CompileOptions o;
  o.callables = {{"pair", callee}};
  auto exe = g.compile({outs[0] - outs[1], outs[2]}, o);
  auto r = exe.run({{"x", x3()}, {"y", NDArray::from_vector<float>({4, 5, 6}, {3})}});
  EXPECT_EQ(vec(r[0]), (std::vector<float>{1, -3, -9}));
  EXPECT_EQ(vec(r[1]), (std::vector<float>{6}));
}

TEST(Call, NestedCalls) {
  auto inner = scale_exe(3);  // x * 3
  Graph mg;
  auto mx = mg.placeholder({-1}, f32, "x");
  CompileOptions mo;
  mo.callables = {{"inner", inner}};
  auto middle = mg.compile({call("inner", {mx}, {{f32, Shape({-1})}})[0] + 1.0}, mo);  // 3x + 1
  Caller c;
  auto exe = c.compile({{"s", middle}});  // 3x + 2
  EXPECT_EQ(vec(exe.run({{"x", x3()}})[0]), (std::vector<float>{5, 8, 11}));
  // Rebinding the inner callee changes the outer result: the middle is not copied.
  middle.bind("inner", scale_exe(10));
  EXPECT_EQ(vec(exe.run({{"x", x3()}})[0]), (std::vector<float>{12, 22, 32}));
}

TEST(Call, DynamicShapesThroughACall) {
  // Callee: row sums of [-1, 4] -> [-1]; the caller's output shape follows the callee per run.
  Graph cg;
  auto m = cg.placeholder({-1, 4}, f32, "m");
  auto callee = cg.compile({sum(m, {1})});
  Graph g;
  auto x = g.placeholder({-1, 4}, f32, "x");
  auto s = call("rows", {x}, {{f32, Shape({-1})}})[0];
  CompileOptions o;
  o.callables = {{"rows", callee}};
  auto exe = g.compile({s * 2.0}, o);
  for (int64_t n : {1, 5, 2, 5}) {
    auto r = exe.run({{"x", full({n, 4}, 1.0)}})[0];
    EXPECT_EQ(r.shape(), Shape({n}));
    EXPECT_EQ(vec(r), std::vector<float>(static_cast<size_t>(n), 8.0f));
  }
  EXPECT_EQ(exe.cached_plans(), 3u);
  // A callee whose resolved shape contradicts the declared static dims fails with the symbol.
  Graph g2;
  auto x2 = g2.placeholder({-1, 4}, f32, "x");
  auto s2 = call("rows", {x2}, {{f32, Shape({2})}})[0];
  auto exe2 = g2.compile({s2}, o);
  EXPECT_EQ(vec(exe2.run({{"x", full({2, 4}, 1.0)}})[0]), (std::vector<float>{4, 4}));
  EXPECT_THROW_HAS(exe2.run({{"x", full({3, 4}, 1.0)}}),
                   "[call] 'rows': for inputs of these shapes");
}

TEST(Call, Errors) {
  Caller c;
  EXPECT_THROW_HAS(c.compile({}), "[call] 's': no executable is bound");
  EXPECT_THROW_HAS(c.compile({{"s", scale_exe(2)}, {"t", scale_exe(2)}}),
                   "[call] 't': no call site calls this symbol (symbols: s)");
  Graph gi;  // wrong dtype
  auto xi = gi.placeholder({-1}, i32, "x");
  EXPECT_THROW_HAS(c.compile({{"s", gi.compile({xi})}}),
                   "[call] 's': input 0 is f32[3], the callee's input 'x' is i32[?]");
  EXPECT_THROW_HAS(c.compile({{"s", scale_exe(2, Shape({-1, 3}))}}), "input 0 is f32[3]");
  EXPECT_THROW_HAS(c.compile({{"s", scale_exe(2, Shape({4}))}}), "input 0 is f32[3]");
  Graph g2;  // two inputs
  auto a = g2.placeholder({3}, f32, "a");
  auto b = g2.placeholder({3}, f32, "b");
  EXPECT_THROW_HAS(c.compile({{"s", g2.compile({a + b})}}),
                   "[call] 's': the call site passes 1 input(s), the callee takes 2");
  Graph g3;  // output of another type / count
  auto x3_ = g3.placeholder({3}, f32, "x");
  EXPECT_THROW_HAS(c.compile({{"s", g3.compile({cast(x3_, f16)})}}),
                   "[call] 's': output 0 is declared f32[3], the callee returns f16[3]");
  EXPECT_THROW_HAS(c.compile({{"s", g3.compile({x3_ + 1.0, x3_ * 2.0})}}),
                   "the call site declares 1 output(s), the callee returns 2");
  // Rebinding checks the same.
  auto exe = c.compile({{"s", scale_exe(2)}});
  EXPECT_THROW_HAS(exe.bind("s", scale_exe(2, Shape({4}))), "input 0 is f32[3]");
  EXPECT_THROW_HAS(exe.bind("q", scale_exe(2)), "[call] 'q': no call site calls this symbol");
  EXPECT_THROW_HAS(exe.bind("s", Executable()), "cannot bind an empty Executable");
  // Build-time errors.
  Graph g;
  auto x = g.placeholder({3}, f32, "x");
  EXPECT_THROW_HAS(call("s", {}, {{f32, Shape({3})}}), "needs at least one input");
  EXPECT_THROW_HAS(call("s", {x}, {}), "declares no outputs");
  EXPECT_THROW_HAS(call("s", {x}, {{f32, Shape({-1, 2})}}, {.optional = true}),
                   "input 0 must have its rank");
  // The device must match.
  CompileOptions ro;
  ro.device = Device::reference();
  Graph gr;
  auto xr = gr.placeholder({-1}, f32, "x");
  EXPECT_THROW_HAS(c.compile({{"s", gr.compile({xr * 2.0}, ro)}}),
                   "the callee runs on reference, the caller on cpu");
}

TEST(Call, RecursionIsRejected) {
  // a calls "s" -> b; b calls "t"; binding b.t = a closes a cycle.
  Graph gb;
  auto xb = gb.placeholder({-1}, f32, "x");
  auto tb = call("t", {xb}, {{f32, Shape({-1})}}, {.optional = true})[0];
  auto b = gb.compile({tb + 1.0});
  Caller c;
  auto a = c.compile({{"s", b}});
  EXPECT_EQ(vec(a.run({{"x", x3()}})[0]), (std::vector<float>{2, 2, 2}));  // b unbound: 0 + 1 + 1
  EXPECT_THROW_HAS(b.bind("t", b), "[call] 't': binding it would make a recursive call");
  Graph gc;  // c calls "u" (a's signature fits "t": f32[3] in, f32[3] out)
  auto xc = gc.placeholder({-1}, f32, "x");
  auto cexe = gc.compile({call("u", {xc}, {{f32, Shape({-1})}}, {.optional = true})[0]});
  b.bind("t", cexe);
  EXPECT_THROW_HAS(cexe.bind("u", a),
                   "[call] 'u': binding it would make a recursive call ('u' -> 's' -> 't' -> back "
                   "to this executable)");
  // Nothing changed: still runnable.
  EXPECT_EQ(vec(a.run({{"x", x3()}})[0]), (std::vector<float>{2, 2, 2}));
}

TEST(Call, RebindUnbindAndOptionalSites) {
  Caller req;
  auto exe = req.compile({{"s", scale_exe(2)}});
  EXPECT_EQ(vec(exe.run({{"x", x3()}})[0]), (std::vector<float>{3, 5, 7}));
  exe.bind("s", scale_exe(-1));
  EXPECT_EQ(vec(exe.run({{"x", x3()}})[0]), (std::vector<float>{0, -1, -2}));
  EXPECT_EQ(exe.cached_plans(), 1u);  // the plan is kept: the new callee agrees on its types
  exe.unbind("s");
  EXPECT_FALSE(exe.callable("s").valid());
  EXPECT_THROW_HAS(exe.run({{"x", x3()}}), "[call] 's': no executable is bound");
  exe.bind("s", scale_exe(2));
  EXPECT_EQ(vec(exe.run({{"x", x3()}})[0]), (std::vector<float>{3, 5, 7}));

  Caller opt(/*optional=*/true);
  auto oexe = opt.compile({});  // optional: compiles unbound, returns zeros
  EXPECT_EQ(vec(oexe.run({{"x", x3()}})[0]), (std::vector<float>{1, 1, 1}));
  oexe.bind("s", scale_exe(2));
  EXPECT_EQ(vec(oexe.run({{"x", x3()}})[0]), (std::vector<float>{3, 5, 7}));
  oexe.unbind("s");
  EXPECT_EQ(vec(oexe.run({{"x", x3()}})[0]), (std::vector<float>{1, 1, 1}));
}

TEST(Call, OptionalZerosTakeDynamicDimsFromInput0) {
  Graph g;
  auto x = g.placeholder({-1, 4}, f32, "x");
  auto d = call("delta", {x}, {{f32, Shape({-1, 2})}}, {.optional = true})[0];
  auto exe = g.compile({d + 1.0});
  auto r = exe.run({{"x", full({3, 4}, 5.0)}})[0];
  EXPECT_EQ(r.shape(), Shape({3, 2}));
  EXPECT_EQ(vec(r), std::vector<float>(6, 1.0f));
}

// Records the address of its input: proves that a call passes the caller's arrays through.
std::atomic<const void*> g_seen{nullptr};

TEST(Call, InputsArePassedWithoutCopies) {
  static bool registered = false;
  if (!registered) {
    register_op({"call_test_record", 1,
                 [](std::span<const TensorType> in, const CustomAttrs&) {
                   return std::vector<TensorType>{in[0]};
                 },
                 [](const KernelContext& ctx) {
                   g_seen = ctx.inputs[0].data();
                   std::memcpy(ctx.outputs[0].data(), ctx.inputs[0].data(), ctx.inputs[0].nbytes());
                 }});
    registered = true;
  }
  Graph cg;
  auto cx = cg.placeholder({-1}, f32, "x");
  auto callee = cg.compile({custom_op("call_test_record", {cx})[0]});
  Graph g;
  auto x = g.placeholder({-1}, f32, "x");
  CompileOptions o;
  o.callables = {{"rec", callee}};
  auto exe = g.compile({call("rec", {x}, {{f32, Shape({-1})}})[0]}, o);
  auto in = x3();
  auto r = exe.run({{"x", in}})[0];
  EXPECT_EQ(g_seen.load(), in.data());
  EXPECT_EQ(vec(r), vec(in));
}

TEST(Call, RebindWhileOtherThreadsRun) {
  Caller c;
  auto exe = c.compile({{"s", scale_exe(2)}});
  auto two = scale_exe(2), three = scale_exe(3);
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0}, runs{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&] {
      while (!stop) {
        auto r = vec(exe.run({{"x", x3()}})[0]);
        bool ok = r == std::vector<float>{3, 5, 7} || r == std::vector<float>{4, 7, 10};
        bad += !ok;
        ++runs;
      }
    });
  for (int i = 0; i < 2000; ++i) exe.bind("s", i % 2 ? two : three);
  while (runs < 200) std::this_thread::yield();
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(Call, PackagesEmbedOrLeaveUnbound) {
  auto dir =
      std::filesystem::temp_directory_path() / ("loom_call_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  // Nested: caller -> middle -> inner, all embedded.
  Graph mg;
  auto mx = mg.placeholder({-1}, f32, "x");
  CompileOptions mo;
  mo.callables = {{"inner", scale_exe(3)}};
  auto middle = mg.compile({call("inner", {mx}, {{f32, Shape({-1})}})[0] + 1.0}, mo);
  Caller c;
  auto exe = c.compile({{"s", middle}});
  auto want = vec(exe.run({{"x", x3()}})[0]);
  std::string embedded = (dir / "embedded.loom").string();
  exe.save(embedded);
  auto loaded = Executable::load(embedded);
  EXPECT_EQ(vec(loaded.run({{"x", x3()}})[0]), want);
  EXPECT_EQ(loaded.callable("s").call_symbols(), std::vector<std::string>{"inner"});
  // Overridden at load.
  CompileOptions lo;
  lo.callables = {{"s", scale_exe(2)}};
  EXPECT_EQ(vec(Executable::load(embedded, lo).run({{"x", x3()}})[0]),
            (std::vector<float>{3, 5, 7}));
  // Unbound: bound at load, or an error for a required call site.
  std::string unbound = (dir / "unbound.loom").string();
  exe.save(unbound, /*embed_callables=*/false);
  EXPECT_THROW_HAS(Executable::load(unbound), "[call] 's': no executable is bound");
  EXPECT_EQ(vec(Executable::load(unbound, lo).run({{"x", x3()}})[0]),
            (std::vector<float>{3, 5, 7}));
  std::filesystem::remove_all(dir);
}

double median_us(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Timings for docs/BENCHMARKS.md (printed; the assertions are loose bounds).
TEST(Call, TimingRebindAndCallOverhead) {
  Caller c;
  auto exe = c.compile({{"s", scale_exe(2)}});
  auto two = scale_exe(2), three = scale_exe(3);
  exe.run({{"x", x3()}});
  std::vector<double> bind_us, first_run_us, run_us;
  for (int i = 0; i < 2000; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    exe.bind("s", i % 2 ? two : three);
    auto t1 = std::chrono::steady_clock::now();
    exe.run({{"x", x3()}});
    auto t2 = std::chrono::steady_clock::now();
    exe.run({{"x", x3()}});
    auto t3 = std::chrono::steady_clock::now();
    bind_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    first_run_us.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count());
    run_us.push_back(std::chrono::duration<double, std::micro>(t3 - t2).count());
  }
  auto tc0 = std::chrono::steady_clock::now();
  Caller fresh;
  fresh.compile({{"s", three}});
  double compile_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - tc0).count();
  std::printf(
      "[timing] bind: %.2f us (median); first run after bind %.2f us, next run %.2f us; "
      "recompiling the caller: %.1f us\n",
      median_us(bind_us), median_us(first_run_us), median_us(run_us), compile_us);
  EXPECT_LT(median_us(bind_us), 100.0);

  // Call overhead: 8 elementwise ops on f32[256] inlined vs the same ops behind one call.
  auto body = [](const Tensor& x) {
    Tensor y = x;
    for (int i = 0; i < 4; ++i) y = tanh(y * 0.5 + 0.25);
    return y;
  };
  Graph cg;
  auto cx = cg.placeholder({-1}, f32, "x");
  auto callee = cg.compile({body(cx)});
  Graph gi;
  auto xi = gi.placeholder({256}, f32, "x");
  auto inlined = gi.compile({body(xi)});
  Graph gc;
  auto xc = gc.placeholder({256}, f32, "x");
  CompileOptions o;
  o.callables = {{"body", callee}};
  auto called = gc.compile({call("body", {xc}, {{f32, Shape({256})}})[0]}, o);
  auto in = random_uniform({256}, f32, -1, 1, 7);
  EXPECT_EQ(vec(inlined.run({{"x", in}})[0]), vec(called.run({{"x", in}})[0]));
  auto time_us = [&](const Executable& e) {
    std::vector<double> t;
    for (int i = 0; i < 3000; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      e.run({{"x", in}});
      t.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
    return median_us(t);
  };
  double ti = time_us(inlined), tc = time_us(called);
  std::printf("[timing] 8 ops on f32[256]: inlined %.2f us, behind one call %.2f us (+%.2f us)\n",
              ti, tc, tc - ti);
}

}  // namespace
}  // namespace loom
