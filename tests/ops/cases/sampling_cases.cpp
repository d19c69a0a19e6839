// Op cases: sample (top-k / top-p / temperature sampling). Fresh random logits and a fresh random
// seed per run; every backend must pick the same token per row (the draw u is part of the op's
// definition), so outputs compare exactly. Rounding can only differ when u falls within float
// rounding of a bucket boundary (~1e-7 per row).
#include "ops/op_case.h"

namespace loom::testing {
namespace {

std::vector<OpCase> make() {
  std::vector<OpCase> c;
  auto add = [&](const std::string& name, DType t, Shape s, SampleAttrs a, double lo = -4,
                 double hi = 4) {
    c.push_back({"sample/" + name,
                 {{"logits", t, s, {}, lo, hi}, {"seed", i64, {}, {}, 0, 4e15}},
                 [a](Graph&, const std::vector<Tensor>& in) {
                   return std::vector<Tensor>{sample(in[0], in[1], a)};
                 }});
  };
  // top_k 1 is argmax (tests/ops/sampling_test.cpp checks that too).
  add("top1_f32", f32, {6, 1000}, {.temperature = 0.7, .top_k = 1, .top_p = 0.9});
  // An LLM's vocabulary (SmolLM2: 49152): the CUDA fast path (radix select, k <= 1024).
  add("vocab_k40_p09_t07_f32", f32, {1, 49152}, {.temperature = 0.7, .top_k = 40, .top_p = 0.9});
  add("vocab_k40_p1_t13_f16", f16, {2, 49152}, {.temperature = 1.3, .top_k = 40, .top_p = 1});
  add("vocab_k1024_p09_t13_f32", f32, {1, 49152},
      {.temperature = 1.3, .top_k = 1024, .top_p = 0.9});
  // Every logit (top_k 0 or V): the CUDA sort path.
  add("vocab_all_p09_t07_f32", f32, {1, 49152}, {.temperature = 0.7, .top_k = 0, .top_p = 0.9});
  add("all_p1_t13_f32", f32, {3, 3000}, {.temperature = 1.3, .top_k = 0, .top_p = 1});
  add("kV_p09_t07_f16", f16, {5, 700}, {.temperature = 0.7, .top_k = 700, .top_p = 0.9});
  add("k1500_p09_t13_f32", f32, {2, 4000}, {.temperature = 1.3, .top_k = 1500, .top_p = 0.9});
  // Batched rows (leading dims flatten to the row index of the draw).
  add("batched_k40_p09_t07_f32", f32, {4, 3, 500}, {.temperature = 0.7, .top_k = 40, .top_p = 0.9});
  add("batched_k40_p1_t13_f16", f16, {7, 2000}, {.temperature = 1.3, .top_k = 40, .top_p = 1});
  // f16 near the top of [-1, 1]: many equal logits among the top 40 (ties: lower index first).
  add("ties_k40_p09_f16", f16, {4, 4096}, {.temperature = 0.7, .top_k = 40, .top_p = 0.9}, -1, 1);
  add("small_bf16", bf16, {3, 77}, {.temperature = 1.3, .top_k = 10, .top_p = 0.5});
  // Peaky rows: the top_p cut keeps few tokens.
  add("peaky_all_p09_t07_f32", f32, {8, 256}, {.temperature = 0.7, .top_k = 0, .top_p = 0.9}, -30,
      30);
  add("vector_k5_f32", f32, {300}, {.temperature = 1, .top_k = 5, .top_p = 1});
  return c;
}

LOOM_OP_CASES(make());

}  // namespace
}  // namespace loom::testing
