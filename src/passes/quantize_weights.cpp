// loom::quantize_weights: stores the constant weights of a graph's matmuls in 4 or 8 bits
// (affine per block along the contraction axis, or a 16/256-entry lookup table per output row).
// Each weight becomes quantize-format constants + a dequantize op feeding the matmul, which the
// compiler then fuses into quantized_matmul — so the float weights are never materialised.
#include <algorithm>
#include <cmath>

#include "loom/ops.h"
#include "passes/pass.h"

namespace loom {
namespace {

// Index of the entry of a sorted table nearest to v (binary search, then the closer neighbour).
size_t nearest(const std::vector<float>& t, float v) {
  auto it = std::lower_bound(t.begin(), t.end(), v);
  if (it == t.end()) return t.size() - 1;
  if (it == t.begin()) return 0;
  return (v - *(it - 1) <= *it - v) ? static_cast<size_t>(it - t.begin() - 1)
                                    : static_cast<size_t>(it - t.begin());
}

// Lloyd iterations from quantile seeds: a small k-means for one row's lookup table.
std::vector<float> lut_for_row(const float* w, int64_t k, int entries) {
  std::vector<float> sorted(w, w + k), table(static_cast<size_t>(entries));
  std::sort(sorted.begin(), sorted.end());
  for (int e = 0; e < entries; ++e)
    table[static_cast<size_t>(e)] = sorted[static_cast<size_t>((2 * e + 1) * k / (2 * entries))];
  std::vector<double> sum(static_cast<size_t>(entries));
  std::vector<int64_t> count(static_cast<size_t>(entries));
  for (int it = 0; it < 6; ++it) {
    std::fill(sum.begin(), sum.end(), 0);
    std::fill(count.begin(), count.end(), 0);
    for (int64_t i = 0; i < k; ++i) {
      size_t best = nearest(table, w[i]);
      sum[best] += w[i];
      ++count[best];
    }
    for (size_t e = 0; e < table.size(); ++e)
      if (count[e]) table[e] = static_cast<float>(sum[e] / static_cast<double>(count[e]));
    std::sort(table.begin(), table.end());
  }
  return table;
}

}  // namespace

Graph quantize_weights(const Graph& graph, std::vector<Tensor>& outputs,
                       const QuantizeWeightsOptions& o, std::vector<std::string>* log) {
  LOOM_CHECK(o.bits == 4 || o.bits == 8, "[quantize_weights] bits must be 4 or 8, got ", o.bits);
  LOOM_CHECK(o.block > 0 || o.mode == QuantizeWeightsOptions::Mode::lut,
             "[quantize_weights] block must be > 0");
  auto g = std::make_shared<ir::GraphData>(*graph.data());
  std::vector<ir::Value> outs;
  for (const auto& t : outputs) {
    LOOM_CHECK(t.graph_data() == graph.data(),
               "[quantize_weights] an output belongs to another graph");
    outs.push_back({t.node(), t.index()});
  }
  std::vector<std::string> notes;
  CompileOptions unused;
  passes::PassContext ctx{*g, outs, notes, unused, nullptr};
  int done = 0;
  for (size_t i = 0; i < g->nodes.size(); ++i) {
    const ir::Node mm = g->nodes[i];
    if (mm.op != ir::op::matmul) continue;
    // A copy: inserting the new constants below reallocates the node vector.
    const ir::Node wn = g->node(mm.inputs[1]);
    if (wn.op != ir::op::constant) continue;
    const NDArray& w = attrs_as<ConstantAttrs>(*wn.attrs).value;
    const auto& ma = attrs_as<MatmulAttrs>(*mm.attrs);
    if (w.rank() != 2 || !is_floating(w.dtype()) || w.numel() < o.min_elements || ma.transpose_a)
      continue;
    // Weights as [n, k] rows (the layout quantized_matmul reads), f32.
    NDArray nk = ma.transpose_b ? w.astype(f32).contiguous()
                                : w.astype(f32)
                                      .view({w.shape()[1], w.shape()[0]},
                                            {w.strides()[1], w.strides()[0]}, w.offset())
                                      .contiguous();
    int64_t n = nk.shape()[0], k = nk.shape()[1];
    const float* src = nk.data_as<float>();
    std::vector<ir::Node> added;
    auto constant = [&](const NDArray& a, const std::string& suffix) {
      ir::Node c;
      c.op = ir::op::constant;
      c.name = wn.name + suffix;
      c.attrs = make_attrs(ConstantAttrs{a});
      c.outputs = {a.type()};
      added.push_back(std::move(c));
    };
    ir::Node dq;
    dq.name = wn.name + ".dequantize";
    dq.outputs = {{f32, Shape({n, k})}};
    if (o.mode == QuantizeWeightsOptions::Mode::affine) {
      int64_t nb = (k + o.block - 1) / o.block;
      double levels = o.bits == 4 ? 15 : 255;
      NDArray scale(f32, {n, nb}), zp(f32, {n, nb});
      std::vector<double> q(static_cast<size_t>(n * k));
      for (int64_t r = 0; r < n; ++r)
        for (int64_t b = 0; b < nb; ++b) {
          int64_t lo_i = b * o.block, hi_i = std::min(k, lo_i + o.block);
          float lo = 0, hi = 0;  // include 0 so zero stays exact
          for (int64_t j = lo_i; j < hi_i; ++j)
            lo = std::min(lo, src[r * k + j]), hi = std::max(hi, src[r * k + j]);
          double s = hi > lo ? (hi - lo) / levels : 1.0;
          double z = std::nearbyint(-lo / s);
          scale.data_as<float>()[r * nb + b] = static_cast<float>(s);
          zp.data_as<float>()[r * nb + b] = static_cast<float>(z);
          for (int64_t j = lo_i; j < hi_i; ++j)
            q[static_cast<size_t>(r * k + j)] =
                std::clamp(std::nearbyint(src[r * k + j] / s) + z, 0.0, levels);
        }
      constant(NDArray::from_doubles(q, {n, k}, o.bits == 4 ? u4 : u8), ".q");
      constant(scale, ".scale");
      constant(zp, ".zero_point");
      dq.op = ir::op::dequantize;
      dq.attrs = make_attrs(QuantAttrs{.axis = 1, .block_size = o.block, .dtype = f32});
    } else {
      int entries = o.bits == 4 ? 16 : 256;
      NDArray table(f32, {n, entries});
      std::vector<double> q(static_cast<size_t>(n * k));
      for (int64_t r = 0; r < n; ++r) {
        auto t = lut_for_row(src + r * k, k, entries);
        std::copy(t.begin(), t.end(), table.data_as<float>() + r * entries);
        for (int64_t j = 0; j < k; ++j) {
          float v = src[r * k + j];
          q[static_cast<size_t>(r * k + j)] = static_cast<double>(nearest(t, v));
        }
      }
      constant(NDArray::from_doubles(q, {n, k}, o.bits == 4 ? u4 : u8), ".indices");
      constant(table, ".table");
      dq.op = ir::op::dequantize_lut;
      dq.attrs = make_attrs(LutAttrs{f32});
    }
    auto first = static_cast<int32_t>(i);
    for (size_t c = 0; c < added.size(); ++c)
      dq.inputs.push_back({first + static_cast<int32_t>(c), 0});
    added.push_back(std::move(dq));
    auto inserted = static_cast<int32_t>(added.size());
    passes::insert_before(ctx, i, std::move(added));
    i += static_cast<size_t>(inserted);
    ir::Node& target = g->nodes[i];
    target.inputs[1] = {first + inserted - 1, 0};
    target.attrs = make_attrs(MatmulAttrs{false, true});
    ++done;
    notes.push_back("[quantize_weights] " + wn.name + " [" + std::to_string(n) + "x" +
                    std::to_string(k) + "] -> " + std::to_string(o.bits) + "-bit " +
                    (o.mode == QuantizeWeightsOptions::Mode::affine ? "affine" : "lut"));
  }
  if (log) *log = notes;
  outputs.clear();
  for (const auto& v : outs) outputs.emplace_back(g, v.node, v.index);
  return Graph(g);
}

}  // namespace loom
