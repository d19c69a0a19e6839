// Op cases: matmul (numpy semantics, transposes, batch broadcasting, vectors, dtypes).
#include "ops/op_case.h"

namespace loom::testing {
namespace {

OpCase mm(const std::string& name, DType t, Shape a, Shape b, MatmulAttrs o = {}) {
  return {"matmul/" + name,
          {{"a", t, a, {}, -1, 1}, {"b", t, b, {}, -1, 1}},
          [o](Graph&, const std::vector<Tensor>& in) {
            return std::vector<Tensor>{matmul(in[0], in[1], o)};
          }};
}

std::vector<OpCase> make() {
  return {
      mm("square_f32", f32, {64, 64}, {64, 64}),
      mm("odd_f32", f32, {7, 13}, {13, 5}),
      mm("gemv_f32", f32, {1, 300}, {300, 77}),
      mm("transpose_b_f32", f32, {9, 31}, {17, 31}, {.transpose_a = false, .transpose_b = true}),
      mm("gemv_transpose_b_f32", f32, {1, 31}, {17, 31},
         {.transpose_a = false, .transpose_b = true}),
      mm("transpose_a_f32", f32, {31, 9}, {31, 17}, {.transpose_a = true, .transpose_b = false}),
      mm("batched_f32", f32, {3, 8, 16}, {3, 16, 4}),
      mm("broadcast_batch_f32", f32, {2, 1, 5, 6}, {3, 6, 7}),
      mm("vector_matrix", f32, {6}, {6, 4}),
      mm("matrix_vector", f32, {4, 6}, {6}),
      mm("vector_vector", f32, {6}, {6}),
      mm("empty_k", f32, {3, 0}, {0, 4}),
      mm("f16", f16, {5, 40}, {40, 6}),
      mm("bf16", bf16, {5, 40}, {40, 6}),
      mm("f64", f64, {5, 8}, {8, 3}),
      mm("i32", i32, {4, 5}, {5, 3}),
  };
}

LOOM_OP_CASES(make());

}  // namespace
}  // namespace loom::testing
