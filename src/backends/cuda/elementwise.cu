// CUDA elementwise kernels: one templated kernel over the shared functors (ops/
// elementwise_functors.h), broadcasting by strides. Compute types follow the CPU backend: f32 for
// f32/f16/bf16 (rounded once on store), f64 for f64, int64 for integers and bool.
#include "backends/cuda/device_util.cuh"
#include "backends/cuda/pdl.cuh"
#include "ops/elementwise_functors.h"

namespace loom::backends::cuda {
namespace {
namespace op = ir::op;
namespace fn = ops::fn;

template <int N>
struct EwArgs {
  const void* in[N];
  int dt[N];
  void* out;
  int dto;
  int64_t n;
  bool flat;  // every operand is contiguous with the output's shape: offsets are the index
  StridedIndex<N> ix;
};

enum Kind { kValue, kCompare, kUnary, kWhere, kClamp, kCast };

template <class Fn, class T, int N, int K>
__global__ void ew_kernel(EwArgs<N> a, double lo, double hi) {
  pdl_begin();
  LOOM_GRID_STRIDE(i, a.n) {
    int64_t off[N];
    if (a.flat) {
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] = i;
    } else {
      a.ix.offsets(i, off);
    }
    if constexpr (K == kValue) {
      store(a.dto, a.out, i,
            Fn::apply(load<T>(a.dt[0], a.in[0], off[0]), load<T>(a.dt[1], a.in[1], off[1])));
    } else if constexpr (K == kCompare) {
      store(a.dto, a.out, i,
            Fn::apply(load<T>(a.dt[0], a.in[0], off[0]), load<T>(a.dt[1], a.in[1], off[1])));
    } else if constexpr (K == kUnary) {
      store(a.dto, a.out, i, Fn::apply(load<T>(a.dt[0], a.in[0], off[0])));
    } else if constexpr (K == kWhere) {
      bool c = load<int64_t>(a.dt[0], a.in[0], off[0]) != 0;
      store(a.dto, a.out, i,
            c ? load<T>(a.dt[1], a.in[1], off[1]) : load<T>(a.dt[2], a.in[2], off[2]));
    } else if constexpr (K == kClamp) {
      double v = load<double>(a.dt[0], a.in[0], off[0]);
      store(a.dto, a.out, i, v != v ? v : fmin(fmax(v, lo), hi));
    } else {  // cast
      store(a.dto, a.out, i, load<T>(a.dt[0], a.in[0], off[0]));
    }
  }
}

template <int N>
EwArgs<N> make_args(const KernelContext& c) {
  const NDArray& out = c.outputs[0];
  LOOM_CHECK(!is_packed(out.dtype()), "[cuda] elementwise ops do not write packed ",
             dtype_name(out.dtype()));
  EwArgs<N> a{};
  std::array<std::vector<int64_t>, N> st;
  a.flat = true;
  for (int k = 0; k < N; ++k) {
    const NDArray& x = c.inputs[static_cast<size_t>(k)];
    LOOM_CHECK(!is_packed(x.dtype()), "[cuda] elementwise ops do not read packed ",
               dtype_name(x.dtype()));
    a.in[k] = x.data();
    a.dt[k] = static_cast<int>(x.dtype());
    a.flat = a.flat && x.shape() == out.shape();
    st[static_cast<size_t>(k)] = broadcast_strides(x.shape(), out.shape());
  }
  a.out = out.data();
  a.dto = static_cast<int>(out.dtype());
  a.n = out.numel();
  if (!a.flat) a.ix = make_index<N>(dims_of(out.shape()), st);
  return a;
}

template <class Fn, class T, int N, int K>
void launch(const KernelContext& c, double lo = 0, double hi = 0) {
  auto a = make_args<N>(c);
  if (a.n == 0) return;
  launch_pdl(ew_kernel<Fn, T, N, K>, blocks_for(a.n), 256, 0, stream_for(c), a, lo, hi);
  LOOM_CUDA_LAUNCHED();
}

// Calls f.template operator()<T>() with the compute type of dtype t.
template <class F>
void by_compute_type(DType t, F&& f) {
  if (t == DType::f64)
    f.template operator()<double>();
  else if (is_floating(t))
    f.template operator()<float>();
  else
    f.template operator()<int64_t>();
}

struct NoFn {};

void elementwise(const KernelContext& c, ir::OpId id) {
  DType t = c.inputs[0].dtype();
  bool gelu_tanh = id == op::gelu && c.attrs_as<GeluAttrs>().tanh_approximation;
  bool done = fn::visit_binary(
      id, [&]<class Fn>() { by_compute_type(t, [&]<class T>() { launch<Fn, T, 2, kValue>(c); }); });
  if (!done)
    done = fn::visit_compare(id, [&]<class Fn>() {
      by_compute_type(t, [&]<class T>() { launch<Fn, T, 2, kCompare>(c); });
    });
  if (!done)
    done = fn::visit_unary(id, gelu_tanh, [&]<class Fn>() {
      // Float math only takes floats (type inference); integers reach the numeric ones only.
      if constexpr (std::is_same_v<Fn, fn::neg> || std::is_same_v<Fn, fn::abs> ||
                    std::is_same_v<Fn, fn::sign> || std::is_same_v<Fn, fn::square> ||
                    std::is_same_v<Fn, fn::logical_not>) {
        by_compute_type(t, [&]<class T>() { launch<Fn, T, 1, kUnary>(c); });
      } else {
        if (t == DType::f64)
          launch<Fn, double, 1, kUnary>(c);
        else
          launch<Fn, float, 1, kUnary>(c);
      }
    });
  LOOM_CHECK(done, "[cuda] no elementwise kernel for op ", id);
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
    t.set(id, [id](const KernelContext& c) { elementwise(c, id); });
  t.set(op::clamp, [](const KernelContext& c) {
    const auto& a = c.attrs_as<ClampAttrs>();
    launch<NoFn, double, 1, kClamp>(c, a.min, a.max);
  });
  t.set(op::where, [](const KernelContext& c) {
    if (is_floating(c.outputs[0].dtype()))
      launch<NoFn, double, 3, kWhere>(c);
    else
      launch<NoFn, int64_t, 3, kWhere>(c);
  });
  t.set(op::cast, [](const KernelContext& c) {
    // Integer to integer stays exact in int64; anything with a float goes through double (the
    // reference's rule: truncate toward zero, saturate, NaN -> 0).
    if (is_floating(c.inputs[0].dtype()) || is_floating(c.outputs[0].dtype()))
      launch<NoFn, double, 1, kCast>(c);
    else
      launch<NoFn, int64_t, 1, kCast>(c);
  });
}

}  // namespace loom::backends::cuda
