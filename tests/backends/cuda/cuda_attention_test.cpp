// CUDA sdpa (issue 10): the flash prefill, split-KV decode and fallback paths against a
// double-precision reference on fresh random inputs: f16/bf16/f32, head dims 64/128/256, causal
// (with a query offset), bool and additive masks (fully masked rows give zeros), GQA/MQA, kv_len
// read on the device, lengths that are not multiples of the tiles. Each case runs through a
// compiled graph (the op's dispatch) and through sdpa_launch with every flash tile configuration
// or several forced split sizes, into an output poisoned with NaN (every element must be
// written). Skips cleanly without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "backends/cuda/attention_kernels.h"
#include "backends/cuda/cuda_common.h"
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
  int64_t kv_len;  // -1: no kv_len input
  SdpaPath path;   // the path the dispatch must take
};

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
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));
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
  a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.D)));
  a.causal = c.causal;
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
TEST_P(CudaSdpa, GraphMatchesReference) {
  REQUIRE_GPU();
  const Case& c = cases()[GetParam()];
  uint64_t seed = std::random_device{}();
  Inputs in = make_inputs(c, seed);
  Graph g;
  auto q = g.placeholder(in.q.shape(), c.qt, "q");
  auto k = g.placeholder(in.k.shape(), c.kvt, "k");
  auto v = g.placeholder(in.v.shape(), c.kvt, "v");
  SdpaOptions o;
  o.causal = c.causal;
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
    for (int ks : {0, 8, 32, 256}) runs.push_back(a), runs.back().decode_split_keys = ks;
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
        << " (seed " << seed << ")";
    expect_masked_rows_zero(c, got, want);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaSdpa, ::testing::Range<size_t>(0, cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& i) {
                           return cases()[i.param].name;
                         });

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
    NDArray out = to_device(zeros({c.B, c.Hq, c.Lq, c.D}, f16), Device::cuda(0));
    SdpaLaunch a = launch_args(c, dev, out);
    cu::sdpa_launch(a, cu::stream(0), 0);
    for (double x : to_host(out).to_doubles()) ASSERT_TRUE(std::isnan(x)) << "Lq " << lq;
  }
}

}  // namespace
}  // namespace loom
