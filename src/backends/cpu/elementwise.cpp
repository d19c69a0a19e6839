// CPU elementwise kernels: tiles of contiguous runs, converted to a compute type (float for
// f32/f16/bf16, double for f64, int64 for integers), the functor applied in a tight loop the
// compiler vectorises, multithreaded over tiles.
#include <algorithm>
#include <array>
#include <cmath>

#include "backends/cpu/cpu_util.h"
#include "backends/cpu/fast_math.h"
#include "ops/elementwise_functors.h"

namespace loom::backends::cpu {

namespace {
namespace op = ir::op;
namespace fn = ops::fn;
constexpr int64_t kTile = 512;

template <class T>
constexpr DType dtype_of_compute() {
  if constexpr (std::is_same_v<T, float>)
    return DType::f32;
  else if constexpr (std::is_same_v<T, double>)
    return DType::f64;
  else if constexpr (std::is_same_v<T, int64_t>)
    return DType::i64;
  else
    return DType::boolean;  // uint8_t: results of comparisons
}

// f(n, in_ptrs, out_ptr) over tiles of compute type T; inputs converted as needed.
template <class T, class R, class F>
void run_tiles(const KernelContext& c, F&& f) {
  const NDArray& out = c.outputs[0];
  const bool out_direct = out.dtype() == dtype_of_compute<R>();
  walk_tiles<T>(
      c, dtype_of_compute<T>(), kTile, 16,
      [] {
        std::array<R, kTile> obuf;  // scratch: left uninitialised
        return obuf;
      },
      [&](std::array<R, kTile>& obuf, int64_t out_off, int64_t n, const T* const* in) {
        R* o = out_direct ? static_cast<R*>(out.data()) + out_off : obuf.data();
        f(n, in, o);
        if (!out_direct) store_run<R>(out.dtype(), out.data(), out_off, n, obuf.data());
      });
}

enum class Compute { f32, f64, i64 };
Compute compute_for(DType t) {
  if (t == DType::f64) return Compute::f64;
  if (is_floating(t)) return Compute::f32;
  return Compute::i64;
}

// One unary functor over a run; f32 exp/tanh/sigmoid/silu take the vectorisable fast_math forms.
template <class Fn, class T>
void unary_loop(int64_t n, const T* __restrict a, T* __restrict o) {
  if constexpr (std::is_same_v<T, float> && std::is_same_v<Fn, fn::exp>) {
    for (int64_t i = 0; i < n; ++i) o[i] = fast_exp(a[i]);
  } else if constexpr (std::is_same_v<T, float> && std::is_same_v<Fn, fn::tanh>) {
    for (int64_t i = 0; i < n; ++i) o[i] = fast_tanh(a[i]);
  } else if constexpr (std::is_same_v<T, float> && std::is_same_v<Fn, fn::sigmoid>) {
    for (int64_t i = 0; i < n; ++i) o[i] = fast_sigmoid(a[i]);
  } else if constexpr (std::is_same_v<T, float> && std::is_same_v<Fn, fn::silu>) {
    for (int64_t i = 0; i < n; ++i) o[i] = a[i] * fast_sigmoid(a[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) o[i] = static_cast<T>(Fn::apply(a[i]));
  }
}

template <class T>
void elementwise_typed(const KernelContext& c, ir::OpId id) {
  bool gelu_tanh = id == op::gelu && c.attrs_as<GeluAttrs>().tanh_approximation;
  bool done = fn::visit_binary(id, [&]<class Fn>() {
    run_tiles<T, T>(c, [](int64_t n, const T* const* in, T* o) {
      const T* __restrict a = in[0];
      const T* __restrict b = in[1];
      for (int64_t i = 0; i < n; ++i) o[i] = Fn::apply(a[i], b[i]);
    });
  });
  if (!done)
    done = fn::visit_compare(id, [&]<class Fn>() {
      run_tiles<T, uint8_t>(c, [](int64_t n, const T* const* in, uint8_t* o) {
        for (int64_t i = 0; i < n; ++i) o[i] = Fn::apply(in[0][i], in[1][i]);
      });
    });
  if (!done)
    done = fn::visit_unary(id, gelu_tanh, [&]<class Fn>() {
      run_tiles<T, T>(c, [](int64_t n, const T* const* in, T* o) { unary_loop<Fn>(n, in[0], o); });
    });
  LOOM_CHECK(done, "[cpu] no elementwise kernel for op ", id);
}

template <class F>
void dispatch(DType t, F&& f) {
  switch (compute_for(t)) {
    case Compute::f32:
      f.template operator()<float>();
      break;
    case Compute::f64:
      f.template operator()<double>();
      break;
    case Compute::i64:
      f.template operator()<int64_t>();
      break;
  }
}

}  // namespace

void register_elementwise(KernelTable& t) {
  for (ir::OpId id :
       {op::add,         op::sub,        op::mul,           op::div,         op::pow,
        op::maximum,     op::minimum,    op::mod,           op::neg,         op::abs,
        op::sign,        op::square,     op::reciprocal,    op::exp,         op::log,
        op::sqrt,        op::rsqrt,      op::sin,           op::cos,         op::tanh,
        op::sigmoid,     op::silu,       op::gelu,          op::erf,         op::floor,
        op::ceil,        op::round,      op::equal,         op::not_equal,   op::less,
        op::less_equal,  op::greater,    op::greater_equal, op::logical_and, op::logical_or,
        op::logical_xor, op::logical_not})
    t.set(id, [id](const KernelContext& c) {
      dispatch(c.inputs[0].dtype(), [&]<class T>() { elementwise_typed<T>(c, id); });
    });
  t.set(op::clamp, [](const KernelContext& c) {
    const auto& a = c.attrs_as<ClampAttrs>();
    dispatch(c.inputs[0].dtype(), [&]<class T>() {
      T lo, hi;
      if constexpr (std::is_integral_v<T>) {
        lo = static_cast<T>(std::max(a.min, -9.2e18));
        hi = static_cast<T>(std::min(a.max, 9.2e18));
      } else {
        lo = static_cast<T>(a.min);
        hi = static_cast<T>(a.max);
      }
      run_tiles<T, T>(c, [lo, hi](int64_t n, const T* const* in, T* o) {
        for (int64_t i = 0; i < n; ++i) {
          T v = in[0][i];
          o[i] = v < lo ? lo : (v > hi ? hi : v);  // NaN falls through unchanged
        }
      });
    });
  });
  t.set(op::where, [](const KernelContext& c) {
    dispatch(c.inputs[1].dtype(), [&]<class T>() {
      run_tiles<T, T>(c, [](int64_t n, const T* const* in, T* o) {
        for (int64_t i = 0; i < n; ++i) o[i] = in[0][i] != 0 ? in[1][i] : in[2][i];
      });
    });
  });
  t.set(op::cast, [](const KernelContext& c) {
    DType from = c.inputs[0].dtype(), to = c.outputs[0].dtype();
    // Float -> integer must truncate and saturate; go through double for those.
    if (to == DType::boolean) {
      run_tiles<double, uint8_t>(c, [](int64_t n, const double* const* in, uint8_t* o) {
        for (int64_t i = 0; i < n; ++i) o[i] = in[0][i] != 0;
      });
    } else if (is_floating(from) && !is_floating(to)) {
      run_tiles<double, double>(c, [](int64_t n, const double* const* in, double* o) {
        for (int64_t i = 0; i < n; ++i) o[i] = std::isnan(in[0][i]) ? 0 : std::trunc(in[0][i]);
      });
    } else {
      dispatch(is_floating(to) ? to : from, [&]<class T>() {
        run_tiles<T, T>(c, [](int64_t n, const T* const* in, T* o) {
          for (int64_t i = 0; i < n; ++i) o[i] = in[0][i];
        });
      });
    }
  });
}

void apply_f32(ir::OpId id, const Attrs* attrs, DType out, int64_t n, const float* const* in,
               float* o) {
  bool gelu_tanh = id == op::gelu && attrs_as<GeluAttrs>(*attrs).tanh_approximation;
  bool done = fn::visit_binary(id, [&]<class Fn>() {
    const float* __restrict a = in[0];
    const float* __restrict b = in[1];
    for (int64_t i = 0; i < n; ++i) o[i] = Fn::apply(a[i], b[i]);
  });
  if (!done)
    done = fn::visit_compare(id, [&]<class Fn>() {
      for (int64_t i = 0; i < n; ++i) o[i] = Fn::apply(in[0][i], in[1][i]) ? 1.0f : 0.0f;
    });
  if (!done)
    done = fn::visit_unary(id, gelu_tanh, [&]<class Fn>() { unary_loop<Fn>(n, in[0], o); });
  if (done) return;
  const float* a = in[0];
  switch (id) {
    case op::clamp: {
      const auto& ca = attrs_as<ClampAttrs>(*attrs);
      auto lo = static_cast<float>(ca.min), hi = static_cast<float>(ca.max);
      for (int64_t i = 0; i < n; ++i) o[i] = a[i] < lo ? lo : (a[i] > hi ? hi : a[i]);
      return;
    }
    case op::where:
      for (int64_t i = 0; i < n; ++i) o[i] = a[i] != 0 ? in[1][i] : in[2][i];
      return;
    case op::cast:  // within a region values are f32: a cast rounds to the target type
      if (out == DType::f16)
        for (int64_t i = 0; i < n; ++i) o[i] = f16_to_f32(f32_to_f16(a[i]));
      else if (out == DType::bf16)
        for (int64_t i = 0; i < n; ++i) o[i] = bf16_to_f32(f32_to_bf16(a[i]));
      else if (out == DType::boolean)
        for (int64_t i = 0; i < n; ++i) o[i] = a[i] != 0 ? 1.0f : 0.0f;
      else
        for (int64_t i = 0; i < n; ++i) o[i] = a[i];
      return;
    default:
      fail("[cpu] op ", ir::OpRegistry::get().info(id).name, " cannot run in a stitched region");
  }
}

}  // namespace loom::backends::cpu
