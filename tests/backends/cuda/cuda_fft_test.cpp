// The CUDA FFT / spectral / conv kernels against the CPU backend on sizes the op cases do not
// reach: strided middle axes, multi-axis transforms, 2^20-point transforms, more plans than the
// plan cache holds, stft / istft / log-mel of a signal whose length is no multiple of the hop, and
// a grouped strided conv large enough to take several GEMM calls. Skips cleanly without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "loom/loom.h"

namespace loom {
namespace {

#define REQUIRE_GPU() \
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU"

// max |got - want| / max |want|: FFT rounding errors scale with the transform's norm, not with
// each bin (bins near zero have large relative errors in any float FFT).
double rel_err(const NDArray& got, const NDArray& want) {
  EXPECT_EQ(got.type(), want.type());
  auto a = got.to_doubles(), b = want.to_doubles();
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::abs(a[i] - b[i]));
    den = std::max(den, std::abs(b[i]));
  }
  return den > 0 ? num / den : num;
}

using Build = std::function<std::vector<Tensor>(Graph&, const std::vector<Tensor>&)>;

struct In {
  Shape shape;
  DType dtype = f32;
};

// Builds the graph once, runs it on the CPU and on cuda:0 (host feeds and device feeds) on the
// same random inputs, and checks every output within `tol` (rel_err).
void expect_matches_cpu(const std::vector<In>& ins, const Build& build, double tol,
                        uint64_t seed = 7) {
  Graph g;
  std::vector<Tensor> ph;
  Feeds feeds, dev_feeds;
  for (size_t i = 0; i < ins.size(); ++i) {
    std::string name = "x" + std::to_string(i);
    ph.push_back(g.placeholder(ins[i].shape, ins[i].dtype, name));
    NDArray a = random_uniform(ins[i].shape, ins[i].dtype, -1, 1, seed + i);
    feeds.emplace_back(name, a);
    dev_feeds.emplace_back(name, to_device(a, Device::cuda(0)));
  }
  auto outs = build(g, ph);
  CompileOptions o;
  o.device = Device::cuda(0);
  Executable cpu = g.compile(outs), gpu = g.compile(outs, o);
  auto want = cpu.run(feeds);
  auto got = gpu.run(feeds);
  auto dev = gpu.run(dev_feeds);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_LE(rel_err(got[i], want[i]), tol) << "output " << i;
    EXPECT_EQ(dev[i].device(), Device::cuda(0));
    EXPECT_LE(rel_err(to_host(dev[i]), want[i]), tol) << "device run, output " << i;
  }
}

Tensor cplx(Graph& g, const Tensor& re, const Tensor& im) { return complex(re, im); }

TEST(CudaFft, StridedMiddleAndLeadingAxes) {
  REQUIRE_GPU();
  // Axis 1 of a rank-3 array: lines strided by the inner size, in blocks of the outer one (both
  // launch orders of the advanced layout: outer <= inner and outer > inner).
  for (Shape s : {Shape({8, 64, 16}), Shape({40, 32, 3})})
    expect_matches_cpu(
        {{s}, {s}},
        [](Graph& g, const std::vector<Tensor>& x) {
          Tensor y = fft(cplx(g, x[0], x[1]), {.axes = {1}});
          return std::vector<Tensor>{real(y), imag(y)};
        },
        1e-5);
  // rfft along axis 0 and irfft of odd length along a middle axis.
  expect_matches_cpu(
      {{Shape({100, 7, 3})}},
      [](Graph&, const std::vector<Tensor>& x) {
        Tensor y = rfft(x[0], {.axes = {0}});
        return std::vector<Tensor>{real(y), imag(y)};
      },
      1e-5);
  expect_matches_cpu(
      {{Shape({5, 11, 6})}, {Shape({5, 11, 6})}},
      [](Graph& g, const std::vector<Tensor>& x) {
        return std::vector<Tensor>{
            irfft(cplx(g, x[0], x[1]), {.axes = {1}, .scaling = FftScaling::size, .length = 21})};
      },
      1e-5);
}

TEST(CudaFft, RealBlocksOfOddSize) {
  REQUIRE_GPU();
  // Real blocks of 15 and 21 floats: every other block starts off the 8-byte alignment cuFFT
  // needs, so the real side goes through a padded staging buffer.
  expect_matches_cpu(
      {{Shape({7, 5, 3})}},
      [](Graph&, const std::vector<Tensor>& x) {
        Tensor y = rfft(x[0], {.axes = {1}, .scaling = FftScaling::unitary});
        return std::vector<Tensor>{real(y), imag(y)};
      },
      1e-5);
  expect_matches_cpu(
      {{Shape({6, 4, 3})}, {Shape({6, 4, 3})}},
      [](Graph& g, const std::vector<Tensor>& x) {
        return std::vector<Tensor>{irfft(cplx(g, x[0], x[1]), {.axes = {1}, .length = 7})};
      },
      1e-5);
}

TEST(CudaFft, MultiAxis) {
  REQUIRE_GPU();
  Shape s({6, 32, 20, 12});
  expect_matches_cpu(
      {{s}, {s}},
      [](Graph& g, const std::vector<Tensor>& x) {
        Tensor z = cplx(g, x[0], x[1]);
        Tensor a = fft(z, {.axes = {1, 2, 3}, .scaling = FftScaling::unitary});  // one rank-3 plan
        Tensor b = fft(z, {.axes = {3, 0}, .inverse = true});                    // per-axis passes
        return std::vector<Tensor>{real(a), imag(a), real(b), imag(b)};
      },
      1e-5);
  expect_matches_cpu(
      {{s}},
      [](Graph&, const std::vector<Tensor>& x) {
        Tensor a = rfft(x[0], {.axes = {2, 3}});     // rank-2 R2C over trailing dims
        Tensor b = rfft(x[0], {.axes = {3, 1, 0}});  // real axis last, others strided
        Tensor c = rfft(x[0], {.axes = {0, 3, 1}});  // real axis is the middle one
        return std::vector<Tensor>{real(a), imag(a), real(b), imag(b), real(c), imag(c)};
      },
      1e-5);
  // irfftn of an arbitrary (non-Hermitian) spectrum: the inner inverse passes come first, then
  // the imaginary parts of bin 0 / bin n/2 of the real axis are ignored, as numpy does.
  Shape h({9, 10, 7});
  expect_matches_cpu(
      {{h}, {h}},
      [](Graph& g, const std::vector<Tensor>& x) {
        Tensor z = cplx(g, x[0], x[1]);
        return std::vector<Tensor>{
            irfft(z, {.axes = {0, 2}, .scaling = FftScaling::size, .length = 12}),
            irfft(z, {.axes = {2, 1}, .scaling = FftScaling::unitary, .round_to_odd = true})};
      },
      1e-5);
}

TEST(CudaFft, Large) {
  REQUIRE_GPU();
  int64_t n = int64_t{1} << 20;
  expect_matches_cpu(
      {{Shape({n})}, {Shape({n})}},
      [](Graph& g, const std::vector<Tensor>& x) {
        Tensor y = fft(cplx(g, x[0], x[1]));
        return std::vector<Tensor>{real(y), imag(y)};
      },
      1e-5);
  expect_matches_cpu(
      {{Shape({2, n})}},
      [n](Graph&, const std::vector<Tensor>& x) {
        Tensor y = rfft(x[0], {.scaling = FftScaling::size});
        Tensor back = irfft(rfft(x[0]), {.scaling = FftScaling::size, .length = n});
        return std::vector<Tensor>{real(y), imag(y), back};
      },
      1e-5);
}

TEST(CudaFft, MorePlansThanTheCacheHolds) {
  REQUIRE_GPU();
  // 80 distinct lengths (the cache keeps 64): evicted plans are rebuilt on demand.
  Graph g;
  auto x = g.placeholder({3, 200}, f32, "x");
  std::vector<Tensor> outs;
  for (int64_t n = 120; n < 200; ++n) outs.push_back(abs(rfft(slice(x, {0}, {n}, {1}))));
  CompileOptions o;
  o.device = Device::cuda(0);
  Executable cpu = g.compile(outs), gpu = g.compile(outs, o);
  Feeds f{{"x", random_uniform({3, 200}, f32, -1, 1, 11)}};
  auto want = cpu.run(f);
  for (int rep = 0; rep < 2; ++rep) {
    auto got = gpu.run(f);
    for (size_t i = 0; i < want.size(); ++i) EXPECT_LE(rel_err(got[i], want[i]), 1e-5) << i;
  }
}

TEST(CudaSpectral, StftIstftLogMelOfARealLengthSignal) {
  REQUIRE_GPU();
  int64_t t = 16000 * 3 + 123;  // no multiple of the hop: a partial last frame
  expect_matches_cpu(
      {{Shape({2, t})}},
      [](Graph& g, const std::vector<Tensor>& x) {
        StftOptions so{.n_fft = 400, .hop = 160, .window = hann_window(g, 400)};
        Tensor s = stft(x[0], so);
        Tensor back = istft(s, so, 16000 * 3 + 123);
        return std::vector<Tensor>{real(s), imag(s), back, log_mel_spectrogram(x[0])};
      },
      2e-5);
  // istft inverts stft on the device too.
  Graph g;
  auto x = g.placeholder({t}, f32, "x");
  StftOptions so{.n_fft = 512, .hop = 128, .window = hann_window(g, 512)};
  CompileOptions o;
  o.device = Device::cuda(0);
  Executable e = g.compile({istft(stft(x, so), so, t)}, o);
  NDArray a = random_uniform({t}, f32, -1, 1, 5);
  EXPECT_LE(rel_err(e.run({{"x", a}})[0], a), 1e-5);
}

TEST(CudaConv, GroupedStridedDilatedBatch) {
  REQUIRE_GPU();
  // Groups with batch > groups (a GEMM per group) and batch <= groups (a GEMM per batch element).
  for (auto [b, groups] : {std::pair<int64_t, int64_t>{8, 2}, {2, 4}})
    expect_matches_cpu(
        {{Shape({b, 32, 40, 36})}, {Shape({48, 32 / groups, 3, 5})}, {Shape({48})}},
        [groups](Graph&, const std::vector<Tensor>& x) {
          ConvAttrs a{
              .strides = {2, 1}, .pads = {1, 2, 0, 3}, .dilations = {1, 2}, .groups = groups};
          return std::vector<Tensor>{conv(x[0], x[1], x[2], a)};
        },
        1e-5);
  // 1-D, bf16 (f32 compute, one rounding) and pools on a larger plane.
  expect_matches_cpu(
      {{Shape({3, 16, 1000}), bf16}, {Shape({24, 16, 7}), bf16}},
      [](Graph&, const std::vector<Tensor>& x) {
        return std::vector<Tensor>{conv(x[0], x[1], Tensor(), {.strides = {3}})};
      },
      1e-2);
  expect_matches_cpu(
      {{Shape({4, 8, 64, 64})}},
      [](Graph&, const std::vector<Tensor>& x) {
        PoolAttrs p{.kernel = {3, 3}, .strides = {2, 2}, .pads = {1, 1, 1, 1}, .ceil_mode = true};
        return std::vector<Tensor>{max_pool(x[0], p), avg_pool(x[0], p), global_avg_pool(x[0]),
                                   global_max_pool(x[0])};
      },
      1e-5);
}

}  // namespace
}  // namespace loom
