// Complex numbers, FFT and spectral ops: type rules. The compositions (stft, istft, log-mel) and
// host helpers (windows, frames view, mel filterbank) live in src/ops/spectral.cpp.
//
// Complex arithmetic reuses the elementwise ops: this file widens the type rules of add, sub, mul,
// div, neg (c64 -> c64) and abs (c64 -> f32) and keeps their real-valued rules unchanged; the
// backends wrap the elementwise kernels of those ops the same way (see their fft files).
#include <string>

#include "ops/infer_util.h"
#include "ops/spectral_util.h"

namespace loom::ir {
namespace {

bool any_complex(const InferContext& ctx) {
  for (const auto& t : ctx.inputs)
    if (is_complex(t.dtype)) return true;
  return false;
}

// Wraps the existing rule of an elementwise op: complex operands take the complex rule, everything
// else the op's own rule.
void allow_complex(OpRegistry& r, OpId id, bool to_real) {
  InferFn prev = r.mutable_info(id).infer;
  r.mutable_info(id).infer = [prev, to_real](const InferContext& ctx) {
    if (!any_complex(ctx)) return prev(ctx);
    if (ctx.inputs.size() == 2) {
      ops::expect_same_dtype(ctx, 0, 1);
      return std::vector<TensorType>{
          {DType::c64, ops::broadcast_shapes(ctx, ctx.inputs[0].shape, ctx.inputs[1].shape)}};
    }
    return std::vector<TensorType>{{to_real ? DType::f32 : DType::c64, ctx.inputs[0].shape}};
  };
}

void expect_c64(const InferContext& ctx, const char* hint) {
  if (ctx.inputs[0].dtype != DType::c64)
    ctx.fail("input must be c64 (complex), got ", dtype_name(ctx.inputs[0].dtype), hint);
}

// The transformed axes in the order given (rfft / irfft: the last one is the real axis).
std::vector<int> fft_axes(const InferContext& ctx, const Shape& s) {
  const auto& a = ctx.attrs_as<FftAttrs>();
  if (a.axes.empty()) ctx.fail("axes is empty: list the axes to transform");
  std::vector<int> out;
  for (int64_t ax : a.axes) {
    int64_t n = ax < 0 ? ax + s.rank() : ax;
    if (n < 0 || n >= s.rank()) ctx.fail("axis ", ax, " is out of range for rank ", s.rank());
    for (int o : out)
      if (o == n) ctx.fail("axis ", ax, " is listed twice");
    out.push_back(static_cast<int>(n));
  }
  for (int ax : out)
    if (s[ax] == 0) ctx.fail("axis ", ax, " has length 0: nothing to transform");
  return out;
}

void check_scaling(const InferContext& ctx) {
  auto sc = static_cast<int64_t>(ctx.attrs_as<FftAttrs>().scaling);
  if (sc < 0 || sc > 2) ctx.fail("unknown scaling mode ", sc, " (none=0, size=1, unitary=2)");
}

std::vector<TensorType> infer_fft(const InferContext& ctx) {
  expect_c64(ctx, "; use rfft for a real signal, or complex(x, 0)");
  fft_axes(ctx, ctx.inputs[0].shape);
  check_scaling(ctx);
  return {ctx.inputs[0]};
}

std::vector<TensorType> infer_rfft(const InferContext& ctx) {
  const TensorType& x = ctx.inputs[0];
  if (x.dtype != DType::f32) ctx.fail("rfft takes a real f32 signal, got ", dtype_name(x.dtype));
  if (ctx.attrs_as<FftAttrs>().inverse) ctx.fail("rfft is forward only (use irfft)");
  auto axes = fft_axes(ctx, x.shape);
  check_scaling(ctx);
  Shape out = x.shape;
  int last = axes.back();
  if (out[last] != kDynamic) out[last] = out[last] / 2 + 1;
  return {{DType::c64, out}};
}

std::vector<TensorType> infer_irfft(const InferContext& ctx) {
  const auto& a = ctx.attrs_as<FftAttrs>();
  expect_c64(ctx, "; irfft takes a half spectrum");
  const TensorType& x = ctx.inputs[0];
  auto axes = fft_axes(ctx, x.shape);
  check_scaling(ctx);
  int last = axes.back();
  int64_t m = x.shape[last];
  if (a.length < 0) ctx.fail("irfft length ", a.length, " is negative");
  Shape out = x.shape;
  if (a.length > 0) {
    if (m != kDynamic && a.length / 2 + 1 != m)
      ctx.fail("irfft length ", a.length, " needs ", a.length / 2 + 1, " input bins on axis ", last,
               ", got ", m);
    out[last] = a.length;
  } else if (m != kDynamic) {
    out[last] = 2 * (m - 1) + (a.round_to_odd ? 1 : 0);
    if (out[last] < 1) ctx.fail("irfft of 1 bin gives an empty signal: set round_to_odd or length");
  }
  return {{DType::f32, out}};
}

std::vector<TensorType> infer_window(const InferContext& ctx) {
  const auto& a = ctx.attrs_as<WindowAttrs>();
  if (a.length < 1) ctx.fail("window length ", a.length, " must be >= 1");
  if (!spectral::valid_window_kind(a.kind))
    ctx.fail("unknown window '", a.kind, "' (hann, hamming, blackman, gaussian)");
  if (a.kind == "gaussian" && !(a.param > 0)) ctx.fail("gaussian window std must be > 0");
  if (!is_floating(a.dtype)) ctx.fail("window dtype must be floating point");
  return {{a.dtype, Shape({a.length})}};
}

std::vector<TensorType> infer_frames(const InferContext& ctx) {
  const auto& a = ctx.attrs_as<FramesAttrs>();
  const TensorType& x = ctx.inputs[0];
  if (x.shape.rank() < 1) ctx.fail("frames needs a signal of rank >= 1");
  if (is_packed(x.dtype)) ctx.fail("frames does not take packed dtypes");
  if (a.frame_length < 1 || a.hop < 1) ctx.fail("frame_length and hop must be >= 1");
  if (a.pad < 0) ctx.fail("pad ", a.pad, " is negative");
  int64_t t = x.shape[x.shape.rank() - 1];
  if (t != kDynamic && a.pad > 0 && a.pad >= t)
    ctx.fail("reflect padding of ", a.pad, " needs more than ", a.pad, " samples, got ", t);
  if (t != kDynamic && t + 2 * a.pad < a.frame_length)
    ctx.fail("signal of ", t, " samples is shorter than one frame of ", a.frame_length);
  std::vector<int64_t> d = x.shape.dims();
  d.back() = t == kDynamic ? kDynamic : 1 + (t + 2 * a.pad - a.frame_length) / a.hop;
  d.push_back(a.frame_length);
  return {{x.dtype, Shape(d)}};
}

std::vector<TensorType> infer_overlap_add(const InferContext& ctx) {
  const auto& a = ctx.attrs_as<FramesAttrs>();
  const TensorType& x = ctx.inputs[0];
  if (x.shape.rank() < 2) ctx.fail("overlap_add needs frames [..., F, L]");
  if (x.dtype != DType::f32) ctx.fail("overlap_add takes f32 frames");
  if (a.hop < 1) ctx.fail("hop must be >= 1");
  std::vector<int64_t> d = x.shape.dims();
  int64_t f = d[d.size() - 2], l = d.back();
  if (f == 0) ctx.fail("overlap_add of zero frames");
  d.pop_back();
  d.back() = (f == kDynamic || l == kDynamic) ? kDynamic : (f - 1) * a.hop + l;
  return {{x.dtype, Shape(d)}};
}

}  // namespace

void register_fft_ops(OpRegistry& r) {
  for (OpId id : {op::add, op::sub, op::mul, op::div, op::neg}) allow_complex(r, id, false);
  allow_complex(r, op::abs, true);
  r.mutable_info(op::complex).infer = [](const InferContext& ctx) {
    for (size_t i = 0; i < 2; ++i)
      if (ctx.inputs[i].dtype != DType::f32)
        ctx.fail("real and imaginary parts must be f32, input ", i, " is ",
                 dtype_name(ctx.inputs[i].dtype));
    return std::vector<TensorType>{
        {DType::c64, ops::broadcast_shapes(ctx, ctx.inputs[0].shape, ctx.inputs[1].shape)}};
  };
  for (OpId id : {op::real, op::imag, op::angle})
    r.mutable_info(id).infer = [](const InferContext& ctx) {
      expect_c64(ctx, "");
      return std::vector<TensorType>{{DType::f32, ctx.inputs[0].shape}};
    };
  r.mutable_info(op::conj).infer = [](const InferContext& ctx) {
    expect_c64(ctx, "");
    return std::vector<TensorType>{ctx.inputs[0]};
  };
  r.mutable_info(op::fft).infer = infer_fft;
  r.mutable_info(op::rfft).infer = infer_rfft;
  r.mutable_info(op::irfft).infer = infer_irfft;
  r.mutable_info(op::window).infer = infer_window;
  r.mutable_info(op::frames).infer = infer_frames;
  r.mutable_info(op::overlap_add).infer = infer_overlap_add;
}

}  // namespace loom::ir
