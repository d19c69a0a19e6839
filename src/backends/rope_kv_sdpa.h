// rope_write_kv_sdpa as the two ops it fuses: rope_write_kv's kernel writes both caches and the
// rotated q (into `q_rot`), then sdpa's kernel attends over the written caches. The reference and
// CPU backends run the op so (bit-equal to the unfused pair), and CUDA where its fused decode
// kernel does not apply.
#pragma once
#include <vector>

#include "loom/attrs.h"
#include "loom/kernel.h"

namespace loom::backends {

inline void rope_kv_then_sdpa(const KernelContext& c, const NDArray& q_rot,
                              const KernelFn& rope_write_kv, const KernelFn& sdpa) {
  const auto& a = c.attrs_as<RopeSdpaAttrs>();
  NDArray kv_out[] = {c.outputs[0], c.outputs[1], q_rot};
  auto rope_attrs = make_attrs(a.rope());
  rope_write_kv(
      {c.inputs.subspan(0, 7), kv_out, rope_attrs.get(), c.pool, c.constant_inputs & 0x7f});
  std::vector<NDArray> in = {q_rot, c.outputs[0], c.outputs[1]};
  for (size_t i = 7; i < c.inputs.size(); ++i) in.push_back(c.inputs[i]);
  auto sdpa_attrs = make_attrs(a.sdpa());
  sdpa({in, c.outputs.subspan(2, 1), sdpa_attrs.get(), c.pool, 0});
}

}  // namespace loom::backends
