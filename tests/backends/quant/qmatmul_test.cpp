// Tests for the quantized matmul kernels: ggml layouts decoded exactly (hand-built blocks),
// qmatmul on every format and forced ISA against a double-precision reference built from the
// scalar decoder, Loom formats' round trip within their bound, and argument errors.
#include "backends/cpu/quant/qmatmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "loom/dtype.h"
#include "loom/error.h"
#include "runtime/thread_pool.h"

namespace loom::cpu::quant {
namespace {

constexpr Format kAllFormats[] = {Format::q4_0,   Format::q4_1,      Format::q8_0,     Format::q5_0,
                                  Format::q5_1,   Format::q4_k,      Format::q5_k,     Format::q6_k,
                                  Format::iq4_nl, Format::affine_u4, Format::affine_i8};

uint32_t fresh_seed() { return std::random_device{}(); }

void put_half(uint8_t* p, float v) {
  uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}
float get_half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

std::vector<float> decode(Format fmt, const std::vector<uint8_t>& blk) {
  std::vector<float> y(static_cast<size_t>(block_size(fmt)));
  dequantize_row(fmt, blk.data(), block_size(fmt), y.data());
  return y;
}

// ---------- exact ggml layouts, from hand-built blocks ----------

TEST(QuantLayout, Q4_0) {
  std::vector<uint8_t> b(18, 0x88);  // all nibbles 8 -> 0
  put_half(b.data(), 0.5f);
  b[2] = 0x21;
  auto y = decode(Format::q4_0, b);
  EXPECT_EQ(y[0], (1 - 8) * 0.5f);
  EXPECT_EQ(y[16], (2 - 8) * 0.5f);
  EXPECT_EQ(y[1], 0.0f);
}

TEST(QuantLayout, Q4_1) {
  std::vector<uint8_t> b(20, 0);
  put_half(b.data(), 0.5f);
  put_half(b.data() + 2, 1.0f);
  b[4 + 3] = 0xF0;
  auto y = decode(Format::q4_1, b);
  EXPECT_EQ(y[3], 1.0f);
  EXPECT_EQ(y[19], 15 * 0.5f + 1.0f);
  EXPECT_EQ(y[0], 1.0f);
}

TEST(QuantLayout, Q8_0) {
  std::vector<uint8_t> b(34, 0);
  put_half(b.data(), 2.0f);
  b[2 + 5] = static_cast<uint8_t>(-3);
  b[2 + 31] = static_cast<uint8_t>(-128);
  auto y = decode(Format::q8_0, b);
  EXPECT_EQ(y[5], -6.0f);
  EXPECT_EQ(y[31], -256.0f);
}

TEST(QuantLayout, Q5_0AndQ5_1) {
  std::vector<uint8_t> b(22, 0);
  put_half(b.data(), 1.0f);
  const uint32_t qh = (1u << 0) | (1u << 16);  // 5th bit of elements 0 and 16
  std::memcpy(b.data() + 2, &qh, 4);
  b[6 + 1] = 0x0F;
  auto y = decode(Format::q5_0, b);
  EXPECT_EQ(y[0], 0.0f);     // 16 - 16
  EXPECT_EQ(y[16], 0.0f);    // 16 - 16
  EXPECT_EQ(y[1], -1.0f);    // 15 - 16
  EXPECT_EQ(y[17], -16.0f);  // 0 - 16

  std::vector<uint8_t> c(24, 0);
  put_half(c.data(), 1.0f);
  put_half(c.data() + 2, 0.5f);
  std::memcpy(c.data() + 4, &qh, 4);
  c[8 + 0] = 0x3A;
  auto z = decode(Format::q5_1, c);
  EXPECT_EQ(z[0], 26.5f);   // (10 | 16) + 0.5
  EXPECT_EQ(z[16], 19.5f);  // (3 | 16) + 0.5
}

TEST(QuantLayout, Iq4Nl) {
  std::vector<uint8_t> b(18, 0);
  put_half(b.data(), 1.0f);
  b[2] = 0xF0;
  b[3] = 0x78;
  auto y = decode(Format::iq4_nl, b);
  EXPECT_EQ(y[0], -127.0f);
  EXPECT_EQ(y[16], 113.0f);
  EXPECT_EQ(y[1], 1.0f);     // T[8]
  EXPECT_EQ(y[17], -10.0f);  // T[7]
}

TEST(QuantLayout, Q4_K) {
  std::vector<uint8_t> b(144, 0);
  put_half(b.data(), 1.0f);
  put_half(b.data() + 2, 1.0f);
  uint8_t* sc = b.data() + 4;
  sc[0] = 3;     // sub-block 0: scale 3
  sc[4] = 1;     // sub-block 0: min 1
  sc[9] = 0x32;  // sub-block 5: low 4 bits of scale 2, of min 3
  sc[1] = 0x40;  // sub-block 5: scale high bits 01 -> 18
  sc[5] = 0x80;  // sub-block 5: min high bits 10 -> 35
  uint8_t* qs = b.data() + 16;
  qs[0] = 0x05;
  qs[64] = 0x70;
  auto y = decode(Format::q4_k, b);
  EXPECT_EQ(y[0], 3.0f * 5 - 1.0f);
  EXPECT_EQ(y[160], 18.0f * 7 - 35.0f);  // chunk 2, high nibbles = sub-block 5
  EXPECT_EQ(y[128], 0.0f);
}

TEST(QuantLayout, Q5_K) {
  std::vector<uint8_t> b(176, 0);
  put_half(b.data(), 1.0f);
  put_half(b.data() + 2, 0.0f);
  uint8_t* sc = b.data() + 4;
  sc[0] = sc[1] = sc[2] = 1;
  b[16 + 0] = 0x07;  // qh[0]: 5th bit for sub-blocks 0, 1, 2 at position 0
  b[48 + 0] = 0x21;  // ql[0]
  b[48 + 32] = 0x03;
  auto y = decode(Format::q5_k, b);
  EXPECT_EQ(y[0], 17.0f);
  EXPECT_EQ(y[32], 18.0f);
  EXPECT_EQ(y[64], 19.0f);
  EXPECT_EQ(y[1], 0.0f);
}

TEST(QuantLayout, Q6_K) {
  std::vector<uint8_t> b(210, 0);
  put_half(b.data() + 208, 1.0f);
  auto* sc = reinterpret_cast<int8_t*>(b.data() + 192);
  sc[0] = 2;
  sc[4] = -3;
  b[0] = 0x21;        // ql[0]
  b[128] = 0b100001;  // qh[0]: bits 0-1 = 1 (elem 0), bits 4-5 = 2 (elem 64)
  auto y = decode(Format::q6_k, b);
  EXPECT_EQ(y[0], 2.0f * ((1 | (1 << 4)) - 32));    // -30
  EXPECT_EQ(y[64], -3.0f * ((2 | (2 << 4)) - 32));  // -6
}

TEST(QuantLayout, AffineU4EvenLowNibble) {
  std::vector<uint8_t> b(20, 0);
  put_half(b.data(), 0.25f);
  put_half(b.data() + 2, 8.0f);
  b[4] = 0xA3;
  auto y = decode(Format::affine_u4, b);
  EXPECT_EQ(y[0], (3 - 8) * 0.25f);
  EXPECT_EQ(y[1], (10 - 8) * 0.25f);
}

// ---------- qmatmul vs a double reference ----------

struct Case {
  int64_t m, k, n;
};

// Weights with a different magnitude per row and a few offset blocks, so min/zero-point formats
// see asymmetric ranges.
std::vector<uint8_t> make_weights(Format fmt, int64_t n, int64_t k, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> ud(0.1f, 3.0f);
  std::vector<float> row(static_cast<size_t>(k));
  std::vector<uint8_t> w(row_bytes(fmt, k) * static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    const float scale = ud(rng), shift = (j % 3 == 0) ? ud(rng) : 0.0f;
    for (auto& v : row) v = nd(rng) * scale + shift;
    quantize_row(fmt, row.data(), k, w.data() + j * row_bytes(fmt, k));
  }
  return w;
}

void check_case(Format fmt, Isa isa, const Case& c, ThreadPool* pool, std::mt19937& rng) {
  SCOPED_TRACE(::testing::Message()
               << format_name(fmt) << " " << isa_name(isa) << " m=" << c.m << " k=" << c.k
               << " n=" << c.n << " pool=" << (pool != nullptr));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(c.m * c.k));
  for (auto& v : x) v = nd(rng);
  auto w = make_weights(fmt, c.n, c.k, rng);
  std::vector<float> wf(static_cast<size_t>(c.n * c.k));
  for (int64_t j = 0; j < c.n; ++j)
    dequantize_row(fmt, w.data() + j * row_bytes(fmt, c.k), c.k, wf.data() + j * c.k);
  std::vector<float> y(static_cast<size_t>(c.m * c.n), NAN);
  set_isa(isa);
  qmatmul(fmt, x.data(), c.m, c.k, w.data(), c.n, y.data(), pool);

  const bool int_dot = uses_integer_dot(fmt);
  for (int64_t i = 0; i < c.m; ++i) {
    for (int64_t j = 0; j < c.n; ++j) {
      double ref = 0, mag = 0, act_err = 0;
      for (int64_t b = 0; b < c.k / 32; ++b) {
        double amax = 0, wabs = 0;
        for (int64_t t = b * 32; t < b * 32 + 32; ++t) {
          const double xv = x[i * c.k + t], wv = wf[j * c.k + t];
          ref += xv * wv;
          mag += std::fabs(xv * wv);
          amax = std::max(amax, std::fabs(xv));
          wabs += std::fabs(wv);
        }
        // int8 activations: |x − q·d| ≤ d/2 with d = max|x|/127, for every element of the block.
        act_err += amax / 254.0 * wabs;
      }
      // f32 accumulation: the classic γ_k bound on Σ|x·w|; plus, for the integer paths, the
      // activation rounding above (a worst case; typical errors are ~√32 smaller).
      const double tol = (c.k * 1.2e-7 + 1e-6) * mag + (int_dot ? act_err * 1.001 : 0.0) + 1e-30;
      const double got = y[i * c.n + j];
      ASSERT_LE(std::fabs(got - ref), tol)
          << "at y[" << i << "," << j << "] got " << got << " want " << ref;
    }
  }
}

class QMatmulTest : public ::testing::TestWithParam<std::tuple<Format, Isa>> {};

TEST_P(QMatmulTest, MatchesDoubleReference) {
  const auto [fmt, isa] = GetParam();
  if (detected_isa() < isa) GTEST_SKIP() << "CPU lacks " << isa_name(isa);
  const uint32_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed=" << seed);
  std::mt19937 rng(seed);
  ThreadPool pool(2);
  const int64_t kb = block_size(fmt);
  // k = block·odd; n odd (and one n ≥ 4 that is not a multiple of 4, to hit the row tails).
  const int64_t ks[] = {kb, 3 * kb, kb == 32 ? 17 * 32 : 5 * kb};
  const int64_t ns[] = {1, 7, 37};
  int idx = 0;
  for (int64_t m : {1, 2, 3, 7, 8, 9, 33})
    for (int64_t k : ks)
      for (int64_t n : ns) check_case(fmt, isa, {m, k, n}, (idx++ % 2) ? &pool : nullptr, rng);
  set_isa(detected_isa());
}

INSTANTIATE_TEST_SUITE_P(AllFormats, QMatmulTest,
                         ::testing::Combine(::testing::ValuesIn(kAllFormats),
                                            ::testing::Values(Isa::scalar, Isa::avx2,
                                                              Isa::avx512_vnni)),
                         [](const auto& info) {
                           return std::string(format_name(std::get<0>(info.param))) + "_" +
                                  std::string(isa_name(std::get<1>(info.param)));
                         });

// The SIMD paths compute the same integer sums as the scalar path; only f32 summation order
// differs, so they agree far more tightly than either agrees with the f32 reference.
TEST(QMatmul, SimdMatchesScalarClosely) {
  const uint32_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed=" << seed);
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t m = 9, k = 32 * 23, n = 13;
  std::vector<float> x(static_cast<size_t>(m * k));
  for (auto& v : x) v = nd(rng);
  for (Format fmt :
       {Format::q4_0, Format::q4_1, Format::q8_0, Format::affine_u4, Format::affine_i8}) {
    auto w = make_weights(fmt, n, k, rng);
    std::vector<float> ys(static_cast<size_t>(m * n)), yv(ys.size());
    set_isa(Isa::scalar);
    qmatmul(fmt, x.data(), m, k, w.data(), n, ys.data(), nullptr);
    for (Isa isa : {Isa::avx2, Isa::avx512_vnni}) {
      if (detected_isa() < isa) continue;
      set_isa(isa);
      qmatmul(fmt, x.data(), m, k, w.data(), n, yv.data(), nullptr);
      for (size_t t = 0; t < ys.size(); ++t)
        ASSERT_NEAR(yv[t], ys[t], 2e-4 * (1 + std::fabs(ys[t])))
            << format_name(fmt) << " " << isa_name(isa) << " at " << t;
    }
  }
  set_isa(detected_isa());
}

// ---------- Loom formats: round trip within the bound ----------

double f16_ulp(double v) {
  const double a = std::fabs(v);
  if (a < 6.103515625e-05) return std::ldexp(1.0, -24);
  return std::ldexp(1.0, static_cast<int>(std::floor(std::log2(a))) - 10);
}

TEST(QuantRoundTrip, AffineFormatsWithinBound) {
  const uint32_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed=" << seed);
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t k = 32 * 64;
  std::vector<float> x(static_cast<size_t>(k)), y(x.size());
  for (int64_t b = 0; b < k / 32; ++b) {
    const int kind = static_cast<int>(b % 5);
    for (int t = 0; t < 32; ++t) {
      float v = nd(rng) * (b % 7 + 1) * 0.3f;
      if (kind == 1) v = 0.0f;                 // all zero
      if (kind == 2) v = -1.75f;               // constant
      if (kind == 3) v = std::fabs(v) + 0.5f;  // one-sided
      if (kind == 4 && t == 0) v = 40.0f;      // outlier at one end
      x[b * 32 + t] = v;
    }
  }
  for (Format fmt : {Format::affine_u4, Format::affine_i8}) {
    const int levels = fmt == Format::affine_u4 ? 16 : 256;
    std::vector<uint8_t> row(row_bytes(fmt, k));
    quantize_row(fmt, x.data(), k, row.data());
    dequantize_row(fmt, row.data(), k, y.data());
    for (int64_t b = 0; b < k / 32; ++b) {
      const uint8_t* blk = row.data() + b * block_bytes(fmt);
      const double s = get_half(blk), zp = get_half(blk + 2);
      // Rounding to the nearest level gives s/2; the f16 scale and zero point can shift the top
      // of the grid by (levels − 1)·2^-11 + ulp(zp)/2 levels, which only matters if above 1/2.
      const double bound =
          s * std::max(0.5, (levels - 1) * std::ldexp(1.0, -11) + f16_ulp(zp) / 2) * (1 + 1e-6) +
          1e-7 * std::fabs(x[b * 32]);
      for (int t = 0; t < 32; ++t) {
        const double err = std::fabs(static_cast<double>(x[b * 32 + t]) - y[b * 32 + t]);
        ASSERT_LE(err, bound) << format_name(fmt) << " block " << b << " elem " << t
                              << " x=" << x[b * 32 + t] << " scale=" << s << " zp=" << zp;
      }
      if (b % 5 == 1 || b % 5 == 2) {  // zero and constant blocks are exact
        for (int t = 0; t < 32; ++t) ASSERT_EQ(y[b * 32 + t], x[b * 32 + t]) << format_name(fmt);
      }
    }
  }
}

// Every format's encoder produces blocks that decode close to the input (a sanity check on the
// encoders used by these tests; the formats' exact semantics are the layout tests above).
TEST(QuantRoundTrip, AllEncodersReasonable) {
  const uint32_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed=" << seed);
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t k = 512;
  std::vector<float> x(k), y(k);
  for (auto& v : x) v = nd(rng);
  for (Format fmt : kAllFormats) {
    std::vector<uint8_t> row(row_bytes(fmt, k));
    quantize_row(fmt, x.data(), k, row.data());
    dequantize_row(fmt, row.data(), k, y.data());
    double num = 0, den = 0;
    for (int64_t t = 0; t < k; ++t) {
      num += (x[t] - y[t]) * (x[t] - y[t]);
      den += x[t] * x[t];
    }
    // 4-bit formats reach ~10 % relative RMS error on Gaussian data, 8-bit well under 1 %.
    EXPECT_LT(std::sqrt(num / den), 0.2) << format_name(fmt);
  }
}

// ---------- arguments ----------

TEST(QMatmulArgs, KNotMultipleOfBlockThrows) {
  std::vector<float> x(64), y(4);
  std::vector<uint8_t> w(1024);
  try {
    qmatmul(Format::q4_0, x.data(), 1, 33, w.data(), 1, y.data(), nullptr);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("[qmatmul] k = 33 is not a multiple of the q4_0 block size 32"),
        std::string::npos)
        << e.what();
  }
  EXPECT_THROW(qmatmul(Format::q4_k, x.data(), 1, 64, w.data(), 1, y.data(), nullptr), Error);
  EXPECT_THROW(row_bytes(Format::q6_k, 100), Error);
  EXPECT_THROW(dequantize_row(Format::q8_0, w.data(), 31, y.data()), Error);
  EXPECT_THROW(quantize_row(Format::affine_u4, x.data(), 48, w.data()), Error);
  EXPECT_THROW(qmatmul(Format::q8_0, x.data(), -1, 32, w.data(), 1, y.data(), nullptr), Error);
  EXPECT_THROW(qmatmul(Format::q8_0, nullptr, 1, 32, w.data(), 1, y.data(), nullptr), Error);
  EXPECT_THROW(qmatmul(static_cast<Format>(99), x.data(), 1, 32, w.data(), 1, y.data(), nullptr),
               Error);
}

TEST(QMatmulArgs, EmptyShapes) {
  std::vector<float> y(6, 1.0f);
  qmatmul(Format::q4_0, nullptr, 0, 32, nullptr, 5, y.data(), nullptr);  // nothing to do
  qmatmul(Format::q4_0, nullptr, 2, 0, nullptr, 3, y.data(), nullptr);   // k = 0: zeros
  for (float v : y) EXPECT_EQ(v, 0.0f);
}

TEST(QMatmulArgs, SizesAndNames) {
  EXPECT_EQ(row_bytes(Format::q4_0, 4096), 128u * 18);
  EXPECT_EQ(row_bytes(Format::q4_1, 576), 18u * 20);
  EXPECT_EQ(row_bytes(Format::q8_0, 64), 2u * 34);
  EXPECT_EQ(row_bytes(Format::q4_k, 512), 2u * 144);
  EXPECT_EQ(row_bytes(Format::q5_k, 256), 176u);
  EXPECT_EQ(row_bytes(Format::q6_k, 256), 210u);
  EXPECT_EQ(row_bytes(Format::q5_0, 32), 22u);
  EXPECT_EQ(row_bytes(Format::q5_1, 32), 24u);
  EXPECT_EQ(row_bytes(Format::iq4_nl, 32), 18u);
  EXPECT_EQ(row_bytes(Format::affine_u4, 32), 20u);
  EXPECT_EQ(row_bytes(Format::affine_i8, 32), 36u);
  EXPECT_EQ(format_name(Format::iq4_nl), "iq4_nl");
}

}  // namespace
}  // namespace loom::cpu::quant
