// CUDA sdpa (issue 10): the flash prefill, split-KV decode and fallback paths against a
// double-precision reference on fresh random inputs: f16/bf16/f32, head dims 64/128/256, causal
// (with a query offset), bool and additive masks (fully masked rows give zeros), GQA/MQA, kv_len
// read on the device, lengths that are not multiples of the tiles. Each case runs through a
// compiled graph (the op's dispatch) and through sdpa_launch with every flash tile configuration
// or several forced split sizes, into an output poisoned with NaN (every element must be
// written). The cuDNN path (attention_cudnn.cpp) has its own cases: forced through cudnn_launch,
// checked against the reference and against Loom's flash kernel on the same inputs (skipped when
// libcudnn.so.9 cannot be loaded). Skips cleanly without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "backends/cuda/attention_cudnn.h"
#include "backends/cuda/attention_kernels.h"
#include "backends/cuda/cuda_common.h"
#include "backends/cuda/cuda_graph.h"
#include "loom/loom.h"

namespace loom {
namespace {

namespace cu = backends::cuda;
using cu::SdpaLaunch;
using cu::SdpaPath;

#define REQUIRE_GPU() \
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU"

enum MaskKind {
  kNoMask,
  kBoolRandom,   // bool [B,1,Lq,Lk], ~80% true
  kAdditive,     // f32 [1,Hq,1,Lk] in [-3,0], every 7th key -inf
  kBoolFullRow,  // bool [1,1,Lq,Lk] random, row 0 all false (must give zeros)
  kAdditiveF16,  // f16 [B,Hq,Lq,Lk] in [-2,1]
};

struct Case {
  std::string name;
  DType qt, kvt;
  int64_t B, Hq, Hkv, Lq, Lk, D;
  bool causal;
  MaskKind mask;
  int64_t kv_len;    // -1: no kv_len input
  SdpaPath path;     // the path the dispatch must take
  double scale = 0;  // 0: 1/sqrt(D)
};

double scale_of(const Case& c) {
  return c.scale > 0 ? c.scale : 1.0 / std::sqrt(static_cast<double>(c.D));
}

struct Inputs {
  NDArray q, k, v, mask, kv_len;
};

Shape mask_shape(const Case& c) {
  switch (c.mask) {
    case kBoolRandom:
      return Shape({c.B, 1, c.Lq, c.Lk});
    case kAdditive:
      return Shape({1, c.Hq, 1, c.Lk});
    case kBoolFullRow:
      return Shape({1, 1, c.Lq, c.Lk});
    case kAdditiveF16:
      return Shape({c.B, c.Hq, c.Lq, c.Lk});
    default:
      return Shape({});
  }
}

Inputs make_inputs(const Case& c, uint64_t seed) {
  Inputs in;
  in.q = random_uniform({c.B, c.Hq, c.Lq, c.D}, c.qt, -2, 2, seed);
  in.k = random_uniform({c.B, c.Hkv, c.Lk, c.D}, c.kvt, -2, 2, seed + 1);
  in.v = random_uniform({c.B, c.Hkv, c.Lk, c.D}, c.kvt, -1, 1, seed + 2);
  if (c.mask != kNoMask) {
    Shape ms = mask_shape(c);
    std::mt19937_64 rng(seed + 3);
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<double> m(static_cast<size_t>(ms.numel()));
    for (size_t i = 0; i < m.size(); ++i) {
      double x = u(rng);
      switch (c.mask) {
        case kBoolRandom:
          m[i] = x < 0.8;
          break;
        case kBoolFullRow:
          m[i] = (i < static_cast<size_t>(c.Lk)) ? 0 : (x < 0.7);
          break;
        case kAdditive:
          m[i] = i % 7 == 3 ? -INFINITY : -3 * x;
          break;
        default:
          m[i] = -2 + 3 * x;
      }
    }
    DType mt = c.mask == kAdditive ? f32 : c.mask == kAdditiveF16 ? f16 : boolean;
    in.mask = NDArray::from_doubles(m, ms, mt);
  }
  if (c.kv_len >= 0) in.kv_len = NDArray::from_vector<int64_t>({c.kv_len}, Shape({}));
  return in;
}

// out[b,h,i,:] in double, straight from the definition.
std::vector<double> reference(const Case& c, const Inputs& in) {
  std::vector<double> q = in.q.to_doubles(), k = in.k.to_doubles(), v = in.v.to_doubles();
  std::vector<double> m = c.mask != kNoMask ? in.mask.to_doubles() : std::vector<double>{};
  Shape ms = mask_shape(c);
  const int64_t n = c.kv_len >= 0 ? c.kv_len : c.Lk, group = c.Hq / c.Hkv;
  const double scale = scale_of(c);
  std::vector<double> out(static_cast<size_t>(c.B * c.Hq * c.Lq * c.D), 0.0), s(c.Lk);
  std::vector<char> keep(c.Lk);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.Hq; ++h)
      for (int64_t i = 0; i < c.Lq; ++i) {
        const int64_t g = h / group, pos = n - c.Lq + i;
        const double* qr = &q[static_cast<size_t>(((b * c.Hq + h) * c.Lq + i) * c.D)];
        double mx = -INFINITY;
        for (int64_t j = 0; j < n; ++j) {
          const double* kr = &k[static_cast<size_t>(((b * c.Hkv + g) * c.Lk + j) * c.D)];
          double dot = 0;
          for (int64_t d = 0; d < c.D; ++d) dot += qr[d] * kr[d];
          double x = dot * scale;
          bool ok = !(c.causal && j > pos);
          if (c.mask != kNoMask) {
            int64_t mb = ms[0] == 1 ? 0 : b, mh = ms[1] == 1 ? 0 : h, mi = ms[2] == 1 ? 0 : i;
            double mv = m[static_cast<size_t>(((mb * ms[1] + mh) * ms[2] + mi) * ms[3] + j)];
            if (c.mask == kBoolRandom || c.mask == kBoolFullRow)
              ok = ok && mv != 0;
            else
              x += mv;
          }
          keep[j] = ok && x != -INFINITY;
          s[j] = x;
          if (keep[j]) mx = std::max(mx, x);
        }
        if (mx == -INFINITY) continue;  // fully masked: zeros
        double l = 0;
        double* o = &out[static_cast<size_t>(((b * c.Hq + h) * c.Lq + i) * c.D)];
        for (int64_t j = 0; j < n; ++j) {
          if (!keep[j]) continue;
          double p = std::exp(s[j] - mx);
          l += p;
          const double* vr = &v[static_cast<size_t>(((b * c.Hkv + g) * c.Lk + j) * c.D)];
          for (int64_t d = 0; d < c.D; ++d) o[d] += p * vr[d];
        }
        for (int64_t d = 0; d < c.D; ++d) o[d] /= l;
      }
  return out;
}

double tolerance(DType t) { return t == f32 ? 2e-5 : t == f16 ? 3e-3 : 1.5e-2; }

// ||got - want|| / ||want||; NaN anywhere (an unwritten or poisoned element) gives infinity.
double rel_error(const std::vector<double>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

// Every element of the rows the reference says are fully masked must be exactly zero.
void expect_masked_rows_zero(const Case& c, const std::vector<double>& got,
                             const std::vector<double>& want) {
  for (size_t r = 0; r < want.size() / static_cast<size_t>(c.D); ++r) {
    bool zero_row = true;
    for (int64_t d = 0; d < c.D && zero_row; ++d) zero_row = want[r * c.D + d] == 0.0;
    if (!zero_row) continue;
    for (int64_t d = 0; d < c.D; ++d) ASSERT_EQ(got[r * c.D + d], 0.0) << c.name << " row " << r;
  }
}

SdpaLaunch launch_args(const Case& c, const Inputs& dev, NDArray& out) {
  SdpaLaunch a;
  a.q = dev.q.data(), a.k = dev.k.data(), a.v = dev.v.data(), a.out = out.data();
  a.q_dtype = c.qt, a.kv_dtype = c.kvt, a.out_dtype = c.qt;
  a.B = c.B, a.Hq = c.Hq, a.Hkv = c.Hkv, a.Lq = c.Lq, a.Lk = c.Lk, a.D = c.D, a.Dv = c.D;
  a.scale = static_cast<float>(scale_of(c));
  a.causal = c.causal;
  a.allow_cudnn = c.path == SdpaPath::kCudnn;  // the other cases test Loom's own kernels
  if (c.mask != kNoMask) {
    a.mask = dev.mask.data();
    a.mask_dtype = dev.mask.dtype();
    Shape ms = mask_shape(c);
    int64_t full[4] = {c.B, c.Hq, c.Lq, c.Lk}, st = 1;
    for (int d = 3; d >= 0; --d) {
      a.mask_strides[d] = ms[d] == 1 && full[d] != 1 ? 0 : st;
      st *= ms[d];
    }
  }
  if (c.kv_len >= 0) a.kv_len = dev.kv_len.data(), a.kv_len_dtype = i64;
  return a;
}

const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      // decode (split-KV)
      {"dec_f16_d128_gqa", f16, f16, 2, 8, 2, 1, 1000, 128, false, kNoMask, -1, SdpaPath::kDecode},
      {"dec_bf16_d64_lq3_causal_mask", bf16, bf16, 1, 6, 3, 3, 333, 64, true, kBoolRandom, -1,
       SdpaPath::kDecode},
      {"dec_f32_d64_lq7_kvlen", f32, f32, 1, 9, 3, 7, 512, 64, true, kNoMask, 300,
       SdpaPath::kDecode},
      {"dec_f32_d128_additive", f32, f32, 1, 4, 4, 1, 4100, 128, false, kAdditive, -1,
       SdpaPath::kDecode},
      {"dec_f16_kvlen_short", f16, f16, 1, 32, 8, 1, 4096, 128, false, kNoMask, 17,
       SdpaPath::kDecode},
      {"dec_f16_kvlen_zero", f16, f16, 1, 4, 2, 2, 64, 64, true, kNoMask, 0, SdpaPath::kDecode},
      {"dec_bf16_d256_lq2", bf16, bf16, 1, 4, 2, 2, 900, 256, true, kNoMask, -1, SdpaPath::kDecode},
      {"dec_mqa_lq8_fullrow", f16, f16, 1, 32, 1, 8, 700, 128, false, kBoolFullRow, -1,
       SdpaPath::kDecode},
      {"dec_q_f32_kv_f16", f32, f16, 1, 8, 2, 1, 257, 64, false, kAdditiveF16, -1,
       SdpaPath::kDecode},
      // A Mistral-7B decode step: f32 query (float2 loads), f16 cache filled to kv_len, causal.
      {"dec_q_f32_kv_f16_d128_llm", f32, f16, 1, 32, 8, 1, 1024, 128, true, kNoMask, 130,
       SdpaPath::kDecode},
      // 16 query rows per kv head: the tensor-core kernel's full M tile
      {"dec_f16_d64_rows16_causal_kvlen", f16, f16, 1, 8, 2, 4, 1500, 64, true, kNoMask, 1234,
       SdpaPath::kDecode},
      {"dec_bf16_d128_long_additive", bf16, bf16, 1, 32, 8, 1, 9000, 128, false, kAdditive, -1,
       SdpaPath::kDecode},
      // prefill (flash)
      {"pre_f16_d128", f16, f16, 2, 4, 4, 200, 200, 128, false, kNoMask, -1, SdpaPath::kFlash},
      {"pre_f16_d128_causal_gqa", f16, f16, 1, 8, 2, 130, 130, 128, true, kNoMask, -1,
       SdpaPath::kFlash},
      {"pre_bf16_d64_causal_offset", bf16, bf16, 1, 4, 2, 77, 301, 64, true, kNoMask, -1,
       SdpaPath::kFlash},
      {"pre_f16_d64_fullrow", f16, f16, 1, 2, 1, 50, 120, 64, false, kBoolFullRow, -1,
       SdpaPath::kFlash},
      {"pre_bf16_d128_kvlen_causal", bf16, bf16, 2, 2, 1, 100, 256, 128, true, kNoMask, 150,
       SdpaPath::kFlash},
      {"pre_f16_d128_f16mask", f16, f16, 1, 3, 3, 65, 90, 128, false, kAdditiveF16, -1,
       SdpaPath::kFlash},
      {"pre_bf16_d64_additive_bool", bf16, bf16, 2, 4, 4, 33, 47, 64, false, kBoolRandom, -1,
       SdpaPath::kFlash},
      {"pre_f16_causal_lq_over_kvlen", f16, f16, 1, 2, 2, 40, 64, 64, true, kAdditive, 20,
       SdpaPath::kFlash},
      // fallback
      {"pre_f32_d64", f32, f32, 1, 4, 2, 40, 70, 64, true, kNoMask, -1, SdpaPath::kFallback},
      {"pre_f16_d80", f16, f16, 1, 2, 2, 20, 33, 80, false, kBoolRandom, -1, SdpaPath::kFallback},
      {"pre_q_f32_kv_bf16", f32, bf16, 1, 2, 1, 12, 40, 64, true, kNoMask, 30, SdpaPath::kFallback},
  };
  return c;
}

class CudaSdpa : public ::testing::TestWithParam<size_t> {};

// Through a compiled graph: the op's own dispatch, inputs and output on the device.
void graph_matches_reference(const Case& c) {
  uint64_t seed = std::random_device{}();
  Inputs in = make_inputs(c, seed);
  Graph g;
  auto q = g.placeholder(in.q.shape(), c.qt, "q");
  auto k = g.placeholder(in.k.shape(), c.kvt, "k");
  auto v = g.placeholder(in.v.shape(), c.kvt, "v");
  SdpaOptions o;
  o.causal = c.causal;
  o.scale = c.scale;
  Feeds feeds{{"q", to_device(in.q, Device::cuda(0))},
              {"k", to_device(in.k, Device::cuda(0))},
              {"v", to_device(in.v, Device::cuda(0))}};
  if (c.mask != kNoMask) {
    o.mask = g.placeholder(in.mask.shape(), in.mask.dtype(), "m");
    feeds.emplace_back("m", to_device(in.mask, Device::cuda(0)));
  }
  if (c.kv_len >= 0) {
    o.kv_len = g.placeholder(Shape({}), i64, "n");
    feeds.emplace_back("n", to_device(in.kv_len, Device::cuda(0)));
  }
  CompileOptions opt;
  opt.device = Device::cuda(0);
  Executable exe = g.compile({sdpa(q, k, v, o)}, opt);
  NDArray got = to_host(exe.run(feeds)[0]);
  std::vector<double> want = reference(c, in), gv = got.to_doubles();
  double err = rel_error(gv, want);
  EXPECT_LT(err, tolerance(c.qt == f32 ? c.kvt : c.qt)) << c.name << " (seed " << seed << ")";
  expect_masked_rows_zero(c, gv, want);
}

TEST_P(CudaSdpa, GraphMatchesReference) {
  REQUIRE_GPU();
  graph_matches_reference(cases()[GetParam()]);
}

// Through sdpa_launch: the expected path, every flash tile configuration or several split sizes,
// into a NaN-poisoned output.
TEST_P(CudaSdpa, EveryVariantMatchesReference) {
  REQUIRE_GPU();
  const Case& c = cases()[GetParam()];
  uint64_t seed = std::random_device{}();
  Inputs in = make_inputs(c, seed);
  Inputs dev;
  dev.q = to_device(in.q, Device::cuda(0));
  dev.k = to_device(in.k, Device::cuda(0));
  dev.v = to_device(in.v, Device::cuda(0));
  if (c.mask != kNoMask) dev.mask = to_device(in.mask, Device::cuda(0));
  if (c.kv_len >= 0) dev.kv_len = to_device(in.kv_len, Device::cuda(0));
  std::vector<double> want = reference(c, in);
  NDArray poison = full({c.B, c.Hq, c.Lq, c.D}, NAN, c.qt);

  NDArray out = to_device(poison, Device::cuda(0));
  SdpaLaunch a = launch_args(c, dev, out);
  ASSERT_EQ(cu::sdpa_path(a), c.path)
      << c.name << ": took " << cu::sdpa_path_name(cu::sdpa_path(a));
  std::vector<SdpaLaunch> runs;
  if (c.path == SdpaPath::kFlash)
    for (int v = 0; v < cu::sdpa_flash_variants(c.D); ++v)
      runs.push_back(a), runs.back().flash_variant = v;
  else if (c.path == SdpaPath::kDecode)
    for (int kernel : {-1, 0})  // chosen (tensor cores where they apply), scalar
      for (int ks : {0, 8, 32, 256}) {
        runs.push_back(a);
        runs.back().decode_split_keys = ks, runs.back().decode_kernel = kernel;
        // K/V copied before the kernel's wait, for the right kv_len and for a stale one.
        for (int skew : {0, -17}) {
          SdpaLaunch early = runs.back();
          early.kv_settled = true, early.decode_early_skew = skew;
          runs.push_back(early);
        }
      }
  else
    runs.push_back(a);
  for (SdpaLaunch r : runs) {
    NDArray o = to_device(poison, Device::cuda(0));
    r.out = o.data();
    cu::sdpa_launch(r, cu::stream(0), 0);
    std::vector<double> got = to_host(o).to_doubles();
    double err = rel_error(got, want);
    EXPECT_LT(err, tolerance(c.qt == f32 ? c.kvt : c.qt))
        << c.name << " flash variant " << r.flash_variant << " split keys " << r.decode_split_keys
        << " decode kernel " << r.decode_kernel << " settled " << r.kv_settled << " skew "
        << r.decode_early_skew << " (seed " << seed << ")";
    expect_masked_rows_zero(c, got, want);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaSdpa, ::testing::Range<size_t>(0, cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& i) {
                           return cases()[i.param].name;
                         });

// ---- cuDNN's fused attention (attention_cudnn.cpp) ----

#define REQUIRE_CUDNN()             \
  REQUIRE_GPU();                    \
  if (!cu::attn::cudnn_available()) \
  GTEST_SKIP() << "cuDNN not loadable: " << cu::attn::cudnn_unavailable_reason()

// Every case is one the dispatch sends to cuDNN: f16/bf16, D 64/128 (and 256), causal or not,
// Lq == Lk and Lq < Lk (causal aligned bottom-right), GQA, B 2, lengths that are no multiple of a
// tile, and an explicit scale.
const std::vector<Case>& cudnn_cases() {
  constexpr auto P = SdpaPath::kCudnn;
  static const std::vector<Case> c = {
      {"f16_d128_gqa", f16, f16, 2, 8, 2, 300, 300, 128, false, kNoMask, -1, P},
      {"f16_d128_gqa_causal", f16, f16, 2, 8, 2, 300, 300, 128, true, kNoMask, -1, P},
      {"bf16_d128_causal_offset", bf16, bf16, 2, 8, 2, 77, 300, 128, true, kNoMask, -1, P},
      {"f16_d64_causal_offset", f16, f16, 2, 8, 2, 77, 300, 64, true, kNoMask, -1, P},
      {"bf16_d64_gqa", bf16, bf16, 2, 8, 2, 77, 77, 64, false, kNoMask, -1, P},
      {"bf16_d64_causal_mha", bf16, bf16, 2, 4, 4, 300, 300, 64, true, kNoMask, -1, P},
      {"f16_d128_lq_lt_lk", f16, f16, 2, 8, 2, 77, 300, 128, false, kNoMask, -1, P},
      {"f16_d64_lq9_scale", f16, f16, 2, 8, 2, 9, 130, 64, true, kNoMask, -1, P, 0.3},
      {"bf16_d256_causal", bf16, bf16, 2, 4, 2, 130, 130, 256, true, kNoMask, -1, P},
  };
  return c;
}

class CudaSdpaCudnn : public ::testing::TestWithParam<size_t> {};

// Forced through cudnn_launch (so a silent fallback cannot pass), twice (the second launch runs
// the cached plan), into NaN-poisoned outputs; then Loom's own kernel (flash, or the fallback for
// D 256) on the same inputs must agree with it.
TEST_P(CudaSdpaCudnn, MatchesReferenceAndFlash) {
  REQUIRE_CUDNN();
  const Case& c = cudnn_cases()[GetParam()];
  uint64_t seed = std::random_device{}();
  Inputs in = make_inputs(c, seed), dev;
  dev.q = to_device(in.q, Device::cuda(0));
  dev.k = to_device(in.k, Device::cuda(0));
  dev.v = to_device(in.v, Device::cuda(0));
  std::vector<double> want = reference(c, in);
  NDArray poison = full({c.B, c.Hq, c.Lq, c.D}, NAN, c.qt);
  const double tol = tolerance(c.qt);

  NDArray out = to_device(poison, Device::cuda(0));
  SdpaLaunch a = launch_args(c, dev, out);
  ASSERT_EQ(cu::sdpa_path(a), SdpaPath::kCudnn)
      << c.name << ": took " << cu::sdpa_path_name(cu::sdpa_path(a));
  std::vector<double> first;
  for (int rep = 0; rep < 2; ++rep) {
    NDArray o = to_device(poison, Device::cuda(0));
    SdpaLaunch r = a;
    r.out = o.data();
    std::string why;
    ASSERT_TRUE(cu::attn::cudnn_launch(r, cu::stream(0), 0, &why))
        << c.name << ": cuDNN (version " << cu::attn::cudnn_version() << ") failed: " << why;
    std::vector<double> got = to_host(o).to_doubles();
    EXPECT_LT(rel_error(got, want), tol) << c.name << " launch " << rep << " (seed " << seed << ")";
    if (rep == 0)
      first = got;
    else
      EXPECT_EQ(got, first) << c.name << ": the cached plan gave different results";
  }

  NDArray o = to_device(poison, Device::cuda(0));
  SdpaLaunch own = a;
  own.out = o.data();
  own.allow_cudnn = false;
  EXPECT_EQ(cu::sdpa_path(own), c.D == 256 ? SdpaPath::kFallback : SdpaPath::kFlash);
  cu::sdpa_launch(own, cu::stream(0), 0);
  std::vector<double> mine = to_host(o).to_doubles();
  EXPECT_LT(rel_error(mine, want), tol) << c.name << " Loom's kernel (seed " << seed << ")";
  EXPECT_LT(rel_error(first, mine), tol) << c.name << ": cuDNN and Loom's kernel disagree";
}

// The op's own dispatch (a compiled graph) on the cuDNN cases.
TEST_P(CudaSdpaCudnn, GraphMatchesReference) {
  REQUIRE_CUDNN();
  graph_matches_reference(cudnn_cases()[GetParam()]);
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaSdpaCudnn, ::testing::Range<size_t>(0, cudnn_cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& i) {
                           return cudnn_cases()[i.param].name;
                         });

// Inside a CUDA graph (how Loom replays decode and prefill steps): a shape whose plan the eager
// launch built runs cuDNN in the capture; a shape never seen takes the flash kernel there (no
// plan is built inside a capture). Both replay correctly.
TEST(CudaSdpaCudnnGraph, CapturedLaunchesReplay) {
  REQUIRE_CUDNN();
  for (bool built : {true, false}) {
    Case c{"graph",
           f16,
           f16,
           2,
           8,
           2,
           built ? 77 : 45,
           built ? 300 : 211,
           128,
           true,
           kNoMask,
           -1,
           SdpaPath::kCudnn};
    Inputs in = make_inputs(c, built ? 11 : 12), dev;
    dev.q = to_device(in.q, Device::cuda(0));
    dev.k = to_device(in.k, Device::cuda(0));
    dev.v = to_device(in.v, Device::cuda(0));
    std::vector<double> want = reference(c, in);
    NDArray poison = full({c.B, c.Hq, c.Lq, c.D}, NAN, c.qt);
    NDArray eager = to_device(poison, Device::cuda(0)),
            replayed = to_device(poison, Device::cuda(0));
    SdpaLaunch a = launch_args(c, dev, eager);
    std::string why;
    if (built) {
      ASSERT_TRUE(cu::attn::cudnn_launch(a, cu::stream(0), 0, &why)) << why;
      EXPECT_LT(rel_error(to_host(eager).to_doubles(), want), tolerance(c.qt));
    }
    SdpaLaunch b = a;
    b.out = replayed.data();
    bool took_cudnn = false;
    auto graph = cu::CudaGraph::capture(0, [&] {
      took_cudnn = cu::attn::cudnn_launch(b, cu::stream(0), 0, &why);
      if (!took_cudnn) cu::sdpa_launch(b, cu::stream(0), 0);  // what sdpa_launch does
    });
    EXPECT_EQ(took_cudnn, built) << why;
    graph->replay();
    std::vector<double> got = to_host(replayed).to_doubles();
    EXPECT_LT(rel_error(got, want), tolerance(c.qt)) << (built ? "cuDNN" : "flash") << " replay";
    if (built) {
      EXPECT_EQ(got, to_host(eager).to_doubles());
    }
  }
}

// Which launches the cuDNN path takes (no GPU needed: a pure function of the arguments).
TEST(CudaSdpaCudnnConditions, Supports) {
  alignas(16) static uint16_t buf[64];
  SdpaLaunch a;
  a.q = a.k = a.v = a.out = buf;
  a.q_dtype = a.kv_dtype = a.out_dtype = f16;
  a.B = 2, a.Hq = 8, a.Hkv = 2, a.Lq = 77, a.Lk = 300, a.D = a.Dv = 128;
  a.causal = true;
  EXPECT_TRUE(cu::attn::cudnn_supports(a));
  auto with = [&](auto edit) {
    SdpaLaunch x = a;
    edit(x);
    return cu::attn::cudnn_supports(x);
  };
  EXPECT_TRUE(with([](SdpaLaunch& x) { x.q_dtype = x.kv_dtype = x.out_dtype = bf16; }));
  EXPECT_TRUE(with([](SdpaLaunch& x) { x.D = x.Dv = 64; }));
  EXPECT_TRUE(with([](SdpaLaunch& x) { x.D = x.Dv = 256; }));
  EXPECT_TRUE(with([](SdpaLaunch& x) { x.Lq = x.Lk; }));
  EXPECT_TRUE(with([](SdpaLaunch& x) { x.causal = false, x.Lq = 500; }));
  EXPECT_FALSE(with([](SdpaLaunch& x) { x.Lq = 500; }));  // causal with Lq > Lk
  EXPECT_FALSE(with([](SdpaLaunch& x) { x.Lq = 8; }));    // decode keeps split-KV
  EXPECT_FALSE(with([](SdpaLaunch& x) { x.D = x.Dv = 80; }));
  EXPECT_FALSE(with([](SdpaLaunch& x) { x.Dv = 64; }));
  EXPECT_FALSE(with([](SdpaLaunch& x) { x.q_dtype = x.kv_dtype = x.out_dtype = f32; }));
  EXPECT_FALSE(with([](SdpaLaunch& x) { x.kv_dtype = bf16; }));
  EXPECT_FALSE(with([](SdpaLaunch& x) { x.out_dtype = f32; }));
  EXPECT_FALSE(with([](SdpaLaunch& x) { x.mask = buf; }));
  EXPECT_FALSE(with([](SdpaLaunch& x) { x.kv_len = buf; }));
  EXPECT_FALSE(with([](SdpaLaunch& x) { x.Hkv = 3; }));
  EXPECT_FALSE(with([](SdpaLaunch& x) { x.k = reinterpret_cast<const char*>(buf) + 2; }));
  // Knobs and names, which need no GPU either.
  SdpaLaunch off = a;
  off.allow_cudnn = false;
  EXPECT_NE(cu::sdpa_path(off), SdpaPath::kCudnn);
  off = a;
  off.flash_variant = 0;
  EXPECT_NE(cu::sdpa_path(off), SdpaPath::kCudnn);
  EXPECT_STREQ(cu::sdpa_path_name(SdpaPath::kCudnn), "cudnn");
  EXPECT_EQ(cu::sdpa_path(a) == SdpaPath::kCudnn, cu::attn::cudnn_available());
  if (cu::attn::cudnn_available())
    std::printf("cuDNN path available: cuDNN %d\n", cu::attn::cudnn_version());
  else
    std::printf("cuDNN path unavailable: %s\n", cu::attn::cudnn_unavailable_reason());
}

// An out-of-range kv_len cannot throw from the device: the rows become NaN, never silently wrong.
TEST(CudaSdpaErrors, InvalidKvLenGivesNaN) {
  REQUIRE_GPU();
  for (int64_t lq : {1, 40}) {
    Case c{"bad_kv_len", f16, f16, 1, 2, 2, lq, 64, 64, false, kNoMask, 65, SdpaPath::kDecode};
    Inputs in = make_inputs(c, 5), dev;
    dev.q = to_device(in.q, Device::cuda(0));
    dev.k = to_device(in.k, Device::cuda(0));
    dev.v = to_device(in.v, Device::cuda(0));
    dev.kv_len = to_device(in.kv_len, Device::cuda(0));
    for (int ks : {0, 8})                   // one split; eight (split 0 writes the rows)
      for (bool settled : {false, true}) {  // settled: kv_len is also read before the wait
        NDArray out = to_device(zeros({c.B, c.Hq, c.Lq, c.D}, f16), Device::cuda(0));
        SdpaLaunch a = launch_args(c, dev, out);
        a.decode_split_keys = ks, a.kv_settled = settled;
        cu::sdpa_launch(a, cu::stream(0), 0);
        for (double x : to_host(out).to_doubles())
          ASSERT_TRUE(std::isnan(x))
              << "Lq " << lq << " split keys " << ks << " settled " << settled;
      }
  }
}

}  // namespace
}  // namespace loom
