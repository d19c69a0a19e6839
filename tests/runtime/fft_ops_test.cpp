// FFT graph ops end to end on the CPU backend: numpy goldens (scripts/make_fft_ops_golden.py) for
// fft / ifft / fft2 / rfft / irfft / stft and Whisper's log-mel, 2^20 round trips, the zero-copy
// frames view, and the errors of bad inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <cstdlib>
#include <string>

#include "loom/loom.h"

namespace loom {
namespace {

using cf = std::complex<float>;

std::string data(const std::string& name) {
  const char* d = std::getenv("LOOM_TEST_DATA");
  return std::string(d ? d : "tests/data") + "/fft_ops/" + name + ".npy";
}

// max |got - want| / max |want|: FFT errors scale with the norm of the whole transform.
template <class T>
double rel_error(const std::vector<T>& got, const std::vector<T>& want) {
  EXPECT_EQ(got.size(), want.size());
  double err = 0, peak = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    err = std::max(err, static_cast<double>(std::abs(got[i] - want[i])));
    peak = std::max(peak, static_cast<double>(std::abs(want[i])));
  }
  return err / std::max(peak, 1e-30);
}

NDArray run1(const std::function<Tensor(Graph&, Tensor)>& build, const NDArray& x,
             int threads = 0) {
  Graph g;
  Tensor in = g.placeholder(x.shape(), x.dtype(), "x");
  CompileOptions o;
  o.num_threads = threads;
  return g.compile({build(g, in)}, o).run({{"x", x}})[0];
}

void expect_complex_golden(const NDArray& got, const std::string& golden, double tol) {
  NDArray want = NDArray::load_npy(data(golden));
  ASSERT_EQ(got.shape(), want.shape()) << golden;
  EXPECT_LT(rel_error(got.to_vector<cf>(), want.to_vector<cf>()), tol) << golden;
}

TEST(FftOpsGolden, FftIfftPrimeAndTwoAxes) {
  NDArray x = NDArray::load_npy(data("fft_x"));
  expect_complex_golden(run1([](Graph&, Tensor t) { return fft(t); }, x), "fft_out", 1e-6);
  expect_complex_golden(run1([](Graph&, Tensor t) { return ifft(t); }, x), "ifft_out", 1e-6);
  NDArray p = NDArray::load_npy(data("fft_prime_x"));
  expect_complex_golden(run1([](Graph&, Tensor t) { return fft(t); }, p), "fft_prime_out", 2e-6);
  NDArray x2 = NDArray::load_npy(data("fft2_x"));
  expect_complex_golden(run1(
                            [](Graph&, Tensor t) {
                              return fft(t, {.axes = {0, 2}, .scaling = FftScaling::unitary});
                            },
                            x2),
                        "fft2_out", 1e-6);
}

TEST(FftOpsGolden, RfftIrfft) {
  NDArray r = NDArray::load_npy(data("rfft_x"));
  expect_complex_golden(run1([](Graph&, Tensor t) { return rfft(t); }, r), "rfft_out", 1e-6);
  NDArray r2 = NDArray::load_npy(data("rfft2_x"));
  expect_complex_golden(run1(
                            [](Graph&, Tensor t) {
                              return rfft(t, {.axes = {0, 1}});
                            },
                            r2),
                        "rfft2_out", 1e-6);
  NDArray h = NDArray::load_npy(data("irfft_x"));
  for (int64_t n : {1024, 1025}) {
    NDArray got = run1(
        [n](Graph&, Tensor t) { return irfft(t, {.scaling = FftScaling::size, .length = n}); }, h);
    NDArray want = NDArray::load_npy(data("irfft_" + std::to_string(n) + "_out"));
    ASSERT_EQ(got.shape(), want.shape());
    EXPECT_LT(rel_error(got.to_vector<float>(), want.to_vector<float>()), 1e-5) << n;
  }
  // MPSGraph's roundToOddHermitean picks the odd length without naming it.
  NDArray odd =
      run1([](Graph&,
              Tensor t) { return irfft(t, {.scaling = FftScaling::size, .round_to_odd = true}); },
           h);
  EXPECT_EQ(odd.shape(), Shape({3, 1025}));
}

TEST(FftOpsGolden, StftAndWhisperLogMel) {
  NDArray audio = NDArray::load_npy(data("audio_1s"));
  expect_complex_golden(run1(
                            [](Graph& g, Tensor t) {
                              return stft(
                                  t, {.n_fft = 400, .hop = 160, .window = hann_window(g, 400)});
                            },
                            audio),
                        "stft_out", 2e-6);
  NDArray fb = mel_filterbank(16000, 400, 80);
  EXPECT_LT(rel_error(fb.to_vector<float>(),
                      NDArray::load_npy(data("mel_filters_slaney_80")).to_vector<float>()),
            1e-6);
  NDArray htk = mel_filterbank(22050, 1024, 40, MelScale::htk);
  EXPECT_LT(rel_error(htk.to_vector<float>(),
                      NDArray::load_npy(data("mel_filters_htk_40")).to_vector<float>()),
            1e-6);
  for (int threads : {1, 2}) {
    NDArray lm = run1([](Graph&, Tensor t) { return log_mel_spectrogram(t); }, audio, threads);
    NDArray want = NDArray::load_npy(data("log_mel_out"));
    ASSERT_EQ(lm.shape(), Shape({80, 100}));
    auto a = lm.to_vector<float>(), b = want.to_vector<float>();
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i)
      worst = std::max(worst, static_cast<double>(std::abs(a[i] - b[i])));
    EXPECT_LT(worst, 2e-4) << threads << " threads";
  }
  NDArray lh =
      run1([](Graph&,
              Tensor t) { return log_mel_spectrogram(t, {.n_mels = 64, .scale = MelScale::htk}); },
           audio);
  auto a = lh.to_vector<float>(), b = NDArray::load_npy(data("log_mel_htk_out")).to_vector<float>();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 2e-4) << i;
}

TEST(FftOps, LargeRoundTripsAndParseval) {
  const int64_t n = 1 << 20;
  NDArray re = random_uniform({n}, f32, -1, 1, 1), im = random_uniform({n}, f32, -1, 1, 2);
  Graph g;
  Tensor a = g.placeholder({n}, f32, "re"), b = g.placeholder({n}, f32, "im");
  Tensor z = complex(a, b), spec = fft(z);
  Tensor back = ifft(spec);
  // Parseval: sum |X|^2 = n sum |x|^2.
  Tensor e_time = sum(square(abs(z))), e_freq = sum(square(abs(spec))) / static_cast<double>(n);
  Tensor rt = irfft(rfft(a), {.scaling = FftScaling::size, .length = n});
  auto out = g.compile({back, e_time, e_freq, rt, spec}).run({{"re", re}, {"im", im}});
  std::vector<cf> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    x[static_cast<size_t>(i)] = {re.data_as<float>()[i], im.data_as<float>()[i]};
  EXPECT_LT(rel_error(out[0].to_vector<cf>(), x), 1e-6);
  EXPECT_NEAR(out[1].at(0), out[2].at(0), 1e-4 * out[1].at(0));
  EXPECT_LT(rel_error(out[3].to_vector<float>(), re.to_vector<float>()), 1e-6);
  // A few bins against a direct DFT in double.
  auto s = out[4].to_vector<cf>();
  for (int64_t k : std::vector<int64_t>{0, 1, 12345, n / 2, n - 1}) {
    std::complex<double> acc = 0;
    for (int64_t j = 0; j < n; ++j) {
      double ph = -2 * M_PI * static_cast<double>((j * k) % n) / static_cast<double>(n);
      acc += std::complex<double>(x[static_cast<size_t>(j)]) * std::polar(1.0, ph);
    }
    EXPECT_LT(std::abs(std::complex<double>(s[static_cast<size_t>(k)]) - acc),
              1e-5 * std::sqrt(static_cast<double>(n)) * 10)
        << k;
  }
}

TEST(FftOps, FramesViewIsZeroCopy) {
  NDArray audio = random_uniform({480000}, f32, -1, 1, 3);
  NDArray fr = frames(audio, 400, 160);
  EXPECT_EQ(fr.shape(), Shape({2998, 400}));
  EXPECT_EQ(fr.storage(), audio.storage());  // same memory: nothing copied
  EXPECT_EQ(fr.strides(), (std::vector<int64_t>{160, 1}));
  EXPECT_EQ(fr.at(5 * 400 + 7), audio.at(5 * 160 + 7));
  // A view of a view (every other frame of a batch row) still aliases.
  NDArray batch = random_uniform({2, 1000}, f32, -1, 1, 4);
  NDArray bf = frames(batch, 100, 50);
  EXPECT_EQ(bf.shape(), Shape({2, 19, 100}));
  EXPECT_EQ(bf.at(19 * 100 + 3 * 100 + 2), batch.at(1000 + 150 + 2));
  // The graph takes the strided view as an input (the runtime makes it contiguous once) and gives
  // what the frames op gives on the signal.
  Graph g;
  Tensor x = g.placeholder({2998, 400}, f32, "x"), s = g.placeholder({480000}, f32, "s");
  auto out = g.compile({rfft(x), rfft(frames(s, 400, 160))}).run({{"x", fr}, {"s", audio}});
  EXPECT_EQ(rel_error(out[0].to_vector<cf>(), out[1].to_vector<cf>()), 0.0);
}

TEST(FftOps, IstftInvertsStft) {
  NDArray audio = random_uniform({1, 4000}, f32, -1, 1, 5);
  Graph g;
  Tensor x = g.placeholder({1, 4000}, f32, "x");
  StftOptions o{.n_fft = 400, .hop = 160, .window = hann_window(g, 400)};
  Tensor y = istft(stft(x, o), o, 4000);
  NDArray back = g.compile({y}).run({{"x", audio}})[0];
  EXPECT_LT(rel_error(back.to_vector<float>(), audio.to_vector<float>()), 1e-5);
}

// The error of building `f`, which must throw.
std::string error_of(const std::function<void(Graph&)>& f) {
  Graph g;
  try {
    f(g);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(FftOps, BadInputsGiveClearErrors) {
  auto c = [](Graph& g, Shape s) { return g.placeholder(s, c64, "z"); };
  auto r = [](Graph& g, Shape s) { return g.placeholder(s, f32, "x"); };
  EXPECT_NE(error_of([&](Graph& g) {
              fft(c(g, {4, 8}), {.axes = {}});
            }).find("axes is empty"),
            std::string::npos);
  EXPECT_NE(error_of([&](Graph& g) {
              fft(c(g, {0, 8}), {.axes = {0}});
            }).find("has length 0"),
            std::string::npos);
  EXPECT_NE(error_of([&](Graph& g) {
              rfft(r(g, {4, 0}));
            }).find("has length 0"),
            std::string::npos);
  EXPECT_NE(error_of([&](Graph& g) {
              fft(c(g, {4, 8}), {.axes = {1, -1}});
            }).find("listed twice"),
            std::string::npos);
  EXPECT_NE(error_of([&](Graph& g) {
              fft(c(g, {4, 8}), {.axes = {2}});
            }).find("out of range"),
            std::string::npos);
  std::string e = error_of([&](Graph& g) { irfft(c(g, {4, 9}), {.length = 20}); });
  EXPECT_NE(e.find("[irfft]"), std::string::npos) << e;
  EXPECT_NE(e.find("needs 11 input bins"), std::string::npos) << e;
  EXPECT_NE(error_of([&](Graph& g) {
              irfft(c(g, {4, 1}));
            }).find("empty signal"),
            std::string::npos);
  e = error_of([&](Graph& g) { ifft(r(g, {4, 8})); });
  EXPECT_NE(e.find("[fft]"), std::string::npos) << e;
  EXPECT_NE(e.find("must be c64"), std::string::npos) << e;
  EXPECT_NE(error_of([&](Graph& g) {
              irfft(r(g, {4, 8}));
            }).find("must be c64"),
            std::string::npos);
  EXPECT_NE(error_of([&](Graph& g) { rfft(c(g, {4, 8})); }).find("real f32"), std::string::npos);
  EXPECT_NE(error_of([&](Graph& g) { real(r(g, {3})); }).find("must be c64"), std::string::npos);
  EXPECT_NE(error_of([&](Graph& g) {
              complex(c(g, {3}), g.placeholder({3}, c64, "z2"));
            }).find("must be f32"),
            std::string::npos);
  EXPECT_NE(error_of([&](Graph& g) { add(c(g, {3}), r(g, {3})); }).find("different dtypes"),
            std::string::npos);
  EXPECT_NE(error_of([&](Graph& g) { frames(r(g, {10}), 16, 4); }).find("shorter than one frame"),
            std::string::npos);
  EXPECT_NE(error_of([&](Graph& g) { frames(r(g, {10}), 8, 4, 10); }).find("reflect padding"),
            std::string::npos);
  EXPECT_NE(error_of([&](Graph& g) { gaussian_window(g, 10, 0); }).find("std must be > 0"),
            std::string::npos);
  EXPECT_THROW(frames(NDArray(f32, {10}), 16, 4), Error);
  EXPECT_THROW(window_array("kaiser", 8), Error);
  // A dynamic length that turns out inconsistent is caught when the shapes are known.
  Graph g;
  Tensor z = g.placeholder({kDynamic}, c64, "z");
  auto ex = g.compile({irfft(z, {.length = 16})});
  try {
    ex.run({{"z", NDArray(c64, {5})}});
    ADD_FAILURE() << "no error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("needs 9 input bins"), std::string::npos) << err.what();
  }
}

}  // namespace
}  // namespace loom
