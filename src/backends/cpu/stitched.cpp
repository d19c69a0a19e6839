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
  if (out.numel() == 0) return;
  std::vector<Shape> shapes;
  for (const auto& in : c.inputs) shapes.push_back(in.shape());
  BroadcastPlan p = plan_broadcast(out.shape(), shapes);
  const int64_t inner = p.dims.back();
  const int64_t rows = out.numel() / std::max<int64_t>(inner, 1);
  const int64_t tiles_per_row = (inner + kTile - 1) / kTile;
  const size_t nin = c.inputs.size(), ncode = prog.code.size();
  // Cost grows with the program: fewer tiles per task for long programs.
  const int64_t grain = std::max<int64_t>(1, 32 / static_cast<int64_t>(ncode));
  parallel_for(c.pool, rows * tiles_per_row, grain, [&](int64_t b, int64_t e) {
    std::vector<float> buf((nin + ncode) * kTile);
    std::vector<const float*> slot(nin + ncode);
    std::vector<const float*> args(3);
    std::vector<int64_t> idx(p.dims.size() - 1);
    for (size_t j = 0; j < ncode; ++j) slot[nin + j] = buf.data() + (nin + j) * kTile;
    for (int64_t t = b; t < e; ++t) {
      int64_t row = t / tiles_per_row, col = (t % tiles_per_row) * kTile;
      int64_t n = std::min(kTile, inner - col);
      int64_t rem = row;
      for (int d = static_cast<int>(idx.size()) - 1; d >= 0; --d) {
        idx[static_cast<size_t>(d)] = rem % p.dims[static_cast<size_t>(d)];
        rem /= p.dims[static_cast<size_t>(d)];
      }
      for (size_t i = 0; i < nin; ++i) {
        int64_t off = 0;
        for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * p.strides[i][d];
        int64_t st = p.strides[i].back();
        off += col * st;
        const NDArray& in = c.inputs[i];
        if (st == 1 && in.dtype() == DType::f32) {
          slot[i] = static_cast<const float*>(in.data()) + off;  // read in place
        } else {
          float* dst = buf.data() + i * kTile;
          load_run<float>(in.dtype(), in.data(), off, st, n, dst);
          slot[i] = dst;
        }
      }
      const bool direct = out.dtype() == DType::f32;
      float* o = nullptr;
      for (size_t j = 0; j < ncode; ++j) {
        const ops::StitchInstr& ins = prog.code[j];
        args.resize(ins.args.size());
        for (size_t a = 0; a < ins.args.size(); ++a)
          args[a] = slot[static_cast<size_t>(ins.args[a])];
        bool last = j + 1 == ncode;
        o = last && direct ? static_cast<float*>(out.data()) + row * inner + col
                           : buf.data() + (nin + j) * kTile;
        apply_f32(ins.op, ins.attrs.get(), ins.dtype, n, args.data(), o);
      }
      if (!direct) store_run<float>(out.dtype(), out.data(), row * inner + col, n, o);
    }
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
