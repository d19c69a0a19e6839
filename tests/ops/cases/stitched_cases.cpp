// Op cases: `stitched` nodes written directly (the `stitch` pass makes them in real graphs). The
// program is built as a small graph of ordinary ops, printed to IR text, and attached to one node.
#include "ir/graph.h"
#include "ops/op_case.h"

namespace loom::testing {
namespace {

using Body = std::function<Tensor(const std::vector<Tensor>&)>;

// A case whose output is one stitched node running `body` over the inputs.
// rtol: members of f16/bf16 programs keep f32 intermediates (the reference rounds every op).
OpCase stitched_case(const std::string& name, std::vector<InputSpec> inputs, Body body,
                     double rtol = 0) {
  OpCase c{"stitched/" + name, inputs, [inputs, body](Graph& g, const std::vector<Tensor>& in) {
             Graph program;
             std::vector<Tensor> ph;
             for (size_t i = 0; i < inputs.size(); ++i)
               ph.push_back(
                   program.placeholder(inputs[i].shape, inputs[i].dtype, "in" + std::to_string(i)));
             Tensor out = body(ph);
             std::string text = ir::print_graph(*program.data(), {{out.node(), out.index()}});
             std::vector<ir::Value> args;
             for (const Tensor& t : in) args.push_back({t.node(), t.index()});
             auto v = ir::add_node(*g.data(), ir::op::stitched, args,
                                   make_attrs(StitchedAttrs{text}), "region");
             return std::vector<Tensor>{Tensor(g.data(), v[0].node, v[0].index)};
           }};
  c.rtol = rtol;
  c.atol = rtol;
  return c;
}

std::vector<OpCase> make() {
  std::vector<OpCase> c;
  // The SwiGLU + residual chain of a transformer block.
  c.push_back(stitched_case("swiglu_residual_f32",
                            {{"gate", f32, {37, 301}}, {"up", f32, {37, 301}}, {"res", f32, {301}}},
                            [](const std::vector<Tensor>& x) { return silu(x[0]) * x[1] + x[2]; }));
  // Comparisons, select and a rounding cast inside a region; f16 in, f32 out.
  c.push_back(stitched_case(
      "where_cast_f16", {{"a", f16, {5, 1, 33}}, {"b", f16, {7, 33}}},
      [](const std::vector<Tensor>& x) {
        Tensor y = where(greater(x[0], x[1]), exp(x[0]), neg(x[1]));
        return cast(cast(y, bf16), f32);
      },
      1e-2));
  // A scalar operand, clamp and tanh-gelu on bf16; a long row that spans several tiles.
  c.push_back(stitched_case(
      "gelu_clamp_bf16", {{"x", bf16, {3, 1500}}, {"s", bf16, {}}},
      [](const std::vector<Tensor>& x) { return clamp(gelu(x[0] * x[1], true), -1.0, 1.5); }));
  // Bool output: a mask built from two comparisons.
  c.push_back(stitched_case("mask_bool", {{"a", f32, {9, 16}}, {"b", f32, {9, 1}}},
                            [](const std::vector<Tensor>& x) {
                              return logical_and(less(x[0], x[1]), greater(x[0], -x[1]));
                            }));
  // Ordinary ops that the stitch pass turns into a region on the CPU and CUDA (the reference runs
  // them op by op): a leading expand is read as a broadcast, never materialised.
  for (auto [name, x] : {std::pair<const char*, Shape>{"pass_leading_expand", {6, 3, 40}},
                         std::pair<const char*, Shape>{"pass_expand_kept", {6, 1, 40}}})
    c.push_back({std::string("stitched/") + name,
                 {{"x", f32, x}, {"b", f32, {40}}},
                 [](Graph&, const std::vector<Tensor>& in) {
                   Tensor e = expand(in[1], {6, 3, 40});
                   return std::vector<Tensor>{tanh(in[0] * e) + e};
                 }});
  return c;
}

LOOM_OP_CASES(make());

}  // namespace
}  // namespace loom::testing
