// Op cases: elementwise ops (broadcasting, odd shapes, size-0/1 dims, every dtype family).
#include "ops/op_case.h"

namespace loom::testing {
namespace {

using Unary = Tensor (*)(const Tensor&);
using Binary = Tensor (*)(const Tensor&, const Tensor&);

OpCase unary(const std::string& name, Unary f, DType t, Shape s, double lo, double hi) {
  return {name, {{"x", t, s, {}, lo, hi}}, [f](Graph&, const std::vector<Tensor>& in) {
            return std::vector<Tensor>{f(in[0])};
          }};
}
OpCase binary(const std::string& name, Binary f, DType t, Shape a, Shape b, double lo, double hi) {
  return {
      name,
      {{"a", t, a, {}, lo, hi}, {"b", t, b, {}, lo, hi}},
      [f](Graph&, const std::vector<Tensor>& in) { return std::vector<Tensor>{f(in[0], in[1])}; }};
}

std::vector<OpCase> make() {
  std::vector<OpCase> c;
  struct B {
    const char* n;
    Binary f;
    double lo, hi;
    bool ints;
  };
  for (B b : {B{"add", add, -3, 3, true}, B{"sub", sub, -3, 3, true}, B{"mul", mul, -3, 3, true},
              B{"div", div, 0.5, 4, true}, B{"pow", pow, 0.5, 2, true},
              B{"maximum", maximum, -3, 3, true}, B{"minimum", minimum, -3, 3, true},
              B{"mod", mod, 1, 9, true}}) {
    std::string n = b.n;
    c.push_back(binary(n + "/same_f32", b.f, f32, {3, 17}, {3, 17}, b.lo, b.hi));
    c.push_back(binary(n + "/broadcast_f32", b.f, f32, {2, 1, 5}, {3, 1}, b.lo, b.hi));
    c.push_back(binary(n + "/scalar_f32", b.f, f32, {4, 7}, {}, b.lo, b.hi));
    c.push_back(binary(n + "/large_f32", b.f, f32, {257, 1031}, {1031}, b.lo, b.hi));
    c.push_back(binary(n + "/f16", b.f, f16, {5, 9}, {9}, b.lo, b.hi));
    c.push_back(binary(n + "/bf16", b.f, bf16, {5, 9}, {5, 1}, b.lo, b.hi));
    if (b.ints)
      c.push_back(
          binary(n + "/i32", b.f, i32, {6, 4}, {4}, b.f == pow ? 0 : -9, b.f == pow ? 4 : 9));
    c.push_back(binary(n + "/i64_empty", b.f, i64, {0, 4}, {1, 4}, 1, 9));
  }
  c.push_back(binary("mod/negative_f32", mod, f32, {64}, {64}, -5, 5));
  c.push_back(binary("div/i64_trunc", div, i64, {64}, {64}, -50, 50));

  struct U {
    const char* n;
    Unary f;
    double lo, hi;
    bool ints;
  };
  for (U u :
       {U{"neg", neg, -3, 3, true}, U{"abs", abs, -3, 3, true}, U{"sign", sign, -3, 3, true},
        U{"square", square, -3, 3, true}, U{"reciprocal", reciprocal, 0.5, 3, false},
        U{"exp", exp, -5, 5, false}, U{"log", log, 0.01, 10, false}, U{"sqrt", sqrt, 0, 10, false},
        U{"rsqrt", rsqrt, 0.1, 10, false}, U{"sin", sin, -6, 6, false}, U{"cos", cos, -6, 6, false},
        U{"tanh", tanh, -4, 4, false}, U{"sigmoid", sigmoid, -8, 8, false},
        U{"silu", silu, -8, 8, false}, U{"erf", erf, -3, 3, false}, U{"floor", floor, -5, 5, false},
        U{"ceil", ceil, -5, 5, false}, U{"round", round, -5, 5, false}}) {
    std::string n = u.n;
    c.push_back(unary(n + "/f32", u.f, f32, {3, 5, 7}, u.lo, u.hi));
    c.push_back(unary(n + "/large_f32", u.f, f32, {70000}, u.lo, u.hi));
    c.push_back(unary(n + "/f16", u.f, f16, {33}, u.lo, u.hi));
    c.push_back(unary(n + "/bf16", u.f, bf16, {2, 9}, u.lo, u.hi));
    c.push_back(unary(n + "/scalar", u.f, f32, {}, u.lo, u.hi));
    if (u.ints) c.push_back(unary(n + "/i32", u.f, i32, {40}, -20, 20));
  }
  c.push_back(
      {"gelu/erf_f32", {{"x", f32, {4, 33}, {}, -5, 5}}, [](Graph&, const std::vector<Tensor>& in) {
         return std::vector<Tensor>{gelu(in[0])};
       }});
  c.push_back({"gelu/tanh_bf16",
               {{"x", bf16, {4, 33}, {}, -5, 5}},
               [](Graph&, const std::vector<Tensor>& in) {
                 return std::vector<Tensor>{gelu(in[0], true)};
               }});
  c.push_back(
      {"clamp/f32", {{"x", f32, {100}, {}, -5, 5}}, [](Graph&, const std::vector<Tensor>& in) {
         return std::vector<Tensor>{clamp(in[0], -1.5, 2)};
       }});
  c.push_back(
      {"clamp/i64", {{"x", i64, {100}, {}, -50, 50}}, [](Graph&, const std::vector<Tensor>& in) {
         return std::vector<Tensor>{clamp(in[0], -7, 9)};
       }});

  for (Binary f : {equal, not_equal, less, less_equal, greater, greater_equal}) {
    c.push_back(binary("compare/i32_" + std::to_string(c.size()), f, i32, {5, 8}, {8}, -3, 3));
    c.push_back(binary("compare/f32_" + std::to_string(c.size()), f, f32, {5, 8}, {5, 1}, -3, 3));
  }
  for (Binary f : {logical_and, logical_or, logical_xor})
    c.push_back(binary("logical/bool_" + std::to_string(c.size()), f, boolean, {4, 6}, {6}, 0, 2));
  c.push_back(unary("logical_not/bool", logical_not, boolean, {4, 6}, 0, 2));
  c.push_back({"where/broadcast_f32",
               {{"c", boolean, {3, 1, 4}, {}, 0, 2}, {"a", f32, {5, 4}}, {"b", f32, {1}}},
               [](Graph&, const std::vector<Tensor>& in) {
                 return std::vector<Tensor>{where(in[0], in[1], in[2])};
               }});
  c.push_back(
      {"where/i64",
       {{"c", boolean, {7}, {}, 0, 2}, {"a", i64, {7}, {}, -9, 9}, {"b", i64, {7}, {}, -9, 9}},
       [](Graph&, const std::vector<Tensor>& in) {
         return std::vector<Tensor>{where(in[0], in[1], in[2])};
       }});
  struct C {
    DType from, to;
    double lo, hi;
  };
  for (C cc :
       {C{f32, i32, -100, 100}, C{f32, f16, -100, 100}, C{f32, bf16, -100, 100},
        C{i64, f32, -1000, 1000}, C{f16, f32, -4, 4}, C{f32, boolean, -1, 1}, C{i32, i8, -300, 300},
        C{f32, u8, -10, 300}, C{bf16, i64, -50, 50}, C{f32, f64, -3, 3}, C{f64, f32, -3, 3}}) {
    DType to = cc.to;
    c.push_back({"cast/" + std::string(dtype_name(cc.from)) + "_to_" + std::string(dtype_name(to)),
                 {{"x", cc.from, {3, 11}, {}, cc.lo, cc.hi}},
                 [to](Graph&, const std::vector<Tensor>& in) {
                   return std::vector<Tensor>{cast(in[0], to)};
                 }});
  }
  // A chain with scalars from operators (constants in the graph).
  c.push_back(
      {"chain/operators", {{"x", f32, {16, 16}}}, [](Graph&, const std::vector<Tensor>& in) {
         return std::vector<Tensor>{(in[0] * 2.0 + 1.0) / 3.0 - in[0]};
       }});
  return c;
}

LOOM_OP_CASES(make());

}  // namespace
}  // namespace loom::testing
