// CPU reductions and normalizations. Fast paths cover reductions over one contiguous block of
// axes (the common case: last axis, or all axes) and normalizations over trailing axes; any
// other layout falls back to the reference kernel (correct, slower).
#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/cpu/cpu_util.h"
#include "backends/row_split.h"

namespace loom::backends::cpu {
namespace {
namespace op = ir::op;

// [outer, len, inner] for reducing a consecutive block of axes; false if not consecutive.
bool block_view(const Shape& s, std::vector<int64_t> axes, int64_t& outer, int64_t& len,
                int64_t& inner) {
  int r = s.rank();
  std::vector<int> ax;
  if (axes.empty())
    for (int i = 0; i < r; ++i) ax.push_back(i);
  for (int64_t a : axes) ax.push_back(normalize_axis(a, r));
  std::sort(ax.begin(), ax.end());
  for (size_t i = 1; i < ax.size(); ++i)
    if (ax[i] != ax[i - 1] + 1) return false;
  outer = len = inner = 1;
  for (int i = 0; i < r; ++i) {
    if (!ax.empty() && i < ax.front())
      outer *= s[i];
    else if (!ax.empty() && i > ax.back())
      inner *= s[i];
    else
      len *= s[i];
  }
  if (ax.empty()) {
    len = 1;
    inner = s.numel();
  }
  return true;
}

template <class T>
struct Reducer {
  ir::OpId id;
  T init() const {
    switch (id) {
      case op::reduce_prod:
        return T(1);
      case op::reduce_max:
        return std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity()
                                                    : std::numeric_limits<T>::lowest();
      case op::reduce_min:
        return std::numeric_limits<T>::has_infinity ? std::numeric_limits<T>::infinity()
                                                    : std::numeric_limits<T>::max();
      default:
        return T(0);
    }
  }
  void combine(T* acc, const T* v, int64_t n) const {
    switch (id) {
      case op::reduce_prod:
        for (int64_t i = 0; i < n; ++i) acc[i] *= v[i];
        break;
      case op::reduce_max:
        for (int64_t i = 0; i < n; ++i)
          acc[i] = (v[i] > acc[i] || v[i] != v[i]) && acc[i] == acc[i] ? v[i] : acc[i];
        break;
      case op::reduce_min:
        for (int64_t i = 0; i < n; ++i)
          acc[i] = (v[i] < acc[i] || v[i] != v[i]) && acc[i] == acc[i] ? v[i] : acc[i];
        break;
      default:
        for (int64_t i = 0; i < n; ++i) acc[i] += v[i];
    }
  }
};

template <class T>
void reduce_typed(const KernelContext& c, ir::OpId id, int64_t outer, int64_t len, int64_t inner) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  Reducer<T> red{id};
  int64_t work = outer * (inner > 1 ? 1 : 1);
  parallel_for(c.pool, work, std::max<int64_t>(1, 65536 / std::max<int64_t>(len * inner, 1)),
               [&](int64_t b, int64_t e) {
                 std::vector<T> acc(static_cast<size_t>(std::max<int64_t>(inner, 1))),
                     row(static_cast<size_t>(std::max<int64_t>(inner, 256)));
                 for (int64_t o = b; o < e; ++o) {
                   std::fill(acc.begin(), acc.end(), red.init());
                   if (inner == 1) {
                     // Reduce a contiguous row in lanes of 256 (vectorisable), then fold the lanes.
                     std::vector<T> lanes(256, red.init());
                     for (int64_t j = 0; j < len; j += 256) {
                       int64_t n = std::min<int64_t>(256, len - j);
                       load_run<T>(x.dtype(), x.data(), o * len + j, 1, n, row.data());
                       red.combine(lanes.data(), row.data(), n);
                     }
                     for (int64_t l = 0; l < 256; ++l)
                       red.combine(acc.data(), &lanes[static_cast<size_t>(l)], 1);
                   } else {
                     for (int64_t j = 0; j < len; ++j) {
                       load_run<T>(x.dtype(), x.data(), (o * len + j) * inner, 1, inner,
                                   row.data());
                       red.combine(acc.data(), row.data(), inner);
                     }
                   }
                   if (id == op::reduce_mean)
                     for (auto& v : acc)
                       v = len ? v / static_cast<T>(len) : std::numeric_limits<T>::quiet_NaN();
                   store_run<T>(out.dtype(), out.data(), o * inner, inner, acc.data());
                 }
               });
}

void softmax_rows(const KernelContext& c, bool log) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  int64_t len = x.shape()[x.rank() - 1];
  int64_t rows = len ? x.numel() / len : 0;
  parallel_for(c.pool, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(len, 1)),
               [&](int64_t b, int64_t e) {
                 std::vector<float> v(static_cast<size_t>(len));
                 for (int64_t r = b; r < e; ++r) {
                   load_run<float>(x.dtype(), x.data(), r * len, 1, len, v.data());
                   float mx = -INFINITY;
                   for (float f : v) mx = std::max(mx, f);
                   double s = 0;
                   for (auto& f : v) {
                     float ex = std::exp(f - mx);
                     s += ex;
                     if (!log)
                       f = ex;
                     else
                       f -= mx;
                   }
                   float scale = static_cast<float>(1.0 / s), ls = static_cast<float>(std::log(s));
                   for (auto& f : v) f = log ? f - ls : f * scale;
                   store_run<float>(out.dtype(), out.data(), r * len, len, v.data());
                 }
               });
}

void norm_rows(const KernelContext& c, bool rms) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  const auto& a = c.attrs_as<NormAttrs>();
  const auto [axis, rows, cols] = row_split(x.shape(), a.axis);
  std::vector<float> gamma, beta;
  if (c.inputs.size() > 1) {
    gamma.resize(static_cast<size_t>(cols));
    load_run<float>(c.inputs[1].dtype(), c.inputs[1].data(), 0, 1, cols, gamma.data());
  }
  if (c.inputs.size() > 2) {
    beta.resize(static_cast<size_t>(cols));
    load_run<float>(c.inputs[2].dtype(), c.inputs[2].data(), 0, 1, cols, beta.data());
  }
  parallel_for(c.pool, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)),
               [&](int64_t b, int64_t e) {
                 std::vector<float> v(static_cast<size_t>(cols));
                 for (int64_t r = b; r < e; ++r) {
                   load_run<float>(x.dtype(), x.data(), r * cols, 1, cols, v.data());
                   double mean = 0, var = 0;
                   if (!rms) {
                     for (float f : v) mean += f;
                     mean /= static_cast<double>(cols);
                   }
                   for (float f : v) var += (f - mean) * (f - mean);
                   var /= static_cast<double>(cols);
                   float inv = static_cast<float>(1.0 / std::sqrt(var + a.eps)),
                         m = static_cast<float>(mean);
                   for (int64_t j = 0; j < cols; ++j) {
                     float y = (v[static_cast<size_t>(j)] - m) * inv;
                     if (!gamma.empty()) y *= gamma[static_cast<size_t>(j)];
                     if (!beta.empty()) y += beta[static_cast<size_t>(j)];
                     v[static_cast<size_t>(j)] = y;
                   }
                   store_run<float>(out.dtype(), out.data(), r * cols, cols, v.data());
                 }
               });
}

// add_rms_norm over rows of `cols` (a, b and the outputs of one shape, gamma over the whole row):
// one pass writes the sum and accumulates its squares, a second scales it. The math is
// norm_rows' (squares of the stored sum in double, f32 scaling), so the outputs equal add →
// rms_norm on this backend bit for bit.
void add_rms_norm_rows(const KernelContext& c) {
  const NDArray &a = c.inputs[0], &b = c.inputs[1], &sum = c.outputs[0], &out = c.outputs[1];
  const auto& at = c.attrs_as<NormAttrs>();
  const auto [axis, rows, cols] = row_split(sum.shape(), at.axis);
  std::vector<float> gamma;
  if (c.inputs.size() > 2) {
    gamma.resize(static_cast<size_t>(cols));
    load_run<float>(c.inputs[2].dtype(), c.inputs[2].data(), 0, 1, cols, gamma.data());
  }
  const bool f32 = sum.dtype() == DType::f32;
  const auto n = static_cast<size_t>(cols);
  parallel_for(c.pool, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)),
               [&](int64_t begin, int64_t end) {
                 std::vector<float> s(f32 ? 0 : n), t(f32 ? 0 : n);
                 for (int64_t r = begin; r < end; ++r) {
                   const int64_t off = r * cols;
                   double ss = 0;
                   float* v = f32 ? sum.data_as<float>() + off : s.data();
                   if (f32) {
                     const float *pa = a.data_as<float>() + off, *pb = b.data_as<float>() + off;
                     for (size_t j = 0; j < n; ++j) {
                       float x = pa[j] + pb[j];
                       v[j] = x;
                       ss += static_cast<double>(x) * x;
                     }
                   } else {
                     // f16/bf16: add in f32, round as `add` does; the norm reads the rounded sum.
                     load_run<float>(a.dtype(), a.data(), off, 1, cols, v);
                     load_run<float>(b.dtype(), b.data(), off, 1, cols, t.data());
                     for (size_t j = 0; j < n; ++j) v[j] += t[j];
                     store_run<float>(sum.dtype(), sum.data(), off, cols, v);
                     load_run<float>(sum.dtype(), sum.data(), off, 1, cols, v);
                     for (size_t j = 0; j < n; ++j) ss += static_cast<double>(v[j]) * v[j];
                   }
                   float inv =
                       static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(cols) + at.eps));
                   float* o = f32 ? out.data_as<float>() + off : t.data();
                   if (gamma.empty())
                     for (size_t j = 0; j < n; ++j) o[j] = v[j] * inv;
                   else
                     for (size_t j = 0; j < n; ++j) o[j] = v[j] * inv * gamma[j];
                   if (!f32) store_run<float>(out.dtype(), out.data(), off, cols, o);
                 }
               });
}

void arg_rows(const KernelContext& c, bool is_max) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  int64_t len = x.shape()[x.rank() - 1], rows = x.numel() / len;
  parallel_for(c.pool, rows, 1, [&](int64_t b, int64_t e) {
    std::vector<double> v(static_cast<size_t>(len));
    for (int64_t r = b; r < e; ++r) {
      load_run<double>(x.dtype(), x.data(), r * len, 1, len, v.data());
      int64_t best = 0;
      for (int64_t j = 1; j < len && !std::isnan(v[static_cast<size_t>(best)]); ++j) {
        double cur = v[static_cast<size_t>(j)], bv = v[static_cast<size_t>(best)];
        if (std::isnan(cur) || (is_max ? cur > bv : cur < bv)) best = j;
      }
      out.data_as<int64_t>()[r] = best;
    }
  });
}

}  // namespace

void register_reduction(KernelTable& t) {
  const KernelTable& ref = reference_kernels();
  for (ir::OpId id :
       {op::reduce_sum, op::reduce_mean, op::reduce_max, op::reduce_min, op::reduce_prod}) {
    KernelFn fallback = *ref.find(id);
    t.set(id, [id, fallback](const KernelContext& c) {
      int64_t outer, len, inner;
      const NDArray& x = c.inputs[0];
      if (!block_view(x.shape(), c.attrs_as<ReduceAttrs>().axes, outer, len, inner) ||
          x.numel() == 0)
        return fallback(c);
      if (x.dtype() == DType::f64)
        reduce_typed<double>(c, id, outer, len, inner);
      else if (is_floating(x.dtype()))
        reduce_typed<float>(c, id, outer, len, inner);
      else
        reduce_typed<int64_t>(c, id, outer, len, inner);
    });
  }
  for (ir::OpId id : {op::argmax, op::argmin}) {
    KernelFn fallback = *ref.find(id);
    t.set(id, [id, fallback](const KernelContext& c) {
      const NDArray& x = c.inputs[0];
      if (normalize_axis(c.attrs_as<ArgReduceAttrs>().axis, x.rank()) != x.rank() - 1)
        return fallback(c);
      arg_rows(c, id == op::argmax);
    });
  }
  for (ir::OpId id : {op::softmax, op::log_softmax}) {
    KernelFn fallback = *ref.find(id);
    t.set(id, [id, fallback](const KernelContext& c) {
      const NDArray& x = c.inputs[0];
      if (normalize_axis(c.attrs_as<AxisAttrs>().axis, x.rank()) != x.rank() - 1 ||
          x.dtype() == DType::f64)
        return fallback(c);
      softmax_rows(c, id == op::log_softmax);
    });
  }
  for (ir::OpId id : {op::layer_norm, op::rms_norm}) {
    KernelFn fallback = *ref.find(id);
    t.set(id, [id, fallback](const KernelContext& c) {
      const NDArray& x = c.inputs[0];
      // Fast path: gamma/beta hold exactly the normalised dims' elements.
      bool exact = x.dtype() != DType::f64;
      const int64_t cols = row_split(x.shape(), c.attrs_as<NormAttrs>().axis).cols;
      for (size_t i = 1; i < c.inputs.size(); ++i) exact = exact && c.inputs[i].numel() == cols;
      if (!exact) return fallback(c);
      norm_rows(c, id == op::rms_norm);
    });
  }
  KernelFn add_norm_fallback = *ref.find(op::add_rms_norm);
  t.set(op::add_rms_norm, [add_norm_fallback](const KernelContext& c) {
    const NDArray& sum = c.outputs[0];
    const int64_t cols = row_split(sum.shape(), c.attrs_as<NormAttrs>().axis).cols;
    // Fast path: no broadcast between a and b, gamma over exactly the normalised dims.
    bool fast = sum.dtype() != DType::f64 && c.inputs[0].shape() == sum.shape() &&
                c.inputs[1].shape() == sum.shape() &&
                (c.inputs.size() < 3 || c.inputs[2].numel() == cols);
    if (!fast) return add_norm_fallback(c);
    add_rms_norm_rows(c);
  });
}

}  // namespace loom::backends::cpu
