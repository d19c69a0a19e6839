// CPU conv: im2col per (batch, group) then one OpenBLAS sgemm [O/g, C/g*k] x [C/g*k, out];
// f16/bf16 are widened to f32 and rounded once. Pools: loops over each [H, W] plane, planes
// spread over the backend's threads. f64 uses the reference kernels.
#include <cblas.h>

#include <limits>

#include "backends/cpu/cpu_util.h"
#include "ops/conv_shape.h"

namespace loom::backends::cpu {
namespace {

const float* as_f32(const NDArray& x, std::vector<float>& tmp) {
  if (x.dtype() == DType::f32) return x.data_as<float>();
  tmp.resize(static_cast<size_t>(x.numel()));
  load_run<float>(x.dtype(), x.data(), 0, 1, x.numel(), tmp.data());
  return tmp.data();
}

void conv(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &w = c.inputs[1], &out = c.outputs[0];
  const auto& a = c.attrs_as<ConvAttrs>();
  auto g = ops::conv_window(x.shape(), w.shape(), a);
  int64_t B = x.shape()[0], C = x.shape()[1], O = w.shape()[0];
  int64_t cg = C / a.groups, og = O / a.groups;
  int64_t K = cg * g.kh * g.kw, N = g.oh * g.ow, plane = g.ih * g.iw;
  if (out.numel() == 0) return;
  std::vector<float> tx, tw, tb, to;
  const float* px = as_f32(x, tx);
  const float* pw = as_f32(w, tw);
  float* po = out.dtype() == DType::f32 ? out.data_as<float>() : nullptr;
  if (!po) {
    to.resize(static_cast<size_t>(out.numel()));
    po = to.data();
  }
  // A 1x1 kernel with unit strides and no padding reads the input as it is: no im2col.
  bool direct = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0 &&
                g.phe == 0 && g.pwe == 0;
  std::vector<float> col(direct ? 0 : static_cast<size_t>(K * N));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t grp = 0; grp < a.groups; ++grp) {
      const float* xin = px + (b * C + grp * cg) * plane;
      const float* cols = xin;
      if (!direct) {
        // Row r of col = tap (ci, ky, kx); column = output position; zeros where the tap lands
        // in padding.
        parallel_for(c.pool, K, std::max<int64_t>(1, 16384 / std::max<int64_t>(N, 1)),
                     [&](int64_t r0, int64_t r1) {
                       for (int64_t r = r0; r < r1; ++r) {
                         int64_t ci = r / (g.kh * g.kw), ky = r / g.kw % g.kh, kx = r % g.kw;
                         float* dst = col.data() + r * N;
                         const float* src = xin + ci * plane;
                         for (int64_t oy = 0; oy < g.oh; ++oy) {
                           int64_t iy = oy * g.sh - g.ph + ky * g.dh;
                           float* row = dst + oy * g.ow;
                           if (iy < 0 || iy >= g.ih) {
                             std::fill(row, row + g.ow, 0.f);
                             continue;
                           }
                           const float* srow = src + iy * g.iw;
                           for (int64_t ox = 0; ox < g.ow; ++ox) {
                             int64_t ix = ox * g.sw - g.pw + kx * g.dw;
                             row[ox] = ix >= 0 && ix < g.iw ? srow[ix] : 0.f;
                           }
                         }
                       }
                     });
        cols = col.data();
      }
      float* dst = po + (b * O + grp * og) * N;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(og),
                  static_cast<blasint>(N), static_cast<blasint>(K), 1.f, pw + grp * og * K,
                  static_cast<blasint>(K), cols, static_cast<blasint>(N), 0.f, dst,
                  static_cast<blasint>(N));
    }
  if (c.inputs.size() > 2) {
    const float* pb = as_f32(c.inputs[2], tb);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t o = 0; o < O; ++o) {
        float* row = po + (b * O + o) * N;
        for (int64_t i = 0; i < N; ++i) row[i] += pb[o];
      }
  }
  if (!to.empty()) store_run<float>(out.dtype(), out.data(), 0, out.numel(), to.data());
}

void pool(const KernelContext& c, bool is_max) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  const auto& a = c.attrs_as<PoolAttrs>();
  auto g = ops::pool_window(x.shape(), a, is_max ? "max_pool" : "avg_pool");
  int64_t planes = x.shape()[0] * x.shape()[1], in = g.ih * g.iw, on = g.oh * g.ow;
  parallel_for(c.pool, planes, std::max<int64_t>(1, 16384 / std::max<int64_t>(in, 1)),
               [&](int64_t p0, int64_t p1) {
                 std::vector<float> src(static_cast<size_t>(in)), dst(static_cast<size_t>(on));
                 for (int64_t p = p0; p < p1; ++p) {
                   load_run<float>(x.dtype(), x.data(), p * in, 1, in, src.data());
                   for (int64_t oy = 0; oy < g.oh; ++oy)
                     for (int64_t ox = 0; ox < g.ow; ++ox) {
                       float acc = is_max ? -std::numeric_limits<float>::infinity() : 0.f;
                       int64_t count = 0, padded = 0;
                       for (int64_t ky = 0; ky < g.kh; ++ky) {
                         int64_t iy = oy * g.sh - g.ph + ky * g.dh;
                         for (int64_t kx = 0; kx < g.kw; ++kx) {
                           int64_t ix = ox * g.sw - g.pw + kx * g.dw;
                           if (iy < g.ih + g.phe && ix < g.iw + g.pwe) ++padded;
                           if (iy < 0 || iy >= g.ih || ix < 0 || ix >= g.iw) continue;
                           float v = src[static_cast<size_t>(iy * g.iw + ix)];
                           acc = is_max ? std::max(acc, v) : acc + v;
                           ++count;
                         }
                       }
                       if (!is_max) acc /= static_cast<float>(a.count_include_pad ? padded : count);
                       dst[static_cast<size_t>(oy * g.ow + ox)] = acc;
                     }
                   store_run<float>(out.dtype(), out.data(), p * on, on, dst.data());
                 }
               });
}

void global_pool(const KernelContext& c, bool is_max) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  int64_t planes = x.shape()[0] * x.shape()[1], len = planes ? x.numel() / planes : 0;
  parallel_for(c.pool, planes, std::max<int64_t>(1, 16384 / std::max<int64_t>(len, 1)),
               [&](int64_t p0, int64_t p1) {
                 std::vector<float> src(static_cast<size_t>(len));
                 for (int64_t p = p0; p < p1; ++p) {
                   load_run<float>(x.dtype(), x.data(), p * len, 1, len, src.data());
                   float acc = is_max ? -std::numeric_limits<float>::infinity() : 0.f;
                   for (float v : src) acc = is_max ? std::max(acc, v) : acc + v;
                   if (!is_max) acc /= static_cast<float>(len);
                   store_run<float>(out.dtype(), out.data(), p, 1, &acc);
                 }
               });
}

}  // namespace

void register_conv(KernelTable& t) {
  // f64 keeps double precision through the reference loops rather than narrowing to f32.
  auto with_f64_fallback = [](ir::OpId id, KernelFn fn) {
    KernelFn ref = *reference_kernels().find(id);
    return [ref, fn](const KernelContext& c) {
      if (c.inputs[0].dtype() == DType::f64) return ref(c);
      fn(c);
    };
  };
  t.set(ir::op::conv, with_f64_fallback(ir::op::conv, conv));
  t.set(ir::op::max_pool,
        with_f64_fallback(ir::op::max_pool, [](const KernelContext& c) { pool(c, true); }));
  t.set(ir::op::avg_pool,
        with_f64_fallback(ir::op::avg_pool, [](const KernelContext& c) { pool(c, false); }));
  t.set(ir::op::global_max_pool,
        with_f64_fallback(ir::op::global_max_pool,
                          [](const KernelContext& c) { global_pool(c, true); }));
  t.set(ir::op::global_avg_pool,
        with_f64_fallback(ir::op::global_avg_pool,
                          [](const KernelContext& c) { global_pool(c, false); }));
}

}  // namespace loom::backends::cpu
