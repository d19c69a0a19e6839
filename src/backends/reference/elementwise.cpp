// Reference elementwise kernels: every dtype through double (floats) or int64 (integers).
#include <cmath>

#include "backends/reference/ref_util.h"
#include "ops/elementwise_functors.h"

namespace loom::backends::ref {
namespace {
namespace op = ir::op;
namespace fn = ops::fn;

// Applies `f(values...) -> double` over the broadcast output.
template <class F>
void broadcast_apply(const KernelContext& c, F&& f) {
  const NDArray& out = c.outputs[0];
  size_t n = c.inputs.size();
  std::vector<std::vector<int64_t>> st;
  for (const auto& in : c.inputs) st.push_back(broadcast_strides(in.shape(), out.shape()));
  double vals[3];
  for_each_index(out.shape(), [&](int64_t flat, const std::vector<int64_t>& idx) {
    for (size_t i = 0; i < n; ++i)
      vals[i] = load_element(c.inputs[i].dtype(), c.inputs[i].data(), dot(idx, st[i]));
    store_element(out.dtype(), out.data(), flat, f(vals));
  });
}

bool int_compute(DType t) { return !is_floating(t); }

void elementwise(const KernelContext& c, ir::OpId id) {
  DType in_t = c.inputs[0].dtype();
  bool gelu_tanh = id == op::gelu && c.attrs_as<GeluAttrs>().tanh_approximation;
  auto run = [&]<class T>() {
    bool done = fn::visit_binary(id, [&]<class Fn>() {
      broadcast_apply(c, [](const double* v) {
        return static_cast<double>(Fn::apply(static_cast<T>(v[0]), static_cast<T>(v[1])));
      });
    });
    if (!done)
      done = fn::visit_compare(id, [&]<class Fn>() {
        broadcast_apply(c, [](const double* v) {
          return Fn::apply(static_cast<T>(v[0]), static_cast<T>(v[1])) ? 1.0 : 0.0;
        });
      });
    if (!done)
      done = fn::visit_unary(id, gelu_tanh, [&]<class Fn>() {
        broadcast_apply(c, [](const double* v) {
          return static_cast<double>(Fn::apply(static_cast<T>(v[0])));
        });
      });
    LOOM_CHECK(done, "[reference] no elementwise kernel for op ", id);
  };
  if (int_compute(in_t))
    run.template operator()<int64_t>();
  else
    run.template operator()<double>();
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
    broadcast_apply(c, [&](const double* v) {
      return std::isnan(v[0]) ? v[0] : std::min(std::max(v[0], a.min), a.max);
    });
  });
  t.set(op::where, [](const KernelContext& c) {
    broadcast_apply(c, [](const double* v) { return v[0] != 0 ? v[1] : v[2]; });
  });
  t.set(op::cast, [](const KernelContext& c) {
    // Float -> integer truncates toward zero and saturates; NaN -> 0 (store_element does both).
    broadcast_apply(c, [](const double* v) { return std::isnan(v[0]) ? v[0] : v[0]; });
  });
}

}  // namespace loom::backends::ref
