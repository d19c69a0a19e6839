// add_rms_norm(a, b, gamma) whose normed output feeds exactly one block-format quantized_matmul
// (a decoder layer's merged q/k/v or gate/up GEMV) becomes one
// add_rms_norm_quantized_matmul(a, b, gamma, packed): outputs the sum (it keeps all the sum's
// uses, e.g. the next residual add) and the matmul's product. On a GPU the decode GEMV reads and
// quantizes its whole x in every CTA anyway, so it forms the normalised x itself and the norm
// kernel (and its launch) goes; other backends run the pair's kernels.
//
// Only where the normed output has no other use and is not a compile target (the fused node
// does not produce it), the norm is over the last axis and has a gamma, and the matmul takes
// exactly (x, packed). Runs after fuse_add_rms_norm, which makes the add_rms_norm.
#include <map>

#include "passes/pass.h"

namespace loom::passes {

void fuse_add_rms_norm_into_quantized_matmul(PassContext& ctx) {
  static constexpr const char* kPass = "fuse_add_rms_norm_into_quantized_matmul";
  if (!fusion_allowed(ctx, kPass, ir::op::add_rms_norm_quantized_matmul)) return;
  auto& g = ctx.graph;
  const size_t n = g.nodes.size();
  // The users of every value, in program order. Dead users count too (the fused node does not
  // produce the normed x, so nothing may still read it).
  std::map<ir::Value, std::vector<size_t>> users;
  for (size_t i = 0; i < n; ++i)
    for (const ir::Value& v : g.nodes[i].inputs) users[v].push_back(i);
  std::map<ir::Value, bool> targets;
  for (const ir::Value& v : ctx.outputs) targets[v] = true;

  const auto& info = ir::OpRegistry::get().info(ir::op::add_rms_norm_quantized_matmul);
  std::vector<bool> keep(n, true);
  std::map<ir::Value, ir::Value> moved;  // old value -> its replacement (applied once, below)
  int fused = 0;
  std::string where;
  for (size_t j = 0; j < n; ++j) {
    const ir::Node& mm = g.nodes[j];
    if (mm.op != ir::op::quantized_matmul || mm.inputs.size() != 2) continue;
    const ir::Value normed = mm.inputs[0];
    const auto i = static_cast<size_t>(normed.node);
    const ir::Node& norm = g.nodes[i];
    if (norm.op != ir::op::add_rms_norm || normed.index != 1 || norm.inputs.size() != 3) continue;
    if (users[normed].size() != 1 || targets.count(normed)) continue;
    const auto& na = attrs_as<NormAttrs>(*norm.attrs);
    const int rank = norm.outputs[0].shape.rank();
    if (na.axis != -1 && na.axis != rank - 1) continue;
    // The fused node takes the norm's slot when the packed weights are defined before it, else
    // the matmul's when every user of the sum comes after the matmul; otherwise the ops stay apart.
    const ir::Value sum{static_cast<int32_t>(i), 0};
    const bool packed_first = static_cast<size_t>(mm.inputs[1].node) < i;
    bool users_after = true;
    for (size_t u : users[sum]) users_after = users_after && u > j;
    if (!packed_first && !users_after) continue;
    const size_t slot = packed_first ? i : j;

    const auto& qa = attrs_as<QuantizedMatmulAttrs>(*mm.attrs);
    ir::Node f;
    f.op = ir::op::add_rms_norm_quantized_matmul;
    f.name = g.nodes[slot].name;  // the pass log tracks nodes by name
    f.inputs = {norm.inputs[0], norm.inputs[1], norm.inputs[2], mm.inputs[1]};
    f.attrs = make_attrs(
        AddRmsNormQuantizedMatmulAttrs{qa.format, qa.n, qa.k, qa.axis, qa.block_size, na.eps});
    f.outputs = {norm.outputs[0], mm.outputs[0]};
    std::vector<TensorType> in_types;
    for (const auto& v : f.inputs) in_types.push_back(g.type(v));
    try {
      if (info.infer(ir::InferContext{info, *f.attrs, in_types, {}}) != f.outputs) continue;
    } catch (const Error&) {
      continue;
    }
    const auto at = static_cast<int32_t>(slot);
    moved[sum] = {at, 0};
    moved[{static_cast<int32_t>(j), 0}] = {at, 1};
    keep[slot == i ? j : i] = false;
    where += (where.empty() ? "" : ", ") + f.name + " (" + qa.format + ", " + std::to_string(qa.n) +
             "x" + std::to_string(qa.k) + ")";
    g.nodes[slot] = std::move(f);
    ++fused;
  }
  if (!fused) return;
  remap_and_compact(ctx, moved, keep);
  ctx.note(kPass, "fused " + std::to_string(fused) +
                      " add_rms_norm → quantized_matmul pair(s) into "
                      "add_rms_norm_quantized_matmul at " +
                      where);
}

}  // namespace loom::passes
