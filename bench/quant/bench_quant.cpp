// Quantized matmul throughput: Loom's qmatmul vs OpenBLAS sgemv/sgemm on the same weights
// dequantized to f32, next to the machine's measured read bandwidth (the floor for GEMV).
//
// Weights are cycled through enough copies to exceed the last-level cache, so every GEMV reads
// its weights from DRAM as an LLM decode step does (a model's weights never stay in cache).
// Counter "wGB/s" = weight bytes read per second (quantized bytes for Loom, f32 bytes for BLAS).
//
//   bench_quant --benchmark_filter=... --benchmark_repetitions=3 --benchmark_report_aggregates_only
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "backends/cpu/quant/qmatmul.h"
#include "loom/kernel.h"
#include "runtime/thread_pool.h"

namespace {

using loom::ThreadPool;
using loom::cpu::quant::Format;
namespace q = loom::cpu::quant;

constexpr size_t kColdBytes = size_t{96} << 20;  // 3x the 32 MiB L3

ThreadPool* pool_for(int threads) {
  static ThreadPool two(2);
  return threads >= 2 ? &two : nullptr;
}

struct Weights {
  std::vector<std::vector<uint8_t>> quant;  // copies of the quantized matrix
  std::vector<std::vector<float>> f32;      // copies of the dequantized matrix
};

const Weights& weights(Format fmt, int64_t n, int64_t k, bool want_f32) {
  static std::map<std::tuple<int, int64_t, int64_t, bool>, std::unique_ptr<Weights>> cache;
  auto key = std::make_tuple(static_cast<int>(fmt), n, k, want_f32);
  auto& slot = cache[key];
  if (slot) return *slot;
  slot = std::make_unique<Weights>();
  std::mt19937 rng(42);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> wf(static_cast<size_t>(n * k));
  for (auto& v : wf) v = nd(rng);
  const size_t rb = q::row_bytes(fmt, k);
  std::vector<uint8_t> wq(rb * n);
  for (int64_t j = 0; j < n; ++j) q::quantize_row(fmt, wf.data() + j * k, k, wq.data() + j * rb);
  if (want_f32) {
    for (int64_t j = 0; j < n; ++j)
      q::dequantize_row(fmt, wq.data() + j * rb, k, wf.data() + j * k);
    const size_t copies = std::max<size_t>(1, (kColdBytes + wf.size() * 4 - 1) / (wf.size() * 4));
    slot->f32.assign(copies, wf);
  } else {
    const size_t copies = std::max<size_t>(1, (kColdBytes + wq.size() - 1) / wq.size());
    slot->quant.assign(copies, wq);
  }
  return *slot;
}

std::vector<float> activations(int64_t m, int64_t k) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(m * k));
  for (auto& v : x) v = nd(rng);
  return x;
}

// Args: format, m, n, k, threads.
void BM_qmatmul(benchmark::State& state) {
  const auto fmt = static_cast<Format>(state.range(0));
  const int64_t m = state.range(1), n = state.range(2), k = state.range(3);
  const int threads = static_cast<int>(state.range(4));
  const Weights& w = weights(fmt, n, k, false);
  auto x = activations(m, k);
  std::vector<float> y(static_cast<size_t>(m * n));
  size_t c = 0;
  for (auto _ : state) {
    q::qmatmul(fmt, x.data(), m, k, w.quant[c].data(), n, y.data(), pool_for(threads));
    benchmark::DoNotOptimize(y.data());
    c = (c + 1) % w.quant.size();
  }
  state.SetLabel(std::string(q::format_name(fmt)) + " " +
                 std::string(q::isa_name(q::active_isa())));
  state.counters["wGB/s"] = benchmark::Counter(static_cast<double>(w.quant[0].size()),
                                               benchmark::Counter::kIsIterationInvariantRate,
                                               benchmark::Counter::kIs1000);
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// OpenBLAS on the dequantized weights: sgemv for m = 1, sgemm otherwise (y = x · Wᵀ).
void BM_openblas(benchmark::State& state) {
  const auto fmt = static_cast<Format>(state.range(0));
  const int64_t m = state.range(1), n = state.range(2), k = state.range(3);
  const int threads = static_cast<int>(state.range(4));
  openblas_set_num_threads(threads);
  const Weights& w = weights(fmt, n, k, true);
  auto x = activations(m, k);
  std::vector<float> y(static_cast<size_t>(m * n));
  size_t c = 0;
  for (auto _ : state) {
    const float* wf = w.f32[c].data();
    if (m == 1) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, wf, k, x.data(), 1, 0.0f, y.data(), 1);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x.data(), k, wf, k, 0.0f,
                  y.data(), n);
    }
    benchmark::DoNotOptimize(y.data());
    c = (c + 1) % w.f32.size();
  }
  state.SetLabel("f32 from " + std::string(q::format_name(fmt)));
  state.counters["wGB/s"] = benchmark::Counter(static_cast<double>(n * k * 4),
                                               benchmark::Counter::kIsIterationInvariantRate,
                                               benchmark::Counter::kIs1000);
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// The floor: streaming reads of 256 MiB with `threads` threads (integer sums vectorise without
// reassociation flags, and keep the loop load-bound).
__attribute__((target("avx2"))) uint64_t sum_range(const uint64_t* p, int64_t n) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (int64_t i = 0; i + 4 <= n; i += 4) {
    a0 += p[i];
    a1 += p[i + 1];
    a2 += p[i + 2];
    a3 += p[i + 3];
  }
  return a0 ^ a1 ^ a2 ^ a3;
}

void BM_read_bandwidth(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const int64_t n = (int64_t{256} << 20) / 8;
  static std::vector<uint64_t> buf(static_cast<size_t>(n), 1);
  for (auto _ : state) {
    std::atomic<uint64_t> acc{0};
    loom::parallel_for(pool_for(threads), threads, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t lo = n * t / threads, hi = n * (t + 1) / threads;
        acc += sum_range(buf.data() + lo, hi - lo);
      }
    });
    benchmark::DoNotOptimize(acc.load());
  }
  state.counters["GB/s"] =
      benchmark::Counter(static_cast<double>(n * 8), benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
}

void shapes(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (Format fmt : {Format::q4_1, Format::q4_0, Format::q8_0}) {
      const int64_t f = static_cast<int64_t>(fmt);
      b->Args({f, 1, 1536, 576, threads});    // SmolLM2 ffn up/gate
      b->Args({f, 1, 576, 1536, threads});    // SmolLM2 ffn down
      b->Args({f, 1, 14336, 4096, threads});  // 7B-class ffn
      b->Args({f, 128, 1536, 576, threads});  // SmolLM2 prefill, 128 tokens
    }
  b->ArgNames({"fmt", "m", "n", "k", "thr"})->UseRealTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_read_bandwidth)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_qmatmul)->Apply(shapes);
BENCHMARK(BM_openblas)->Apply(shapes);

}  // namespace

BENCHMARK_MAIN();
