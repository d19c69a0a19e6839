// The sample op beyond the op harness: top_k 1 is argmax, the frequencies of many draws match the
// distribution the definition gives (a wrong softmax, temperature or top-p cut fails), seeds,
// non-finite logits, the generator's pinned values, and errors. CUDA parts skip without a GPU.
#include "ops/sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "loom/loom.h"

namespace loom {
namespace {

std::vector<Device> devices() {
  std::vector<Device> d{Device::reference(), Device::cpu()};
  if (cuda_device_count() > 0) d.push_back(Device::cuda(0));
  return d;
}

std::vector<int32_t> run_sample(const Device& d, const NDArray& logits, int64_t seed,
                                SampleAttrs a) {
  Graph g;
  auto x = g.placeholder(logits.shape(), logits.dtype(), "x");
  auto s = g.placeholder({}, i64, "seed");
  CompileOptions o;
  o.device = d;
  Executable exe = g.compile({sample(x, s, a)}, o);
  auto out = exe.run({{"x", logits}, {"seed", NDArray::from_vector<int64_t>({seed}, {})}});
  return to_host(out[0]).to_vector<int32_t>();
}

TEST(Sample, GeneratorIsPinned) {
  // Vigna's splitmix64 from state 0 gives 0xE220A8397B1DCDAF first: ports must match it.
  EXPECT_EQ(sampling::splitmix64(0), 0xE220A8397B1DCDAFull);
  EXPECT_EQ(sampling::uniform(0, 0), static_cast<double>(0xE220A8397B1DCDAFull >> 11) * 0x1.0p-53);
  EXPECT_NE(sampling::uniform(5, 0), sampling::uniform(5, 1));
  static_assert(sampling::uniform(1, 2) >= 0 && sampling::uniform(1, 2) < 1);
}

TEST(Sample, TopK1IsArgmax) {
  for (DType t : {f32, f16}) {
    NDArray x = random_uniform({16, 3000}, t, -3, 3, 99);
    auto v = x.to_doubles();
    std::vector<int32_t> want;
    for (int64_t r = 0; r < 16; ++r) {
      auto row = v.begin() + r * 3000;
      want.push_back(static_cast<int32_t>(std::max_element(row, row + 3000) - row));
    }
    for (const Device& d : devices())
      for (int64_t seed : {1, 2, 12345})
        EXPECT_EQ(run_sample(d, x, seed, {.temperature = 1.3, .top_k = 1, .top_p = 0.5}), want)
            << d.to_string() << " " << dtype_name(t);
  }
}

// The distribution the definition gives, in double, computed independently of the kernels.
std::vector<double> expected(const std::vector<float>& logits, SampleAttrs a) {
  size_t n = logits.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t p, size_t q) { return logits[p] > logits[q]; });
  size_t k = a.top_k > 0 ? std::min<size_t>(static_cast<size_t>(a.top_k), n) : n;
  std::vector<double> w(k);
  double s = 0;
  for (size_t i = 0; i < k; ++i)
    s += w[i] = std::exp((logits[order[i]] - logits[order[0]]) / a.temperature);
  size_t m = k;
  double cum = 0;
  for (size_t i = 0; i < k && a.top_p < 1; ++i)
    if ((cum += w[i] / s) >= a.top_p) {
      m = i + 1;
      break;
    }
  double kept = 0;
  for (size_t i = 0; i < m; ++i) kept += w[i];
  std::vector<double> p(n, 0);
  for (size_t i = 0; i < m; ++i) p[order[i]] = w[i] / kept;
  return p;
}

// Many rows of the same logits (each row draws its own u) against the expected frequencies.
TEST(Sample, FrequenciesMatchTheDistribution) {
  const std::vector<float> logits{1.0f, 2.5f, -0.5f, 2.0f, 0.3f, 2.5f, -3.0f, 1.7f, 0.9f, 1.2f};
  const int64_t V = static_cast<int64_t>(logits.size()), N = 40000;
  std::vector<float> rows;
  for (int64_t r = 0; r < N; ++r) rows.insert(rows.end(), logits.begin(), logits.end());
  NDArray x = NDArray::from_vector(rows, {N, V});
  std::vector<Device> devs{Device::cpu()};
  if (cuda_device_count() > 0) devs.push_back(Device::cuda(0));
  for (SampleAttrs a : {SampleAttrs{.temperature = 1, .top_k = 0, .top_p = 1},
                        SampleAttrs{.temperature = 0.7, .top_k = 4, .top_p = 1},
                        SampleAttrs{.temperature = 1.3, .top_k = 0, .top_p = 0.6},
                        SampleAttrs{.temperature = 0.5, .top_k = 6, .top_p = 0.8}}) {
    auto p = expected(logits, a);
    for (const Device& d : devs)
      for (int64_t seed : {7, 2024}) {
        auto picks = run_sample(d, x, seed, a);
        std::vector<double> count(static_cast<size_t>(V), 0);
        for (int32_t t : picks) {
          ASSERT_TRUE(t >= 0 && t < V);
          count[static_cast<size_t>(t)] += 1;
        }
        double chi2 = 0;
        int df = -1;
        for (int64_t i = 0; i < V; ++i) {
          double e = p[static_cast<size_t>(i)] * N, o = count[static_cast<size_t>(i)];
          if (e == 0) {
            EXPECT_EQ(o, 0) << "token " << i << " is outside top-k/top-p but was drawn";
            continue;
          }
          chi2 += (o - e) * (o - e) / e;
          ++df;
        }
        // Mean df, sd sqrt(2 df): df + 8 sd + 10 is a generous bound (p < 1e-9); a wrong
        // temperature or softmax gives chi2 in the hundreds at N = 40000.
        EXPECT_LT(chi2, df + 8 * std::sqrt(2.0 * df) + 10)
            << d.to_string() << " T=" << a.temperature << " k=" << a.top_k << " p=" << a.top_p;
      }
  }
}

TEST(Sample, SeedsAndRows) {
  NDArray x = random_uniform({64, 500}, f32, -1, 1, 5);
  SampleAttrs a{.temperature = 1, .top_k = 0, .top_p = 1};
  for (const Device& d : devices()) {
    auto s1 = run_sample(d, x, 1, a), s1b = run_sample(d, x, 1, a), s2 = run_sample(d, x, 2, a);
    EXPECT_EQ(s1, s1b) << d.to_string();
    EXPECT_NE(s1, s2) << d.to_string();
  }
  // Same logits in every row: rows draw different u, so picks differ across rows.
  NDArray same = NDArray::from_vector(std::vector<float>(8 * 100, 0.0f), {8, 100});
  auto picks = run_sample(Device::cpu(), same, 3, a);
  EXPECT_GT(std::set<int32_t>(picks.begin(), picks.end()).size(), 4u);
}

TEST(Sample, NonFiniteLogits) {
  float inf = INFINITY, nan = NAN;
  NDArray x = NDArray::from_vector<float>(
      {nan, 1, inf, 2, -inf, -inf, -inf, -inf, nan, nan, nan, nan, 0, -inf, 3, nan}, {4, 4});
  for (const Device& d : devices())
    for (int64_t seed : {1, 9})
      // +inf wins; all -inf/NaN: the first candidate (index 0); -inf/NaN never drawn otherwise.
      EXPECT_EQ(run_sample(d, x, seed, {.temperature = 1, .top_k = 0, .top_p = 1}).at(0), 2);
  for (const Device& d : devices()) {
    auto r = run_sample(d, x, 4, {.temperature = 100, .top_k = 3, .top_p = 1});
    EXPECT_EQ(r[1], 0) << d.to_string();
    EXPECT_EQ(r[2], 0) << d.to_string();
    EXPECT_TRUE(r[3] == 0 || r[3] == 2) << d.to_string() << " " << r[3];
  }
}

TEST(Sample, BadArgumentsAreClearErrors) {
  auto expect_error = [](auto build, const std::string& needle) {
    Graph g;
    auto x = g.placeholder({2, 10}, f32, "x");
    auto s = g.placeholder({}, i64, "seed");
    try {
      build(g, x, s);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("sample"), std::string::npos) << e.what();
    }
  };
  expect_error([](Graph&, Tensor x, Tensor s) { sample(x, s, {.temperature = 0}); },
               "temperature must be > 0");
  expect_error([](Graph&, Tensor x, Tensor s) { sample(x, s, {.temperature = -1}); },
               "temperature must be > 0");
  expect_error([](Graph&, Tensor x, Tensor s) { sample(x, s, {.top_k = -1}); },
               "top_k must be >= 0");
  expect_error([](Graph&, Tensor x, Tensor s) { sample(x, s, {.top_p = 0}); },
               "top_p must be in (0, 1]");
  expect_error([](Graph&, Tensor x, Tensor s) { sample(x, s, {.top_p = 1.5}); },
               "top_p must be in (0, 1]");
  expect_error([](Graph& g, Tensor, Tensor s) { sample(g.placeholder({3}, i32, "i"), s); },
               "logits must be f32, f16 or bf16");
  expect_error([](Graph& g, Tensor x, Tensor) { sample(x, g.placeholder({}, i32, "s32")); },
               "seed must be a scalar i64");
  expect_error([](Graph& g, Tensor x, Tensor) { sample(x, g.placeholder({1}, i64, "s1")); },
               "seed must be a scalar i64");
  expect_error(
      [](Graph& g, Tensor, Tensor s) {
        sample(g.placeholder({4, 0}, f32, "e"), s);
      },
      "vocabulary axis is empty");
  expect_error([](Graph& g, Tensor, Tensor s) { sample(g.placeholder({}, f32, "r0"), s); },
               "rank >= 1");
}

TEST(Sample, DynamicShapesAndEmptyVocabularyAtRunTime) {
  Graph g;
  auto x = g.placeholder({-1, -1}, f32, "x");
  auto s = g.placeholder({}, i64, "seed");
  Executable exe = g.compile({sample(x, s)});
  auto seed = NDArray::from_vector<int64_t>({1}, {});
  auto out = exe.run({{"x", random_uniform({3, 7}, f32, -1, 1, 1)}, {"seed", seed}});
  EXPECT_EQ(out[0].shape(), Shape({3}));
  EXPECT_EQ(out[0].dtype(), i32);
  EXPECT_THROW(exe.run({{"x", zeros({3, 0}, f32)}, {"seed", seed}}), Error);
}

}  // namespace
}  // namespace loom
