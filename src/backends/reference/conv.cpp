// Reference conv and pools: direct loops over every output and window tap, double accumulation.
#include <cmath>
#include <limits>

#include "backends/reference/ref_util.h"
#include "ops/conv_shape.h"

namespace loom::backends::ref {
namespace {

void conv(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &w = c.inputs[1], &out = c.outputs[0];
  const auto& a = c.attrs_as<ConvAttrs>();
  auto g = ops::conv_window(x.shape(), w.shape(), a);
  int64_t B = x.shape()[0], C = x.shape()[1], O = w.shape()[0];
  int64_t cg = C / a.groups, og = O / a.groups;
  const NDArray* bias = c.inputs.size() > 2 ? &c.inputs[2] : nullptr;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t o = 0; o < O; ++o) {
      int64_t grp = o / og;
      for (int64_t oy = 0; oy < g.oh; ++oy)
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          double acc = bias ? load_element(bias->dtype(), bias->data(), o) : 0.0;
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t ky = 0; ky < g.kh; ++ky) {
              int64_t iy = oy * g.sh - g.ph + ky * g.dh;
              if (iy < 0 || iy >= g.ih) continue;
              for (int64_t kx = 0; kx < g.kw; ++kx) {
                int64_t ix = ox * g.sw - g.pw + kx * g.dw;
                if (ix < 0 || ix >= g.iw) continue;
                int64_t xi = (((b * C) + grp * cg + ci) * g.ih + iy) * g.iw + ix;
                int64_t wi = ((o * cg + ci) * g.kh + ky) * g.kw + kx;
                acc +=
                    load_element(x.dtype(), x.data(), xi) * load_element(w.dtype(), w.data(), wi);
              }
            }
          store_element(out.dtype(), out.data(), ((b * O + o) * g.oh + oy) * g.ow + ox, acc);
        }
    }
}

void pool(const KernelContext& c, bool is_max) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  const auto& a = c.attrs_as<PoolAttrs>();
  auto g = ops::pool_window(x.shape(), a, is_max ? "max_pool" : "avg_pool");
  int64_t planes = x.shape()[0] * x.shape()[1];
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t oy = 0; oy < g.oh; ++oy)
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        double acc = is_max ? -std::numeric_limits<double>::infinity() : 0.0;
        int64_t count = 0, padded_count = 0;
        for (int64_t ky = 0; ky < g.kh; ++ky) {
          int64_t iy = oy * g.sh - g.ph + ky * g.dh;
          for (int64_t kx = 0; kx < g.kw; ++kx) {
            int64_t ix = ox * g.sw - g.pw + kx * g.dw;
            // count_include_pad counts taps inside the padded input (not past it, which
            // ceil_mode can reach), like ONNX Runtime and PyTorch.
            if (iy < g.ih + g.phe && ix < g.iw + g.pwe) ++padded_count;
            if (iy < 0 || iy >= g.ih || ix < 0 || ix >= g.iw) continue;
            double v = load_element(x.dtype(), x.data(), (p * g.ih + iy) * g.iw + ix);
            acc = is_max ? std::max(acc, v) : acc + v;
            ++count;
          }
        }
        if (!is_max) acc /= static_cast<double>(a.count_include_pad ? padded_count : count);
        store_element(out.dtype(), out.data(), (p * g.oh + oy) * g.ow + ox, acc);
      }
}

void global_pool(const KernelContext& c, bool is_max) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  int64_t planes = x.shape()[0] * x.shape()[1], len = planes ? x.numel() / planes : 0;
  for (int64_t p = 0; p < planes; ++p) {
    double acc = is_max ? -std::numeric_limits<double>::infinity() : 0.0;
    for (int64_t i = 0; i < len; ++i) {
      double v = load_element(x.dtype(), x.data(), p * len + i);
      acc = is_max ? std::max(acc, v) : acc + v;
    }
    if (!is_max) acc /= static_cast<double>(len);
    store_element(out.dtype(), out.data(), p, acc);
  }
}

}  // namespace

void register_conv(KernelTable& t) {
  t.set(ir::op::conv, conv);
  t.set(ir::op::max_pool, [](const KernelContext& c) { pool(c, true); });
  t.set(ir::op::avg_pool, [](const KernelContext& c) { pool(c, false); });
  t.set(ir::op::global_max_pool, [](const KernelContext& c) { global_pool(c, true); });
  t.set(ir::op::global_avg_pool, [](const KernelContext& c) { global_pool(c, false); });
}

}  // namespace loom::backends::ref
