// Reference sdpa, rope and rope_write_slice: materialised scores, double accumulation — the
// oracle.
#include <cmath>

#include "backends/reference/ref_util.h"
#include "backends/rope_kv_sdpa.h"
#include "ops/slice_starts.h"

namespace loom::backends::ref {
namespace {

int64_t kv_len_of(const KernelContext& c, size_t index, int64_t lk) {
  const NDArray& n = c.inputs[index];
  auto v = static_cast<int64_t>(load_element(n.dtype(), n.data(), 0));
  LOOM_CHECK(v >= 0 && v <= lk, "[sdpa] kv_len ", v, " is outside [0, ", lk, "]");
  return v;
}

void sdpa(const KernelContext& c) {
  const auto& a = c.attrs_as<SdpaAttrs>();
  const NDArray &q = c.inputs[0], &k = c.inputs[1], &v = c.inputs[2], &out = c.outputs[0];
  int64_t B = q.shape()[0], Hq = q.shape()[1], Lq = q.shape()[2], D = q.shape()[3];
  int64_t Hkv = k.shape()[1], Lk = k.shape()[2], Dv = v.shape()[3];
  double scale = a.scale > 0 ? a.scale : 1.0 / std::sqrt(static_cast<double>(D));
  size_t next = 3;
  const NDArray* mask = a.has_mask ? &c.inputs[next++] : nullptr;
  int64_t kv_len = a.has_kv_len ? kv_len_of(c, next, Lk) : Lk;
  std::vector<int64_t> mst;
  if (mask) mst = broadcast_strides(mask->shape(), Shape({B, Hq, Lq, Lk}));
  std::vector<double> s(static_cast<size_t>(Lk));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h) {
      int64_t g = h / (Hq / Hkv);
      for (int64_t i = 0; i < Lq; ++i) {
        double mx = -INFINITY;
        for (int64_t j = 0; j < kv_len; ++j) {
          double acc = 0;
          for (int64_t d = 0; d < D; ++d)
            acc += load_element(q.dtype(), q.data(), ((b * Hq + h) * Lq + i) * D + d) *
                   load_element(k.dtype(), k.data(), ((b * Hkv + g) * Lk + j) * D + d);
          acc *= scale;
          bool keep = !(a.causal && j > kv_len - Lq + i);
          if (mask) {
            double m = load_element(mask->dtype(), mask->data(),
                                    b * mst[0] + h * mst[1] + i * mst[2] + j * mst[3]);
            if (mask->dtype() == DType::boolean)
              keep = keep && m != 0;
            else
              acc += m;
          }
          s[static_cast<size_t>(j)] = keep ? acc : -INFINITY;
          mx = std::max(mx, s[static_cast<size_t>(j)]);
        }
        double sum = 0;
        for (int64_t j = 0; j < kv_len; ++j) {
          double e = mx == -INFINITY ? 0 : std::exp(s[static_cast<size_t>(j)] - mx);
          s[static_cast<size_t>(j)] = e;
          sum += e;
        }
        for (int64_t d = 0; d < Dv; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < kv_len; ++j)
            if (s[static_cast<size_t>(j)] != 0)
              acc += s[static_cast<size_t>(j)] *
                     load_element(v.dtype(), v.data(), ((b * Hkv + g) * Lk + j) * Dv + d);
          store_element(out.dtype(), out.data(), ((b * Hq + h) * Lq + i) * Dv + d,
                        sum > 0 ? acc / sum : 0);
        }
      }
    }
}

}  // namespace

// Declared in ref_util.h (rope_write_slice reuses it).
void rope(const KernelContext& c) {
  const auto& a = c.attrs_as<RopeAttrs>();
  const NDArray &x = c.inputs[0], &p = c.inputs[1], &out = c.outputs[0];
  int64_t B = x.shape()[0], H = x.shape()[1], L = x.shape()[2], D = x.shape()[3];
  int64_t rd = a.rotary_dim ? a.rotary_dim : D, half = rd / 2;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t l = 0; l < L; ++l) {
        int64_t pi = p.rank() == 2 ? (p.shape()[0] == 1 ? 0 : b) * L + l : l;
        double pos = load_element(p.dtype(), p.data(), pi) / a.position_scale;
        int64_t base = ((b * H + h) * L + l) * D;
        for (int64_t d = rd; d < D; ++d)
          store_element(out.dtype(), out.data(), base + d,
                        load_element(x.dtype(), x.data(), base + d));
        for (int64_t kk = 0; kk < half; ++kk) {
          double ang =
              pos * std::pow(a.theta, -2.0 * static_cast<double>(kk) / static_cast<double>(rd));
          int64_t i0 = a.interleaved ? 2 * kk : kk, i1 = a.interleaved ? 2 * kk + 1 : kk + half;
          double x0 = load_element(x.dtype(), x.data(), base + i0),
                 x1 = load_element(x.dtype(), x.data(), base + i1);
          store_element(out.dtype(), out.data(), base + i0,
                        x0 * std::cos(ang) - x1 * std::sin(ang));
          store_element(out.dtype(), out.data(), base + i1,
                        x1 * std::cos(ang) + x0 * std::sin(ang));
        }
      }
}

// write_slice(cache, rope(x, positions), starts): the rope kernel into a temporary, then the
// write_slice kernel into the cache — exactly the unfused ops.
void rope_write_slice(const KernelContext& c) {
  const NDArray& x = c.inputs[1];
  NDArray rotated(x.dtype(), x.shape());
  const NDArray rope_in[] = {x, c.inputs[2]};
  rope({rope_in, std::span<NDArray>(&rotated, 1), c.attrs, c.pool});
  const NDArray write_in[] = {c.inputs[0], rotated, c.inputs[3]};
  write_region({write_in, c.outputs, nullptr, c.pool}, "rope_write_slice");
}

// Declared in ref_util.h. Each part gets its own inputs and output (the caches written in
// place when the runtime hands them as outputs 0 and 1).
KernelFn rope_write_kv_from(KernelFn rope_write, KernelFn write, KernelFn rope_fn) {
  return [=](const KernelContext& c) {
    // Starts out of range are reported under this op's name, not a part's.
    ops::read_starts(c.inputs[5], c.inputs[0].shape(), c.inputs[2].shape(), "rope_write_kv");
    ops::read_starts(c.inputs[5], c.inputs[1].shape(), c.inputs[3].shape(), "rope_write_kv");
    const NDArray k_in[] = {c.inputs[0], c.inputs[2], c.inputs[4], c.inputs[5]};
    rope_write({k_in, c.outputs.subspan(0, 1), c.attrs, c.pool});
    const NDArray v_in[] = {c.inputs[1], c.inputs[3], c.inputs[5]};
    write({v_in, c.outputs.subspan(1, 1), nullptr, c.pool});
    if (c.inputs.size() == 7) {
      const NDArray q_in[] = {c.inputs[6], c.inputs[4]};
      rope_fn({q_in, c.outputs.subspan(2, 1), c.attrs, c.pool});
    }
  };
}

KernelFn rope_write_kv_sdpa_from(KernelFn rope_write_kv, KernelFn sdpa_fn) {
  return [=](const KernelContext& c) {
    ops::read_starts(c.inputs[5], c.inputs[0].shape(), c.inputs[2].shape(), "rope_write_kv_sdpa");
    ops::read_starts(c.inputs[5], c.inputs[1].shape(), c.inputs[3].shape(), "rope_write_kv_sdpa");
    const NDArray& q = c.inputs[6];
    rope_kv_then_sdpa(c, NDArray(q.dtype(), q.shape()), rope_write_kv, sdpa_fn);
  };
}

void register_attention(KernelTable& t) {
  t.set(ir::op::sdpa, sdpa);
  t.set(ir::op::rope, rope);
  t.set(ir::op::rope_write_slice, rope_write_slice);
  t.set(ir::op::rope_write_kv,
        rope_write_kv_from(
            rope_write_slice, [](const KernelContext& c) { write_region(c, "rope_write_kv"); },
            rope));
  t.set(ir::op::rope_write_kv_sdpa, rope_write_kv_sdpa_from(*t.find(ir::op::rope_write_kv), sdpa));
}

}  // namespace loom::backends::ref
