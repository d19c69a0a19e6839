// KV cache in variables: slice_update + assign compiled into an in-place write of only the new
// slice; the attention pattern pass; cached decode equals uncached recomputation.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "loom/loom.h"

namespace loom {
namespace {

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& l : v) s += l + "\n";
  return s;
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

}  // namespace
}  // namespace loom
