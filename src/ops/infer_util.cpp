#include "ops/infer_util.h"

#include <algorithm>

namespace loom::ops {

Shape broadcast_shapes(const InferContext& ctx, const Shape& a, const Shape& b) {
  int r = std::max(a.rank(), b.rank());
  std::vector<int64_t> out(static_cast<size_t>(r));
  for (int i = 0; i < r; ++i) {
    int ia = i - (r - a.rank()), ib = i - (r - b.rank());
    int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    int64_t d;
    if (da == 1)
      d = db;
    else if (db == 1)
      d = da;
    else if (da == kDynamic)
      d = db;
    else if (db == kDynamic)
      d = da;
    else if (da == db)
      d = da;
    else
      ctx.fail("shapes ", a.to_string(), " and ", b.to_string(), " do not broadcast (dim ", i, ": ",
               da, " vs ", db, ")");
    out[static_cast<size_t>(i)] = d;
  }
  return Shape(out);
}

Shape broadcast_static(const Shape& a, const Shape& b, const char* what) {
  int r = std::max(a.rank(), b.rank());
  std::vector<int64_t> out(static_cast<size_t>(r));
  for (int i = 0; i < r; ++i) {
    int ia = i - (r - a.rank()), ib = i - (r - b.rank());
    int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    LOOM_CHECK(da == db || da == 1 || db == 1, "[", what, "] shapes ", a.to_string(), " and ",
               b.to_string(), " do not broadcast");
    out[static_cast<size_t>(i)] = da == 1 ? db : da;
  }
  return Shape(out);
}

void expect_inputs(const InferContext& ctx, size_t min, size_t max) {
  if (ctx.inputs.size() < min || ctx.inputs.size() > max)
    ctx.fail("takes ", min, min == max ? "" : " to " + std::to_string(max), " inputs, got ",
             ctx.inputs.size());
}

void expect_same_dtype(const InferContext& ctx, size_t a, size_t b) {
  if (ctx.inputs[a].dtype != ctx.inputs[b].dtype)
    ctx.fail("inputs ", a, " and ", b, " have different dtypes (", dtype_name(ctx.inputs[a].dtype),
             " vs ", dtype_name(ctx.inputs[b].dtype), "); cast one explicitly");
}

void expect_float(const InferContext& ctx, size_t i) {
  if (!is_floating(ctx.inputs[i].dtype))
    ctx.fail("input ", i, " must be floating point, got ", dtype_name(ctx.inputs[i].dtype));
}

std::vector<int> normalize_axes(const InferContext& ctx, const std::vector<int64_t>& axes, int rank,
                                bool empty_is_all) {
  std::vector<int> out;
  if (axes.empty() && empty_is_all) {
    for (int i = 0; i < rank; ++i) out.push_back(i);
    return out;
  }
  for (int64_t a : axes) {
    int64_t n = a < 0 ? a + rank : a;
    if (n < 0 || n >= rank) ctx.fail("axis ", a, " is out of range for rank ", rank);
    if (std::find(out.begin(), out.end(), static_cast<int>(n)) != out.end())
      ctx.fail("axis ", a, " is repeated");
    out.push_back(static_cast<int>(n));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace loom::ops
