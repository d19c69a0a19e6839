// Reference complex, FFT and spectral kernels: std::complex<double> throughout and a naive DFT
// (O(n^2) per line, twiddles from exact integer phases) — the oracle for the CPU FFT library.
#include <cmath>
#include <complex>

#include "backends/reference/ref_util.h"
#include "ops/spectral_util.h"

namespace loom::backends::ref {
namespace {
namespace op = ir::op;
using cd = std::complex<double>;
constexpr double kPi = 3.14159265358979323846;

cd load_c(const NDArray& a, int64_t i) {
  if (a.dtype() == DType::c64) {
    const auto* p = static_cast<const float*>(a.data());
    return {p[2 * i], p[2 * i + 1]};
  }
  return {load_element(a.dtype(), a.data(), i), 0.0};
}
void store_c(const NDArray& a, int64_t i, cd v) {
  auto* p = static_cast<float*>(a.data());
  p[2 * i] = static_cast<float>(v.real());
  p[2 * i + 1] = static_cast<float>(v.imag());
}

// out[i] = f(inputs...) over the broadcast output, complex in, complex or real out.
template <class F>
void complex_apply(const KernelContext& c, F&& f) {
  const NDArray& out = c.outputs[0];
  std::vector<std::vector<int64_t>> st;
  for (const auto& in : c.inputs) st.push_back(broadcast_strides(in.shape(), out.shape()));
  for_each_index(out.shape(), [&](int64_t flat, const std::vector<int64_t>& idx) {
    cd v[2];
    for (size_t i = 0; i < c.inputs.size(); ++i) v[i] = load_c(c.inputs[i], dot(idx, st[i]));
    cd r = f(v);
    if (out.dtype() == DType::c64)
      store_c(out, flat, r);
    else
      store_element(out.dtype(), out.data(), flat, r.real());
  });
}

// Wraps an elementwise kernel: complex operands take `f`, the rest the original kernel.
void wrap_complex(KernelTable& t, ir::OpId id, cd (*f)(const cd*)) {
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

// In-place DFT of every line of `a` (contiguous, `shape`) along `axis`.
void dft_axis(std::vector<cd>& a, const Shape& shape, int axis, bool inverse) {
  int64_t n = shape[axis], inner = 1, outer = 1;
  for (int d = axis + 1; d < shape.rank(); ++d) inner *= shape[d];
  for (int d = 0; d < axis; ++d) outer *= shape[d];
  std::vector<cd> w(static_cast<size_t>(n)), line(static_cast<size_t>(n));
  double sign = inverse ? 1 : -1;
  for (int64_t k = 0; k < n; ++k)
    w[static_cast<size_t>(k)] =
        std::polar(1.0, sign * 2 * kPi * static_cast<double>(k) / static_cast<double>(n));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      int64_t base = o * n * inner + i;
      for (int64_t k = 0; k < n; ++k) {
        cd acc = 0;
        for (int64_t j = 0; j < n; ++j)
          acc += a[static_cast<size_t>(base + j * inner)] * w[static_cast<size_t>(j * k % n)];
        line[static_cast<size_t>(k)] = acc;
      }
      for (int64_t k = 0; k < n; ++k)
        a[static_cast<size_t>(base + k * inner)] = line[static_cast<size_t>(k)];
    }
}

std::vector<int> axes_of(const FftAttrs& a, int rank) {
  std::vector<int> out;
  for (int64_t ax : a.axes) out.push_back(static_cast<int>(ax < 0 ? ax + rank : ax));
  return out;
}

double scale_of(FftScaling s, const Shape& real_shape, const std::vector<int>& axes) {
  double v = 1;
  for (int ax : axes) v *= static_cast<double>(real_shape[ax]);
  return s == FftScaling::size ? 1 / v : (s == FftScaling::unitary ? 1 / std::sqrt(v) : 1.0);
}

std::vector<cd> load_all(const NDArray& x) {
  std::vector<cd> a(static_cast<size_t>(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) a[static_cast<size_t>(i)] = load_c(x, i);
  return a;
}

void fft(const KernelContext& c) {
  const auto& at = c.attrs_as<FftAttrs>();
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  auto axes = axes_of(at, x.rank());
  auto a = load_all(x);
  for (int ax : axes) dft_axis(a, x.shape(), ax, at.inverse);
  double s = scale_of(at.scaling, x.shape(), axes);
  for (int64_t i = 0; i < out.numel(); ++i) store_c(out, i, a[static_cast<size_t>(i)] * s);
}

void rfft(const KernelContext& c) {
  const auto& at = c.attrs_as<FftAttrs>();
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  auto axes = axes_of(at, x.rank());
  auto a = load_all(x);
  for (int ax : axes) dft_axis(a, x.shape(), ax, false);
  double s = scale_of(at.scaling, x.shape(), axes);
  // Keep bins [0, n/2] of the last listed axis.
  std::vector<int64_t> in_st = contiguous_strides(x.shape());
  for_each_index(out.shape(), [&](int64_t flat, const std::vector<int64_t>& idx) {
    store_c(out, flat, a[static_cast<size_t>(dot(idx, in_st))] * s);
  });
}

void irfft(const KernelContext& c) {
  const auto& at = c.attrs_as<FftAttrs>();
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  auto axes = axes_of(at, x.rank());
  int last = axes.back();
  auto a = load_all(x);
  // numpy irfftn: inverse complex transforms over the other axes, then half spectrum -> real.
  for (size_t i = 0; i + 1 < axes.size(); ++i) dft_axis(a, x.shape(), axes[i], true);
  int64_t n = out.shape()[last], m = x.shape()[last];
  LOOM_CHECK(n / 2 + 1 == m, "[fft] irfft: ", m, " bins do not make a signal of length ", n);
  double s = scale_of(at.scaling, out.shape(), axes);
  std::vector<int64_t> in_st = contiguous_strides(x.shape());
  std::vector<cd> y(static_cast<size_t>(n));
  Shape lines = out.shape();
  lines[last] = 1;
  std::vector<int64_t> out_st = contiguous_strides(out.shape());
  for_each_index(lines, [&](int64_t, const std::vector<int64_t>& idx) {
    int64_t ib = dot(idx, in_st), ob = dot(idx, out_st);
    int64_t is = in_st[static_cast<size_t>(last)], os = out_st[static_cast<size_t>(last)];
    // The full spectrum: Y[k] = X[k] for k <= n/2, conj(X[n-k]) above; the real part of the
    // inverse DFT ignores the imaginary parts of bin 0 and of bin n/2 (n even), as numpy does.
    for (int64_t k = 0; k < n; ++k)
      y[static_cast<size_t>(k)] = k <= n / 2 ? a[static_cast<size_t>(ib + k * is)]
                                             : std::conj(a[static_cast<size_t>(ib + (n - k) * is)]);
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < n; ++k) {
        double ph = 2 * kPi * static_cast<double>(j * k % n) / static_cast<double>(n);
        acc += y[static_cast<size_t>(k)].real() * std::cos(ph) -
               y[static_cast<size_t>(k)].imag() * std::sin(ph);
      }
      static_cast<float*>(out.data())[ob + j * os] = static_cast<float>(acc * s);
    }
  });
}

void frames(const KernelContext& c) {
  const auto& at = c.attrs_as<FramesAttrs>();
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  int64_t t = x.shape()[x.rank() - 1], f = out.shape()[out.rank() - 2], l = at.frame_length;
  int64_t batch = x.numel() / std::max<int64_t>(t, 1);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < f; ++i)
      for (int64_t j = 0; j < l; ++j) {
        int64_t s = i * at.hop + j - at.pad;  // numpy "reflect": the edge sample is not repeated
        s = s < 0 ? -s : (s >= t ? 2 * (t - 1) - s : s);
        copy_element(x.dtype(), x.data(), b * t + s, out.data(), (b * f + i) * l + j);
      }
}

void overlap_add(const KernelContext& c) {
  const auto& at = c.attrs_as<FramesAttrs>();
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  int64_t f = x.shape()[x.rank() - 2], l = x.shape()[x.rank() - 1], t = out.shape()[out.rank() - 1];
  int64_t batch = out.numel() / std::max<int64_t>(t, 1);
  std::vector<double> acc(static_cast<size_t>(t));
  for (int64_t b = 0; b < batch; ++b) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t i = 0; i < f; ++i)
      for (int64_t j = 0; j < l; ++j)
        acc[static_cast<size_t>(i * at.hop + j)] +=
            load_element(x.dtype(), x.data(), (b * f + i) * l + j);
    for (int64_t k = 0; k < t; ++k)
      store_element(out.dtype(), out.data(), b * t + k, acc[static_cast<size_t>(k)]);
  }
}

void window(const KernelContext& c) {
  const auto& at = c.attrs_as<WindowAttrs>();
  auto w = spectral::window_values(at.kind, at.length, at.periodic, at.param);
  for (size_t i = 0; i < w.size(); ++i)
    store_element(c.outputs[0].dtype(), c.outputs[0].data(), static_cast<int64_t>(i), w[i]);
}

}  // namespace

void register_fft(KernelTable& t) {
  wrap_complex(t, op::add, [](const cd* v) { return v[0] + v[1]; });
  wrap_complex(t, op::sub, [](const cd* v) { return v[0] - v[1]; });
  wrap_complex(t, op::mul, [](const cd* v) { return v[0] * v[1]; });
  wrap_complex(t, op::div, [](const cd* v) { return v[0] / v[1]; });
  wrap_complex(t, op::neg, [](const cd* v) { return -v[0]; });
  wrap_complex(t, op::abs, [](const cd* v) { return cd(std::abs(v[0]), 0); });
  t.set(op::complex, [](const KernelContext& c) {
    complex_apply(c, [](const cd* v) { return cd(v[0].real(), v[1].real()); });
  });
  t.set(op::real, [](const KernelContext& c) {
    complex_apply(c, [](const cd* v) { return cd(v[0].real()); });
  });
  t.set(op::imag, [](const KernelContext& c) {
    complex_apply(c, [](const cd* v) { return cd(v[0].imag()); });
  });
  t.set(op::conj, [](const KernelContext& c) {
    complex_apply(c, [](const cd* v) { return std::conj(v[0]); });
  });
  t.set(op::angle, [](const KernelContext& c) {
    complex_apply(c, [](const cd* v) { return cd(std::arg(v[0])); });
  });
  t.set(op::fft, fft);
  t.set(op::rfft, rfft);
  t.set(op::irfft, irfft);
  t.set(op::frames, frames);
  t.set(op::overlap_add, overlap_add);
  t.set(op::window, window);
}

}  // namespace loom::backends::ref
