// CPU kernel of `stitched`: the region runs tile by tile. Each tile of the output (≤ 512 elements
// of one row) loads its inputs once (converted to f32, broadcast by stride), runs every member op
// over the tile in L1-resident buffers with the same loops as the ops' own kernels, and stores
// the result once: k ops cost one pass over memory instead of k.
#include "ops/stitched.h"

#include <algorithm>

#include "backends/cpu/cpu_util.h"

namespace loom::backends::cpu {
namespace {

constexpr int64_t kTile = 512;

void run_stitched(const ops::StitchProgram& prog, const KernelContext& c) {
  const NDArray& out = c.outputs[0];
  const size_t nin = c.inputs.size(), ncode = prog.code.size();
  const bool direct = out.dtype() == DType::f32;
  // Per task: one tile buffer per instruction and the slot table (inputs, then results).
  struct State {
    std::vector<float> buf;
    std::vector<const float*> slot, args;
  };
  auto make_state = [&] {
    State st{std::vector<float>(ncode * kTile), std::vector<const float*>(nin + ncode), {}};
    for (size_t j = 0; j < ncode; ++j) st.slot[nin + j] = st.buf.data() + j * kTile;
    return st;
  };
  // Cost grows with the program: fewer tiles per task for long programs.
  const int64_t grain = std::max<int64_t>(1, 32 / static_cast<int64_t>(ncode));
  walk_tiles<float>(c, DType::f32, kTile, grain, make_state,
                    [&](State& st, int64_t out_off, int64_t n, const float* const* in) {
                      for (size_t i = 0; i < nin; ++i) st.slot[i] = in[i];
                      float* o = nullptr;
                      for (size_t j = 0; j < ncode; ++j) {
                        const ops::StitchInstr& ins = prog.code[j];
                        st.args.resize(ins.args.size());
                        for (size_t a = 0; a < ins.args.size(); ++a)
                          st.args[a] = st.slot[static_cast<size_t>(ins.args[a])];
                        const bool last = j + 1 == ncode;
                        o = last && direct ? static_cast<float*>(out.data()) + out_off
                                           : st.buf.data() + j * kTile;
                        apply_f32(ins.op, ins.attrs.get(), ins.dtype, n, st.args.data(), o);
                      }
                      if (!direct) store_run<float>(out.dtype(), out.data(), out_off, n, o);
                    });
}

}  // namespace

KernelFn make_stitched_kernel(const ir::Node& node) {
  auto prog = ops::parse_stitch_program(attrs_as<StitchedAttrs>(*node.attrs).program);
  return [prog](const KernelContext& c) { run_stitched(*prog, c); };
}

void register_stitched(KernelTable& t) {
  t.set(ir::op::stitched, [](const KernelContext& c) {
    run_stitched(*ops::parse_stitch_program(c.attrs_as<StitchedAttrs>().program), c);
  });
}

}  // namespace loom::backends::cpu
