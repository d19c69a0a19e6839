// write_slice(cache, rope(x, positions), starts) becomes one rope_write_slice(cache, x, positions,
// starts): the rotated keys go straight into the KV cache instead of through a temporary. A decode
// step runs this once per layer (the keys; values are not rotated), so on a GPU one small kernel
// and its launch gap go per layer.
//
// Only where the rope's output has no other use (and is not a compile target): the fused node
// does not produce it. Runs after inplace_variable_update, which makes the write_slice.
//
// The fused kernels read x while writing the cache. x can share the cache's memory only as views
// (reshape / squeeze / unsqueeze, no offsets) of an uncopied read of the same variable; fitting in
// the cache, it then has the cache's shape and starts 0, so every element is read before it is
// written by the same thread (CUDA) or row (CPU): still exact.
#include "passes/pass.h"

namespace loom::passes {

void fuse_rope_into_write_slice(PassContext& ctx) {
  if (!fusion_allowed(ctx, "fuse_rope_into_write_slice", ir::op::rope_write_slice)) return;
  auto& g = ctx.graph;
  const size_t n = g.nodes.size();
  const std::vector<int> uses = use_counts(ctx);

  const auto& info = ir::OpRegistry::get().info(ir::op::rope_write_slice);
  std::vector<bool> keep(n, true);
  int fused = 0;
  for (size_t w = 0; w < n; ++w) {
    ir::Node& write = g.nodes[w];
    if (write.op != ir::op::write_slice) continue;
    const auto r = static_cast<size_t>(write.inputs[1].node);
    const ir::Node& rope = g.nodes[r];
    if (rope.op != ir::op::rope || uses[r] != 1) continue;
    // The fused node sits at the write_slice's slot (its inputs all come earlier) and keeps its
    // name, which the pass log tracks nodes by.
    std::vector<ir::Value> inputs = {write.inputs[0], rope.inputs[0], rope.inputs[1],
                                     write.inputs[2]};
    std::vector<TensorType> in_types;
    for (const auto& v : inputs) in_types.push_back(g.type(v));
    try {
      if (info.infer(ir::InferContext{info, *rope.attrs, in_types, {}}) != write.outputs) continue;
    } catch (const Error&) {
      continue;
    }
    write.op = ir::op::rope_write_slice;
    write.inputs = std::move(inputs);
    write.attrs = rope.attrs;
    keep[r] = false;
    ++fused;
  }
  if (!fused) return;
  compact(ctx, keep);
  ctx.note("fuse_rope_into_write_slice",
           "fused " + std::to_string(fused) + " rope → write_slice pair(s) into rope_write_slice");
}

}  // namespace loom::passes
