// SDPA kernel vs a naive double-precision reference (scores materialised, softmax, matmul) on
// random inputs, across every ISA this CPU has, with and without threads.
#include "backends/cpu/attention/sdpa.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <sstream>

#include "backends/attention/test_util.h"
#include "loom/error.h"
#include "runtime/thread_pool.h"

namespace loom::cpu {
namespace {

using testing::Tensor;
using testing::test_seed;

enum class MaskKind { kNone, kBoolQK, kFloatKeys, kBoolFull, kFloatFull };

struct Case {
  int64_t B = 1, Hq = 2, Hkv = 2, Lq = 5, Lk = 7, D = 16, Dv = -1;
  bool causal = false;
  int64_t kv_len = -1;
  DType in = DType::f32, out = DType::f32;
  MaskKind mask = MaskKind::kNone;
  bool strided = false;  // k/v a slice of a bigger cache, q with transposed heads
  int num_splits = 0;
  double mask_row_off = 0.0;  // probability that a (bool) mask row is all false
};

std::string describe(const Case& c) {
  std::ostringstream os;
  os << "B=" << c.B << " Hq=" << c.Hq << " Hkv=" << c.Hkv << " Lq=" << c.Lq << " Lk=" << c.Lk
     << " D=" << c.D << " Dv=" << c.Dv << " causal=" << c.causal << " kv_len=" << c.kv_len
     << " in=" << dtype_name(c.in) << " out=" << dtype_name(c.out)
     << " mask=" << static_cast<int>(c.mask) << " strided=" << c.strided
     << " splits=" << c.num_splits << " seed=" << test_seed();
  return os.str();
}

// Output tolerance: inputs are exactly representable (the reference uses the rounded values),
// so the kernel's error is f32 accumulation (~1e-6 relative over a few thousand terms) plus one
// rounding of the output: half an ulp of |out| <= 1, i.e. 2^-11 for f16 and 2^-8 for bf16.
double tolerance(DType out) {
  if (out == DType::f16) return 1e-3;
  if (out == DType::bf16) return 8e-3;
  return 5e-5;
}

struct Inputs {
  Tensor q, k, v, mask, out;
};

Inputs make_inputs(const Case& c, std::mt19937_64& rng) {
  const int64_t Dv = c.Dv < 0 ? c.D : c.Dv;
  auto grow = [&](std::vector<int64_t> d, std::vector<int64_t> extra) {
    for (int i = 0; i < 4; ++i) d[i] += extra[i];
    return d;
  };
  Inputs in{
      c.strided ? Tensor(c.in, {c.B, c.Hq, c.Lq, c.D}, {c.B, c.Hq, c.Lq, c.D + 3}, {0, 0, 0, 2})
                : Tensor(c.in, {c.B, c.Hq, c.Lq, c.D}),
      c.strided ? Tensor(c.in, {c.B, c.Hkv, c.Lk, c.D},
                         grow({c.B, c.Hkv, c.Lk, c.D}, {0, 1, 37, 0}), {0, 1, 5, 0})
                : Tensor(c.in, {c.B, c.Hkv, c.Lk, c.D}),
      c.strided ? Tensor(c.in, {c.B, c.Hkv, c.Lk, Dv}, grow({c.B, c.Hkv, c.Lk, Dv}, {1, 0, 11, 4}),
                         {1, 0, 3, 4})
                : Tensor(c.in, {c.B, c.Hkv, c.Lk, Dv}),
      Tensor(DType::f32, {1, 1, 1, 1}),
      c.strided ? Tensor(c.out, {c.B, c.Hq, c.Lq, Dv}, {c.B, c.Hq, c.Lq, Dv + 5}, {0, 0, 0, 1})
                : Tensor(c.out, {c.B, c.Hq, c.Lq, Dv})};
  in.q.randomize(rng);
  in.k.randomize(rng);
  in.v.randomize(rng);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  switch (c.mask) {
    case MaskKind::kNone:
      break;
    case MaskKind::kBoolQK:  // [1, 1, Lq, Lk], broadcast over batch and heads
    case MaskKind::kBoolFull:
      in.mask = c.mask == MaskKind::kBoolQK ? Tensor(DType::boolean, {1, 1, c.Lq, c.Lk})
                                            : Tensor(DType::boolean, {c.B, c.Hq, c.Lq, c.Lk});
      for (int64_t b = 0; b < in.mask.dims[0]; ++b)
        for (int64_t h = 0; h < in.mask.dims[1]; ++h)
          for (int64_t i = 0; i < c.Lq; ++i) {
            const bool row_off = u(rng) < c.mask_row_off;
            for (int64_t j = 0; j < c.Lk; ++j) in.mask.set(b, h, i, j, !row_off && u(rng) < 0.7);
          }
      break;
    case MaskKind::kFloatKeys:  // [B, 1, 1, Lk] padding-style additive mask
    case MaskKind::kFloatFull:
      in.mask = c.mask == MaskKind::kFloatKeys ? Tensor(DType::f32, {c.B, 1, 1, c.Lk})
                                               : Tensor(c.in, {c.B, c.Hq, c.Lq, c.Lk});
      for (int64_t b = 0; b < in.mask.dims[0]; ++b)
        for (int64_t h = 0; h < in.mask.dims[1]; ++h)
          for (int64_t i = 0; i < in.mask.dims[2]; ++i)
            for (int64_t j = 0; j < c.Lk; ++j) {
              const double r = u(rng);
              in.mask.set(b, h, i, j,
                          r < 0.2 ? -std::numeric_limits<double>::infinity() : 3 * r - 1);
            }
      break;
  }
  return in;
}

// Naive reference: materialise the scores in double, softmax, multiply by V.
std::vector<double> reference(const Case& c, const Inputs& in, float scale) {
  const int64_t Dv = c.Dv < 0 ? c.D : c.Dv, kv_len = c.kv_len < 0 ? c.Lk : c.kv_len;
  const int64_t group = c.Hq / c.Hkv;
  std::vector<double> out(static_cast<size_t>(c.B * c.Hq * c.Lq * Dv), 0.0), s(kv_len);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.Hq; ++h)
      for (int64_t i = 0; i < c.Lq; ++i) {
        const int64_t g = h / group;
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < kv_len; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < c.D; ++d) dot += in.q.at(b, h, i, d) * in.k.at(b, g, j, d);
          s[j] = dot * scale;
          if (c.mask != MaskKind::kNone) {
            const Tensor& m = in.mask;
            const double mv =
                m.at(m.dims[0] == 1 ? 0 : b, m.dims[1] == 1 ? 0 : h, m.dims[2] == 1 ? 0 : i, j);
            if (m.dt == DType::boolean) {
              if (mv == 0) s[j] = -std::numeric_limits<double>::infinity();
            } else {
              s[j] += mv;
            }
          }
          if (c.causal && j > kv_len - c.Lq + i) s[j] = -std::numeric_limits<double>::infinity();
          mx = std::max(mx, s[j]);
        }
        double* o = &out[static_cast<size_t>(((b * c.Hq + h) * c.Lq + i) * Dv)];
        if (mx == -std::numeric_limits<double>::infinity()) continue;  // fully masked: zeros
        double sum = 0;
        for (int64_t j = 0; j < kv_len; ++j) sum += (s[j] = std::exp(s[j] - mx));
        for (int64_t j = 0; j < kv_len; ++j)
          for (int64_t d = 0; d < Dv; ++d) o[d] += s[j] / sum * in.v.at(b, g, j, d);
      }
  return out;
}

SdpaArgs make_args(const Case& c, Inputs& in, float scale) {
  SdpaArgs a;
  a.q = in.q.data();
  a.q_dtype = c.in;
  a.B = c.B, a.Hq = c.Hq, a.Lq = c.Lq, a.D = c.D;
  std::copy(in.q.strides, in.q.strides + 4, a.q_strides);
  a.k = in.k.data();
  a.v = in.v.data();
  a.kv_dtype = c.in;
  a.Hkv = c.Hkv, a.Lk = c.Lk, a.Dv = c.Dv < 0 ? c.D : c.Dv;
  std::copy(in.k.strides, in.k.strides + 4, a.k_strides);
  std::copy(in.v.strides, in.v.strides + 4, a.v_strides);
  if (c.mask != MaskKind::kNone) {
    a.mask = in.mask.data();
    a.mask_dtype = in.mask.dt;
    for (int i = 0; i < 4; ++i) a.mask_strides[i] = in.mask.dims[i] == 1 ? 0 : in.mask.strides[i];
  }
  a.causal = c.causal;
  a.scale = scale;
  a.kv_len = c.kv_len;
  a.out = in.out.data();
  a.out_dtype = c.out;
  std::copy(in.out.strides, in.out.strides + 4, a.out_strides);
  a.num_splits = c.num_splits;
  return a;
}

std::vector<AttnIsa> isas() {
  std::vector<AttnIsa> r;
  for (AttnIsa i : {AttnIsa::kScalar, AttnIsa::kAvx2, AttnIsa::kAvx512})
    if (resolve_isa(i) == i) r.push_back(i);
  return r;
}

ThreadPool* pool() {
  static ThreadPool p(4);
  return &p;
}

// Runs the case on every ISA, serial and threaded, and compares each to the reference.
void check(const Case& c) {
  SCOPED_TRACE(describe(c));
  std::mt19937_64 rng(test_seed() ^ std::hash<std::string>{}(describe(c)));
  Inputs in = make_inputs(c, rng);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.D));
  const std::vector<double> ref = reference(c, in, scale);
  const int64_t Dv = c.Dv < 0 ? c.D : c.Dv;
  for (AttnIsa isa : isas())
    for (ThreadPool* tp : {static_cast<ThreadPool*>(nullptr), pool()}) {
      SCOPED_TRACE(std::string("isa=") + isa_name(isa) + (tp ? " threads=4" : " serial"));
      SdpaArgs a = make_args(c, in, scale);
      a.isa = isa;
      std::fill(in.out.bytes.begin(), in.out.bytes.end(), 0xff);  // NaN if a row is not written
      sdpa(a, tp);
      double worst = 0;
      int64_t bad = 0;
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t h = 0; h < c.Hq; ++h)
          for (int64_t i = 0; i < c.Lq; ++i)
            for (int64_t d = 0; d < Dv; ++d) {
              const double got = in.out.read(b, h, i, d);
              const double want = ref[static_cast<size_t>(((b * c.Hq + h) * c.Lq + i) * Dv + d)];
              const double err = std::isnan(got) ? 1e9 : std::abs(got - want);
              if (err > tolerance(c.out)) ++bad;
              worst = std::max(worst, err);
            }
      EXPECT_EQ(bad, 0) << "worst abs error " << worst << " > " << tolerance(c.out);
    }
}

TEST(Sdpa, MultiHead) { check({.B = 2, .Hq = 4, .Hkv = 4, .Lq = 37, .Lk = 53, .D = 64}); }
TEST(Sdpa, ManyTilesAndBlocks) {
  check({.B = 1, .Hq = 2, .Hkv = 2, .Lq = 150, .Lk = 200, .D = 32});
}
TEST(Sdpa, GqaSmolLm) {
  check({.B = 1, .Hq = 9, .Hkv = 3, .Lq = 70, .Lk = 70, .D = 64, .causal = true});
}
TEST(Sdpa, Gqa32x8) { check({.B = 1, .Hq = 32, .Hkv = 8, .Lq = 20, .Lk = 130, .D = 128}); }
TEST(Sdpa, Mqa) { check({.B = 2, .Hq = 6, .Hkv = 1, .Lq = 11, .Lk = 90, .D = 48, .causal = true}); }

TEST(Sdpa, DecodeSplitLongKeys) {
  for (int64_t lq = 1; lq <= 8; ++lq)
    check({.B = 1,
           .Hq = 8,
           .Hkv = 2,
           .Lq = lq,
           .Lk = 4097,
           .D = 64,
           .causal = true,
           .num_splits = 7});
}
TEST(Sdpa, DecodeAutoSplit) {
  // One kv head and one query: too little work for 4 threads, so keys are split automatically.
  check({.B = 1, .Hq = 1, .Hkv = 1, .Lq = 1, .Lk = 9000, .D = 128});
  check(
      {.B = 1, .Hq = 4, .Hkv = 1, .Lq = 3, .Lk = 8192, .D = 80, .causal = true, .in = DType::f16});
}
TEST(Sdpa, CausalOffsetLqLessThanLk) {
  check({.B = 2, .Hq = 3, .Hkv = 1, .Lq = 17, .Lk = 100, .D = 32, .causal = true});
  check({.B = 1, .Hq = 2, .Hkv = 2, .Lq = 70, .Lk = 130, .D = 16, .causal = true, .num_splits = 3});
}
TEST(Sdpa, KvLenBound) {
  check({.B = 1, .Hq = 4, .Hkv = 2, .Lq = 1, .Lk = 512, .D = 64, .causal = true, .kv_len = 301});
  check({.B = 2, .Hq = 2, .Hkv = 1, .Lq = 9, .Lk = 256, .D = 32, .kv_len = 100, .num_splits = 2});
}
TEST(Sdpa, BoolMaskBroadcastQK) {
  check({.B = 2, .Hq = 4, .Hkv = 2, .Lq = 13, .Lk = 77, .D = 24, .mask = MaskKind::kBoolQK});
}
TEST(Sdpa, FloatMaskBroadcastKeys) {
  check({.B = 3, .Hq = 4, .Hkv = 2, .Lq = 13, .Lk = 77, .D = 24, .mask = MaskKind::kFloatKeys});
  check({.B = 2,
         .Hq = 2,
         .Hkv = 2,
         .Lq = 2,
         .Lk = 1000,
         .D = 24,
         .mask = MaskKind::kFloatKeys,
         .num_splits = 5});
}
TEST(Sdpa, FullMasksWithCausal) {
  check({.B = 1,
         .Hq = 2,
         .Hkv = 1,
         .Lq = 30,
         .Lk = 40,
         .D = 16,
         .causal = true,
         .in = DType::bf16,
         .mask = MaskKind::kFloatFull});
  check({.B = 2,
         .Hq = 2,
         .Hkv = 2,
         .Lq = 30,
         .Lk = 40,
         .D = 16,
         .causal = true,
         .mask = MaskKind::kBoolFull});
}
TEST(Sdpa, FullyMaskedRowsGiveZeros) {
  check({.B = 2,
         .Hq = 2,
         .Hkv = 1,
         .Lq = 20,
         .Lk = 50,
         .D = 16,
         .mask = MaskKind::kBoolFull,
         .mask_row_off = 0.3});
  check({.B = 1,
         .Hq = 2,
         .Hkv = 1,
         .Lq = 3,
         .Lk = 600,
         .D = 16,
         .mask = MaskKind::kBoolFull,
         .num_splits = 4,
         .mask_row_off = 0.5});
  // Causal with more queries than keys: the first rows sit before key 0.
  check({.B = 1, .Hq = 2, .Hkv = 2, .Lq = 12, .Lk = 5, .D = 16, .causal = true});
  check({.B = 1, .Hq = 1, .Hkv = 1, .Lq = 4, .Lk = 64, .D = 16, .kv_len = 0});
}
TEST(Sdpa, OddHeadDims) {
  for (int64_t d : {72, 80, 64, 128, 96, 5, 17})
    check({.B = 1, .Hq = 3, .Hkv = 1, .Lq = 9, .Lk = 70, .D = d, .causal = true});
}
TEST(Sdpa, ValueDimDiffers) {
  check({.B = 1, .Hq = 4, .Hkv = 2, .Lq = 12, .Lk = 66, .D = 64, .Dv = 40});
  check({.B = 1, .Hq = 2, .Hkv = 2, .Lq = 1, .Lk = 700, .D = 32, .Dv = 130, .num_splits = 3});
}
TEST(Sdpa, StridedViews) {
  check({.B = 2, .Hq = 4, .Hkv = 2, .Lq = 10, .Lk = 70, .D = 64, .causal = true, .strided = true});
  check({.B = 2,
         .Hq = 4,
         .Hkv = 2,
         .Lq = 1,
         .Lk = 300,
         .D = 72,
         .Dv = 24,
         .strided = true,
         .num_splits = 3});
  check({.B = 2,
         .Hq = 4,
         .Hkv = 2,
         .Lq = 10,
         .Lk = 70,
         .D = 40,
         .in = DType::f16,
         .out = DType::f16,
         .strided = true});
}
TEST(Sdpa, HalfInputs) {
  check(
      {.B = 1, .Hq = 4, .Hkv = 2, .Lq = 33, .Lk = 150, .D = 64, .causal = true, .in = DType::f16});
  check(
      {.B = 1, .Hq = 4, .Hkv = 2, .Lq = 33, .Lk = 150, .D = 64, .causal = true, .in = DType::bf16});
  check({.B = 1,
         .Hq = 4,
         .Hkv = 2,
         .Lq = 33,
         .Lk = 150,
         .D = 64,
         .in = DType::f16,
         .out = DType::f16});
  check({.B = 1,
         .Hq = 4,
         .Hkv = 2,
         .Lq = 2,
         .Lk = 2000,
         .D = 64,
         .in = DType::bf16,
         .out = DType::bf16,
         .num_splits = 4});
}
TEST(Sdpa, LongKeysF16SoftmaxStaysAccurate) {
  // 8k keys in f16: f32 softmax and accumulation keep the error at f32 level.
  check(
      {.B = 1, .Hq = 2, .Hkv = 1, .Lq = 4, .Lk = 8192, .D = 64, .causal = true, .in = DType::f16});
}

TEST(Sdpa, BadArguments) {
  Case c{.B = 1, .Hq = 6, .Hkv = 4, .Lq = 2, .Lk = 3, .D = 8};
  std::mt19937_64 rng(1);
  Case ok = c;
  ok.Hkv = 2;
  Inputs in = make_inputs(ok, rng);
  SdpaArgs a = make_args(ok, in, 1.0f);
  a.Hkv = 4;
  try {
    sdpa(a, nullptr);
    FAIL() << "expected loom::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[sdpa] q has 6 heads, k/v have 4"), std::string::npos)
        << e.what();
  }
  a = make_args(ok, in, 1.0f);
  a.k = nullptr;
  EXPECT_THROW(sdpa(a, nullptr), Error);
  a = make_args(ok, in, 1.0f);
  a.kv_len = 4;
  EXPECT_THROW(sdpa(a, nullptr), Error);
  a = make_args(ok, in, 1.0f);
  a.q_dtype = DType::i32;
  EXPECT_THROW(sdpa(a, nullptr), Error);
  a = make_args(ok, in, 1.0f);
  a.mask = in.q.data();
  a.mask_dtype = DType::i64;
  EXPECT_THROW(sdpa(a, nullptr), Error);
}

}  // namespace
}  // namespace loom::cpu
