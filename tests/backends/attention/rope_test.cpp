// RoPE kernel vs a naive double-precision reference: both layouts, rotary_dim < D, positions
// with gaps (i32 and i64), linear scaling, strided and in-place use, half precision.
#include "backends/cpu/attention/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "backends/attention/test_util.h"
#include "loom/error.h"
#include "runtime/thread_pool.h"

namespace loom::cpu {
namespace {

using testing::Tensor;
using testing::test_seed;

struct RopeCase {
  int64_t B = 2, H = 3, L = 5, D = 16;
  RopeLayout layout = RopeLayout::kHalfSplit;
  int64_t rotary_dim = -1;
  double theta = 10000.0, scaling = 1.0;
  DType dt = DType::f32, pos_dt = DType::i32;
  bool in_place = false, strided = false, shared_positions = false;
};

void check(const RopeCase& c, ThreadPool* pool) {
  std::ostringstream os;
  os << "B=" << c.B << " H=" << c.H << " L=" << c.L << " D=" << c.D
     << " interleaved=" << (c.layout == RopeLayout::kInterleaved) << " rd=" << c.rotary_dim
     << " dtype=" << dtype_name(c.dt) << " in_place=" << c.in_place << " strided=" << c.strided
     << " seed=" << test_seed();
  SCOPED_TRACE(os.str());
  std::mt19937_64 rng(test_seed() ^ std::hash<std::string>{}(os.str()));
  // Strided: x is [B, L, H, D] in memory (heads transposed) inside a wider row.
  Tensor x = c.strided ? Tensor(c.dt, {c.B, c.L, c.H, c.D}, {c.B, c.L, c.H, c.D + 6}, {0, 0, 0, 3})
                       : Tensor(c.dt, {c.B, c.H, c.L, c.D});
  x.randomize(rng);
  int64_t xs[4];
  std::copy(x.strides, x.strides + 4, xs);
  if (c.strided) std::swap(xs[1], xs[2]);  // view [B, L, H, D] storage as [B, H, L, D]
  // Positions with gaps, up to ~1e5 (where f32 angles would be visibly wrong).
  const int64_t pb = c.shared_positions ? 1 : c.B;
  std::vector<int64_t> pos(static_cast<size_t>(pb * c.L));
  std::uniform_int_distribution<int64_t> step(1, 5000);
  for (int64_t b = 0; b < pb; ++b) {
    int64_t p = step(rng) % 7;
    for (int64_t l = 0; l < c.L; ++l) pos[b * c.L + l] = (p += step(rng));
  }
  std::vector<int32_t> pos32(pos.begin(), pos.end());

  Tensor out = c.in_place ? x : Tensor(c.dt, {c.B, c.H, c.L, c.D});
  RopeArgs a;
  a.x = x.data();
  a.x_dtype = c.dt;
  a.B = c.B, a.H = c.H, a.L = c.L, a.D = c.D;
  std::copy(xs, xs + 4, a.x_strides);
  a.positions = c.pos_dt == DType::i32 ? static_cast<const void*>(pos32.data()) : pos.data();
  a.positions_dtype = c.pos_dt;
  a.positions_strides[0] = c.shared_positions ? 0 : c.L;
  a.positions_strides[1] = 1;
  a.out = c.in_place ? x.data() : out.data();
  a.out_dtype = c.dt;
  if (c.in_place)
    std::copy(xs, xs + 4, a.out_strides);
  else
    std::copy(out.strides, out.strides + 4, a.out_strides);
  a.layout = c.layout;
  a.theta = c.theta;
  a.scaling_factor = c.scaling;
  a.rotary_dim = c.rotary_dim;
  const Tensor x0 = x;  // the input values, before an in-place run overwrites them
  rope(a, pool);

  const int64_t rd = c.rotary_dim < 0 ? c.D : c.rotary_dim, half = rd / 2;
  // Output rounding to f16/bf16 is half an ulp of |x| <= 1.42; f32 sin/cos and products ~1e-6.
  const double tol = c.dt == DType::f16 ? 1.5e-3 : c.dt == DType::bf16 ? 1e-2 : 2e-6;
  int64_t bad = 0;
  double worst = 0;
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h)
      for (int64_t l = 0; l < c.L; ++l) {
        const double p =
            static_cast<double>(pos[(c.shared_positions ? 0 : b) * c.L + l]) / c.scaling;
        auto xin = [&](int64_t d) { return c.strided ? x0.at(b, l, h, d) : x0.at(b, h, l, d); };
        std::vector<double> want(static_cast<size_t>(c.D));
        for (int64_t d = 0; d < c.D; ++d) want[d] = xin(d);
        for (int64_t k = 0; k < half; ++k) {
          const double ang = p * std::pow(c.theta, -2.0 * k / static_cast<double>(rd));
          const bool il = c.layout == RopeLayout::kInterleaved;
          const int64_t i0 = il ? 2 * k : k, i1 = il ? 2 * k + 1 : k + half;
          want[i0] = xin(i0) * std::cos(ang) - xin(i1) * std::sin(ang);
          want[i1] = xin(i1) * std::cos(ang) + xin(i0) * std::sin(ang);
        }
        for (int64_t d = 0; d < c.D; ++d) {
          const double got = c.in_place ? (c.strided ? x.read(b, l, h, d) : x.read(b, h, l, d))
                                        : out.read(b, h, l, d);
          const double err = std::abs(got - want[d]);
          worst = std::max(worst, err);
          if (!(err <= tol)) ++bad;
        }
      }
  EXPECT_EQ(bad, 0) << "worst abs error " << worst;
}

ThreadPool* pool() {
  static ThreadPool p(3);
  return &p;
}

TEST(Rope, HalfSplitLlama) {
  check({.B = 2, .H = 4, .L = 9, .D = 64}, nullptr);
  check({.B = 2, .H = 4, .L = 9, .D = 64}, pool());
}
TEST(Rope, InterleavedGptJ) {
  check({.B = 2, .H = 4, .L = 9, .D = 64, .layout = RopeLayout::kInterleaved}, pool());
  check({.B = 1, .H = 2, .L = 3, .D = 10, .layout = RopeLayout::kInterleaved, .pos_dt = DType::i64},
        nullptr);
}
TEST(Rope, PartialRotaryDim) {
  check({.B = 1, .H = 3, .L = 7, .D = 64, .rotary_dim = 32}, pool());
  check({.B = 1, .H = 3, .L = 7, .D = 80, .layout = RopeLayout::kInterleaved, .rotary_dim = 20},
        pool());
}
TEST(Rope, ThetaAndLinearScaling) {
  check({.B = 1, .H = 2, .L = 6, .D = 32, .theta = 500000.0, .scaling = 4.0}, nullptr);
}
TEST(Rope, InPlaceStridedHalf) {
  check({.B = 2, .H = 3, .L = 5, .D = 32, .in_place = true, .strided = true}, pool());
  check({.B = 2, .H = 3, .L = 5, .D = 32, .dt = DType::f16, .in_place = true}, nullptr);
  check({.B = 2,
         .H = 3,
         .L = 5,
         .D = 48,
         .layout = RopeLayout::kInterleaved,
         .dt = DType::bf16,
         .pos_dt = DType::i64,
         .strided = true,
         .shared_positions = true},
        pool());
}
TEST(Rope, BadArguments) {
  float x[8] = {};
  int32_t p[1] = {0};
  RopeArgs a;
  a.x = x, a.out = x, a.positions = p;
  a.B = a.H = a.L = 1, a.D = 8;
  a.x_strides[3] = a.out_strides[3] = 1;
  a.rotary_dim = 5;
  EXPECT_THROW(rope(a, nullptr), Error);
  a.rotary_dim = 10;
  EXPECT_THROW(rope(a, nullptr), Error);
  a.rotary_dim = -1;
  a.positions_dtype = DType::f32;
  EXPECT_THROW(rope(a, nullptr), Error);
  a.positions_dtype = DType::i32;
  EXPECT_NO_THROW(rope(a, nullptr));
}

}  // namespace
}  // namespace loom::cpu
