// Transformer benchmarks (issue 3), each side by side with its peer in one run:
//   fused sdpa vs the same attention composed of separate Loom ops (attention_pattern pass off):
//   time and peak memory (the memory plan's arena), at Lq = Lk = 2048 and at decode (Lq = 1, Lk =
//   4096); SmolLM2 decode step with the KV cache vs recomputing the whole sequence, as the sequence
//   grows.
#include <benchmark/benchmark.h>

#include <cmath>

#include "io/gguf.h"
#include "loom/loom.h"
#include "models/llama.h"

namespace {

struct AttnShape {
  int64_t hq, hkv, lq, lk, d;
};
AttnShape shape_of(int64_t which) {
  return which == 0 ? AttnShape{8, 8, 2048, 2048, 64} : AttnShape{32, 8, 1, 4096, 128};
}

void BM_Attention(benchmark::State& state) {
  AttnShape s = shape_of(state.range(0));
  bool fused = state.range(1) != 0;
  loom::Graph g;
  auto q = g.placeholder({1, s.hq, s.lq, s.d}, loom::f32, "q");
  auto k = g.placeholder({1, s.hkv, s.lk, s.d}, loom::f32, "k");
  auto v = g.placeholder({1, s.hkv, s.lk, s.d}, loom::f32, "v");
  loom::Tensor out;
  loom::CompileOptions opt;
  if (fused) {
    out = loom::sdpa(q, k, v, {.causal = s.lq > 1});
  } else {
    // What an exporter writes: repeat kv heads, scores, causal mask, softmax, weighted sum.
    auto rep = [&](const loom::Tensor& t) {
      return s.hq == s.hkv ? t
                           : loom::reshape(loom::expand(loom::unsqueeze(t, {2}),
                                                        {1, s.hkv, s.hq / s.hkv, s.lk, s.d}),
                                           {1, s.hq, s.lk, s.d});
    };
    auto scores = loom::matmul(q, rep(k), {.transpose_a = false, .transpose_b = true}) *
                  (1.0 / std::sqrt(double(s.d)));
    if (s.lq > 1) {
      loom::NDArray m = loom::zeros({s.lq, s.lk});
      for (int64_t i = 0; i < s.lq; ++i)
        for (int64_t j = i + 1; j < s.lk; ++j) m.data_as<float>()[i * s.lk + j] = -INFINITY;
      scores = scores + g.constant(m);
    }
    out = loom::matmul(loom::softmax(scores), rep(v));
    opt.disabled_passes = {"attention_pattern"};
  }
  auto exe = g.compile({out}, opt);
  loom::Feeds f = {{"q", loom::random_uniform({1, s.hq, s.lq, s.d}, loom::f32, -1, 1, 1)},
                   {"k", loom::random_uniform({1, s.hkv, s.lk, s.d}, loom::f32, -1, 1, 2)},
                   {"v", loom::random_uniform({1, s.hkv, s.lk, s.d}, loom::f32, -1, 1, 3)}};
  for (auto _ : state) benchmark::DoNotOptimize(exe.run(f));
  auto st = exe.plan_stats({{"q", loom::Shape({1, s.hq, s.lq, s.d})},
                            {"k", loom::Shape({1, s.hkv, s.lk, s.d})},
                            {"v", loom::Shape({1, s.hkv, s.lk, s.d})}});
  state.counters["arena_MB"] = static_cast<double>(st.arena_bytes) / 1e6;
  double flops = 4.0 * s.hq * s.lq * s.lk * s.d * (s.lq > 1 ? 0.5 : 1.0);
  state.counters["GFLOP/s"] = benchmark::Counter(
      flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.SetLabel(std::string(fused ? "fused sdpa" : "composed ops") +
                 (state.range(0) == 0 ? ", prefill 2048" : ", decode Lk=4096 GQA 32/8 D=128"));
}
BENCHMARK(BM_Attention)
    ->Args({0, 1})
    ->Args({0, 0})
    ->Args({1, 1})
    ->Args({1, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// One SmolLM2 decode step at sequence length n: with the KV cache (one token) vs recomputing all n.
void BM_SmolLM2Step(benchmark::State& state) {
  static std::unique_ptr<loom::models::LlamaModel> model;
  std::string path = loom::io::find_smollm2_gguf();
  if (path.empty()) {
    state.SkipWithError("SmolLM2 not installed");
    return;
  }
  if (!model)
    model = std::make_unique<loom::models::LlamaModel>(
        loom::models::LlamaModel::load(path, {.max_context = 1100}));
  int64_t n = state.range(0);
  bool cached = state.range(1) != 0;
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    ids[static_cast<size_t>(i)] = static_cast<int32_t>(100 + (i * 37) % 5000);
  model->reset();
  model->forward(std::vector<int32_t>(ids.begin(), ids.end() - 1), 0);
  for (auto _ : state) {
    if (cached)
      benchmark::DoNotOptimize(model->forward({ids.back()}, n - 1));
    else
      benchmark::DoNotOptimize(model->forward(ids, 0));
  }
  state.SetLabel(cached ? "with KV cache (1 token)" : "recompute all tokens");
}
BENCHMARK(BM_SmolLM2Step)
    ->ArgsProduct({{64, 256, 1024}, {1, 0}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
