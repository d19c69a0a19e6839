// quantized_matmul nodes that read the same x with the same block format and k (a decoder layer's
// q / k / v projections, its ffn gate / up) become one quantized_matmul over their weights
// concatenated by rows, followed by one `slice` per original output along the last axis. On a GPU
// a decode step's GEMVs are short and the small ones (k / v) run far below memory bandwidth
// because of their launch; one launch reads all the rows. A prepared run at fixed shapes turns the
// slices of a one-token step into views (src/runtime/prepared_run.cpp), so they cost nothing.
//
// Only block formats (GGUF formats, affine_u4, affine_i8): their packed weights are one u8
// [n, row_bytes] array whose rows are independent, so concatenating rows is exact. "affine" and
// "lut" carry scale / table inputs and are left alone. The weights must be host constants used
// only by the group (a constant used elsewhere, e.g. tied embeddings, would be stored twice): the
// merged constant is a copy made here; the originals are left unused, for the last DCE.
#include <algorithm>
#include <cstring>
#include <map>
#include <tuple>

#include "ops/quant_formats.h"
#include "passes/pass.h"

namespace loom::passes {

void merge_parallel_matmuls(PassContext& ctx) {
  if (ctx.options.device.kind == Device::Kind::reference) return;  // the oracle runs op by op
  if (ctx.device_has_kernel &&
      (!ctx.device_has_kernel(ir::op::quantized_matmul) || !ctx.device_has_kernel(ir::op::slice)))
    return;
  auto& g = ctx.graph;
  const size_t nn = g.nodes.size();
  // Users of every node (of any of its outputs); compile targets are marked apart.
  std::vector<std::vector<size_t>> users(nn);
  std::vector<bool> is_target(nn, false);
  for (size_t i = 0; i < nn; ++i)
    for (const ir::Value& v : g.nodes[i].inputs) users[static_cast<size_t>(v.node)].push_back(i);
  for (const ir::Value& v : ctx.outputs) is_target[static_cast<size_t>(v.node)] = true;
  // Live nodes: dead users (the dequantize that quantized_matmul fusion left for DCE) don't keep
  // weights from merging.
  std::vector<bool> live(nn, false);
  for (size_t i = nn; i-- > 0;) {
    live[i] = is_target[i] || ir::OpRegistry::get().info(g.nodes[i].op).has_side_effects();
    for (size_t u : users[i]) live[i] = live[i] || live[u];
  }

  // Candidates grouped by (x, format, k), in program order.
  std::map<std::tuple<ir::Value, std::string, int64_t>, std::vector<size_t>> groups;
  std::vector<std::tuple<ir::Value, std::string, int64_t>> order;
  for (size_t i = 0; i < nn; ++i) {
    const ir::Node& n = g.nodes[i];
    if (n.op != ir::op::quantized_matmul || n.inputs.size() != 2 || n.outputs.size() != 1 ||
        !live[i])
      continue;
    const auto& a = attrs_as<QuantizedMatmulAttrs>(*n.attrs);
    const ops::BlockFormat* f = ops::find_block_format(a.format);
    if (!f || a.n <= 0 || a.k <= 0 || a.k % f->block) continue;
    const ir::Node& w = g.node(n.inputs[1]);
    if (w.op != ir::op::constant || is_target[static_cast<size_t>(n.inputs[1].node)]) continue;
    const NDArray& c = attrs_as<ConstantAttrs>(*w.attrs).value;
    if (c.dtype() != DType::u8 || c.shape() != Shape({a.n, a.k / f->block * f->bytes}) ||
        c.device().kind != Device::Kind::cpu)
      continue;
    auto key = std::make_tuple(n.inputs[0], a.format, a.k);
    auto& members = groups[key];
    if (members.empty()) order.push_back(key);
    members.push_back(i);
  }

  std::vector<bool> keep(nn, true);
  std::vector<std::vector<ir::Node>> emitted(nn);  // per first member: constant, matmul, slices
  std::vector<std::vector<size_t>> group_of(nn);   // first member -> the group's members
  int merged_groups = 0;
  for (const auto& key : order) {
    std::vector<size_t> members;
    for (size_t i : groups[key]) {
      // Every live user of the weights must be a member of this group (else they'd be stored
      // twice: a copy in the merged constant, the original for the other user).
      const auto w = static_cast<size_t>(g.nodes[i].inputs[1].node);
      bool only_group = true;
      for (size_t u : users[w]) {
        const auto& gm = groups[key];
        only_group = only_group && (!live[u] || std::find(gm.begin(), gm.end(), u) != gm.end());
      }
      if (only_group) members.push_back(i);
    }
    if (members.size() < 2) continue;
    const auto& [x, format, k] = key;
    const int64_t row_bytes = g.type(g.nodes[members[0]].inputs[1]).shape[1];
    int64_t rows = 0;
    for (size_t i : members) rows += attrs_as<QuantizedMatmulAttrs>(*g.nodes[i].attrs).n;
    NDArray packed = NDArray::empty(DType::u8, {rows, row_bytes});
    std::string names;
    int64_t at = 0;
    for (size_t i : members) {
      const NDArray c =
          attrs_as<ConstantAttrs>(*g.node(g.nodes[i].inputs[1]).attrs).value.contiguous();
      std::memcpy(packed.data_as<uint8_t>() + at * row_bytes, c.data(), c.nbytes());
      at += c.shape()[0];
      names += (names.empty() ? "" : "+") + g.nodes[i].name;
    }
    const ir::Node& first = g.nodes[members[0]];
    ir::Node cn;
    cn.op = ir::op::constant;
    cn.name = g.node(first.inputs[1]).name + ".merged";
    cn.attrs = make_attrs(ConstantAttrs{packed});
    cn.outputs = {packed.type()};
    ir::Node mm;
    mm.op = ir::op::quantized_matmul;
    mm.name = first.name + ".merged";
    mm.inputs = {x, {}};  // the constant's index is set when the nodes are placed
    mm.attrs = make_attrs(QuantizedMatmulAttrs{format, rows, k, 0, 0});
    TensorType out = first.outputs[0];
    const int last = out.shape.rank() - 1;
    out.shape[last] = rows;
    mm.outputs = {out};
    std::vector<ir::Node> nodes{std::move(cn), std::move(mm)};
    std::string sizes;
    int64_t start = 0;
    for (size_t i : members) {
      const ir::Node& m = g.nodes[i];
      const int64_t n = attrs_as<QuantizedMatmulAttrs>(*m.attrs).n;
      ir::Node s;
      s.op = ir::op::slice;
      s.name = m.name;  // the projection keeps its name (the pass log tracks nodes by name)
      s.attrs = make_attrs(SliceAttrs{{last}, {start}, {start + n}, {1}});
      s.outputs = m.outputs;
      nodes.push_back(std::move(s));
      start += n;
      sizes += (sizes.empty() ? "" : "+") + std::to_string(n);
      keep[i] = false;
    }
    emitted[members[0]] = std::move(nodes);
    group_of[members[0]] = members;
    ++merged_groups;
    ctx.note("merge_parallel_matmuls", "merged " + std::to_string(members.size()) +
                                           " quantized_matmul (" + format + ", k " +
                                           std::to_string(k) + ", " + sizes + " -> " +
                                           std::to_string(rows) + " rows) at " + names);
  }
  if (!merged_groups) return;

  // Rebuild in program order: a group's constant, merged matmul and slices take its first
  // member's slot (x is defined before it; the weights are constants); members are dropped and
  // their uses read the slices.
  std::vector<ir::Value> remap(nn, ir::Value{-1, 0});
  std::vector<ir::Node> out;
  out.reserve(nn + static_cast<size_t>(merged_groups) * 2);
  auto fix = [&](ir::Value& v) {
    const ir::Value r = remap[static_cast<size_t>(v.node)];
    LOOM_CHECK(r.node >= 0, "[merge_parallel_matmuls] internal error: a removed node is used");
    v = {r.node, r.index + v.index};
  };
  for (size_t i = 0; i < nn; ++i) {
    if (!emitted[i].empty()) {
      auto nodes = std::move(emitted[i]);
      const auto base = static_cast<int32_t>(out.size());
      fix(nodes[1].inputs[0]);
      nodes[1].inputs[1] = {base, 0};
      for (size_t s = 2; s < nodes.size(); ++s) {
        nodes[s].inputs = {{base + 1, 0}};
        remap[group_of[i][s - 2]] = {base + static_cast<int32_t>(s), 0};
      }
      for (auto& node : nodes) out.push_back(std::move(node));
      continue;
    }
    if (!keep[i]) continue;
    remap[i] = {static_cast<int32_t>(out.size()), 0};
    ir::Node node = std::move(g.nodes[i]);
    for (auto& v : node.inputs) fix(v);
    out.push_back(std::move(node));
  }
  for (auto& v : ctx.outputs) fix(v);
  g.nodes = std::move(out);
}

}  // namespace loom::passes
