#include "ops/op_case.h"

namespace loom::testing {

std::vector<OpCase>& op_cases() {
  static std::vector<OpCase> cases;
  return cases;
}

std::vector<std::pair<std::string, NDArray>> make_inputs(const OpCase& c, uint64_t seed) {
  std::vector<std::pair<std::string, NDArray>> feeds;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const auto& in = c.inputs[i];
    NDArray a = random_uniform(in.shape, in.dtype, in.lo, in.hi, seed * 7919 + i);
    feeds.emplace_back(in.name, a);
  }
  return feeds;
}

Graph build_case(const OpCase& c, std::vector<Tensor>* outputs) {
  Graph g;
  std::vector<Tensor> ph;
  for (const auto& in : c.inputs)
    ph.push_back(g.placeholder(in.declared.rank() ? in.declared : in.shape, in.dtype, in.name));
  *outputs = c.build(g, ph);
  return g;
}

}  // namespace loom::testing
