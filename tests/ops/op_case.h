// One op-case harness (in the spirit of ggml's test-backend-ops): every op has cases here, each
// case runs on every backend against the reference backend on fresh random inputs, and the same
// cases run as benchmarks (bench/op_cases_bench.cpp).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "loom/loom.h"

namespace loom::testing {

struct InputSpec {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;             // the shape fed at run time
  Shape declared;          // the placeholder's shape (may hold -1); rank 0: same as `shape`
  double lo = -2, hi = 2;  // value range of the random data
};

struct OpCase {
  std::string name;  // "add/broadcast_f32"
  std::vector<InputSpec> inputs;
  // Builds the outputs from the placeholders (in `inputs` order).
  std::function<std::vector<Tensor>(Graph&, const std::vector<Tensor>&)> build;
  double rtol = 0, atol = 0;  // 0: defaults by dtype
};

std::vector<OpCase>& op_cases();

struct CaseRegistrar {
  explicit CaseRegistrar(std::vector<OpCase> cases) {
    for (auto& c : cases) op_cases().push_back(std::move(c));
  }
};

// Random inputs for a case (a fresh seed per call unless given).
std::vector<std::pair<std::string, NDArray>> make_inputs(const OpCase& c, uint64_t seed);
// Builds the graph of a case.
Graph build_case(const OpCase& c, std::vector<Tensor>* outputs);

}  // namespace loom::testing

#define LOOM_CONCAT_INNER(a, b) a##b
#define LOOM_CONCAT(a, b) LOOM_CONCAT_INNER(a, b)
// LOOM_OP_CASES({ case, case, ... });
#define LOOM_OP_CASES(...) \
  static ::loom::testing::CaseRegistrar LOOM_CONCAT(loom_cases_, __LINE__)(__VA_ARGS__)
