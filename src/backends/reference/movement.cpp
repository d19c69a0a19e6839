// Reference data movement: each op maps an output index to a source index, then copies.
#include <cmath>

#include "backends/reference/ref_util.h"
#include "ops/shape_rules.h"
#include "ops/slice_starts.h"

namespace loom::backends::ref {
namespace {
namespace op = ir::op;

// Copies out[idx] = in[src(idx)] for every output index.
template <class F>
void gather_copy(const NDArray& in, const NDArray& out, F&& src) {
  auto st = contiguous_strides(in.shape());
  std::vector<int64_t> s(static_cast<size_t>(in.rank()));
  for_each_index(out.shape(), [&](int64_t flat, const std::vector<int64_t>& idx) {
    src(idx, s);
    copy_element(in.dtype(), in.data(), dot(s, st), out.data(), flat);
  });
}

void transpose(const KernelContext& c) {
  const auto& perm = c.attrs_as<PermuteAttrs>().perm;
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  gather_copy(x, out, [&](const std::vector<int64_t>& idx, std::vector<int64_t>& s) {
    for (size_t i = 0; i < perm.size(); ++i)
      s[static_cast<size_t>(normalize_axis(perm[i], x.rank()))] = idx[i];
  });
}

void expand(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  int off = out.rank() - x.rank();
  gather_copy(x, out, [&](const std::vector<int64_t>& idx, std::vector<int64_t>& s) {
    for (int i = 0; i < x.rank(); ++i)
      s[static_cast<size_t>(i)] = x.shape()[i] == 1 ? 0 : idx[static_cast<size_t>(i + off)];
  });
}

void slice(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  auto r = ops::resolve_slice(x.shape(), c.attrs_as<SliceAttrs>());
  gather_copy(x, out, [&](const std::vector<int64_t>& idx, std::vector<int64_t>& s) {
    for (size_t i = 0; i < idx.size(); ++i) s[i] = r.starts[i] + idx[i] * r.steps[i];
  });
}

void flip(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  const auto& axes = c.attrs_as<AxesAttrs>().axes;
  std::vector<bool> f(static_cast<size_t>(x.rank()), axes.empty());
  for (int64_t a : axes) f[static_cast<size_t>(normalize_axis(a, x.rank()))] = true;
  gather_copy(x, out, [&](const std::vector<int64_t>& idx, std::vector<int64_t>& s) {
    for (size_t i = 0; i < idx.size(); ++i)
      s[i] = f[i] ? x.shape()[static_cast<int>(i)] - 1 - idx[i] : idx[i];
  });
}

void tile(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  gather_copy(x, out, [&](const std::vector<int64_t>& idx, std::vector<int64_t>& s) {
    for (size_t i = 0; i < idx.size(); ++i) s[i] = idx[i] % x.shape()[static_cast<int>(i)];
  });
}

void pad(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  const auto& a = c.attrs_as<PadAttrs>();
  auto st = contiguous_strides(x.shape());
  for_each_index(out.shape(), [&](int64_t flat, const std::vector<int64_t>& idx) {
    int64_t src = 0;
    bool inside = true;
    for (int i = 0; i < x.rank(); ++i) {
      int64_t n = x.shape()[i], p = idx[static_cast<size_t>(i)] - a.before[static_cast<size_t>(i)];
      if (p < 0 || p >= n) {
        if (a.mode == PadMode::constant) {
          inside = false;
          break;
        }
        if (a.mode == PadMode::edge)
          p = p < 0 ? 0 : n - 1;
        else {  // reflect (no edge repeat), like numpy 'reflect'
          int64_t period = 2 * (n - 1);
          p = period ? ((p % period) + period) % period : 0;
          if (p >= n) p = period - p;
        }
      }
      src += p * st[static_cast<size_t>(i)];
    }
    if (inside)
      copy_element(x.dtype(), x.data(), src, out.data(), flat);
    else
      store_element(out.dtype(), out.data(), flat, a.value);
  });
}

void concat(const KernelContext& c) {
  const NDArray& out = c.outputs[0];
  int axis = normalize_axis(c.attrs_as<ConcatAttrs>().axis, out.rank());
  auto ost = contiguous_strides(out.shape());
  int64_t base = 0;
  for (const NDArray& x : c.inputs) {
    auto st = contiguous_strides(x.shape());
    for_each_index(x.shape(), [&](int64_t flat, const std::vector<int64_t>& idx) {
      std::vector<int64_t> o = idx;
      o[static_cast<size_t>(axis)] += base;
      copy_element(x.dtype(), x.data(), flat, out.data(), dot(o, ost));
    });
    base += x.shape()[axis];
  }
}

void split(const KernelContext& c) {
  const NDArray& x = c.inputs[0];
  int axis = normalize_axis(c.attrs_as<SplitAttrs>().axis, x.rank());
  auto xst = contiguous_strides(x.shape());
  int64_t base = 0;
  for (const NDArray& out : c.outputs) {
    for_each_index(out.shape(), [&](int64_t flat, const std::vector<int64_t>& idx) {
      std::vector<int64_t> s = idx;
      s[static_cast<size_t>(axis)] += base;
      copy_element(x.dtype(), x.data(), dot(s, xst), out.data(), flat);
    });
    base += out.shape()[axis];
  }
}

void gather(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &ind = c.inputs[1], &out = c.outputs[0];
  int axis = normalize_axis(c.attrs_as<GatherAttrs>().axis, x.rank());
  int64_t n = x.shape()[axis];
  auto st = contiguous_strides(x.shape());
  int ir = ind.rank();
  for_each_index(out.shape(), [&](int64_t flat, const std::vector<int64_t>& idx) {
    int64_t src = 0;
    for (int i = 0; i < axis; ++i) src += idx[static_cast<size_t>(i)] * st[static_cast<size_t>(i)];
    int64_t iflat = 0;
    for (int i = 0; i < ir; ++i)
      iflat = iflat * ind.shape()[i] + idx[static_cast<size_t>(axis + i)];
    auto k = static_cast<int64_t>(load_element(ind.dtype(), ind.data(), iflat));
    LOOM_CHECK(k >= -n && k < n, "[gather] index ", k, " is out of range for axis ", axis,
               " of size ", n);
    if (k < 0) k += n;
    src += k * st[static_cast<size_t>(axis)];
    for (int i = axis + 1; i < x.rank(); ++i)
      src += idx[static_cast<size_t>(i - 1 + ir)] * st[static_cast<size_t>(i)];
    copy_element(x.dtype(), x.data(), src, out.data(), flat);
  });
}

void arange(const KernelContext& c) {
  const auto& a = c.attrs_as<ArangeAttrs>();
  const NDArray& out = c.outputs[0];
  for (int64_t i = 0; i < out.numel(); ++i)
    store_element(out.dtype(), out.data(), i, a.start + static_cast<double>(i) * a.step);
}

void dynamic_slice(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  auto s0 = ops::read_starts(c.inputs[1], x.shape(), out.shape(), "slice");
  gather_copy(x, out, [&](const std::vector<int64_t>& idx, std::vector<int64_t>& s) {
    for (size_t i = 0; i < idx.size(); ++i) s[i] = s0[i] + idx[i];
  });
}

}  // namespace

// Writes `update` into out at the starts; copies the base first unless writing in place. An
// update of another (float) dtype is converted element by element, as cast converts.
void write_region(const KernelContext& c, const char* op) {
  const NDArray &x = c.inputs[0], &u = c.inputs[1], &out = c.outputs[0];
  auto s0 = ops::read_starts(c.inputs[2], x.shape(), u.shape(), op);
  if (out.data() != x.data())
    for (int64_t i = 0; i < x.numel(); ++i) copy_element(x.dtype(), x.data(), i, out.data(), i);
  auto ost = contiguous_strides(out.shape());
  const bool convert = u.dtype() != out.dtype();
  for_each_index(u.shape(), [&](int64_t flat, const std::vector<int64_t>& idx) {
    int64_t o = 0;
    for (size_t i = 0; i < idx.size(); ++i) o += (s0[i] + idx[i]) * ost[i];
    if (convert)
      store_element(out.dtype(), out.data(), o, load_element(u.dtype(), u.data(), flat));
    else
      copy_element(u.dtype(), u.data(), flat, out.data(), o);
  });
}

void register_movement(KernelTable& t) {
  t.set(op::dynamic_slice, dynamic_slice);
  auto update = [](const KernelContext& c) { write_region(c, "slice_update"); };
  t.set(op::slice_update, update);
  t.set(op::write_slice, update);
  t.set(op::transpose, transpose);
  t.set(op::expand, expand);
  t.set(op::slice, slice);
  t.set(op::flip, flip);
  t.set(op::tile, tile);
  t.set(op::pad, pad);
  t.set(op::concat, concat);
  t.set(op::split, split);
  t.set(op::gather, gather);
  t.set(op::arange, arange);
}

}  // namespace loom::backends::ref
