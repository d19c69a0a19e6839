// Loom's CPU FFT against a double-precision DFT (naive O(n^2), or a radix-2 FFT in double for
// large powers of two) on random data with a fresh seed each run, and against numpy.fft golden
// files. Every test runs once per instruction set the machine has (scalar, avx2, avx512).
#include "backends/cpu/fft/fft.h"

#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <cstdlib>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/fft/plan.h"
#include "loom/error.h"
#include "loom/ndarray.h"
#include "runtime/thread_pool.h"

namespace loom::cpu::fft {
namespace {

using cd = std::complex<double>;

uint32_t fresh_seed() {
  static const uint32_t seed = [] {
    if (const char* s = std::getenv("LOOM_FFT_SEED")) return static_cast<uint32_t>(std::atoll(s));
    return std::random_device{}();
  }();
  return seed;
}

std::vector<cf> random_complex(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> d;
  std::vector<cf> v(n);
  for (auto& x : v) x = cf(d(rng), d(rng));
  return v;
}
std::vector<float> random_real(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Reference: naive DFT in double (angles reduced mod n so they stay exact).
std::vector<cd> naive_dft(const std::vector<cd>& x, bool inverse) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<cd> y(n);
  const double sign = inverse ? 1.0 : -1.0;
  for (int64_t k = 0; k < n; ++k) {
    cd acc = 0;
    for (int64_t j = 0; j < n; ++j) {
      const double a = sign * 2.0 * std::numbers::pi * static_cast<double>((j * k) % n) / n;
      acc += x[j] * cd(std::cos(a), std::sin(a));
    }
    y[k] = acc;
  }
  return y;
}

// Reference for large powers of two: recursive radix-2 in double.
void fft_pow2(std::vector<cd>& a, bool inverse) {
  const size_t n = a.size();
  if (n == 1) return;
  std::vector<cd> e(n / 2), o(n / 2);
  for (size_t i = 0; i < n / 2; ++i) e[i] = a[2 * i], o[i] = a[2 * i + 1];
  fft_pow2(e, inverse);
  fft_pow2(o, inverse);
  const double sign = inverse ? 1.0 : -1.0;
  for (size_t k = 0; k < n / 2; ++k) {
    const double ang = sign * 2.0 * std::numbers::pi * static_cast<double>(k) / n;
    const cd t = cd(std::cos(ang), std::sin(ang)) * o[k];
    a[k] = e[k] + t;
    a[k + n / 2] = e[k] - t;
  }
}

std::vector<cd> reference(const std::vector<cf>& x, bool inverse) {
  std::vector<cd> xd(x.begin(), x.end());
  const int64_t n = static_cast<int64_t>(x.size());
  if (n > 4100 && (n & (n - 1)) == 0) {
    fft_pow2(xd, inverse);
    return xd;
  }
  return naive_dft(xd, inverse);
}

template <class A, class B>
double rel_error(const A& got, const B& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += std::norm(cd(got[i]) - cd(want[i]));
    den += std::norm(cd(want[i]));
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

// f32 FFT error grows like O(log n) * eps.
double tolerance(int64_t n) { return 2e-7 * (3.0 + std::log2(static_cast<double>(n))); }

double factor(Scaling s, int64_t n) {
  return s == Scaling::none ? 1.0 : s == Scaling::size ? 1.0 / n : 1.0 / std::sqrt(double(n));
}

std::vector<std::string> isas() {
  std::vector<std::string> out;
  const std::string saved = isa_name();
  for (const char* name : {"scalar", "avx2", "avx512"})
    if (set_isa(name)) out.push_back(name);
  set_isa(saved.c_str());
  return out;
}

class FftTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    saved_ = isa_name();
    ASSERT_TRUE(set_isa(GetParam().c_str()));
  }
  void TearDown() override { set_isa(saved_.c_str()); }
  std::mt19937 rng_{fresh_seed()};
  std::string saved_;
};

#define SEED_TRACE() SCOPED_TRACE("seed " + std::to_string(fresh_seed()) + " (LOOM_FFT_SEED)")

std::vector<int64_t> test_lengths() {
  std::vector<int64_t> v;
  for (int64_t n = 1; n <= 64; ++n) v.push_back(n);
  for (int64_t n : {97,  101,  121,  125,  128,  210,  243,  256,  343,  400,  441,  500,
                    512, 1000, 1009, 1024, 2048, 2187, 3125, 4096, 4099, 2401, 1680, 5040})
    v.push_back(n);
  return v;
}

TEST_P(FftTest, ComplexMatchesDftForEveryLength) {
  SEED_TRACE();
  for (int64_t n : test_lengths()) {
    for (bool inverse : {false, true}) {
      auto x = random_complex(n, rng_);
      std::vector<cf> y(n);
      c2c(x.data(), 1, n, y.data(), 1, n, n, 1, inverse, Scaling::none, nullptr);
      const double e = rel_error(y, reference(x, inverse));
      EXPECT_LT(e, tolerance(n)) << "n=" << n << " inverse=" << inverse;
    }
  }
}

TEST_P(FftTest, LargePowersOfTwoAndRoundTrip) {
  SEED_TRACE();
  ThreadPool pool(2);
  for (int lg = 10; lg <= 20; lg += (lg < 16 ? 1 : 2)) {
    const int64_t n = int64_t{1} << lg;
    auto x = random_complex(n, rng_);
    std::vector<cf> y(n), z(n);
    c2c(x.data(), 1, n, y.data(), 1, n, n, 1, false, Scaling::none, lg % 2 ? &pool : nullptr);
    EXPECT_LT(rel_error(y, reference(x, false)), tolerance(n)) << "n=" << n;
    c2c(y.data(), 1, n, z.data(), 1, n, n, 1, true, Scaling::size, &pool);
    EXPECT_LT(rel_error(z, x), 2 * tolerance(n)) << "round trip n=" << n;
  }
}

TEST_P(FftTest, ScalingModesAndInPlace) {
  SEED_TRACE();
  for (int64_t n : {1, 6, 16, 97, 400}) {
    for (Scaling s : {Scaling::none, Scaling::size, Scaling::unitary}) {
      auto x = random_complex(n, rng_);
      auto want = reference(x, true);
      for (auto& w : want) w *= factor(s, n);
      std::vector<cf> y = x;
      c2c(y.data(), 1, n, y.data(), 1, n, n, 1, true, s, nullptr);  // in place
      EXPECT_LT(rel_error(y, want), tolerance(n)) << "n=" << n << " scaling=" << int(s);
    }
  }
}

TEST_P(FftTest, StridedAndBatchedWithThreads) {
  SEED_TRACE();
  ThreadPool pool(3);
  // Columns of a rows x cols matrix: element stride cols, distance 1; output every second slot.
  for (int64_t rows : {8, 30, 97}) {
    const int64_t cols = 37;
    auto m = random_complex(rows * cols, rng_);
    std::vector<cf> out(2 * rows * cols, cf(-7, -7));
    for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
      c2c(m.data(), cols, 1, out.data(), 2, 2 * rows, rows, cols, false, Scaling::none, p);
      for (int64_t c = 0; c < cols; ++c) {
        std::vector<cf> col(rows), got(rows);
        for (int64_t r = 0; r < rows; ++r)
          col[r] = m[r * cols + c], got[r] = out[c * 2 * rows + 2 * r];
        ASSERT_LT(rel_error(got, reference(col, false)), tolerance(rows))
            << "rows=" << rows << " col " << c;
        ASSERT_EQ(out[c * 2 * rows + 1], cf(-7, -7)) << "wrote into the gaps";
      }
    }
  }
  // Many small transforms (STFT-like) on and off the pool give identical results.
  const int64_t n = 400, count = 300;
  auto x = random_real(n * count, rng_);
  std::vector<cf> a((n / 2 + 1) * count), b(a.size());
  r2c(x.data(), 1, n, a.data(), 1, n / 2 + 1, n, count, Scaling::none, nullptr);
  r2c(x.data(), 1, n, b.data(), 1, n / 2 + 1, n, count, Scaling::none, &pool);
  EXPECT_EQ(a, b);
  for (int64_t t : {0, 123, 299}) {
    std::vector<cf> frame(x.begin() + t * n, x.begin() + (t + 1) * n);
    auto want = reference(frame, false);
    want.resize(n / 2 + 1);
    std::vector<cf> got(a.begin() + t * (n / 2 + 1), a.begin() + (t + 1) * (n / 2 + 1));
    EXPECT_LT(rel_error(got, want), tolerance(n));
  }
}

TEST_P(FftTest, RealTransformsOddAndEven) {
  SEED_TRACE();
  std::vector<int64_t> lengths = test_lengths();
  lengths.push_back(1 << 16);
  for (int64_t n : lengths) {
    const int64_t h = n / 2 + 1;
    for (Scaling s : {Scaling::none, Scaling::unitary}) {
      auto x = random_real(n, rng_);
      std::vector<cf> xc(x.begin(), x.end());
      auto want = reference(xc, false);
      want.resize(h);
      for (auto& w : want) w *= factor(s, n);
      // Strided input (every second float) and output (every third complex).
      std::vector<float> xs(2 * n);
      for (int64_t j = 0; j < n; ++j) xs[2 * j] = x[j];
      std::vector<cf> spec(3 * h);
      r2c(xs.data(), 2, 0, spec.data(), 3, 0, n, 1, s, nullptr);
      std::vector<cf> got(h);
      for (int64_t k = 0; k < h; ++k) got[k] = spec[3 * k];
      EXPECT_LT(rel_error(got, want), tolerance(n)) << "rfft n=" << n;
      std::vector<cf> dense(h);
      r2c(x.data(), 1, 0, dense.data(), 1, 0, n, 1, s, nullptr);
      EXPECT_LT(rel_error(dense, want), tolerance(n)) << "rfft contiguous n=" << n;
      // irfft(rfft(x)) == x with the scalings none/size or unitary/unitary; garbage in the
      // imaginary parts of bin 0 and bin n/2 must be ignored.
      dense[0] += cf(0, 5);
      if (n % 2 == 0) dense[n / 2] += cf(0, -3);
      std::vector<float> back(2 * n, 99.f);
      c2r(dense.data(), 1, 0, back.data(), 2, 0, n, 1,
          s == Scaling::none ? Scaling::size : Scaling::unitary, nullptr);
      std::vector<float> back_c(n);
      for (int64_t j = 0; j < n; ++j) back_c[j] = back[2 * j];
      EXPECT_LT(rel_error(back_c, x), 2 * tolerance(n)) << "irfft n=" << n;
      EXPECT_EQ(back[1], 99.f);
    }
  }
}

TEST_P(FftTest, MultiAxis) {
  SEED_TRACE();
  // fft over axes {0, 2} of a [6, 3, 10] array, then its inverse; rfftn/irfftn over {1, 0}.
  const std::vector<int64_t> shape = {6, 3, 10}, st = {30, 10, 1};
  auto x = random_complex(180, rng_);
  std::vector<cf> y(180), z(180);
  const std::vector<int> axes = {0, -1};
  c2c_nd(x.data(), st, y.data(), st, shape, axes, false, Scaling::none, nullptr);
  for (int64_t b = 0; b < 3; ++b) {  // check one 2-D slice the slow way: rows then columns
    std::vector<cd> m(60);
    for (int64_t i = 0; i < 6; ++i)
      for (int64_t k = 0; k < 10; ++k) m[i * 10 + k] = x[i * 30 + b * 10 + k];
    for (int64_t i = 0; i < 6; ++i) {
      auto r = naive_dft(std::vector<cd>(m.begin() + i * 10, m.begin() + i * 10 + 10), false);
      std::copy(r.begin(), r.end(), m.begin() + i * 10);
    }
    for (int64_t k = 0; k < 10; ++k) {
      std::vector<cd> c(6);
      for (int64_t i = 0; i < 6; ++i) c[i] = m[i * 10 + k];
      c = naive_dft(c, false);
      for (int64_t i = 0; i < 6; ++i) m[i * 10 + k] = c[i];
    }
    std::vector<cf> got(60);
    for (int64_t i = 0; i < 6; ++i)
      for (int64_t k = 0; k < 10; ++k) got[i * 10 + k] = y[i * 30 + b * 10 + k];
    EXPECT_LT(rel_error(got, m), tolerance(60));
  }
  c2c_nd(y.data(), st, z.data(), st, shape, axes, true, Scaling::size, nullptr);
  EXPECT_LT(rel_error(z, x), tolerance(60));

  auto xr = random_real(180, rng_);
  const std::vector<int64_t> cshape = {4, 3, 10}, cst = {30, 10, 1};  // axis 0 is real: 6/2+1
  std::vector<cf> spec(120);
  const std::vector<int> raxes = {1, 0};
  r2c_nd(xr.data(), st, spec.data(), cst, shape, raxes, Scaling::unitary, nullptr);
  std::vector<float> back(180);
  c2r_nd(spec.data(), cst, back.data(), st, shape, raxes, Scaling::unitary, nullptr);
  EXPECT_LT(rel_error(back, xr), tolerance(60));
}

INSTANTIATE_TEST_SUITE_P(Isa, FftTest, ::testing::ValuesIn(isas()),
                         [](const auto& info) { return info.param; });

// ---- numpy golden files --------------------------------------------------------------------

std::string data(const std::string& name) {
  const char* d = std::getenv("LOOM_TEST_DATA");
  return std::string(d ? d : "tests/data") + "/fft/" + name + ".npy";
}
template <class T>
std::vector<T> npy(const std::string& name) {
  return NDArray::load_npy(data(name)).to_vector<T>();
}

TEST(FftGolden, MatchesNumpy) {
  for (int64_t n : {12, 97, 1000}) {
    auto x = npy<cf>("fft_" + std::to_string(n) + "_in");
    std::vector<cf> y(x.size());
    c2c(x.data(), 1, n, y.data(), 1, n, n, 3, false, Scaling::none, nullptr);
    EXPECT_LT(rel_error(y, npy<cf>("fft_" + std::to_string(n) + "_out")), tolerance(n)) << n;
    c2c(x.data(), 1, n, y.data(), 1, n, n, 3, true, Scaling::unitary, nullptr);
    EXPECT_LT(rel_error(y, npy<cf>("ifft_" + std::to_string(n) + "_ortho_out")), tolerance(n));
  }
  for (int64_t n : {400, 9}) {
    const int64_t h = n / 2 + 1;
    auto x = npy<float>("rfft_" + std::to_string(n) + "_in");
    std::vector<cf> y(4 * h);
    r2c(x.data(), 1, n, y.data(), 1, h, n, 4, Scaling::none, nullptr);
    EXPECT_LT(rel_error(y, npy<cf>("rfft_" + std::to_string(n) + "_out")), tolerance(n)) << n;
    auto s = npy<cf>("irfft_" + std::to_string(n) + "_in");
    std::vector<float> r(4 * n);
    c2r(s.data(), 1, h, r.data(), 1, n, n, 4, Scaling::size, nullptr);
    EXPECT_LT(rel_error(r, npy<float>("irfft_" + std::to_string(n) + "_out")), tolerance(n));
  }
  const std::vector<int64_t> shape = {6, 10}, st = {10, 1}, cst = {6, 1};
  const std::vector<int> axes = {0, 1};
  auto x = npy<cf>("fft2_6x10_in");
  std::vector<cf> y(60);
  c2c_nd(x.data(), st, y.data(), st, shape, axes, false, Scaling::none, nullptr);
  EXPECT_LT(rel_error(y, npy<cf>("fft2_6x10_out")), tolerance(60));
  auto xr = npy<float>("rfft2_6x10_in");
  std::vector<cf> spec(36);
  r2c_nd(xr.data(), st, spec.data(), cst, shape, axes, Scaling::none, nullptr);
  EXPECT_LT(rel_error(spec, npy<cf>("rfft2_6x10_out")), tolerance(60));
  std::vector<float> back(60);
  c2r_nd(spec.data(), cst, back.data(), st, shape, axes, Scaling::size, nullptr);
  EXPECT_LT(rel_error(back, npy<float>("irfft2_6x10_out")), tolerance(60));
}

// ---- bad arguments, plans ------------------------------------------------------------------

TEST(FftErrors, BadArgumentsThrowClearly) {
  std::vector<cf> a(8);
  std::vector<float> r(8);
  auto expect_msg = [](auto&& fn, const std::string& part) {
    try {
      fn();
      ADD_FAILURE() << "no error, expected: " << part;
    } catch (const loom::Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_msg([&] { c2c(a.data(), 1, 8, a.data(), 1, 8, 0, 1, false, Scaling::none, nullptr); },
             "[fft] fft: transform length must be positive, got 0");
  expect_msg([&] { r2c(r.data(), 1, 8, a.data(), 1, 8, -3, 1, Scaling::none, nullptr); },
             "length must be positive, got -3");
  expect_msg([&] { c2r(nullptr, 1, 8, r.data(), 1, 8, 8, 1, Scaling::none, nullptr); },
             "[fft] irfft: null input or output pointer");
  expect_msg([&] { c2c(a.data(), 1, 8, a.data(), 1, 8, 8, -1, true, Scaling::none, nullptr); },
             "batch count must be >= 0");
  const std::vector<int64_t> shape = {2, 4}, st = {4, 1};
  expect_msg(
      [&] {
        c2c_nd(a.data(), st, a.data(), st, shape, std::vector<int>{2}, false, Scaling::none,
               nullptr);
      },
      "axis 2 out of range for rank 2");
  expect_msg(
      [&] {
        c2c_nd(a.data(), st, a.data(), st, shape, std::vector<int>{1, -1}, false, Scaling::none,
               nullptr);
      },
      "listed twice");
  const std::vector<int64_t> empty = {2, 0};
  expect_msg(
      [&] {
        c2c_nd(a.data(), st, a.data(), st, empty, std::vector<int>{1}, false, Scaling::none,
               nullptr);
      },
      "axis 1 is empty");
  // count == 0 is a no-op even with null pointers.
  EXPECT_NO_THROW(c2c(nullptr, 1, 8, nullptr, 1, 8, 8, 0, false, Scaling::none, nullptr));
}

TEST(FftPlans, FactorsAndCache) {
  EXPECT_EQ(factorize(1024), (std::vector<int>{8, 8, 4, 4}));
  EXPECT_EQ(factorize(200), (std::vector<int>{8, 5, 5}));
  EXPECT_EQ(factorize(22), (std::vector<int>{2, 11}));
  EXPECT_TRUE(factorize(4099).empty());  // prime above the generic radix: Bluestein
  EXPECT_TRUE(complex_plan(4099, false)->bluestein);
  EXPECT_EQ(complex_plan(512, true).get(), complex_plan(512, true).get());
  EXPECT_NE(complex_plan(512, true).get(), complex_plan(512, false).get());
}

}  // namespace
}  // namespace loom::cpu::fft
