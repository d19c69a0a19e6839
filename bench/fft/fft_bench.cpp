// Loom's CPU FFT on the shapes bench/fft/numpy_peer.py times for numpy (pocketfft). Benchmark
// names are "<key>/t<threads>", key = <kind>_<n>x<count>; run_compare.py joins the two.
#include <benchmark/benchmark.h>

#include <complex>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/fft/fft.h"
#include "runtime/thread_pool.h"

namespace {

using cf = std::complex<float>;
namespace fft = loom::cpu::fft;

struct Shape {
  std::string kind;  // c2c, r2c, stft (3000 frames of 400 at hop 160: a strided view, no copy)
  int64_t n, count;
};

std::vector<Shape> shapes() {
  std::vector<Shape> v;
  for (int lg = 10; lg <= 20; ++lg)
    v.push_back({"c2c", int64_t{1} << lg, (int64_t{1} << 20) >> lg});
  for (int lg = 10; lg <= 20; ++lg)
    v.push_back({"r2c", int64_t{1} << lg, (int64_t{1} << 20) >> lg});
  v.push_back({"c2c", 1000, 1024});
  v.push_back({"c2c", 4099, 256});
  v.push_back({"r2c", 4096, 512});
  v.push_back({"r2c", 512, 4096});
  v.push_back({"stft", 400, 3000});
  return v;
}

void run(benchmark::State& state, Shape sh, int threads) {
  std::unique_ptr<loom::ThreadPool> pool;
  if (threads > 1) pool = std::make_unique<loom::ThreadPool>(threads);
  std::mt19937 rng(1);
  std::normal_distribution<float> d;
  const int64_t n = sh.n, count = sh.count;
  if (sh.kind == "c2c") {
    std::vector<cf> in(n * count), out(n * count);
    for (auto& x : in) x = cf(d(rng), d(rng));
    for (auto _ : state) {
      fft::c2c(in.data(), 1, n, out.data(), 1, n, n, count, false, fft::Scaling::none, pool.get());
      benchmark::DoNotOptimize(out.data());
    }
  } else {
    const int64_t hop = sh.kind == "stft" ? 160 : n;
    std::vector<float> in(hop * (count - 1) + n);
    for (auto& x : in) x = d(rng);
    std::vector<cf> out((n / 2 + 1) * count);
    for (auto _ : state) {
      fft::r2c(in.data(), 1, hop, out.data(), 1, n / 2 + 1, n, count, fft::Scaling::none,
               pool.get());
      benchmark::DoNotOptimize(out.data());
    }
  }
  state.SetLabel(fft::isa_name());
  state.SetItemsProcessed(state.iterations() * n * count);
}

}  // namespace

int main(int argc, char** argv) {
  const int all = static_cast<int>(std::thread::hardware_concurrency());
  for (const Shape& sh : shapes())
    for (int t : {1, all}) {
      if (t == 1 && all == 1) continue;
      const std::string name = sh.kind + "_" + std::to_string(sh.n) + "x" +
                               std::to_string(sh.count) + "/t" + std::to_string(t);
      benchmark::RegisterBenchmark(name.c_str(), run, sh, t)
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
    }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
