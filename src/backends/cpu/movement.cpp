// CPU data movement. transpose, slice, expand and flip are strided views of the input, so one
// strided-copy routine (contiguous runs copied with memcpy, threads over rows) serves them all;
// concat and split copy into / out of sub-views; gather copies whole rows.
#include <algorithm>

#include "backends/cpu/cpu_util.h"
#include "ops/shape_rules.h"
#include "ops/slice_starts.h"

namespace loom::backends::cpu {
namespace {
namespace op = ir::op;

// src and dst (the same shape, any strides) as rows: dims contiguous in both merged; the last one
// is the run each row holds, `step` apart in src and `dst_step` in dst.
struct Rows {
  std::vector<int64_t> dims, ss, ds;
  int64_t run() const { return dims.back(); }
  int64_t step() const { return ss.back(); }
  int64_t dst_step() const { return ds.back(); }
};
Rows rows_of(const NDArray& src, const NDArray& dst) {
  Rows r;
  for (int i = 0; i < src.rank(); ++i) {
    int64_t d = src.shape()[i];
    if (d == 1) continue;
    int64_t s = src.strides()[static_cast<size_t>(i)], t = dst.strides()[static_cast<size_t>(i)];
    if (!r.dims.empty() && r.ss.back() == s * d && r.ds.back() == t * d) {
      r.dims.back() *= d;
      r.ss.back() = s;
      r.ds.back() = t;
    } else {
      r.dims.push_back(d);
      r.ss.push_back(s);
      r.ds.push_back(t);
    }
  }
  if (r.dims.empty()) r = {{1}, {1}, {1}};
  return r;
}

// fn(offset of the row's first element in src's storage, in dst's) for every row, on the pool,
// about `grain` elements per task.
template <class Fn>
void for_each_row(const Rows& rw, const NDArray& src, const NDArray& dst, ThreadPool* pool,
                  int64_t grain, Fn fn) {
  const std::vector<int64_t>&dims = rw.dims, &ss = rw.ss, &ds = rw.ds;
  int64_t rows = src.numel() / rw.run();
  parallel_for(pool, rows, std::max<int64_t>(1, grain / std::max<int64_t>(rw.run(), 1)),
               [&](int64_t b, int64_t e) {
                 for (int64_t r = b; r < e; ++r) {
                   int64_t so = src.offset(), dof = dst.offset(), rem = r;
                   for (int d = static_cast<int>(dims.size()) - 2; d >= 0; --d) {
                     int64_t i = rem % dims[static_cast<size_t>(d)];
                     rem /= dims[static_cast<size_t>(d)];
                     so += i * ss[static_cast<size_t>(d)];
                     dof += i * ds[static_cast<size_t>(d)];
                   }
                   fn(so, dof);
                 }
               });
}

// Copies a strided view `src` (same shape as dst region) into `dst`, which may itself be a
// strided view. Byte-sized dtypes only (packed types use the reference kernels).
void strided_copy(const NDArray& src, const NDArray& dst, ThreadPool* pool) {
  if (src.numel() == 0) return;
  size_t es = static_cast<size_t>(dtype_bits(src.dtype()) / 8);
  const auto* sb = reinterpret_cast<const char*>(src.storage()->data());
  auto* db = reinterpret_cast<char*>(dst.storage()->data());
  const Rows rw = rows_of(src, dst);
  for_each_row(rw, src, dst, pool, 32768, [&](int64_t so, int64_t dof) {
    const int64_t inner = rw.run(), st = rw.step(), dt = rw.dst_step();
    if (st == 1 && dt == 1) {
      std::memcpy(db + static_cast<size_t>(dof) * es, sb + static_cast<size_t>(so) * es,
                  static_cast<size_t>(inner) * es);
      return;
    }
    auto copy = [&](auto* dp, const auto* sp) {
      for (int64_t i = 0; i < inner; ++i) dp[(dof + i * dt)] = sp[(so + i * st)];
    };
    switch (es) {
      case 1:
        copy(reinterpret_cast<uint8_t*>(db), reinterpret_cast<const uint8_t*>(sb));
        break;
      case 2:
        copy(reinterpret_cast<uint16_t*>(db), reinterpret_cast<const uint16_t*>(sb));
        break;
      case 4:
        copy(reinterpret_cast<uint32_t*>(db), reinterpret_cast<const uint32_t*>(sb));
        break;
      default:
        copy(reinterpret_cast<uint64_t*>(db), reinterpret_cast<const uint64_t*>(sb));
        break;
    }
  });
}

// As strided_copy, converting src's elements to dst's dtype (both floating: slice_update's update
// of another float dtype). Through f32 (exact for f16 / bf16 / f32), or f64 when either is f64:
// the values cast gives.
void convert_copy(const NDArray& src, const NDArray& dst, ThreadPool* pool) {
  if (src.numel() == 0) return;
  const void* sb = src.storage()->data();
  void* db = dst.storage()->data();
  const Rows rw = rows_of(src, dst);
  auto run = [&]<class T>() {
    for_each_row(rw, src, dst, pool, 16384, [&](int64_t so, int64_t dof) {
      const int64_t inner = rw.run(), st = rw.step(), dt = rw.dst_step();
      constexpr int64_t kChunk = 256;
      T buf[kChunk];
      for (int64_t i0 = 0; i0 < inner; i0 += kChunk) {
        const int64_t n = std::min(kChunk, inner - i0);
        load_run<T>(src.dtype(), sb, so + i0 * st, st, n, buf);
        if (dt == 1) {
          store_run<T>(dst.dtype(), db, dof + i0, n, buf);
        } else {
          for (int64_t i = 0; i < n; ++i)
            store_run<T>(dst.dtype(), db, dof + (i0 + i) * dt, 1, buf + i);
        }
      }
    });
  };
  if (src.dtype() == DType::f64 || dst.dtype() == DType::f64)
    run.template operator()<double>();
  else
    run.template operator()<float>();
}

// Wraps a kernel that needs byte-sized elements; packed dtypes go to the reference kernel.
void set_bytes(KernelTable& t, ir::OpId id, void (*fn)(const KernelContext&)) {
  KernelFn fallback = *reference_kernels().find(id);
  t.set(id, [fn, fallback](const KernelContext& c) {
    DType d = c.outputs.empty() ? c.inputs[0].dtype() : c.outputs[0].dtype();
    if (is_packed(d) || dtype_bits(d) > 64) return fallback(c);
    fn(c);
  });
}

void transpose(const KernelContext& c) {
  const NDArray& x = c.inputs[0];
  const auto& perm = c.attrs_as<PermuteAttrs>().perm;
  std::vector<int64_t> st;
  for (int64_t p : perm)
    st.push_back(x.strides()[static_cast<size_t>(normalize_axis(p, x.rank()))]);
  strided_copy(x.view(c.outputs[0].shape(), st, x.offset()), c.outputs[0], c.pool);
}

void slice(const KernelContext& c) {
  const NDArray& x = c.inputs[0];
  auto r = ops::resolve_slice(x.shape(), c.attrs_as<SliceAttrs>());
  int64_t off = x.offset();
  std::vector<int64_t> st(x.strides());
  for (int i = 0; i < x.rank(); ++i) {
    auto u = static_cast<size_t>(i);
    if (r.out[i] > 0) off += r.starts[u] * x.strides()[u];
    st[u] *= r.steps[u];
  }
  if (c.outputs[0].numel() == 0) return;
  strided_copy(x.view(r.out, st, off), c.outputs[0], c.pool);
}

void expand(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  std::vector<int64_t> st(static_cast<size_t>(out.rank()), 0);
  int off = out.rank() - x.rank();
  for (int i = 0; i < x.rank(); ++i)
    st[static_cast<size_t>(i + off)] = x.shape()[i] == 1 ? 0 : x.strides()[static_cast<size_t>(i)];
  strided_copy(NDArray(x.storage(), x.dtype(), out.shape(), st, x.offset()), out, c.pool);
}

void flip(const KernelContext& c) {
  const NDArray& x = c.inputs[0];
  const auto& axes = c.attrs_as<AxesAttrs>().axes;
  std::vector<bool> f(static_cast<size_t>(x.rank()), axes.empty());
  for (int64_t a : axes) f[static_cast<size_t>(normalize_axis(a, x.rank()))] = true;
  int64_t off = x.offset();
  std::vector<int64_t> st(x.strides());
  for (int i = 0; i < x.rank(); ++i) {
    auto u = static_cast<size_t>(i);
    if (f[u] && x.shape()[i] > 0) {
      off += (x.shape()[i] - 1) * st[u];
      st[u] = -st[u];
    }
  }
  if (x.numel() == 0) return;
  strided_copy(x.view(x.shape(), st, off), c.outputs[0], c.pool);
}

// A view of `out` restricted to [start, start+len) on `axis`.
NDArray axis_window(const NDArray& out, int axis, int64_t start, const Shape& shape) {
  return out.view(shape, out.strides(),
                  out.offset() + start * out.strides()[static_cast<size_t>(axis)]);
}

void concat(const KernelContext& c) {
  const NDArray& out = c.outputs[0];
  int axis = normalize_axis(c.attrs_as<ConcatAttrs>().axis, out.rank());
  int64_t start = 0;
  for (const NDArray& x : c.inputs) {
    if (x.numel()) strided_copy(x, axis_window(out, axis, start, x.shape()), c.pool);
    start += x.shape()[axis];
  }
}

void split(const KernelContext& c) {
  const NDArray& x = c.inputs[0];
  int axis = normalize_axis(c.attrs_as<SplitAttrs>().axis, x.rank());
  int64_t start = 0;
  for (const NDArray& out : c.outputs) {
    if (out.numel()) strided_copy(axis_window(x, axis, start, out.shape()), out, c.pool);
    start += out.shape()[axis];
  }
}

void gather(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &ind = c.inputs[1], &out = c.outputs[0];
  int axis = normalize_axis(c.attrs_as<GatherAttrs>().axis, x.rank());
  int64_t outer = 1, inner = 1, n = x.shape()[axis];
  for (int i = 0; i < axis; ++i) outer *= x.shape()[i];
  for (int i = axis + 1; i < x.rank(); ++i) inner *= x.shape()[i];
  int64_t k = ind.numel();
  std::vector<int64_t> idx(static_cast<size_t>(k));
  load_run<int64_t>(ind.dtype(), ind.data(), 0, 1, k, idx.data());
  for (auto& i : idx) {
    LOOM_CHECK(i >= -n && i < n, "[gather] index ", i, " is out of range for axis ", axis,
               " of size ", n);
    if (i < 0) i += n;
  }
  size_t row = static_cast<size_t>(inner) * static_cast<size_t>(dtype_bits(x.dtype()) / 8);
  const auto* src = static_cast<const char*>(x.data());
  auto* dst = static_cast<char*>(out.data());
  parallel_for(c.pool, outer * k,
               std::max<int64_t>(1, static_cast<int64_t>(65536 / std::max<size_t>(row, 1))),
               [&](int64_t b, int64_t e) {
                 for (int64_t t = b; t < e; ++t) {
                   int64_t o = t / k, j = t % k;
                   std::memcpy(dst + static_cast<size_t>(t) * row,
                               src + static_cast<size_t>(o * n + idx[static_cast<size_t>(j)]) * row,
                               row);
                 }
               });
}

void pad_constant(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  const auto& a = c.attrs_as<PadAttrs>();
  // Fill with the pad value (one element converted, then replicated), then copy the interior.
  std::vector<double> one{a.value};
  NDArray v = NDArray::from_doubles(one, {}, out.dtype());
  size_t es = static_cast<size_t>(dtype_bits(out.dtype()) / 8);
  auto* d = static_cast<char*>(out.data());
  for (int64_t i = 0; i < out.numel(); ++i)
    std::memcpy(d + static_cast<size_t>(i) * es, v.data(), es);
  int64_t off = out.offset();
  for (int i = 0; i < x.rank(); ++i)
    off += a.before[static_cast<size_t>(i)] * out.strides()[static_cast<size_t>(i)];
  if (x.numel()) strided_copy(x, out.view(x.shape(), out.strides(), off), c.pool);
}

void dynamic_slice(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  auto s = ops::read_starts(c.inputs[1], x.shape(), out.shape(), "slice");
  int64_t off = x.offset();
  for (int i = 0; i < x.rank(); ++i)
    off += s[static_cast<size_t>(i)] * x.strides()[static_cast<size_t>(i)];
  if (out.numel()) strided_copy(x.view(out.shape(), x.strides(), off), out, c.pool);
}

// slice_update copies the base then writes the region; write_slice (the in-place form chosen by
// the inplace_variable_update pass) finds out == base and writes only the region. An update of
// another float dtype is converted into the region (its bytes are never copied as they are).
void write_region(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &u = c.inputs[1], &out = c.outputs[0];
  auto s = ops::read_starts(c.inputs[2], x.shape(), u.shape(), "slice_update");
  if (out.data() != x.data()) strided_copy(x, out, c.pool);
  int64_t off = out.offset();
  for (int i = 0; i < out.rank(); ++i)
    off += s[static_cast<size_t>(i)] * out.strides()[static_cast<size_t>(i)];
  if (!u.numel()) return;
  if (u.dtype() == out.dtype())
    strided_copy(u, out.view(u.shape(), out.strides(), off), c.pool);
  else
    convert_copy(u, out.view(u.shape(), out.strides(), off), c.pool);
}

}  // namespace

void register_movement(KernelTable& t) {
  set_bytes(t, op::dynamic_slice, dynamic_slice);
  set_bytes(t, op::slice_update, write_region);
  set_bytes(t, op::write_slice, write_region);
  set_bytes(t, op::transpose, transpose);
  set_bytes(t, op::slice, slice);
  set_bytes(t, op::expand, expand);
  set_bytes(t, op::flip, flip);
  set_bytes(t, op::concat, concat);
  set_bytes(t, op::split, split);
  set_bytes(t, op::gather, gather);
  KernelFn pad_fallback = *reference_kernels().find(op::pad);
  t.set(op::pad, [pad_fallback](const KernelContext& c) {
    if (c.attrs_as<PadAttrs>().mode != PadMode::constant || is_packed(c.inputs[0].dtype()))
      return pad_fallback(c);
    pad_constant(c);
  });
}

}  // namespace loom::backends::cpu
