// dequantize(weights) → matmul becomes one quantized_matmul that reads the packed weights and never
// materialises float weights. Handles block formats (dequantize_blocks), affine (dequantize: per
// tensor / axis / block) and lookup tables (dequantize_lut), with the weights as matmul's right
// operand, transposed (W [n,k], as GGUF and ONNX MatMulNBits store them) or not (W [k,n]: constant
// weights are transposed once here, at compile time). Weights on the left, or non-constant
// weights in [k,n] layout, stay unfused and still run right.
#include "passes/pass.h"

namespace loom::passes {
namespace {

bool is_constant(const ir::GraphData& g, ir::Value v) { return g.node(v).op == ir::op::constant; }
const NDArray& constant_of(const ir::GraphData& g, ir::Value v) {
  return attrs_as<ConstantAttrs>(*g.node(v).attrs).value;
}

// 2-D transpose of a constant (any dtype, packed included), by value.
NDArray transposed(const NDArray& a) {
  if (a.rank() < 2) return a;
  int64_t r = a.shape()[0], c = a.shape()[1];
  if (!is_packed(a.dtype()))
    return a.view({c, r}, {a.strides()[1], a.strides()[0]}, a.offset()).contiguous();
  std::vector<double> v = a.to_doubles(), t(v.size());
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j)
      t[static_cast<size_t>(j * r + i)] = v[static_cast<size_t>(i * c + j)];
  return NDArray::from_doubles(t, {c, r}, a.dtype());
}

}  // namespace

void quantized_matmul_fusion(PassContext& ctx) {
  auto& g = ctx.graph;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (g.nodes[i].op != ir::op::matmul) continue;
    ir::Node mm = g.nodes[i];
    const auto& ma = attrs_as<MatmulAttrs>(*mm.attrs);
    if (ma.transpose_a || g.type(mm.inputs[0]).shape.rank() < 2) continue;
    ir::Value w = mm.inputs[1];
    bool w_is_nk = ma.transpose_b;  // true: W is [n, k]
    if (!w_is_nk && g.node(w).op == ir::op::transpose && g.type(w).shape.rank() == 2) {
      w = g.node(w).inputs[0];
      w_is_nk = true;
    }
    const ir::Node dq = g.node(w);  // a copy: insert_before below reallocates the nodes
    if (g.type(w).shape.rank() != 2) continue;
    int64_t n = w_is_nk ? g.type(w).shape[0] : g.type(w).shape[1];
    int64_t k = w_is_nk ? g.type(w).shape[1] : g.type(w).shape[0];
    if (n < 0 || k < 0 || g.type(w).dtype != g.type(mm.inputs[0]).dtype) continue;
    std::vector<ir::Value> inputs{mm.inputs[0]};
    std::vector<NDArray> new_constants;  // transposed weights, appended as inputs below
    QuantizedMatmulAttrs qa{"", n, k, 0, 0};
    std::string what;
    if (dq.op == ir::op::dequantize_blocks && w_is_nk) {
      qa.format = attrs_as<BlockQuantAttrs>(*dq.attrs).format;
      inputs.push_back(dq.inputs[0]);
      what = "dequantize_blocks(" + qa.format + ")";
    } else if (dq.op == ir::op::dequantize) {
      const auto& da = attrs_as<QuantAttrs>(*dq.attrs);
      qa.format = "affine";
      qa.block_size = da.block_size;
      qa.axis = da.axis < 0 ? da.axis + 2 : da.axis;
      if (w_is_nk) {
        inputs.insert(inputs.end(), dq.inputs.begin(), dq.inputs.end());
      } else {
        bool all_const = true;
        for (const auto& v : dq.inputs) all_const = all_const && is_constant(g, v);
        if (!all_const) continue;
        for (const auto& v : dq.inputs) {
          const NDArray& c = constant_of(g, v);
          new_constants.push_back(c.rank() == 2 ? transposed(c) : c);
        }
        qa.axis = 1 - qa.axis;
      }
      what = "dequantize(affine)";
    } else if (dq.op == ir::op::dequantize_lut) {
      qa.format = "lut";
      bool per_row = g.type(dq.inputs[1]).shape.rank() == 2;
      if (w_is_nk) {
        inputs.insert(inputs.end(), dq.inputs.begin(), dq.inputs.end());
      } else {
        if (per_row || !is_constant(g, dq.inputs[0])) continue;
        new_constants.push_back(transposed(constant_of(g, dq.inputs[0])));
        inputs.push_back(dq.inputs[1]);
      }
      what = "dequantize_lut";
    } else {
      continue;
    }
    // Insert the transposed constants right before the matmul, keeping program order. The
    // matmul's inputs all come from nodes before it, so they keep their indices.
    if (!new_constants.empty()) {
      std::vector<ir::Node> added;
      for (const auto& c : new_constants) {
        ir::Node cn;
        cn.op = ir::op::constant;
        cn.name = mm.name + ".weights_nk";
        cn.attrs = make_attrs(ConstantAttrs{c});
        cn.outputs = {c.type()};
        added.push_back(std::move(cn));
      }
      auto first = static_cast<int32_t>(i);
      insert_before(ctx, i, std::move(added));
      i += new_constants.size();
      std::vector<ir::Value> fixed{inputs[0]};
      for (size_t c = 0; c < new_constants.size(); ++c)
        fixed.push_back({first + static_cast<int32_t>(c), 0});
      if (qa.format == "lut") fixed.push_back(inputs.back());
      inputs = fixed;
    }
    ir::Node& target = g.nodes[i];
    auto attrs = make_attrs(qa);
    std::vector<TensorType> in_types;
    for (const auto& v : inputs) in_types.push_back(g.type(v));
    const auto& info = ir::OpRegistry::get().info(ir::op::quantized_matmul);
    try {
      if (info.infer(ir::InferContext{info, *attrs, in_types, {}}) != target.outputs) continue;
    } catch (const Error&) {
      continue;
    }
    target.op = ir::op::quantized_matmul;
    target.inputs = inputs;
    target.attrs = attrs;
    ctx.note("quantized_matmul", "fused " + what + " → matmul at " + target.name + " (" +
                                     std::to_string(n) + "x" + std::to_string(k) +
                                     ", float weights never materialised)");
  }
}

}  // namespace loom::passes
