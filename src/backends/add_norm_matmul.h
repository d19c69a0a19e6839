// add_rms_norm_quantized_matmul as the two ops it fuses: add_rms_norm's kernel writes the sum and
// the normed x (into `normed`), then quantized_matmul's kernel reads that x with the packed
// weights. The reference and CPU backends run the op so (bit-equal to the unfused pair), and CUDA
// where its fused GEMV does not apply.
#pragma once
#include "loom/attrs.h"
#include "loom/kernel.h"

namespace loom::backends {

// quantized_matmul's context for the op's weights (input 3) with `x` as its x.
inline KernelContext matmul_context(const KernelContext& c, const NDArray (&in)[2],
                                    const Attrs* attrs) {
  return {in, c.outputs.subspan(1, 1), attrs, c.pool, ((c.constant_inputs >> 3) & 1) << 1};
}

inline void add_norm_then_matmul(const KernelContext& c, const NDArray& normed,
                                 const KernelFn& norm, const KernelFn& matmul) {
  const auto& a = c.attrs_as<AddRmsNormQuantizedMatmulAttrs>();
  NDArray outs[] = {c.outputs[0], normed};
  auto norm_attrs = make_attrs(NormAttrs{.axis = -1, .eps = a.eps});
  norm({c.inputs.subspan(0, 3), outs, norm_attrs.get(), c.pool, c.constant_inputs & 7});
  auto mm_attrs = make_attrs(a.matmul());
  const NDArray in[] = {normed, c.inputs[3]};
  matmul(matmul_context(c, in, mm_attrs.get()));
}

}  // namespace loom::backends
