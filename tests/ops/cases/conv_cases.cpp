// Op cases: conv (1-D / 2-D, strides, pads, dilation, groups, depthwise, bias) and pools.
#include "ops/op_case.h"

namespace loom::testing {
namespace {

OpCase cv(const std::string& name, DType t, Shape x, Shape w, bool bias, ConvAttrs o = {}) {
  std::vector<InputSpec> in{{"x", t, x, {}, -1, 1}, {"w", t, w, {}, -1, 1}};
  if (bias) in.push_back({"b", t, Shape({w[0]}), {}, -1, 1});
  return {"conv/" + name, in, [o, bias](Graph&, const std::vector<Tensor>& i) {
            return std::vector<Tensor>{conv(i[0], i[1], bias ? i[2] : Tensor{}, o)};
          }};
}

using Pool = Tensor (*)(const Tensor&, PoolAttrs);
using Global = Tensor (*)(const Tensor&);

std::vector<OpCase> make() {
  std::vector<OpCase> c = {
      cv("1d_f32", f32, {2, 3, 17}, {4, 3, 3}, false),
      cv("1d_bias_stride_pad", f32, {3, 5, 31}, {6, 5, 4}, true,
         {.strides = {2}, .pads = {1, 2}, .dilations = {}, .groups = 1}),
      cv("1d_dilation", f32, {1, 2, 40}, {3, 2, 3}, true,
         {.strides = {}, .pads = {2, 2}, .dilations = {3}, .groups = 1}),
      cv("2d_f32", f32, {2, 3, 9, 11}, {5, 3, 3, 3}, true),
      cv("2d_same_pad", f32, {1, 4, 13, 7}, {8, 4, 3, 3}, true,
         {.strides = {}, .pads = {1, 1, 1, 1}, .dilations = {}, .groups = 1}),
      cv("2d_stride_asym_pad", f32, {2, 3, 15, 12}, {4, 3, 5, 2}, false,
         {.strides = {2, 3}, .pads = {0, 1, 2, 0}, .dilations = {}, .groups = 1}),
      cv("2d_dilation", f32, {1, 2, 16, 16}, {3, 2, 3, 3}, true,
         {.strides = {1, 2}, .pads = {2, 1, 2, 1}, .dilations = {2, 3}, .groups = 1}),
      cv("2d_groups", f32, {2, 6, 8, 9}, {4, 3, 3, 3}, true,
         {.strides = {}, .pads = {1, 1, 1, 1}, .dilations = {}, .groups = 2}),
      cv("2d_depthwise", f32, {2, 8, 10, 10}, {8, 1, 3, 3}, true,
         {.strides = {2, 2}, .pads = {1, 1, 1, 1}, .dilations = {}, .groups = 8}),
      cv("1d_depthwise_multiplier", f32, {1, 4, 21}, {8, 1, 5}, false,
         {.strides = {}, .pads = {2, 2}, .dilations = {}, .groups = 4}),
      cv("2d_pointwise", f32, {2, 16, 7, 5}, {9, 16, 1, 1}, true),
      cv("2d_f16", f16, {1, 3, 9, 7}, {4, 3, 3, 3}, true,
         {.strides = {}, .pads = {1, 1, 1, 1}, .dilations = {}, .groups = 1}),
      cv("1d_f16", f16, {2, 4, 19}, {2, 4, 5}, false, {.strides = {3}}),
      cv("2d_f64", f64, {1, 2, 6, 6}, {3, 2, 2, 2}, true),
  };
  for (auto [n, f] : {std::pair<const char*, Pool>{"max_pool", &max_pool},
                      std::pair<const char*, Pool>{"avg_pool", &avg_pool}}) {
    Pool fn = f;
    auto add = [&](const std::string& name, DType t, Shape s, PoolAttrs o) {
      c.push_back({std::string(n) + "/" + name,
                   {{"x", t, s}},
                   [fn, o](Graph&, const std::vector<Tensor>& in) {
                     return std::vector<Tensor>{fn(in[0], o)};
                   }});
    };
    add("1d_f32", f32, {2, 3, 20}, {.kernel = {3}, .strides = {2}});
    add("1d_pad", f32, {2, 3, 19}, {.kernel = {4}, .strides = {3}, .pads = {1, 2}});
    add("2d_f32", f32, {2, 4, 12, 10}, {.kernel = {2, 2}, .strides = {2, 2}});
    add("2d_pad_odd", f32, {1, 3, 11, 13},
        {.kernel = {3, 3}, .strides = {2, 2}, .pads = {1, 1, 1, 1}});
    add("2d_pad_include", f32, {1, 3, 11, 13},
        {.kernel = {3, 2}, .strides = {2, 1}, .pads = {1, 0, 1, 1}, .count_include_pad = true});
    add("2d_ceil", f32, {2, 2, 10, 9},
        {.kernel = {3, 3}, .strides = {2, 2}, .pads = {1, 1, 0, 0}, .ceil_mode = true});
    add("2d_ceil_include", f32, {2, 2, 10, 9},
        {.kernel = {3, 3},
         .strides = {2, 2},
         .pads = {1, 1, 0, 1},
         .ceil_mode = true,
         .count_include_pad = true});
    add("2d_dilation", f32, {1, 2, 12, 12}, {.kernel = {2, 3}, .dilations = {2, 2}});
    add("f16", f16, {2, 3, 9, 9}, {.kernel = {3, 3}, .strides = {1, 1}, .pads = {1, 1, 1, 1}});
  }
  for (auto [n, f] : {std::pair<const char*, Global>{"global_max_pool", &global_max_pool},
                      std::pair<const char*, Global>{"global_avg_pool", &global_avg_pool}}) {
    Global fn = f;
    auto add = [&](const std::string& name, DType t, Shape s) {
      c.push_back(
          {std::string(n) + "/" + name, {{"x", t, s}}, [fn](Graph&, const std::vector<Tensor>& in) {
             return std::vector<Tensor>{fn(in[0])};
           }});
    };
    add("1d_f32", f32, {3, 5, 37});
    add("2d_f32", f32, {2, 7, 9, 11});
    add("3d_f32", f32, {2, 3, 4, 5, 6});
    add("f16", f16, {2, 4, 33});
  }
  return c;
}

LOOM_OP_CASES(make());

}  // namespace
}  // namespace loom::testing
