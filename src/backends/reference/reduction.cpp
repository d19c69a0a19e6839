// Reference reductions and normalizations, accumulating in double.
#include <cmath>
#include <limits>

#include "backends/reference/ref_util.h"
#include "backends/row_split.h"

namespace loom::backends::ref {
namespace {
namespace op = ir::op;

// Maps each input index to its output index by zeroing reduced axes.
std::vector<int64_t> reduce_out_strides(const Shape& in, const std::vector<int64_t>& axes) {
  std::vector<bool> red(static_cast<size_t>(in.rank()), axes.empty());
  for (int64_t a : axes) red[static_cast<size_t>(normalize_axis(a, in.rank()))] = true;
  std::vector<int64_t> st(static_cast<size_t>(in.rank()), 0);
  int64_t s = 1;
  for (int i = in.rank() - 1; i >= 0; --i) {
    if (red[static_cast<size_t>(i)]) continue;
    st[static_cast<size_t>(i)] = s;
    s *= in[i];
  }
  return st;
}

void reduce(const KernelContext& c, ir::OpId id) {
  const NDArray& x = c.inputs[0];
  const NDArray& out = c.outputs[0];
  const auto& a = c.attrs_as<ReduceAttrs>();
  int64_t n_out = out.numel();
  double init = id == op::reduce_prod  ? 1
                : id == op::reduce_max ? -std::numeric_limits<double>::infinity()
                : id == op::reduce_min ? std::numeric_limits<double>::infinity()
                                       : 0;
  std::vector<double> acc(static_cast<size_t>(n_out), init);
  std::vector<int64_t> count(static_cast<size_t>(n_out), 0);
  auto st = reduce_out_strides(x.shape(), a.axes);
  for_each_index(x.shape(), [&](int64_t flat, const std::vector<int64_t>& idx) {
    double v = load_element(x.dtype(), x.data(), flat);
    auto o = static_cast<size_t>(dot(idx, st));
    double& r = acc[o];
    ++count[o];
    switch (id) {
      case op::reduce_sum:
      case op::reduce_mean:
        r += v;
        break;
      case op::reduce_prod:
        r *= v;
        break;
      case op::reduce_max:
        if (v > r || std::isnan(v)) r = std::isnan(r) ? r : v;
        break;
      case op::reduce_min:
        if (v < r || std::isnan(v)) r = std::isnan(r) ? r : v;
        break;
    }
  });
  for (int64_t i = 0; i < n_out; ++i) {
    double v = acc[static_cast<size_t>(i)];
    if (id == op::reduce_mean)
      v = count[static_cast<size_t>(i)] ? v / static_cast<double>(count[static_cast<size_t>(i)])
                                        : NAN;
    if ((id == op::reduce_max || id == op::reduce_min) && count[static_cast<size_t>(i)] == 0 &&
        !is_floating(x.dtype()))
      LOOM_CHECK(false, "[", id == op::reduce_max ? "reduce_max" : "reduce_min",
                 "] empty reduction of an integer tensor");
    store_element(out.dtype(), out.data(), i, v);
  }
}

void arg_reduce(const KernelContext& c, bool is_max) {
  const NDArray& x = c.inputs[0];
  const NDArray& out = c.outputs[0];
  int axis = normalize_axis(c.attrs_as<ArgReduceAttrs>().axis, x.rank());
  auto st = reduce_out_strides(x.shape(), {axis});
  std::vector<double> best(static_cast<size_t>(out.numel()));
  std::vector<int64_t> arg(static_cast<size_t>(out.numel()), -1);
  for_each_index(x.shape(), [&](int64_t flat, const std::vector<int64_t>& idx) {
    double v = load_element(x.dtype(), x.data(), flat);
    auto o = static_cast<size_t>(dot(idx, st));
    bool take = arg[o] < 0 ||
                (!std::isnan(best[o]) && (std::isnan(v) || (is_max ? v > best[o] : v < best[o])));
    if (take) {
      best[o] = v;
      arg[o] = idx[static_cast<size_t>(axis)];
    }
  });
  for (size_t i = 0; i < arg.size(); ++i) out.data_as<int64_t>()[i] = arg[i];
}

// Rows x cols view for normalisations over [axis, rank).

void softmax(const KernelContext& c, bool log) {
  const NDArray& x = c.inputs[0];
  const NDArray& out = c.outputs[0];
  int axis = normalize_axis(c.attrs_as<AxisAttrs>().axis, x.rank());
  int64_t len = x.shape()[axis], inner = 1;
  for (int i = axis + 1; i < x.rank(); ++i) inner *= x.shape()[i];
  int64_t outer = (len * inner) != 0 ? x.numel() / (len * inner) : 0;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      int64_t base = o * len * inner + in;
      double mx = -INFINITY;
      for (int64_t j = 0; j < len; ++j)
        mx = std::max(mx, load_element(x.dtype(), x.data(), base + j * inner));
      double s = 0;
      for (int64_t j = 0; j < len; ++j)
        s += std::exp(load_element(x.dtype(), x.data(), base + j * inner) - mx);
      for (int64_t j = 0; j < len; ++j) {
        double v = load_element(x.dtype(), x.data(), base + j * inner) - mx;
        store_element(out.dtype(), out.data(), base + j * inner,
                      log ? v - std::log(s) : std::exp(v) / s);
      }
    }
}

void norm(const KernelContext& c, bool rms) {
  const NDArray& x = c.inputs[0];
  const NDArray& out = c.outputs[0];
  const auto& a = c.attrs_as<NormAttrs>();
  const RowSplit rv = row_split(x.shape(), a.axis);
  const int axis = rv.axis;
  Shape norm_shape(std::vector<int64_t>(x.shape().dims().begin() + axis, x.shape().dims().end()));
  std::vector<std::vector<int64_t>> pst;
  for (size_t i = 1; i < c.inputs.size(); ++i)
    pst.push_back(broadcast_strides(c.inputs[i].shape(), norm_shape));
  std::vector<int64_t> idx(static_cast<size_t>(norm_shape.rank()));
  for (int64_t r = 0; r < rv.rows; ++r) {
    int64_t base = r * rv.cols;
    double mean = 0, var = 0;
    if (!rms) {
      for (int64_t j = 0; j < rv.cols; ++j) mean += load_element(x.dtype(), x.data(), base + j);
      mean /= static_cast<double>(rv.cols);
    }
    for (int64_t j = 0; j < rv.cols; ++j) {
      double d = load_element(x.dtype(), x.data(), base + j) - mean;
      var += d * d;
    }
    var /= static_cast<double>(rv.cols);
    double inv = 1.0 / std::sqrt(var + a.eps);
    for (int64_t j = 0; j < rv.cols; ++j) {
      int64_t rem = j;
      for (int d = norm_shape.rank() - 1; d >= 0; --d) {
        idx[static_cast<size_t>(d)] = rem % norm_shape[d];
        rem /= norm_shape[d];
      }
      double v = (load_element(x.dtype(), x.data(), base + j) - mean) * inv;
      if (pst.size() > 0)
        v *= load_element(c.inputs[1].dtype(), c.inputs[1].data(), dot(idx, pst[0]));
      if (pst.size() > 1)
        v += load_element(c.inputs[2].dtype(), c.inputs[2].data(), dot(idx, pst[1]));
      store_element(out.dtype(), out.data(), base + j, v);
    }
  }
}

}  // namespace

// sum = a + b stored as `add` stores it (rounded to the dtype), then rms_norm of that stored sum:
// exactly the unfused ops. Declared in ref_util.h (add_rms_norm_quantized_matmul reuses it).
void add_rms_norm(const KernelContext& c) {
  const NDArray &a = c.inputs[0], &b = c.inputs[1], &sum = c.outputs[0];
  auto sa = broadcast_strides(a.shape(), sum.shape()),
       sb = broadcast_strides(b.shape(), sum.shape());
  for_each_index(sum.shape(), [&](int64_t flat, const std::vector<int64_t>& idx) {
    double v = load_element(a.dtype(), a.data(), dot(idx, sa)) +
               load_element(b.dtype(), b.data(), dot(idx, sb));
    store_element(sum.dtype(), sum.data(), flat, v);
  });
  std::vector<NDArray> in{sum};
  if (c.inputs.size() > 2) in.push_back(c.inputs[2]);
  norm({in, c.outputs.subspan(1, 1), c.attrs, c.pool}, true);
}

void register_reduction(KernelTable& t) {
  for (ir::OpId id :
       {op::reduce_sum, op::reduce_mean, op::reduce_max, op::reduce_min, op::reduce_prod})
    t.set(id, [id](const KernelContext& c) { reduce(c, id); });
  t.set(op::argmax, [](const KernelContext& c) { arg_reduce(c, true); });
  t.set(op::argmin, [](const KernelContext& c) { arg_reduce(c, false); });
}

void register_normalization(KernelTable& t) {
  t.set(op::softmax, [](const KernelContext& c) { softmax(c, false); });
  t.set(op::log_softmax, [](const KernelContext& c) { softmax(c, true); });
  t.set(op::layer_norm, [](const KernelContext& c) { norm(c, false); });
  t.set(op::rms_norm, [](const KernelContext& c) { norm(c, true); });
  t.set(op::add_rms_norm, add_rms_norm);
}

}  // namespace loom::backends::ref
