// The reference backend is the oracle for every other backend, so it is itself checked against
// hand-computed values and against numpy-made golden data (scripts/make_reference_golden.py).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <functional>

#include "loom/loom.h"

namespace loom {
namespace {

std::string data_dir() {
  const char* d = std::getenv("LOOM_TEST_DATA");
  return std::string(d ? d : "tests/data") + "/reference/";
}

Executable compile_ref(const Graph& g, const std::vector<Tensor>& outs) {
  CompileOptions o;
  o.device = Device::reference();
  o.optimization_level = 0;
  return g.compile(outs, o);
}

using Builder = std::function<Tensor(Graph&, const std::vector<Tensor>&)>;

void check_golden(const std::string& name, int num_inputs, const Builder& build,
                  double tol = 1e-5) {
  Graph g;
  std::vector<Tensor> ph;
  Feeds feeds;
  for (int k = 0; k < num_inputs; ++k) {
    NDArray a = NDArray::load_npy(data_dir() + name + ".in" + std::to_string(k) + ".npy");
    ph.push_back(g.placeholder(a.shape(), a.dtype(), "in" + std::to_string(k)));
    feeds.emplace_back("in" + std::to_string(k), a);
  }
  NDArray want = NDArray::load_npy(data_dir() + name + ".out.npy");
  NDArray got = compile_ref(g, {build(g, ph)}).run(feeds)[0];
  ASSERT_EQ(got.type(), want.type()) << name;
  auto a = got.to_doubles(), b = want.to_doubles();
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_NEAR(a[i], b[i], tol * (1 + std::abs(b[i]))) << name << " element " << i;
}

TEST(ReferenceGolden, MatchesNumpy) {
  using V = const std::vector<Tensor>&;
  check_golden("add_broadcast", 2, [](Graph&, V in) { return in[0] + in[1]; });
  check_golden("matmul_batched", 2, [](Graph&, V in) { return matmul(in[0], in[1]); });
  check_golden("softmax", 1, [](Graph&, V in) { return softmax(in[0]); });
  check_golden("log_softmax", 1, [](Graph&, V in) { return log_softmax(in[0]); });
  check_golden("layer_norm", 3, [](Graph&, V in) { return layer_norm(in[0], in[1], in[2]); });
  check_golden("rms_norm", 2, [](Graph&, V in) { return rms_norm(in[0], in[1]); });
  check_golden("sum_axes02_keep", 1, [](Graph&, V in) { return sum(in[0], {0, 2}, true); });
  check_golden("mean_axis1", 1, [](Graph&, V in) { return mean(in[0], {1}); });
  check_golden("max_all", 1, [](Graph&, V in) { return max(in[0]); });
  check_golden("argmax_axis1", 1, [](Graph&, V in) { return argmax(in[0], 1); });
  check_golden("transpose_201", 1, [](Graph&, V in) { return permute(in[0], {2, 0, 1}); });
  check_golden("slice_neg_step", 1, [](Graph&, V in) {
    return slice(in[0], {4, 0}, {0, kSliceEnd}, {1, 2}, {-2, 3});
  });
  check_golden("gather_axis1", 2, [](Graph&, V in) { return gather(in[0], in[1], 1); });
  check_golden("pad_reflect", 1, [](Graph&, V in) {
    return pad(in[0], {2, 1}, {1, 4}, PadMode::reflect);
  });
  check_golden("pad_edge", 1, [](Graph&, V in) {
    return pad(in[0], {0, 2}, {3, 0}, PadMode::edge);
  });
  check_golden("tile", 1, [](Graph&, V in) { return tile(in[0], {2, 3}); });
  check_golden("flip_axis1", 1, [](Graph&, V in) { return flip(in[0], {1}); });
  check_golden("concat_axis0", 2, [](Graph&, V in) { return concat({in[0], in[1]}, 0); });
  check_golden("gelu_erf", 1, [](Graph&, V in) { return gelu(in[0]); });
  check_golden("mod_numpy", 2, [](Graph&, V in) { return mod(in[0], in[1]); });
  check_golden(
      "round_half_even", 1, [](Graph&, V in) { return round(in[0]); }, 0);
  check_golden(
      "cast_f32_i32", 1, [](Graph&, V in) { return cast(in[0], i32); }, 0);
}

// Values worked out by hand.
TEST(ReferenceHand, Values) {
  Graph g;
  auto a = g.constant(NDArray::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}));
  auto b = g.constant(NDArray::from_vector<float>({1, 0, 0, 1, 1, 1}, {3, 2}));
  auto i = g.constant(NDArray::from_vector<int32_t>({7, -7, 7, -7}, {4}));
  auto j = g.constant(NDArray::from_vector<int32_t>({2, 2, -2, -2}, {4}));
  auto exe = compile_ref(g, {matmul(a, b), sum(a, {1}), div(i, j), mod(i, j), argmin(a, 0),
                             slice(a, {1}, {kSliceEnd}, {1}), cast(greater(a, g.scalar(3.5)), i64),
                             softmax(g.constant(NDArray::from_vector<float>({0, 0}, {2})))});
  auto r = exe.run({});
  EXPECT_EQ(r[0].to_vector<float>(), (std::vector<float>{4, 5, 10, 11}));
  EXPECT_EQ(r[1].to_vector<float>(), (std::vector<float>{6, 15}));
  EXPECT_EQ(r[2].to_vector<int>(), (std::vector<int>{3, -3, -3, 3}));
  EXPECT_EQ(r[3].to_vector<int>(), (std::vector<int>{1, 1, -1, -1}));
  EXPECT_EQ(r[4].to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 0}));
  EXPECT_EQ(r[5].to_vector<float>(), (std::vector<float>{2, 3, 5, 6}));
  EXPECT_EQ(r[6].to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(r[7].to_vector<float>(), (std::vector<float>{0.5f, 0.5f}));
}

}  // namespace
}  // namespace loom
