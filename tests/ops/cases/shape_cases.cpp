// Op cases: shape and data movement ops.
#include "ops/op_case.h"

namespace loom::testing {
namespace {

using Build = std::function<std::vector<Tensor>(Graph&, const std::vector<Tensor>&)>;

OpCase one(const std::string& name, DType t, Shape s, std::function<Tensor(const Tensor&)> f) {
  return {name, {{"x", t, s}}, [f](Graph&, const std::vector<Tensor>& in) {
            return std::vector<Tensor>{f(in[0])};
          }};
}

std::vector<OpCase> make() {
  std::vector<OpCase> c;
  // reshape / squeeze / unsqueeze are views; the harness checks values through an add so the
  // view feeds a kernel (and as direct outputs).
  c.push_back(one("reshape/infer_dim", f32, {4, 6}, [](const Tensor& x) {
    return reshape(x, {2, -1, 3});
  }));
  c.push_back(one("reshape/keep_dim", f32, {4, 6}, [](const Tensor& x) {
    return reshape(x, {0, 3, 2}) * 2.0;
  }));
  c.push_back(one("squeeze/all", f32, {1, 5, 1}, [](const Tensor& x) { return squeeze(x); }));
  c.push_back(
      one("squeeze/axis", f32, {1, 5, 1}, [](const Tensor& x) { return squeeze(x, {-1}) + 1.0; }));
  c.push_back(one("unsqueeze/two", f32, {5, 3}, [](const Tensor& x) {
    return unsqueeze(x, {0, 3});
  }));
  c.push_back(one("expand/broadcast", f32, {3, 1}, [](const Tensor& x) {
    return expand(x, {2, 3, 4});
  }));
  c.push_back(one("expand/keep", i64, {1, 4}, [](const Tensor& x) { return expand(x, {3, -1}); }));
  c.push_back(one("transpose/2d", f32, {37, 61}, [](const Tensor& x) { return transpose(x); }));
  c.push_back(one("transpose/heads", f32, {2, 5, 3, 8}, [](const Tensor& x) {
    return permute(x, {0, 2, 1, 3});
  }));
  c.push_back(one("transpose/f16_3d", f16, {4, 5, 6}, [](const Tensor& x) {
    return permute(x, {2, 0, 1});
  }));
  c.push_back(one("transpose/bool", boolean, {3, 4}, [](const Tensor& x) { return transpose(x); }));
  c.push_back({"concat/axis1",
               {{"a", f32, {2, 3, 4}}, {"b", f32, {2, 1, 4}}, {"c", f32, {2, 0, 4}}},
               [](Graph&, const std::vector<Tensor>& in) {
                 return std::vector<Tensor>{concat({in[0], in[1], in[2]}, 1)};
               }});
  c.push_back({"concat/last_i32",
               {{"a", i32, {3, 2}, {}, -9, 9}, {"b", i32, {3, 5}, {}, -9, 9}},
               [](Graph&, const std::vector<Tensor>& in) {
                 return std::vector<Tensor>{concat({in[0], in[1]}, -1)};
               }});
  c.push_back({"split/three", {{"x", f32, {4, 9}}}, [](Graph&, const std::vector<Tensor>& in) {
                 return split(in[0], {2, 3, 4}, 1);
               }});
  c.push_back(
      {"split/axis0_bf16", {{"x", bf16, {5, 3}}}, [](Graph&, const std::vector<Tensor>& in) {
         return split(in[0], {1, 4}, 0);
       }});
  c.push_back(one("slice/basic", f32, {10, 8}, [](const Tensor& x) {
    return slice(x, {2, 1}, {7, 8});
  }));
  c.push_back(one("slice/negative_step", f32, {10, 8},
                  [](const Tensor& x) { return slice(x, {8}, {1}, {1}, {-2}); }));
  c.push_back(one("slice/negative_index", f32, {10, 8},
                  [](const Tensor& x) { return slice(x, {-3}, {kSliceEnd}, {0}); }));
  c.push_back(one("slice/step3_clamped", i64, {20},
                  [](const Tensor& x) { return slice(x, {1}, {100}, {0}, {3}); }));
  c.push_back(
      one("slice/empty", f32, {5, 4}, [](const Tensor& x) { return slice(x, {3}, {2}, {0}); }));
  c.push_back({"gather/rows_i64",
               {{"x", f32, {10, 6}}, {"i", i64, {4}, {}, -10, 10}},
               [](Graph&, const std::vector<Tensor>& in) {
                 return std::vector<Tensor>{gather(in[0], in[1], 0)};
               }});
  c.push_back({"gather/axis1_i32_2d",
               {{"x", f32, {3, 7, 2}}, {"i", i32, {2, 3}, {}, 0, 7}},
               [](Graph&, const std::vector<Tensor>& in) {
                 return std::vector<Tensor>{gather(in[0], in[1], 1)};
               }});
  c.push_back({"gather/embedding_f16",
               {{"x", f16, {50, 16}}, {"i", i32, {1, 9}, {}, 0, 50}},
               [](Graph&, const std::vector<Tensor>& in) {
                 return std::vector<Tensor>{gather(in[0], in[1], 0)};
               }});
  c.push_back(one("pad/constant", f32, {3, 4}, [](const Tensor& x) {
    return pad(x, {1, 0}, {2, 3}, PadMode::constant, 1.5);
  }));
  c.push_back(one("pad/reflect", f32, {3, 5}, [](const Tensor& x) {
    return pad(x, {2, 1}, {1, 4}, PadMode::reflect);
  }));
  c.push_back(one("pad/edge_i32", i32, {3, 5}, [](const Tensor& x) {
    return pad(x, {0, 3}, {2, 0}, PadMode::edge);
  }));
  c.push_back(one("tile/2d", f32, {2, 3}, [](const Tensor& x) { return tile(x, {3, 2}); }));
  c.push_back(one("flip/axis", f32, {4, 5}, [](const Tensor& x) { return flip(x, {1}); }));
  c.push_back(one("flip/all_i64", i64, {3, 4}, [](const Tensor& x) { return flip(x, {}); }));
  c.push_back({"arange/f32", {{"x", f32, {1}}}, [](Graph& g, const std::vector<Tensor>& in) {
                 return std::vector<Tensor>{arange(g, 0.5, 7, 0.75, f32) + in[0]};
               }});
  c.push_back(
      {"arange/i64", {{"x", i64, {1}, {}, 0, 5}}, [](Graph& g, const std::vector<Tensor>& in) {
         return std::vector<Tensor>{arange(g, 10, -3, -2) + in[0]};
       }});
  return c;
}

LOOM_OP_CASES(make());

}  // namespace
}  // namespace loom::testing
