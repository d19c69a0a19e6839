// Every op case of tests/ops/cases/ as a benchmark on the CPU backend (compile once, run).
#include <benchmark/benchmark.h>

#include "ops/op_case.h"

int main(int argc, char** argv) {
  for (const auto& c : loom::testing::op_cases()) {
    benchmark::RegisterBenchmark(("cpu/" + c.name).c_str(), [&c](benchmark::State& state) {
      std::vector<loom::Tensor> outs;
      loom::Graph g = loom::testing::build_case(c, &outs);
      auto exe = g.compile(outs);
      auto feeds = loom::testing::make_inputs(c, 1);
      for (auto _ : state) benchmark::DoNotOptimize(exe.run(feeds));
    });
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
