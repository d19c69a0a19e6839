// CPU kernels of the transformer ops: thin adapters from graph arrays to the attention library
// (src/backends/cpu/attention), which reads strided views in place.
#include "backends/cpu/attention/rope.h"
#include "backends/cpu/attention/sdpa.h"
#include "backends/cpu/cpu_util.h"
#include "backends/reference/ref_util.h"
#include "core/element.h"
#include "ops/slice_starts.h"

namespace loom::backends::cpu {
namespace {

void strides4(const NDArray& a, int64_t out[4]) {
  for (int i = 0; i < 4; ++i) out[i] = a.strides()[static_cast<size_t>(i)];
}

void sdpa(const KernelContext& c) {
  const auto& at = c.attrs_as<SdpaAttrs>();
  const NDArray &q = c.inputs[0], &k = c.inputs[1], &v = c.inputs[2], &out = c.outputs[0];
  loom::cpu::SdpaArgs a;
  a.q = q.data();
  a.q_dtype = q.dtype();
  a.B = q.shape()[0], a.Hq = q.shape()[1], a.Lq = q.shape()[2], a.D = q.shape()[3];
  strides4(q, a.q_strides);
  a.k = k.data();
  a.v = v.data();
  a.kv_dtype = k.dtype();
  a.Hkv = k.shape()[1], a.Lk = k.shape()[2], a.Dv = v.shape()[3];
  strides4(k, a.k_strides);
  strides4(v, a.v_strides);
  size_t next = 3;
  if (at.has_mask) {
    const NDArray& m = c.inputs[next++];
    a.mask = m.data();
    a.mask_dtype = m.dtype();
    // Broadcast strides of the mask against [B, Hq, Lq, Lk] (0 on broadcast dims).
    int64_t s = 1;
    for (int i = 3, j = m.rank() - 1; i >= 0; --i, --j) {
      int64_t d = j >= 0 ? m.shape()[j] : 1;
      a.mask_strides[i] = d == 1 ? 0 : s;
      s *= d;
    }
  }
  if (at.has_kv_len) {
    const NDArray& n = c.inputs[next++];
    a.kv_len = static_cast<int64_t>(detail::load_element(n.dtype(), n.data(), 0));
    LOOM_CHECK(a.kv_len >= 0 && a.kv_len <= a.Lk, "[sdpa] kv_len ", a.kv_len, " is outside [0, ",
               a.Lk, "]");
  }
  a.causal = at.causal;
  a.scale = static_cast<float>(at.scale > 0 ? at.scale : 1.0 / std::sqrt(static_cast<double>(a.D)));
  a.out = out.data();
  a.out_dtype = out.dtype();
  strides4(out, a.out_strides);
  loom::cpu::sdpa(a, c.pool);
}

// rope of x at positions p into `out` (any strides: a fresh array, or a region of the KV cache).
void rope_into(const KernelContext& c, const NDArray& x, const NDArray& p, const NDArray& out) {
  const auto& at = c.attrs_as<RopeAttrs>();
  loom::cpu::RopeArgs a;
  a.x = x.data();
  a.x_dtype = x.dtype();
  a.B = x.shape()[0], a.H = x.shape()[1], a.L = x.shape()[2], a.D = x.shape()[3];
  strides4(x, a.x_strides);
  a.positions = p.data();
  a.positions_dtype = p.dtype();
  if (p.rank() == 2) {
    a.positions_strides[0] = p.shape()[0] == 1 ? 0 : p.strides()[0];
    a.positions_strides[1] = p.strides()[1];
  } else {
    a.positions_strides[0] = 0;
    a.positions_strides[1] = p.strides()[0];
  }
  a.out = out.data();
  a.out_dtype = out.dtype();
  strides4(out, a.out_strides);
  a.layout =
      at.interleaved ? loom::cpu::RopeLayout::kInterleaved : loom::cpu::RopeLayout::kHalfSplit;
  a.theta = at.theta;
  a.scaling_factor = at.position_scale;
  a.rotary_dim = at.rotary_dim ? at.rotary_dim : -1;
  loom::cpu::rope(a, c.pool);
}

void rope(const KernelContext& c) { rope_into(c, c.inputs[0], c.inputs[1], c.outputs[0]); }

// rope_write_slice(cache, x, positions, starts): the rope kernel writes its rows straight into the
// cache's region at the starts (one pass over x; no temporary, no copy of the cache). The rows are
// rope's on this backend bit for bit (converted to the cache's dtype as write_slice converts).
void rope_write_slice(const KernelContext& c) {
  const NDArray &cache = c.inputs[0], &x = c.inputs[1], &out = c.outputs[0];
  auto s = ops::read_starts(c.inputs[3], cache.shape(), x.shape(), "rope_write_slice");
  int64_t off = out.offset();
  for (int i = 0; i < out.rank(); ++i)
    off += s[static_cast<size_t>(i)] * out.strides()[static_cast<size_t>(i)];
  rope_into(c, x, c.inputs[2], out.view(x.shape(), out.strides(), off));
}

}  // namespace

void register_attention(KernelTable& t) {
  t.set(ir::op::sdpa, sdpa);
  t.set(ir::op::rope, rope);
  // In place only (the runtime hands the cache itself as the output) and for the CPU rope's
  // dtypes; otherwise the reference kernel (rope into a temporary, then write_slice). The rope
  // rounds its f32 rows once, to the cache's dtype: the unfused ops' values (rope's rows in x's
  // dtype, then converted to the cache's) only when x is f32 or has the cache's dtype.
  KernelFn fallback = *reference_kernels().find(ir::op::rope_write_slice);
  t.set(ir::op::rope_write_slice, [fallback](const KernelContext& c) {
    const DType d = c.inputs[1].dtype(), dc = c.inputs[0].dtype();
    auto rope_dtype = [](DType t) {
      return t == DType::f32 || t == DType::f16 || t == DType::bf16;
    };
    if (c.outputs[0].data() != c.inputs[0].data() || !rope_dtype(d) || !rope_dtype(dc) ||
        (d != dc && d != DType::f32))
      return fallback(c);
    rope_write_slice(c);
  });
  // The three parts with this backend's kernels (write_slice: register_movement, earlier).
  t.set(ir::op::rope_write_kv, ref::rope_write_kv_from(*t.find(ir::op::rope_write_slice),
                                                       *t.find(ir::op::write_slice), rope));
  // rope_write_kv, then sdpa (the rotated q in a temporary).
  t.set(ir::op::rope_write_kv_sdpa,
        ref::rope_write_kv_sdpa_from(*t.find(ir::op::rope_write_kv), sdpa));
}

}  // namespace loom::backends::cpu
