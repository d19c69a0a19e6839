// Reference kernel of `stitched`: the region's ops one at a time through their own reference
// kernels (each at its own broadcast shape), exactly the unfused graph.
#include "ops/stitched.h"

#include "backends/reference/ref_util.h"
#include "ops/infer_util.h"

namespace loom::backends::ref {

void register_stitched(KernelTable& t) {
  t.set(ir::op::stitched, [](const KernelContext& c) {
    auto prog = ops::parse_stitch_program(c.attrs_as<StitchedAttrs>().program);
    std::vector<NDArray> values(c.inputs.begin(), c.inputs.end());
    for (size_t j = 0; j < prog->code.size(); ++j) {
      const ops::StitchInstr& in = prog->code[j];
      std::vector<NDArray> args;
      Shape shape;
      for (int a : in.args) {
        args.push_back(values[static_cast<size_t>(a)]);
        shape = ops::broadcast_static(shape, args.back().shape(), "stitched");
      }
      bool last = j + 1 == prog->code.size();
      NDArray out = last ? c.outputs[0] : NDArray::empty(in.dtype, shape);
      const KernelFn* k = reference_kernels().find(in.op);
      LOOM_CHECK(k, "[stitched] no reference kernel for a member op");
      std::vector<NDArray> outs{out};
      KernelContext kc{args, outs, in.attrs.get(), nullptr};
      (*k)(kc);
      values.push_back(out);
    }
  });
}

}  // namespace loom::backends::ref
