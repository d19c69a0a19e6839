// Shape and data movement ops: reshape squeeze unsqueeze expand transpose concat split slice pad
// tile flip arange.
#include <cmath>

#include "ops/infer_util.h"
#include "ops/shape_rules.h"

namespace loom::ops {

SliceDim slice_dim(int64_t dim, int64_t start, int64_t end, int64_t step) {
  // Python slice.indices() semantics.
  auto clampi = [](int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); };
  int64_t s, e;
  if (step > 0) {
    s = start < 0 ? clampi(start + dim, 0, dim) : clampi(start, 0, dim);
    e = end == kSliceEnd ? dim : (end < 0 ? clampi(end + dim, 0, dim) : clampi(end, 0, dim));
    return {s, e > s ? (e - s + step - 1) / step : 0};
  }
  s = start == kSliceEnd
          ? dim - 1
          : (start < 0 ? clampi(start + dim, -1, dim - 1) : clampi(start, -1, dim - 1));
  e = (end == kSliceEnd || end == -kSliceEnd)
          ? -1
          : (end < 0 ? clampi(end + dim, -1, dim - 1) : clampi(end, -1, dim - 1));
  return {s, s > e ? (s - e + (-step) - 1) / (-step) : 0};
}

ResolvedSlice resolve_slice(const Shape& in, const SliceAttrs& a) {
  ResolvedSlice r;
  r.starts.assign(static_cast<size_t>(in.rank()), 0);
  r.steps.assign(static_cast<size_t>(in.rank()), 1);
  r.out = in;
  for (size_t i = 0; i < a.starts.size(); ++i) {
    // No axes listed: the first starts.size() axes.
    int ax = normalize_axis(a.axes.empty() ? static_cast<int64_t>(i) : a.axes[i], in.rank(),
                            "[slice] axis");
    int64_t step = a.steps.empty() ? 1 : a.steps[i];
    SliceDim d = slice_dim(in[ax], a.starts[i], a.ends[i], step);
    r.starts[static_cast<size_t>(ax)] = d.start;
    r.steps[static_cast<size_t>(ax)] = step;
    r.out[ax] = d.length;
  }
  return r;
}

Shape resolve_reshape(const Shape& in, const std::vector<int64_t>& target, const char* op) {
  std::vector<int64_t> out = target;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == 0) {
      LOOM_CHECK(static_cast<int>(i) < in.rank(), "[", op, "] 0 at position ", i, " but input ",
                 in.to_string(), " has rank ", in.rank());
      out[i] = in[static_cast<int>(i)];
    }
    if (out[i] == -1) {
      LOOM_CHECK(infer < 0, "[", op, "] more than one -1 in target shape");
      infer = static_cast<int>(i);
    } else {
      LOOM_CHECK(out[i] >= 0, "[", op, "] invalid target dim ", out[i]);
      known *= out[i];
    }
  }
  int64_t n = in.numel();
  if (infer >= 0) {
    LOOM_CHECK(known != 0 && n % known == 0, "[", op, "] cannot reshape ", in.to_string(), " to ",
               Shape(target).to_string());
    out[static_cast<size_t>(infer)] = n / known;
  }
  LOOM_CHECK(Shape(out).numel() == n, "[", op, "] cannot reshape ", in.to_string(), " (", n,
             " elements) to ", Shape(target).to_string());
  return Shape(out);
}

}  // namespace loom::ops

namespace loom::ir {
namespace {
using V = std::vector<TensorType>;

V infer_reshape(const InferContext& ctx) {
  const auto& target = ctx.attrs_as<ShapeAttrs>().shape;
  const TensorType& x = ctx.inputs[0];
  if (x.shape.is_static()) {
    try {
      return {{x.dtype, ops::resolve_reshape(x.shape, target, "reshape")}};
    } catch (const Error& e) {
      ctx.fail(e.what());
    }
  }
  // Dynamic input: 0 copies a dim, -1 stays dynamic (resolved per run).
  std::vector<int64_t> out = target;
  int minus = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == 0) {
      if (static_cast<int>(i) >= x.shape.rank())
        ctx.fail("0 at position ", i, " beyond the input's rank");
      out[i] = x.shape[static_cast<int>(i)];
    } else if (out[i] == -1) {
      ++minus;
    } else if (out[i] < -1) {
      ctx.fail("invalid target dim ", out[i]);
    }
  }
  if (minus > 1) ctx.fail("more than one -1 in target shape");
  return {{x.dtype, Shape(out)}};
}

V infer_squeeze(const InferContext& ctx) {
  const TensorType& x = ctx.inputs[0];
  const auto& axes = ctx.attrs_as<AxesAttrs>().axes;
  std::vector<int> ax = ops::normalize_axes(ctx, axes, x.shape.rank(), false);
  std::vector<int64_t> out;
  for (int i = 0; i < x.shape.rank(); ++i) {
    bool listed = std::find(ax.begin(), ax.end(), i) != ax.end();
    if (axes.empty() ? x.shape[i] == 1 : listed) {
      if (listed && x.shape[i] != 1 && x.shape[i] != kDynamic)
        ctx.fail("cannot squeeze axis ", i, " of size ", x.shape[i]);
      continue;
    }
    out.push_back(x.shape[i]);
  }
  return {{x.dtype, Shape(out)}};
}

V infer_unsqueeze(const InferContext& ctx) {
  const TensorType& x = ctx.inputs[0];
  const auto& axes = ctx.attrs_as<AxesAttrs>().axes;
  int r = x.shape.rank() + static_cast<int>(axes.size());
  std::vector<int> ax = ops::normalize_axes(ctx, axes, r, false);
  std::vector<int64_t> out;
  int src = 0;
  for (int i = 0; i < r; ++i)
    out.push_back(std::find(ax.begin(), ax.end(), i) != ax.end() ? 1 : x.shape[src++]);
  return {{x.dtype, Shape(out)}};
}

V infer_expand(const InferContext& ctx) {
  const TensorType& x = ctx.inputs[0];
  const auto& target = ctx.attrs_as<ShapeAttrs>().shape;
  if (static_cast<int>(target.size()) < x.shape.rank())
    ctx.fail("target ", Shape(target).to_string(), " has lower rank than the input");
  std::vector<int64_t> out = target;
  int off = static_cast<int>(target.size()) - x.shape.rank();
  for (int i = 0; i < static_cast<int>(target.size()); ++i) {
    int64_t xd = i >= off ? x.shape[i - off] : 1;
    auto& o = out[static_cast<size_t>(i)];
    if (o == -1) {
      if (i < off) ctx.fail("-1 at a new leading dim ", i);
      o = xd;
    } else if (o < 0) {
      ctx.fail("invalid target dim ", o);
    } else if (xd != 1 && xd != kDynamic && xd != o) {
      ctx.fail("cannot expand dim ", i, " of size ", xd, " to ", o);
    }
  }
  return {{x.dtype, Shape(out)}};
}

V infer_transpose(const InferContext& ctx) {
  const TensorType& x = ctx.inputs[0];
  const auto& perm = ctx.attrs_as<PermuteAttrs>().perm;
  int r = x.shape.rank();
  if (static_cast<int>(perm.size()) != r)
    ctx.fail("perm has ", perm.size(), " entries for rank ", r);
  std::vector<bool> seen(static_cast<size_t>(r), false);
  std::vector<int64_t> out;
  for (int64_t p : perm) {
    int a = static_cast<int>(p < 0 ? p + r : p);
    if (a < 0 || a >= r || seen[static_cast<size_t>(a)])
      ctx.fail("perm ", Shape(perm).to_string(), " is not a permutation");
    seen[static_cast<size_t>(a)] = true;
    out.push_back(x.shape[a]);
  }
  return {{x.dtype, Shape(out)}};
}

V infer_concat(const InferContext& ctx) {
  if (ctx.inputs.empty()) ctx.fail("needs at least one input");
  const TensorType& x = ctx.inputs[0];
  if (x.shape.rank() == 0) ctx.fail("cannot concatenate scalars");
  int axis = ops::normalize_axes(ctx, {ctx.attrs_as<ConcatAttrs>().axis}, x.shape.rank(), false)[0];
  std::vector<int64_t> out = x.shape.dims();
  for (size_t i = 1; i < ctx.inputs.size(); ++i) {
    const TensorType& y = ctx.inputs[i];
    ops::expect_same_dtype(ctx, 0, i);
    if (y.shape.rank() != x.shape.rank())
      ctx.fail("input ", i, " has rank ", y.shape.rank(), ", input 0 has ", x.shape.rank());
    for (int d = 0; d < x.shape.rank(); ++d) {
      auto& o = out[static_cast<size_t>(d)];
      if (d == axis) {
        o = (o == kDynamic || y.shape[d] == kDynamic) ? kDynamic : o + y.shape[d];
      } else if (o == kDynamic) {
        o = y.shape[d];
      } else if (y.shape[d] != kDynamic && y.shape[d] != o) {
        ctx.fail("input ", i, " differs in dim ", d, " (", y.shape[d], " vs ", o, ")");
      }
    }
  }
  return {{x.dtype, Shape(out)}};
}

V infer_split(const InferContext& ctx) {
  const TensorType& x = ctx.inputs[0];
  const auto& a = ctx.attrs_as<SplitAttrs>();
  if (x.shape.rank() == 0) ctx.fail("cannot split a scalar");
  int axis = ops::normalize_axes(ctx, {a.axis}, x.shape.rank(), false)[0];
  if (a.sizes.empty()) ctx.fail("sizes is empty");
  int64_t total = 0;
  V out;
  for (int64_t s : a.sizes) {
    if (s < 0) ctx.fail("negative split size ", s);
    total += s;
    Shape sh = x.shape;
    sh[axis] = s;
    out.push_back({x.dtype, sh});
  }
  if (x.shape[axis] != kDynamic && total != x.shape[axis])
    ctx.fail("sizes sum to ", total, " but axis ", axis, " has ", x.shape[axis]);
  return out;
}

V infer_slice(const InferContext& ctx) {
  const TensorType& x = ctx.inputs[0];
  auto a = ctx.attrs_as<SliceAttrs>();
  if (a.starts.size() != a.ends.size() || (!a.axes.empty() && a.axes.size() != a.starts.size()) ||
      (!a.steps.empty() && a.steps.size() != a.starts.size()))
    ctx.fail("starts, ends, axes and steps must have equal lengths");
  std::vector<int64_t> axes = a.axes;
  if (axes.empty())
    for (size_t i = 0; i < a.starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  auto ax = ops::normalize_axes(ctx, axes, x.shape.rank(), false);
  (void)ax;
  Shape out = x.shape;
  for (size_t i = 0; i < axes.size(); ++i) {
    int d = normalize_axis(axes[i], x.shape.rank());
    int64_t step = a.steps.empty() ? 1 : a.steps[i];
    if (step == 0) ctx.fail("step is 0 on axis ", axes[i]);
    out[d] = x.shape[d] == kDynamic
                 ? kDynamic
                 : ops::slice_dim(x.shape[d], a.starts[i], a.ends[i], step).length;
  }
  return {{x.dtype, out}};
}

V infer_pad(const InferContext& ctx) {
  const TensorType& x = ctx.inputs[0];
  const auto& a = ctx.attrs_as<PadAttrs>();
  int r = x.shape.rank();
  if (static_cast<int>(a.before.size()) != r || static_cast<int>(a.after.size()) != r)
    ctx.fail("before/after need ", r, " entries each");
  Shape out = x.shape;
  for (int i = 0; i < r; ++i) {
    int64_t b = a.before[static_cast<size_t>(i)], e = a.after[static_cast<size_t>(i)];
    if (b < 0 || e < 0) ctx.fail("negative padding on axis ", i, " (use slice to crop)");
    if (a.mode == PadMode::reflect && x.shape[i] != kDynamic &&
        (b >= x.shape[i] || e >= x.shape[i]) && (b || e))
      ctx.fail("reflect padding of ", std::max(b, e), " on axis ", i,
               " needs a dim larger than that, got ", x.shape[i]);
    if (a.mode == PadMode::edge && x.shape[i] == 0 && (b || e))
      ctx.fail("edge padding of an empty axis ", i);
    if (x.shape[i] != kDynamic) out[i] = x.shape[i] + b + e;
  }
  if (static_cast<int64_t>(a.mode) < 0 || static_cast<int64_t>(a.mode) > 2)
    ctx.fail("unknown pad mode");
  return {{x.dtype, out}};
}

V infer_tile(const InferContext& ctx) {
  const TensorType& x = ctx.inputs[0];
  const auto& reps = ctx.attrs_as<TileAttrs>().reps;
  if (static_cast<int>(reps.size()) != x.shape.rank())
    ctx.fail("reps needs ", x.shape.rank(), " entries");
  Shape out = x.shape;
  for (int i = 0; i < x.shape.rank(); ++i) {
    int64_t rp = reps[static_cast<size_t>(i)];
    if (rp < 0) ctx.fail("negative repeat ", rp);
    if (x.shape[i] != kDynamic) out[i] = x.shape[i] * rp;
  }
  return {{x.dtype, out}};
}

V infer_flip(const InferContext& ctx) {
  ops::normalize_axes(ctx, ctx.attrs_as<AxesAttrs>().axes, ctx.inputs[0].shape.rank(), true);
  return {ctx.inputs[0]};
}

V infer_arange(const InferContext& ctx) {
  const auto& a = ctx.attrs_as<ArangeAttrs>();
  if (a.step == 0) ctx.fail("step is 0");
  if (a.dtype == DType::boolean || is_packed(a.dtype) || is_complex(a.dtype))
    ctx.fail("unsupported dtype ", dtype_name(a.dtype));
  double n = std::ceil((a.stop - a.start) / a.step);
  if (!(n < 1e12)) ctx.fail("too many elements");
  return {{a.dtype, Shape({n > 0 ? static_cast<int64_t>(n) : 0})}};
}
}  // namespace

void register_shape_ops(OpRegistry& r) {
  r.mutable_info(op::reshape).infer = infer_reshape;
  r.mutable_info(op::squeeze).infer = infer_squeeze;
  r.mutable_info(op::unsqueeze).infer = infer_unsqueeze;
  r.mutable_info(op::expand).infer = infer_expand;
  r.mutable_info(op::transpose).infer = infer_transpose;
  r.mutable_info(op::concat).infer = infer_concat;
  r.mutable_info(op::split).infer = infer_split;
  r.mutable_info(op::slice).infer = infer_slice;
  r.mutable_info(op::pad).infer = infer_pad;
  r.mutable_info(op::tile).infer = infer_tile;
  r.mutable_info(op::flip).infer = infer_flip;
  r.mutable_info(op::arange).infer = infer_arange;
}

}  // namespace loom::ir
