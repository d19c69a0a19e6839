// KV cache in variables: slice_update + assign compiled into an in-place write of only the new
// slice; the attention pattern pass; cached decode equals uncached recomputation.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <optional>
#include <random>

#include "error_of.h"
#include "ir/graph.h"
#include "loom/loom.h"

namespace loom {
namespace {

using testing::error_of;

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& l : v) s += l + "\n";
  return s;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(KvCache, UpdateIsInPlaceAndOnlyWritesTheSlice) {
  const int64_t H = 2, L = 256, D = 16;
  Graph g;
  auto cache = g.variable(zeros({1, H, L, D}), "k_cache");
  auto k_new = g.placeholder({1, H, 1, D}, f32, "k_new");
  auto q = g.placeholder({1, H, 1, D}, f32, "q");
  auto starts = g.placeholder({4}, i64, "starts");
  auto kv_len = g.placeholder({}, i64, "kv_len");
  auto all = slice_update(g.read(cache), k_new, starts);
  g.assign(cache, all);
  auto out = sdpa(q, all, all, {.kv_len = kv_len});
  auto exe = g.compile({out});
  EXPECT_NE(joined(exe.pass_log())
                .find("[inplace_variable_update] variable 'k_cache' is updated in place"),
            std::string::npos)
      << joined(exe.pass_log());
  CompileOptions copying;
  copying.disabled_passes = {"inplace_variable_update"};
  auto slow = g.compile({out}, copying);
  std::mt19937_64 rng(std::random_device{}());
  for (int64_t pos = 0; pos < 20; ++pos) {
    auto kn = random_uniform({1, H, 1, D}, f32, -1, 1, rng());
    auto qq = random_uniform({1, H, 1, D}, f32, -1, 1, rng());
    Feeds f = {{"k_new", kn},
               {"q", qq},
               {"starts", NDArray::from_vector<int64_t>({0, 0, pos, 0}, {4})},
               {"kv_len", NDArray::from_vector<int64_t>({pos + 1}, {})}};
    auto a = exe.run(f)[0].to_vector<float>(), b = slow.run(f)[0].to_vector<float>();
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5);
  }
  EXPECT_EQ(exe.variable("k_cache").to_doubles(), slow.variable("k_cache").to_doubles());
  // The in-place executable never copied the cache; the copying one copied all of it per step.
  EXPECT_EQ(exe.variable_bytes_copied(), 0);
  EXPECT_EQ(slow.variable_bytes_copied(), 20 * H * L * D * 4);
}

TEST(KvCache, OutOfRangeStartIsAClearError) {
  Graph g;
  auto cache = g.variable(zeros({4, 3}), "c");
  auto u = g.placeholder({1, 3}, f32, "u");
  auto s = g.placeholder({2}, i32, "s");
  g.assign(cache, slice_update(g.read(cache), u, s));
  auto exe = g.compile({});
  try {
    exe.run({{"u", zeros({1, 3})}, {"s", NDArray::from_vector<int32_t>({4, 0}, {2})}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[slice_update] start 4 + size 1 on axis 0 exceeds dim 4"),
              std::string::npos)
        << e.what();
  }
}

TEST(KvCache, ReadBeforeAssignKeepsTheOldValue) {
  // The read feeds two consumers: the update and an output. It must not be updated in place.
  Graph g;
  auto v = g.variable(NDArray::from_vector<float>({1, 2, 3, 4}, {4}), "v");
  auto r = g.read(v);
  auto upd =
      slice_update(r, g.constant(NDArray::from_vector<float>({9}, {1})), std::vector<int64_t>{1});
  g.assign(v, upd);
  auto exe = g.compile({r * 1.0, upd});
  auto out = exe.run({});
  EXPECT_EQ(out[0].to_vector<float>(), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(out[1].to_vector<float>(), (std::vector<float>{1, 9, 3, 4}));
  EXPECT_EQ(exe.variable("v").to_vector<float>(), (std::vector<float>{1, 9, 3, 4}));
}

// numpy's a[idx] = b: an update of another float dtype is converted to the base's (rounded to
// nearest, as cast converts) and the result keeps the base's type; any other dtype mismatch is an
// error naming both dtypes. A KV cache in f16 fed f32 rows (the Llama GPU layout): slice_update +
// assign still becomes an in-place write_slice, and after each step the cache holds the rows cast
// to f16, on the CPU and on the reference device.
TEST(KvCache, UpdateOfAnotherFloatDtypeIsConverted) {
  Graph g;
  auto base = g.placeholder({4, 3}, f32, "base");
  auto ibase = g.placeholder({4, 3}, i32, "ibase");
  auto iu = g.placeholder({1, 3}, i32, "iu");
  auto fu = g.placeholder({1, 3}, f32, "fu");
  auto hu = g.placeholder({1, 3}, f16, "hu");
  auto s = g.placeholder({2}, i64, "s");
  std::string e = error_of([&] { slice_update(base, iu, s); });
  EXPECT_NE(e.find("[slice_update]"), std::string::npos) << e;
  EXPECT_NE(e.find("update (i32) and base (f32) have different dtypes"), std::string::npos) << e;
  e = error_of([&] { slice_update(ibase, fu, s); });
  EXPECT_NE(e.find("update (f32) and base (i32) have different dtypes"), std::string::npos) << e;
  Tensor ok = slice_update(base, hu, s);
  EXPECT_EQ(ok.dtype(), f32);
  EXPECT_EQ(ok.shape(), Shape({4, 3}));
  EXPECT_EQ(slice_update(g.placeholder({4, 3}, bf16, "b16"), fu, s).dtype(), bf16);

  const int64_t H = 2, L = 16, D = 8;
  Graph kv;
  auto cache = kv.variable(zeros({1, H, L, D}, f16), "cache");
  auto rows = kv.placeholder({1, H, 2, D}, f32, "rows");
  auto at = kv.placeholder({4}, i64, "at");
  kv.assign(cache, slice_update(kv.read(cache), rows, at));
  std::mt19937_64 rng(std::random_device{}());
  for (Device dev : {Device::cpu(), Device::reference()}) {
    SCOPED_TRACE(dev.to_string());
    CompileOptions o;
    o.device = dev;
    auto exe = kv.compile({}, o);
    EXPECT_NE(joined(exe.pass_log())
                  .find("[inplace_variable_update] variable 'cache' is updated in place"),
              std::string::npos)
        << joined(exe.pass_log());
    std::vector<double> want(static_cast<size_t>(H * L * D), 0.0);
    for (int64_t pos : {3, 0, 14, 7}) {
      NDArray r = random_uniform({1, H, 2, D}, f32, -3, 3, rng());
      exe.run({{"rows", r}, {"at", NDArray::from_vector<int64_t>({0, 0, pos, 0}, {4})}});
      auto cast = r.astype(f16).to_doubles();
      for (int64_t h = 0; h < H; ++h)
        for (int64_t l = 0; l < 2; ++l)
          for (int64_t d = 0; d < D; ++d)
            want[static_cast<size_t>((h * L + pos + l) * D + d)] =
                cast[static_cast<size_t>((h * 2 + l) * D + d)];
      NDArray got = exe.variable("cache");
      EXPECT_EQ(got.dtype(), f16);
      EXPECT_EQ(got.to_doubles(), want) << "after writing at " << pos;
    }
    EXPECT_EQ(exe.variable_bytes_copied(), 0);
  }
}

TEST(AttentionPattern, ComposedAttentionBecomesSdpa) {
  Graph g;
  auto q = g.placeholder({1, 4, 7, 16}, f32, "q");
  auto k = g.placeholder({1, 4, 9, 16}, f32, "k");
  auto v = g.placeholder({1, 4, 9, 16}, f32, "v");
  auto m = g.placeholder({1, 1, 7, 9}, f32, "m");
  auto scores = matmul(q, transpose(k, {0, 1, 3, 2})) * 0.25;
  auto out = matmul(softmax(scores + m), v);
  auto exe = g.compile({out});
  EXPECT_NE(joined(exe.pass_log()).find("[attention_pattern] fused"), std::string::npos)
      << joined(exe.pass_log());
  EXPECT_NE(exe.to_text().find("sdpa("), std::string::npos);
  EXPECT_EQ(exe.to_text().find("softmax"), std::string::npos);
  CompileOptions ref;
  ref.device = Device::reference();
  ref.optimization_level = 0;
  auto plain = g.compile({out}, ref);
  std::mt19937_64 rng(std::random_device{}());
  Feeds f = {{"q", random_uniform({1, 4, 7, 16}, f32, -1, 1, rng())},
             {"k", random_uniform({1, 4, 9, 16}, f32, -1, 1, rng())},
             {"v", random_uniform({1, 4, 9, 16}, f32, -1, 1, rng())},
             {"m", random_uniform({1, 1, 7, 9}, f32, -2, 0, rng())}};
  auto a = exe.run(f)[0].to_vector<float>(), b = plain.run(f)[0].to_vector<float>();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5);
}

TEST(AttentionPattern, SharedScoresAreNotFused) {
  Graph g;
  auto q = g.placeholder({1, 2, 3, 8}, f32, "q");
  auto k = g.placeholder({1, 2, 3, 8}, f32, "k");
  auto p = softmax(matmul(q, k, {.transpose_a = false, .transpose_b = true}));
  auto out = matmul(p, k);
  auto exe = g.compile({out, p});  // the probabilities are an output too
  EXPECT_EQ(joined(exe.pass_log()).find("attention_pattern"), std::string::npos);
}

TEST(Sdpa, BadShapesAreClearErrors) {
  Graph g;
  auto q = g.placeholder({1, 32, 4, 64}, f32, "q");
  auto k6 = g.placeholder({1, 6, 4, 64}, f32, "k6");
  auto k8 = g.placeholder({1, 8, 4, 32}, f32, "k8");
  auto msg = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg([&] { sdpa(q, k6, k6); }).find("q has 32 heads, k has 6"), std::string::npos);
  EXPECT_NE(msg([&] { sdpa(q, k8, k8); }).find("q head dim 64 differs from k's 32"),
            std::string::npos);
}

// A Llama-shaped attention stack (src/models/llama.cpp's layer): q / k / v projections, heads,
// rope on q and k, the KV-cache writes of k and v into variables at `cache_at`, causal sdpa over
// the caches up to kv_len, the output projection and the residual. `k_also_output` makes layer 0's
// rotated keys a compile target too (then they must not be fused away). The caches are of dtype
// `cache_dt` (default: dt), the keys and values written into them converted to it.
struct RopeStack {
  Graph g;
  std::vector<Tensor> outputs;
  static constexpr int64_t H = 2, D = 16, kMaxLen = 24;
};
RopeStack rope_stack(DType dt, RopeAttrs ro, bool k_also_output = false,
                     std::optional<DType> cache_dt = {}) {
  const DType ct = cache_dt.value_or(dt);
  RopeStack s;
  Graph& g = s.g;
  const int64_t H = RopeStack::H, D = RopeStack::D, dm = H * D;
  auto x = g.placeholder({1, -1, dm}, dt, "x");
  auto positions = g.placeholder({-1}, i32, "positions");
  auto cache_at = g.placeholder({4}, i64, "cache_at");
  auto kv_len = g.placeholder({}, i64, "kv_len");
  auto w = [&](uint64_t seed) {
    return g.constant(random_normal({dm, dm}, f32, seed, 0, 0.2).astype(dt));
  };
  auto heads = [&](const Tensor& t) { return transpose(reshape(t, {1, -1, H, D}), {0, 2, 1, 3}); };
  Tensor h = x;
  for (int l = 0; l < 2; ++l) {
    auto seed = static_cast<uint64_t>(10 * l);
    Tensor q = rope(heads(matmul(h, w(seed + 1))), positions, ro);
    Tensor k = rope(heads(matmul(h, w(seed + 2))), positions, ro);
    Tensor v = heads(matmul(h, w(seed + 3)));
    if (k_also_output && l == 0) s.outputs.push_back(k);
    auto kc = g.variable(zeros({1, H, RopeStack::kMaxLen, D}, ct), "k" + std::to_string(l));
    auto vc = g.variable(zeros({1, H, RopeStack::kMaxLen, D}, ct), "v" + std::to_string(l));
    Tensor keys = slice_update(g.read(kc), k, cache_at);
    Tensor values = slice_update(g.read(vc), v, cache_at);
    g.assign(kc, keys);
    g.assign(vc, values);
    Tensor att = sdpa(q, keys, values, {.causal = true, .kv_len = kv_len});
    h = h + matmul(reshape(transpose(att, {0, 2, 1, 3}), {1, -1, dm}), w(seed + 4));
  }
  s.outputs.insert(s.outputs.begin(), h);
  return s;
}

// Prefill of 3 tokens, then decode steps: the same fresh random inputs for every executable.
std::vector<Feeds> rope_stack_steps(DType dt, uint64_t seed) {
  std::vector<Feeds> steps;
  int64_t pos = 0;
  for (int64_t len : {3, 1, 1, 1, 1, 1}) {
    std::vector<int32_t> p;
    for (int64_t i = 0; i < len; ++i) p.push_back(static_cast<int32_t>(pos + i));
    steps.push_back(
        {{"x",
          random_uniform({1, len, RopeStack::H * RopeStack::D}, f32, -1, 1, seed + pos).astype(dt)},
         {"positions", NDArray::from_vector<int32_t>(p, {len})},
         {"cache_at", NDArray::from_vector<int64_t>({0, 0, pos, 0}, {4})},
         {"kv_len", NDArray::from_vector<int64_t>({pos + len}, {})}});
    pos += len;
  }
  return steps;
}

// fuse_rope_into_write_slice turns each layer's rope(k) → write_slice into one rope_write_slice;
// the outputs and the caches equal the unfused executable's bit for bit on the CPU (the same rope
// rows, written straight into the cache instead of through a temporary), over a prefill and decode
// steps, for both rope layouts, rotary_dim < D, f32 and f16, and f16 caches fed f32 keys and
// values (converted to f16 as they are written); and match the reference device, which keeps the
// ops apart. LOOM_DISABLE_PASSES turns the pass off like CompileOptions.
// Then fuse_kv_cache_write (on by default, off in `fused`) makes each layer's key write, value
// write and query rope one rope_write_kv node (`kv`): the same values bit for bit, in place.
TEST(KvCache, RopeIsFusedIntoTheCacheWrite) {
  struct Config {
    DType dt;
    RopeAttrs ro;
    std::optional<DType> cache = {};  // default: dt
  };
  const std::vector<Config> configs = {
      {f32, {.interleaved = true}},
      {f32, {.interleaved = false, .theta = 500000, .position_scale = 2, .rotary_dim = 8}},
      {f16, {.interleaved = true, .rotary_dim = 10}},
      {f16, {.interleaved = false}},
      {f32, {.interleaved = true}, f16},
      {f32, {.interleaved = false, .theta = 500000, .position_scale = 2, .rotary_dim = 8}, f16},
  };
  std::mt19937_64 rng(std::random_device{}());
  for (const auto& cfg : configs) {
    const DType cache_dt = cfg.cache.value_or(cfg.dt);
    SCOPED_TRACE(std::string(dtype_name(cfg.dt)) + " cache " + std::string(dtype_name(cache_dt)) +
                 (cfg.ro.interleaved ? " interleaved" : "") + " rotary_dim " +
                 std::to_string(cfg.ro.rotary_dim));
    RopeStack s = rope_stack(cfg.dt, cfg.ro, false, cache_dt);
    CompileOptions rope_only;
    rope_only.disabled_passes = {"fuse_kv_cache_write"};
    auto fused = s.g.compile(s.outputs, rope_only);
    CompileOptions kv_only;
    kv_only.disabled_passes = {"fuse_rope_write_kv_into_sdpa"};
    auto kv = s.g.compile(s.outputs, kv_only);
    auto kv_sdpa = s.g.compile(s.outputs);
    CompileOptions off;
    off.disabled_passes = {"fuse_rope_into_write_slice"};
    auto plain = s.g.compile(s.outputs, off);
    setenv("LOOM_DISABLE_PASSES", "fuse_rope_into_write_slice", 1);
    auto env_off = s.g.compile(s.outputs);
    unsetenv("LOOM_DISABLE_PASSES");
    CompileOptions ref_opt;
    ref_opt.device = Device::reference();
    auto ref = s.g.compile(s.outputs, ref_opt);

    std::string log = joined(fused.pass_log());
    EXPECT_NE(log.find("[fuse_rope_into_write_slice] fused 2 rope → write_slice pair(s) into "
                       "rope_write_slice"),
              std::string::npos)
        << log;
    std::string text = fused.to_text();
    EXPECT_NE(text.find("rope_write_slice("), std::string::npos) << text;
    // Only the queries' ropes are left; the value caches keep their write_slice.
    size_t ropes = 0;
    for (size_t at = text.find(" rope("); at != std::string::npos; at = text.find(" rope(", at + 1))
      ++ropes;
    EXPECT_EQ(ropes, 2u) << text;
    EXPECT_NE(text.find("write_slice("), std::string::npos) << text;
    EXPECT_EQ(plain.to_text().find("rope_write_slice"), std::string::npos);
    EXPECT_NE(joined(env_off.pass_log()).find("[fuse_rope_into_write_slice] disabled"),
              std::string::npos);
    EXPECT_EQ(env_off.to_text().find("rope_write_slice"), std::string::npos);
    EXPECT_EQ(ref.to_text().find("rope_write_slice"), std::string::npos);
    // Each layer's two writes and query rope: one node, nothing else left of them.
    EXPECT_NE(joined(kv.pass_log())
                  .find("[fuse_kv_cache_write] fused 2 key / value cache write pair(s) into "
                        "rope_write_kv (2 with the queries' rope)"),
              std::string::npos)
        << joined(kv.pass_log());
    const std::string kv_text = kv.to_text();
    EXPECT_EQ(count(kv_text, "rope_write_kv("), 2u) << kv_text;
    EXPECT_EQ(count(kv_text, "write_slice("), 0u) << kv_text;
    EXPECT_EQ(count(kv_text, " rope("), 0u) << kv_text;
    // Then fuse_rope_write_kv_into_sdpa (on by default) joins each rope_write_kv and the sdpa
    // over its caches and rotated queries: again the same values bit for bit on the CPU.
    EXPECT_NE(joined(kv_sdpa.pass_log())
                  .find("[fuse_rope_write_kv_into_sdpa] fused 2 cache write(s) into the "
                        "attention that reads them"),
              std::string::npos)
        << joined(kv_sdpa.pass_log());
    const std::string kv_sdpa_text = kv_sdpa.to_text();
    EXPECT_EQ(count(kv_sdpa_text, "rope_write_kv_sdpa("), 2u) << kv_sdpa_text;
    EXPECT_EQ(count(kv_sdpa_text, "rope_write_kv("), 0u) << kv_sdpa_text;
    EXPECT_EQ(count(kv_sdpa_text, " sdpa("), 0u) << kv_sdpa_text;

    uint64_t seed = rng();
    for (const Feeds& f : rope_stack_steps(cfg.dt, seed)) {
      auto a = fused.run(f), b = plain.run(f), c = ref.run(f), d = kv.run(f), e = kv_sdpa.run(f);
      ASSERT_EQ(a.size(), 1u);
      EXPECT_EQ(a[0].to_doubles(), b[0].to_doubles()) << "seed " << seed;
      EXPECT_EQ(d[0].to_doubles(), b[0].to_doubles()) << "seed " << seed;
      EXPECT_EQ(e[0].to_doubles(), b[0].to_doubles()) << "seed " << seed;
      auto va = a[0].to_doubles(), vc = c[0].to_doubles();
      const double tol = cfg.dt == f32 && cache_dt == f32 ? 1e-4 : 3e-2;
      for (size_t i = 0; i < va.size(); ++i)
        ASSERT_NEAR(va[i], vc[i], tol * (1 + std::abs(vc[i]))) << "seed " << seed << " at " << i;
    }
    for (const char* var : {"k0", "k1", "v0", "v1"}) {
      EXPECT_EQ(fused.variable(var).dtype(), cache_dt) << var;
      EXPECT_EQ(fused.variable(var).to_doubles(), plain.variable(var).to_doubles()) << var;
      EXPECT_EQ(kv.variable(var).to_doubles(), plain.variable(var).to_doubles()) << var;
      EXPECT_EQ(kv_sdpa.variable(var).to_doubles(), plain.variable(var).to_doubles()) << var;
      auto va = fused.variable(var).to_doubles(), vc = ref.variable(var).to_doubles();
      const double tol = cfg.dt == f32 && cache_dt == f32 ? 1e-4 : 3e-2;
      for (size_t i = 0; i < va.size(); ++i)
        ASSERT_NEAR(va[i], vc[i], tol * (1 + std::abs(vc[i]))) << var << " at " << i;
    }
    // The fused executables wrote the caches in place too: no copies.
    EXPECT_EQ(fused.variable_bytes_copied(), 0);
    EXPECT_EQ(kv.variable_bytes_copied(), 0);
    EXPECT_EQ(kv_sdpa.variable_bytes_copied(), 0);
  }
}

// A rope whose output is used elsewhere (here a compile target) is not fused: rope_write_slice
// would not produce it. The other layer's still is.
TEST(KvCache, RopeWithAnotherUseIsNotFused) {
  RopeStack s = rope_stack(f32, {.interleaved = true}, /*k_also_output=*/true);
  auto exe = s.g.compile(s.outputs);
  std::string log = joined(exe.pass_log());
  EXPECT_NE(log.find("[fuse_rope_into_write_slice] fused 1 rope → write_slice pair(s)"),
            std::string::npos)
      << log;
  CompileOptions off;
  off.disabled_passes = {"fuse_rope_into_write_slice"};
  auto plain = s.g.compile(s.outputs, off);
  for (const Feeds& f : rope_stack_steps(f32, 7)) {
    auto a = exe.run(f), b = plain.run(f);
    ASSERT_EQ(a.size(), 2u);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].to_doubles(), b[i].to_doubles()) << i;
  }
  // Also not when the rope's output feeds another op: the golden test
  // (tests/passes/golden/fuse_rope_into_write_slice.before.ir) covers that and the slots.
}

// rope_write_slice on bad inputs: a clear error naming the op and the problem — at build time for
// what type inference sees (rope's rules on x / positions, write_slice's on the cache, x and the
// starts), at run time for a start that does not fit the cache (on the CPU kernel, and on the
// reference kernel, which is rope then write_slice).
TEST(KvCache, RopeWriteSliceRejectsBadInputs) {
  Graph g;
  auto cache = g.placeholder({1, 2, 8, 4}, f32, "cache");
  auto cache_i32 = g.placeholder({1, 2, 8, 4}, i32, "cache_i32");
  auto cache3 = g.placeholder({2, 8, 4}, f32, "cache3");
  auto x = g.placeholder({1, 2, 2, 4}, f32, "x");
  auto x3 = g.placeholder({2, 2, 4}, f32, "x3");
  auto long_x = g.placeholder({1, 2, 9, 4}, f32, "long_x");
  auto odd_x = g.placeholder({1, 2, 2, 5}, f32, "odd_x");
  auto pos = g.placeholder({2}, i32, "pos");
  auto pos3 = g.placeholder({3}, i32, "pos3");
  auto fpos = g.placeholder({2}, f32, "fpos");
  auto starts = g.placeholder({4}, i64, "starts");
  auto starts3 = g.placeholder({3}, i64, "starts3");
  auto fstarts = g.placeholder({4}, f32, "fstarts");
  auto fuse = [&](const Tensor& c, const Tensor& u, const Tensor& p, const Tensor& s,
                  RopeAttrs o = {}) {
    auto v = [](const Tensor& t) { return ir::Value{t.node(), t.index()}; };
    auto out =
        ir::add_node(*g.data(), ir::op::rope_write_slice, {v(c), v(u), v(p), v(s)}, make_attrs(o));
    return Tensor(g.data(), out[0].node, out[0].index);
  };
  struct Bad {
    std::function<void()> build;
    const char* says;
  };
  const std::vector<Bad> bad = {
      {[&] { fuse(cache, x3, pos, starts); }, "x must be [B, H, L, D]"},
      {[&] { fuse(cache, x, fpos, starts); }, "positions must be i32 or i64"},
      {[&] { fuse(cache, x, pos3, starts); }, "positions has 3 entries for sequence length 2"},
      {[&] { fuse(cache, x, pos, starts, {.rotary_dim = 3}); }, "rotary_dim 3 must be even"},
      {[&] { fuse(cache, odd_x, pos, starts); }, "head dim 5 must be even"},
      {[&] { fuse(cache_i32, x, pos, starts); }, "x (f32) and cache (i32) have different dtypes"},
      {[&] { fuse(cache3, x, pos, starts); }, "x has rank 4, cache has 3"},
      {[&] { fuse(cache, long_x, g.placeholder({9}, i32, "pos9"), starts); },
       "x dim 2 (9) is larger than the cache's (8)"},
      {[&] { fuse(cache, x, pos, starts3); }, "starts must be a vector of 4 offsets"},
      {[&] { fuse(cache, x, pos, fstarts); }, "starts must be i32 or i64"},
  };
  for (const auto& b : bad) {
    std::string e = error_of(b.build);
    EXPECT_NE(e.find("[rope_write_slice]"), std::string::npos) << e;
    EXPECT_NE(e.find(b.says), std::string::npos) << e;
  }
  // rope_write_kv(k_cache, v_cache, k, v, positions, starts [, q]): each part's rules.
  auto kv = [&](std::vector<Tensor> in) {
    std::vector<ir::Value> args;
    for (const auto& t : in) args.push_back({t.node(), t.index()});
    ir::add_node(*g.data(), ir::op::rope_write_kv, args, make_attrs(RopeAttrs{}));
  };
  const std::vector<Bad> bad_kv = {
      {[&] {
         kv({cache, cache, x, x, pos});
       },
       "expects 6 or 7 inputs"},
      {[&] {
         kv({cache, cache, x, long_x, pos, starts});
       },
       "v dim 2 (9) is larger than the v_cache's (8)"},
      {[&] {
         kv({cache, cache, x, x, pos, starts, odd_x});
       },
       "must be even"},
      {[&] {
         kv({cache, cache, x, x, fpos, starts});
       },
       "positions must be i32 or i64"},
  };
  for (const auto& b : bad_kv) {
    std::string e = error_of(b.build);
    EXPECT_NE(e.find("[rope_write_kv]"), std::string::npos) << e;
    EXPECT_NE(e.find(b.says), std::string::npos) << e;
  }

  // A start past the cache's end, found at run time: on the CPU's fused kernels (the KV-cache
  // stack, where the passes made the nodes: rope_write_kv_sdpa, rope_write_kv without
  // fuse_rope_write_kv_into_sdpa, rope_write_slice without fuse_kv_cache_write) and on the
  // reference kernel (the node built directly).
  RopeStack s = rope_stack(f32, {.interleaved = true});
  Feeds f = rope_stack_steps(f32, 3)[0];
  f[2].second = NDArray::from_vector<int64_t>({0, 0, RopeStack::kMaxLen - 2, 0}, {4});
  for (const char* op : {"rope_write_kv_sdpa", "rope_write_kv", "rope_write_slice"}) {
    CompileOptions o;
    if (std::string(op) == "rope_write_kv") o.disabled_passes = {"fuse_rope_write_kv_into_sdpa"};
    if (std::string(op) == "rope_write_slice") o.disabled_passes = {"fuse_kv_cache_write"};
    auto exe = s.g.compile(s.outputs, o);
    std::string run_err = error_of([&] { exe.run(f); });
    EXPECT_NE(run_err.find(std::string("[") + op + "] start 22 + size 3 on axis 2 exceeds dim 24"),
              std::string::npos)
        << run_err;
  }

  Graph d;
  auto dc = d.placeholder({1, 2, 8, 4}, f32, "cache");
  auto dx = d.placeholder({1, 2, 2, 4}, f32, "x");
  auto dp = d.placeholder({2}, i32, "pos");
  auto ds = d.placeholder({4}, i64, "starts");
  Tensor copy = dc * 1.0;
  auto v = [](const Tensor& t) { return ir::Value{t.node(), t.index()}; };
  auto node = ir::add_node(*d.data(), ir::op::rope_write_slice, {v(copy), v(dx), v(dp), v(ds)},
                           make_attrs(RopeAttrs{}));
  Tensor out(d.data(), node[0].node, node[0].index);
  Feeds bad_start = {{"cache", zeros({1, 2, 8, 4})},
                     {"x", zeros({1, 2, 2, 4})},
                     {"pos", NDArray::from_vector<int32_t>({0, 1}, {2})},
                     {"starts", NDArray::from_vector<int64_t>({0, 0, 7, 0}, {4})}};
  for (Device dev : {Device::reference(), Device::cpu()}) {
    CompileOptions o;
    o.device = dev;
    std::string e = error_of([&] { d.compile({out}, o).run(bad_start); });
    EXPECT_NE(e.find("[rope_write_slice] start 7 + size 2 on axis 2 exceeds dim 8"),
              std::string::npos)
        << dev.to_string() << ": " << e;
  }
}

}  // namespace
}  // namespace loom
