// Loom graph FFT ops on the CPU backend (issue 6): batched rfft 4096x512, complex fft 2^20, and
// Whisper's stft + log-mel front end on 30 s of 16 kHz audio; 1 and 2 threads. The numpy peer on
// the same shapes is bench/fft_ops_numpy.py; figures are in docs/benchmarks/fft.md.
#include <benchmark/benchmark.h>

#include "loom/loom.h"

namespace {
using namespace loom;

struct Case {
  Executable exe;
  Feeds feeds;
};

Case make(const std::string& which, int threads) {
  Graph g;
  CompileOptions o;
  o.num_threads = threads;
  if (which == "rfft_4096x512") {
    Tensor x = g.placeholder({512, 4096}, f32, "x");
    return {g.compile({rfft(x)}, o), {{"x", random_uniform({512, 4096}, f32, -1, 1, 1)}}};
  }
  if (which == "fft_2^20") {
    Tensor x = g.placeholder({1 << 20}, c64, "x");
    NDArray z =
        NDArray::from_vector(std::vector<std::complex<float>>(1 << 20, {0.5f, -0.25f}), {1 << 20});
    return {g.compile({fft(x)}, o), {{"x", z}}};
  }
  Tensor a = g.placeholder({480000}, f32, "audio");
  return {g.compile({log_mel_spectrogram(a)}, o),
          {{"audio", random_uniform({480000}, f32, -0.5, 0.5, 2)}}};
}

void BM_FftOps(benchmark::State& state, std::string which) {
  Case c = make(which, static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(c.exe.run(c.feeds));
  state.SetLabel(which + " " + std::to_string(state.range(0)) + "T");
}

BENCHMARK_CAPTURE(BM_FftOps, rfft_4096x512, std::string("rfft_4096x512"))
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_FftOps, fft_2p20, std::string("fft_2^20"))
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_FftOps, log_mel_30s, std::string("log_mel_30s"))
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
