// Core benchmarks, each side by side with its peer in the same run:
//   matmul through Loom vs a direct OpenBLAS call of the same size (Loom's overhead ratio),
//   elementwise add vs memcpy of the same bytes (bandwidth), and per-op dispatch overhead.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstring>

#include "loom/loom.h"

namespace {

void BM_LoomMatmul(benchmark::State& state) {
  int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  loom::Graph g;
  auto a = g.placeholder({m, k}, loom::f32, "a");
  auto b = g.placeholder({k, n}, loom::f32, "b");
  auto exe = g.compile({loom::matmul(a, b)});
  auto x = loom::random_uniform({m, k}, loom::f32, -1, 1, 1),
       y = loom::random_uniform({k, n}, loom::f32, -1, 1, 2);
  for (auto _ : state) benchmark::DoNotOptimize(exe.run({{"a", x}, {"b", y}}));
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void BM_OpenBlasSgemm(benchmark::State& state) {
  int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  auto x = loom::random_uniform({m, k}, loom::f32, -1, 1, 1),
       y = loom::random_uniform({k, n}, loom::f32, -1, 1, 2);
  for (auto _ : state) {
    // Same work as Loom's run, output allocation included.
    loom::NDArray c = loom::NDArray::empty(loom::f32, {m, n});
    if (m == 1)
      cblas_sgemv(CblasRowMajor, CblasTrans, k, n, 1.f, y.data_as<float>(), n, x.data_as<float>(),
                  1, 0.f, c.data_as<float>(), 1);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.f, x.data_as<float>(), k,
                  y.data_as<float>(), n, 0.f, c.data_as<float>(), n);
    benchmark::DoNotOptimize(c);
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void matmul_sizes(benchmark::internal::Benchmark* b) {
  b->Args({64, 64, 64})
      ->Args({256, 256, 256})
      ->Args({1024, 1024, 1024})
      ->Args({1, 576, 1536})
      ->Args({128, 576, 1536});
}
BENCHMARK(BM_LoomMatmul)->Apply(matmul_sizes)->UseRealTime();
BENCHMARK(BM_OpenBlasSgemm)->Apply(matmul_sizes)->UseRealTime();

void BM_LoomAdd(benchmark::State& state) {
  int64_t n = state.range(0);
  loom::Graph g;
  auto a = g.placeholder({n}, loom::f32, "a");
  auto b = g.placeholder({n}, loom::f32, "b");
  auto exe = g.compile({a + b});
  auto x = loom::random_uniform({n}, loom::f32, -1, 1, 1),
       y = loom::random_uniform({n}, loom::f32, -1, 1, 2);
  for (auto _ : state) benchmark::DoNotOptimize(exe.run({{"a", x}, {"b", y}}));
  state.SetBytesProcessed(state.iterations() * n * 12);  // read 2, write 1
}

void BM_Memcpy(benchmark::State& state) {
  int64_t n = state.range(0);
  // Moves the same 12 bytes per element as the add: 8 read + 4 written, as two copies.
  auto x = loom::random_uniform({2 * n}, loom::f32, -1, 1, 1);
  for (auto _ : state) {
    loom::NDArray c = loom::NDArray::empty(loom::f32, {n});
    std::memcpy(c.data(), x.data(), static_cast<size_t>(n) * 4);
    std::memcpy(c.data(), x.data_as<float>() + n, static_cast<size_t>(n) * 4);
    benchmark::DoNotOptimize(c);
  }
  state.SetBytesProcessed(state.iterations() * n * 12);
}
BENCHMARK(BM_LoomAdd)->Arg(1 << 16)->Arg(1 << 20)->Arg(1 << 24)->UseRealTime();
BENCHMARK(BM_Memcpy)->Arg(1 << 16)->Arg(1 << 20)->Arg(1 << 24)->UseRealTime();

// Per-op runtime overhead: a chain of tiny ops; reported as time per op.
void BM_DispatchPerOp(benchmark::State& state) {
  int ops = static_cast<int>(state.range(0));
  loom::Graph g;
  auto x = g.placeholder({4}, loom::f32, "x");
  loom::Tensor t = x;
  for (int i = 0; i < ops; ++i) t = (i % 2) ? t + x : t * x;
  loom::CompileOptions opt;
  opt.disabled_passes = {"stitch"};  // stitched, the chain would be one kernel
  auto exe = g.compile({t}, opt);
  auto in = loom::random_uniform({4}, loom::f32, 0.5, 1, 1);
  for (auto _ : state) benchmark::DoNotOptimize(exe.run({{"x", in}}));
  state.counters["us/op"] = benchmark::Counter(
      static_cast<double>(ops) * 1e-6,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_DispatchPerOp)->Arg(100)->Arg(1000);

// An 8-op elementwise chain (the GPU stitching benchmark's), stitched into one tile-by-tile
// kernel (range(1) = 1) or op by op (0). Bytes: x, a, b, c, d read once, y written once.
void BM_ElementwiseChain(benchmark::State& state) {
  int64_t n = state.range(0);
  loom::Graph g;
  std::vector<loom::Tensor> in;
  for (const char* name : {"x", "a", "b", "c", "d"})
    in.push_back(g.placeholder({n}, loom::f32, name));
  auto y = loom::clamp(loom::gelu((in[0] * in[1] + in[2]) * loom::sigmoid(in[0]) - in[3]), -3, 3) *
           in[4];
  loom::CompileOptions opt;
  if (state.range(1) == 0) opt.disabled_passes = {"stitch"};
  auto exe = g.compile({y}, opt);
  loom::Feeds feeds;
  uint64_t seed = 1;
  for (const char* name : {"x", "a", "b", "c", "d"})
    feeds.emplace_back(name, loom::random_uniform({n}, loom::f32, -2, 2, seed++));
  for (auto _ : state) benchmark::DoNotOptimize(exe.run(feeds));
  state.SetBytesProcessed(state.iterations() * n * 24);
}
// SwiGLU of a decode step (silu(gate) * up, one row of SmolLM2's ffn), stitched or not.
void BM_SwiGLURow(benchmark::State& state) {
  int64_t n = state.range(0);
  loom::Graph g;
  auto gate = g.placeholder({1, n}, loom::f32, "gate");
  auto up = g.placeholder({1, n}, loom::f32, "up");
  loom::CompileOptions opt;
  if (state.range(1) == 0) opt.disabled_passes = {"stitch"};
  auto exe = g.compile({loom::silu(gate) * up}, opt);
  loom::Feeds feeds{{"gate", loom::random_uniform({1, n}, loom::f32, -4, 4, 1)},
                    {"up", loom::random_uniform({1, n}, loom::f32, -4, 4, 2)}};
  for (auto _ : state) benchmark::DoNotOptimize(exe.run(feeds));
  state.SetBytesProcessed(state.iterations() * n * 12);
}
BENCHMARK(BM_SwiGLURow)->ArgsProduct({{1536, 14336}, {0, 1}})->ArgNames({"n", "stitched"});

BENCHMARK(BM_ElementwiseChain)
    ->ArgsProduct({{1 << 16, 1 << 22}, {0, 1}})
    ->ArgNames({"n", "stitched"})
    ->UseRealTime();

// Quantized GEMV through the graph (quantize_weights → fused quantized_matmul) vs f32 sgemv on the
// same shape. range(2): 0 = affine int4 block 32, 1 = affine int8 block 32, 2 = f32 OpenBLAS.
void BM_QuantGemv(benchmark::State& state) {
  int64_t n = state.range(0), k = state.range(1), mode = state.range(2);
  loom::Graph g;
  auto x = g.placeholder({1, k}, loom::f32, "x");
  auto w = g.constant(loom::random_normal({n, k}, loom::f32, 7, 0, 0.02));
  std::vector<loom::Tensor> outs = {
      loom::matmul(x, w, {.transpose_a = false, .transpose_b = true})};
  loom::Graph q =
      mode == 2 ? g : loom::quantize_weights(g, outs, {.bits = mode == 0 ? 4 : 8, .block = 32});
  auto exe = q.compile(outs);
  auto in = loom::random_uniform({1, k}, loom::f32, -1, 1, 1);
  for (auto _ : state) benchmark::DoNotOptimize(exe.run({{"x", in}}));
  double bytes = static_cast<double>(exe.constant_bytes());
  state.counters["weight_MB"] = bytes / 1e6;
  state.counters["GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
  state.SetLabel(mode == 0   ? "int4 affine b32 (fused)"
                 : mode == 1 ? "int8 affine b32 (fused)"
                             : "f32 (OpenBLAS sgemv)");
}
BENCHMARK(BM_QuantGemv)
    ->ArgsProduct({{4096}, {4096}, {0, 1, 2}})
    ->Args({14336, 4096, 0})
    ->Args({14336, 4096, 2})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
