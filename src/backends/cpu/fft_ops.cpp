// CPU kernels of the complex, FFT and spectral ops: thin adapters to Loom's FFT library
// (src/backends/cpu/fft), which takes element strides, so the transforms read their input and
// write their output in place with no staging copy. The complex elementwise ops are plain loops
// over the broadcast plan of the real elementwise kernels.
#include <complex>
#include <cstring>

#include "backends/cpu/cpu_util.h"
#include "backends/cpu/fft/fft.h"
#include "ops/spectral_util.h"

namespace loom::backends::cpu {
namespace {
namespace op = ir::op;
using cf = std::complex<float>;
namespace lf = loom::cpu::fft;

// Written out (not std::complex operators) so no call to the C99 inf/nan recovery path
// (__mulsc3 / __divsc3) sits in the loop.
inline cf cmul(cf a, cf b) {
  return {a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real()};
}
inline cf cdiv(cf a, cf b) {
  float d = b.real() * b.real() + b.imag() * b.imag();
  return {(a.real() * b.real() + a.imag() * b.imag()) / d,
          (a.imag() * b.real() - a.real() * b.imag()) / d};
}

// Element i of an input that is c64 (C) or f32 read as x + 0i.
template <bool C>
inline cf load_c(const void* p, int64_t i) {
  if constexpr (C)
    return static_cast<const cf*>(p)[i];
  else
    return {static_cast<const float*>(p)[i], 0.0f};
}

// The same-shape case: one flat loop with the input / output kinds fixed at compile time, so it
// vectorises (the broadcast case below is a general strided loop).
template <int N, bool C, bool OutC, class F>
void flat_apply(const KernelContext& c, F f) {
  const void* in0 = c.inputs[0].data();
  const void* in1 = N == 2 ? c.inputs[1].data() : nullptr;
  void* out = c.outputs[0].data();
  parallel_for(c.pool, c.outputs[0].numel(), 32768, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      cf v[2] = {load_c<C>(in0, i), N == 2 ? load_c<C>(in1, i) : cf()};
      cf r = f(v);
      if constexpr (OutC)
        static_cast<cf*>(out)[i] = r;
      else
        static_cast<float*>(out)[i] = r.real();
    }
  });
}

// out = f(inputs) over the broadcast output. Inputs are c64 or f32 (read as x + 0i), all of one
// kind; the output is c64, or f32 taking the real part of f's result.
template <class F>
void complex_apply(const KernelContext& c, F f) {
  const NDArray& out = c.outputs[0];
  if (out.numel() == 0) return;
  size_t nin = c.inputs.size();
  bool cplx = c.inputs[0].dtype() == DType::c64, out_c = out.dtype() == DType::c64;
  bool same = true;
  for (const auto& in : c.inputs) same = same && in.shape() == out.shape();
  if (same) {
    if (nin == 2) {
      if (cplx)
        flat_apply<2, true, true>(c, f);
      else
        flat_apply<2, false, true>(c, f);  // complex(re, im)
    } else if (out_c) {
      flat_apply<1, true, true>(c, f);
    } else {
      flat_apply<1, true, false>(c, f);
    }
    return;
  }
  std::vector<Shape> shapes;
  for (const auto& in : c.inputs) shapes.push_back(in.shape());
  BroadcastPlan p = plan_broadcast(out.shape(), shapes);
  int64_t inner = p.dims.back(), rows = out.numel() / inner;
  const void* ptr[2] = {c.inputs[0].data(), nin == 2 ? c.inputs[1].data() : nullptr};
  void* optr = out.data();
  parallel_for(c.pool, rows, std::max<int64_t>(1, 16384 / inner), [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      int64_t off[2] = {0, 0}, rem = row;
      for (int d = static_cast<int>(p.dims.size()) - 2; d >= 0; --d) {
        int64_t k = rem % p.dims[static_cast<size_t>(d)];
        rem /= p.dims[static_cast<size_t>(d)];
        for (size_t i = 0; i < nin; ++i) off[i] += k * p.strides[i][static_cast<size_t>(d)];
      }
      for (int64_t j = 0; j < inner; ++j) {
        cf v[2];
        for (size_t i = 0; i < nin; ++i) {
          int64_t at = off[i] + j * p.strides[i].back();
          v[i] = cplx ? load_c<true>(ptr[i], at) : load_c<false>(ptr[i], at);
        }
        cf r = f(v);
        if (out_c)
          static_cast<cf*>(optr)[row * inner + j] = r;
        else
          static_cast<float*>(optr)[row * inner + j] = r.real();
      }
    }
  });
}

template <class F>
void wrap_complex(KernelTable& t, ir::OpId id, F f) {
  const KernelFn* prev = t.find(id);
  LOOM_CHECK(prev, "[fft] register_fft must run after register_elementwise");
  KernelFn real_kernel = *prev;
  t.set(id, [real_kernel, f](const KernelContext& c) {
    if (c.inputs[0].dtype() == DType::c64)
      complex_apply(c, f);
    else
      real_kernel(c);
  });
}

lf::Scaling scaling_of(FftScaling s) {
  return s == FftScaling::size
             ? lf::Scaling::size
             : (s == FftScaling::unitary ? lf::Scaling::unitary : lf::Scaling::none);
}

std::vector<int> axes_of(const FftAttrs& a, int rank) {
  std::vector<int> out;
  for (int64_t ax : a.axes) out.push_back(static_cast<int>(ax < 0 ? ax + rank : ax));
  return out;
}

void fft(const KernelContext& c) {
  const auto& at = c.attrs_as<FftAttrs>();
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  if (out.numel() == 0) return;
  auto axes = axes_of(at, x.rank());
  lf::c2c_nd(x.data_as<cf>(), x.strides(), out.data_as<cf>(), out.strides(), x.shape().dims(), axes,
             at.inverse, scaling_of(at.scaling), c.pool);
}

void rfft(const KernelContext& c) {
  const auto& at = c.attrs_as<FftAttrs>();
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  if (out.numel() == 0) return;
  auto axes = axes_of(at, x.rank());
  lf::r2c_nd(x.data_as<float>(), x.strides(), out.data_as<cf>(), out.strides(), x.shape().dims(),
             axes, scaling_of(at.scaling), c.pool);
}

void irfft(const KernelContext& c) {
  const auto& at = c.attrs_as<FftAttrs>();
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  if (out.numel() == 0) return;
  auto axes = axes_of(at, x.rank());
  int last = axes.back();
  LOOM_CHECK(out.shape()[last] / 2 + 1 == x.shape()[last], "[fft] irfft: ", x.shape()[last],
             " bins do not make a signal of length ", out.shape()[last]);
  lf::c2r_nd(x.data_as<cf>(), x.strides(), out.data_as<float>(), out.strides(), out.shape().dims(),
             axes, scaling_of(at.scaling), c.pool);
}

// Each output row is one frame: a copy of `frame_length` samples read straight from the signal.
void frames(const KernelContext& c) {
  const auto& at = c.attrs_as<FramesAttrs>();
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  if (out.numel() == 0) return;
  int64_t t = x.shape()[x.rank() - 1], f = out.shape()[out.rank() - 2], l = at.frame_length;
  int64_t rows = out.numel() / l;
  size_t es = static_cast<size_t>(dtype_bits(x.dtype()) / 8);
  const auto* src = static_cast<const char*>(x.data());
  auto* dst = static_cast<char*>(out.data());
  parallel_for(c.pool, rows, std::max<int64_t>(1, 65536 / l), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      int64_t batch = r / f, start = (r % f) * at.hop - at.pad;
      char* d = dst + static_cast<size_t>(r * l) * es;
      const char* s = src + static_cast<size_t>(batch * t) * es;
      if (start >= 0 && start + l <= t) {
        std::memcpy(d, s + static_cast<size_t>(start) * es, static_cast<size_t>(l) * es);
        continue;
      }
      for (int64_t j = 0; j < l; ++j) {  // a frame over a reflect-padded edge
        int64_t k = start + j;
        k = k < 0 ? -k : (k >= t ? 2 * (t - 1) - k : k);
        std::memcpy(d + static_cast<size_t>(j) * es, s + static_cast<size_t>(k) * es, es);
      }
    }
  });
}

void overlap_add(const KernelContext& c) {
  const auto& at = c.attrs_as<FramesAttrs>();
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  if (out.numel() == 0) return;
  int64_t f = x.shape()[x.rank() - 2], l = x.shape()[x.rank() - 1], t = out.shape()[out.rank() - 1];
  int64_t batch = out.numel() / t;
  const float* in = x.data_as<float>();
  float* o = out.data_as<float>();
  parallel_for(c.pool, batch, 1, [&](int64_t b, int64_t e) {
    for (int64_t bi = b; bi < e; ++bi) {
      float* ob = o + bi * t;
      std::fill(ob, ob + t, 0.0f);
      for (int64_t i = 0; i < f; ++i) {
        const float* fr = in + (bi * f + i) * l;
        float* dst = ob + i * at.hop;
        for (int64_t j = 0; j < l; ++j) dst[j] += fr[j];
      }
    }
  });
}

void window(const KernelContext& c) {
  const auto& at = c.attrs_as<WindowAttrs>();
  auto w = spectral::window_values(at.kind, at.length, at.periodic, at.param);
  store_run(c.outputs[0].dtype(), c.outputs[0].data(), 0, static_cast<int64_t>(w.size()), w.data());
}

}  // namespace

void register_fft(KernelTable& t) {
  wrap_complex(t, op::add, [](const cf* v) { return v[0] + v[1]; });
  wrap_complex(t, op::sub, [](const cf* v) { return v[0] - v[1]; });
  wrap_complex(t, op::mul, [](const cf* v) { return cmul(v[0], v[1]); });
  wrap_complex(t, op::div, [](const cf* v) { return cdiv(v[0], v[1]); });
  wrap_complex(t, op::neg, [](const cf* v) { return -v[0]; });
  wrap_complex(t, op::abs, [](const cf* v) {
    return cf(std::sqrt(v[0].real() * v[0].real() + v[0].imag() * v[0].imag()), 0);
  });
  t.set(op::complex, [](const KernelContext& c) {
    complex_apply(c, [](const cf* v) { return cf(v[0].real(), v[1].real()); });
  });
  t.set(op::real, [](const KernelContext& c) {
    complex_apply(c, [](const cf* v) { return cf(v[0].real()); });
  });
  t.set(op::imag, [](const KernelContext& c) {
    complex_apply(c, [](const cf* v) { return cf(v[0].imag()); });
  });
  t.set(op::conj, [](const KernelContext& c) {
    complex_apply(c, [](const cf* v) { return std::conj(v[0]); });
  });
  t.set(op::angle, [](const KernelContext& c) {
    complex_apply(c, [](const cf* v) { return cf(std::atan2(v[0].imag(), v[0].real())); });
  });
  t.set(op::fft, fft);
  t.set(op::rfft, rfft);
  t.set(op::irfft, irfft);
  t.set(op::frames, frames);
  t.set(op::overlap_add, overlap_add);
  t.set(op::window, window);
}

}  // namespace loom::backends::cpu
