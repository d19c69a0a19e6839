// Geometry of conv and the windowed pools, shared by type inference and the kernels. 1-D is
// promoted to 2-D (a height of 1) so that every kernel has one loop nest.
#pragma once
#include <string>
#include <vector>

#include "loom/attrs.h"
#include "loom/error.h"
#include "loom/shape.h"

namespace loom::ops {

struct Window2d {
  int64_t ih = 1, iw = 1;  // input spatial dims (kDynamic at build time)
  int64_t kh = 1, kw = 1;
  int64_t sh = 1, sw = 1;
  int64_t dh = 1, dw = 1;
  int64_t ph = 0, pw = 0;    // pads before
  int64_t phe = 0, pwe = 0;  // pads after
  int64_t oh = 1, ow = 1;    // output spatial dims (kDynamic when the input dim is)
};

// `spatial`: the input's spatial dims (1 or 2), `kernel`: the window's. Fails through `fail(msg)`
// (which must not return) on bad attrs or a window larger than the padded input.
template <class Fail>
Window2d window_2d(const std::vector<int64_t>& spatial, const std::vector<int64_t>& kernel,
                   const std::vector<int64_t>& strides, const std::vector<int64_t>& pads,
                   const std::vector<int64_t>& dilations, bool ceil_mode, Fail&& fail) {
  size_t n = spatial.size();
  if (n != 1 && n != 2)
    fail("supports 1 or 2 spatial dims, got " + std::to_string(n) + " (input rank must be 3 or 4)");
  if (kernel.size() != n)
    fail("kernel has " + std::to_string(kernel.size()) + " dims for " + std::to_string(n) +
         " spatial dims");
  auto get = [&](const std::vector<int64_t>& v, size_t count, size_t i, int64_t dflt,
                 const char* what) {
    if (v.empty()) return dflt;
    if (v.size() != count)
      fail(std::string(what) + " has " + std::to_string(v.size()) + " values, expected " +
           std::to_string(count));
    return v[i];
  };
  std::vector<int64_t> in(2, 1), k(2, 1), s(2, 1), d(2, 1), pb(2, 0), pe(2, 0), out(2, 1);
  size_t off = 2 - n;  // 1-D lives in the width
  for (size_t i = 0; i < n; ++i) {
    in[off + i] = spatial[i];
    k[off + i] = kernel[i];
    s[off + i] = get(strides, n, i, 1, "strides");
    d[off + i] = get(dilations, n, i, 1, "dilations");
    pb[off + i] = get(pads, 2 * n, i, 0, "pads");
    pe[off + i] = get(pads, 2 * n, n + i, 0, "pads");
    if (k[off + i] < 1 && k[off + i] != kDynamic) fail("kernel dims must be >= 1");
    if (s[off + i] < 1) fail("strides must be >= 1");
    if (d[off + i] < 1) fail("dilations must be >= 1");
    if (pb[off + i] < 0 || pe[off + i] < 0) fail("pads must be >= 0");
  }
  for (size_t i = 0; i < 2; ++i) {
    if (in[i] == kDynamic || k[i] == kDynamic) {  // a dynamic weight's kernel: known at run time
      out[i] = kDynamic;
      continue;
    }
    int64_t span = (k[i] - 1) * d[i] + 1, padded = in[i] + pb[i] + pe[i];
    if (span > padded)
      fail("kernel extent " + std::to_string(span) + " is larger than the padded input " +
           std::to_string(padded) + " (spatial dim " + std::to_string(i - off) + ")");
    int64_t q = padded - span;
    out[i] = (ceil_mode ? (q + s[i] - 1) / s[i] : q / s[i]) + 1;
    // ONNX / PyTorch: with ceil_mode a window may not start inside the end padding.
    if (ceil_mode && (out[i] - 1) * s[i] >= in[i] + pb[i]) --out[i];
  }
  return {in[0], in[1], k[0],  k[1],  s[0],  s[1],   d[0],
          d[1],  pb[0], pb[1], pe[0], pe[1], out[0], out[1]};
}

// The spatial dims of a [B, C, spatial...] shape.
inline std::vector<int64_t> spatial_dims(const Shape& x) {
  return std::vector<int64_t>(x.dims().begin() + std::min(x.rank(), 2), x.dims().end());
}

inline Window2d conv_window(const Shape& x, const Shape& w, const ConvAttrs& a) {
  return window_2d(spatial_dims(x), spatial_dims(w), a.strides, a.pads, a.dilations, false,
                   [](const std::string& m) -> void { loom::fail("[conv] ", m); });
}
inline Window2d pool_window(const Shape& x, const PoolAttrs& a, const char* op) {
  return window_2d(spatial_dims(x), a.kernel, a.strides, a.pads, a.dilations, a.ceil_mode,
                   [op](const std::string& m) -> void { loom::fail("[", op, "] ", m); });
}

}  // namespace loom::ops
