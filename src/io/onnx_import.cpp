// ONNX importer: ModelProto -> loom::Graph through a table of converters (op type + opset).
#include "io/onnx_import.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <type_traits>
#include <unordered_map>

#include "ir/graph.h"
#include "ir/op_registry.h"
#include "loom/executable.h"
#include "loom/ops.h"

namespace loom::io {
namespace {

namespace fs = std::filesystem;

std::string read_file(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  LOOM_CHECK(f, "[onnx] ", path, ": cannot open ", what);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// ONNX TensorProto.DataType numbers (stable across ONNX versions; INT4/UINT4 are newer than the
// Debian headers, hence numbers rather than the enum).
DType dtype_of_onnx(int t, const std::string& where) {
  switch (t) {
    case 1:
      return f32;
    case 2:
      return u8;
    case 3:
      return i8;
    case 5:
      return i16;
    case 6:
      return i32;
    case 7:
      return i64;
    case 9:
      return boolean;
    case 10:
      return f16;
    case 11:
      return f64;
    case 14:
      return c64;
    case 16:
      return bf16;
    case 21:
      return u4;
    case 22:
      return i4;
    default:
      fail("[onnx] ", where, ": unsupported tensor data type ", t);
  }
}

// A TensorProto's value. External data is read from `base_dir` (paths must stay inside it).
NDArray tensor_from_proto(const onnx::TensorProto& t, const std::string& base_dir,
                          const std::string& where) {
  DType dt = dtype_of_onnx(t.data_type(), where);
  std::vector<int64_t> dims(t.dims().begin(), t.dims().end());
  int64_t numel = 1;
  for (int64_t d : dims) {
    LOOM_CHECK(d >= 0 && d < (int64_t{1} << 40) && (d == 0 || numel <= (int64_t{1} << 40) / d),
               "[onnx] ", where, ": invalid dims");
    numel *= d;
  }
  NDArray a = NDArray::empty(dt, Shape(dims));
  size_t nbytes = a.nbytes();
  auto* out = static_cast<uint8_t*>(a.data());
  if (t.data_location() == onnx::TensorProto::EXTERNAL) {
    std::string location;
    int64_t offset = 0, length = -1;
    for (const auto& kv : t.external_data()) {
      if (kv.key() == "location")
        location = kv.value();
      else if (kv.key() == "offset")
        offset = std::stoll(kv.value());
      else if (kv.key() == "length")
        length = std::stoll(kv.value());
    }
    fs::path rel(location);
    LOOM_CHECK(!location.empty() && rel.is_relative() &&
                   std::find(rel.begin(), rel.end(), "..") == rel.end(),
               "[onnx] ", where, ": external data location '", location,
               "' must be a relative path inside the model's folder");
    std::ifstream f(fs::path(base_dir) / rel, std::ios::binary);
    LOOM_CHECK(f, "[onnx] ", where, ": cannot open external data file '", location, "'");
    LOOM_CHECK(length < 0 || static_cast<size_t>(length) == nbytes, "[onnx] ", where,
               ": external data length ", length, " does not match ", nbytes, " bytes");
    f.seekg(offset);
    f.read(reinterpret_cast<char*>(out), static_cast<std::streamsize>(nbytes));
    LOOM_CHECK(f && f.gcount() == static_cast<std::streamsize>(nbytes), "[onnx] ", where,
               ": external data file '", location, "' is too short");
    return a;
  }
  if (t.has_raw_data()) {
    LOOM_CHECK(t.raw_data().size() == nbytes, "[onnx] ", where, ": raw_data has ",
               t.raw_data().size(), " bytes, expected ", nbytes);
    if (nbytes) std::memcpy(out, t.raw_data().data(), nbytes);
    if (dt == boolean)
      for (size_t i = 0; i < nbytes; ++i) out[i] = out[i] != 0;
    return a;
  }
  auto check_count = [&](int n, int64_t want) {
    LOOM_CHECK(n == want, "[onnx] ", where, ": ", n, " values for ", numel, " elements");
  };
  switch (dt) {
    case DType::f32:
      check_count(t.float_data_size(), numel);
      std::memcpy(out, t.float_data().data(), nbytes);
      break;
    case DType::c64:
      check_count(t.float_data_size(), 2 * numel);
      std::memcpy(out, t.float_data().data(), nbytes);
      break;
    case DType::f64:
      check_count(t.double_data_size(), numel);
      std::memcpy(out, t.double_data().data(), nbytes);
      break;
    case DType::i64:
      check_count(t.int64_data_size(), numel);
      std::memcpy(out, t.int64_data().data(), nbytes);
      break;
    case DType::i4:
    case DType::u4:
      check_count(t.int32_data_size(), (numel + 1) / 2);
      for (int i = 0; i < t.int32_data_size(); ++i) out[i] = static_cast<uint8_t>(t.int32_data(i));
      break;
    default: {  // int32_data holds i32, and the bits of i8 u8 i16 bool f16 bf16
      check_count(t.int32_data_size(), numel);
      size_t w = static_cast<size_t>(dtype_bits(dt) / 8);
      for (int64_t i = 0; i < numel; ++i) {
        int32_t v = t.int32_data(static_cast<int>(i));
        if (dt == boolean) v = v != 0;
        std::memcpy(out + static_cast<size_t>(i) * w, &v, w);  // little endian: low bytes
      }
    }
  }
  return a;
}

// ------------------------------------------------------------------------------ converters

// A bool tensor of t's shape, all true (also for NaN): broadcasts a value to t's run-time shape.
Tensor all_true_like(const Tensor& t) { return logical_or(equal(t, t), not_equal(t, t)); }

// A 1-D array of `values` (NDArray::from_vector would memcpy from a null pointer when empty).
template <class T>
NDArray vector_array(const std::vector<T>& values) {
  if (values.empty()) return NDArray::empty(std::is_same_v<T, float> ? f32 : i64, Shape({0}));
  return NDArray::from_vector<T>(values, {static_cast<int64_t>(values.size())});
}

// Shape-like values computed from dynamic dims (Shape of a tensor with a dynamic dim, and the
// shape arithmetic on it) are not in the graph: the importer knows them as their values under
// kProbes assignments of the dynamic input dims ("probes"; see Importer and docs/ONNX.md).
constexpr int kProbes = 2;
using Probed = std::array<NDArray, kProbes>;

// One element of a shape-like operand: a constant, or a value that depends on dynamic dims
// (known by its value under each probe).
struct DimValue {
  bool known = true;
  int64_t value = 0;
  std::array<int64_t, kProbes> probe{};
};

struct Ctx {
  Graph& g;
  const onnx::NodeProto& node;
  int64_t opset;
  mutable std::vector<Tensor> in;           // undefined for omitted (or probed) inputs
  std::vector<std::optional<NDArray>> cin;  // values of constant inputs
  std::vector<const Probed*> probe = {};    // probed (shape-like, dynamic) inputs, else null
  // A probed input as a run-time tensor (for inputs used as data), and a tensor's shape under
  // each probe.
  std::function<Tensor(size_t)> materialize = {};
  std::function<std::array<Shape, kProbes>(const Tensor&)> probe_shapes = {};
  // For a probed input that is exactly Shape(t): t (a tensor of that shape), else undefined.
  std::function<Tensor(size_t)> shape_carrier = {};

  template <class... Args>
  [[noreturn]] void error(const Args&... args) const {
    fail("[onnx] node '", node.name(), "' (", node.op_type(), "): ", args...);
  }
  bool probed(size_t i) const { return i < probe.size() && probe[i]; }
  bool has(size_t i) const { return i < in.size() && (in[i].defined() || probed(i)); }
  const Tensor& x(size_t i) const {
    if (!has(i)) error("input ", i, " is required");
    if (!in[i].defined()) in[i] = materialize(i);
    return in[i];
  }
  const onnx::AttributeProto* attr(const std::string& name) const {
    for (const auto& a : node.attribute())
      if (a.name() == name) return &a;
    return nullptr;
  }
  int64_t i(const std::string& name, int64_t def) const {
    auto* a = attr(name);
    return a ? a->i() : def;
  }
  double f(const std::string& name, double def) const {
    auto* a = attr(name);
    return a ? static_cast<double>(a->f()) : def;
  }
  std::string s(const std::string& name, const std::string& def) const {
    auto* a = attr(name);
    return a ? a->s() : def;
  }
  std::optional<std::vector<int64_t>> ints(const std::string& name) const {
    auto* a = attr(name);
    if (!a) return std::nullopt;
    return std::vector<int64_t>(a->ints().begin(), a->ints().end());
  }
  // An input that must be known at import time (shapes, axes, pads, ...), as integers.
  std::optional<std::vector<int64_t>> const_ints(size_t k, const char* what) const {
    if (!has(k)) return std::nullopt;
    if (probed(k))
      error("input ", k, " (", what,
            ") computed from a dynamic dim is not supported here (Loom needs it at import time)");
    if (!cin[k])
      error("input ", k, " (", what, ") must be a constant: Loom needs it at import time");
    return ints_of(*cin[k]);
  }
  // Exact for i64 (INT64_MAX, the usual "to the end", does not survive a trip through double).
  static std::vector<int64_t> ints_of(const NDArray& a) {
    if (a.dtype() == i64) {
      NDArray c = a.contiguous();
      const int64_t* p = c.data_as<int64_t>();
      return std::vector<int64_t>(p, p + c.numel());
    }
    std::vector<int64_t> out;
    for (double d : a.to_doubles())
      out.push_back(std::isnan(d)  ? 0
                    : d >= 9.2e18  ? INT64_MAX
                    : d <= -9.2e18 ? INT64_MIN
                                   : static_cast<int64_t>(d));
    return out;
  }
  // Like const_ints, but elements may depend on dynamic dims (shape arithmetic on Shape).
  std::optional<std::vector<DimValue>> dim_values(size_t k, const char* what) const {
    if (!probed(k)) {
      auto v = const_ints(k, what);
      if (!v) return std::nullopt;
      std::vector<DimValue> out;
      for (int64_t e : *v) out.push_back({true, e, {}});
      return out;
    }
    const Probed& p = *probe[k];
    std::array<std::vector<int64_t>, kProbes> vals;
    for (int j = 0; j < kProbes; ++j) {
      vals[static_cast<size_t>(j)] = ints_of(p[static_cast<size_t>(j)]);
      if (vals[static_cast<size_t>(j)].size() != vals[0].size())
        error("input ", k, " (", what, ") has a length that depends on dynamic dims");
    }
    std::vector<DimValue> out(vals[0].size());
    for (size_t e = 0; e < out.size(); ++e) {
      for (size_t j = 0; j < kProbes; ++j) {
        out[e].probe[j] = vals[j][e];
        out[e].known = out[e].known && out[e].probe[j] == out[e].probe[0];
      }
      out[e].value = out[e].probe[0];
    }
    return out;
  }
  std::optional<double> const_scalar(size_t k) const {
    if (!has(k) || !cin[k] || cin[k]->numel() != 1) return std::nullopt;
    return cin[k]->at(0);
  }
  Tensor scalar_like(double v, const Tensor& t) const { return g.scalar(v, t.dtype()); }
  int rank(size_t k) const { return x(k).rank(); }
};

using Converter = std::function<std::vector<Tensor>(Ctx&)>;
struct Entry {
  int64_t since;
  Converter fn;
};

std::vector<int64_t> all_axes(int r) {
  std::vector<int64_t> a(static_cast<size_t>(r));
  for (int k = 0; k < r; ++k) a[static_cast<size_t>(k)] = k;
  return a;
}

using Unary = Tensor (*)(const Tensor&);
using Binary = Tensor (*)(const Tensor&, const Tensor&);
Converter unary(Unary f) {
  return [f](Ctx& c) { return std::vector<Tensor>{f(c.x(0))}; };
}
Converter binary(Binary f) {
  return [f](Ctx& c) { return std::vector<Tensor>{f(c.x(0), c.x(1))}; };
}
Converter variadic(Binary f, bool mean = false) {
  return [f, mean](Ctx& c) {
    Tensor r = c.x(0);
    for (size_t k = 1; k < c.in.size(); ++k) r = f(r, c.x(k));
    if (mean) r = div(r, c.scalar_like(static_cast<double>(c.in.size()), r));
    return std::vector<Tensor>{r};
  };
}

using ReduceFn = Tensor (*)(const Tensor&, std::vector<int64_t>, bool);
// Reductions: axes as an attribute before `axes_input_since`, as an optional input after.
std::vector<Tensor> reduce(Ctx& c, ReduceFn f, bool axes_as_input) {
  std::optional<std::vector<int64_t>> axes =
      axes_as_input ? c.const_ints(1, "axes") : c.ints("axes");
  bool keep = c.i("keepdims", 1) != 0;
  if (!axes || axes->empty()) {
    if (c.i("noop_with_empty_axes", 0)) return {c.x(0)};
    axes = all_axes(c.rank(0));
  }
  // Max/min over an empty set of integers or bools: ONNX (opset 18+) gives the identity, the
  // dtype's lowest / highest value (Loom's op rejects an empty integer max, as numpy does): a
  // constant of the result's shape.
  const Shape in_shape = c.x(0).shape();
  bool is_max = f == static_cast<ReduceFn>(&max), is_min = f == static_cast<ReduceFn>(&min);
  bool empty = false;
  for (int64_t a : *axes) {
    int64_t d = a < 0 ? a + in_shape.rank() : a;
    empty = empty || (d >= 0 && d < in_shape.rank() && in_shape[static_cast<int>(d)] == 0);
  }
  DType dt = c.x(0).dtype();
  if (empty && (is_max || is_min) && !is_floating(dt) && in_shape.is_static()) {
    std::vector<int64_t> out;
    for (int d = 0; d < in_shape.rank(); ++d) {
      bool reduced = std::find_if(axes->begin(), axes->end(), [&](int64_t a) {
                       return (a < 0 ? a + in_shape.rank() : a) == d;
                     }) != axes->end();
      if (!reduced)
        out.push_back(in_shape[d]);
      else if (keep)
        out.push_back(1);
    }
    double lowest = dt == boolean ? 0
                    : dt == u8    ? 0
                    : dt == i8    ? -128
                    : dt == i16   ? -32768
                                  : -2147483648.0;
    double highest = dt == boolean ? 1
                     : dt == u8    ? 255
                     : dt == i8    ? 127
                     : dt == i16   ? 32767
                                   : 2147483647.0;
    if (dt == i64) {  // the i64 limits are not exact doubles
      int64_t n = Shape(out).numel();
      std::vector<int64_t> v(static_cast<size_t>(n), is_max ? INT64_MIN : INT64_MAX);
      return {c.g.constant(NDArray::from_vector<int64_t>(v, Shape(out)))};
    }
    return {c.g.constant(full(Shape(out), is_max ? lowest : highest, dt))};
  }
  if (c.x(0).dtype() == boolean) {  // ReduceMax/Min over bool (opset 20): any / all via u8
    return {cast(f(cast(c.x(0), u8), *axes, keep), boolean)};
  }
  return {f(c.x(0), *axes, keep)};
}

std::vector<Tensor> layer_norm_onnx(Ctx& c) {
  const Tensor& x = c.x(0);
  int r = x.rank();
  int64_t axis = c.i("axis", -1);
  if (axis < 0) axis += r;
  if (axis < 0 || axis >= r) c.error("axis out of range");
  double eps = c.f("epsilon", 1e-5);
  bool extra = c.node.output_size() > 1;
  Tensor scale = c.has(1) ? c.x(1) : Tensor();
  Tensor bias = c.has(2) ? c.x(2) : Tensor();
  bool fits = !extra && (!scale.defined() || scale.rank() == r - axis) &&
              (!bias.defined() || bias.rank() == r - axis);
  if (fits) return {layer_norm(x, scale, bias, {.axis = axis, .eps = eps})};
  // Mean / InvStdDev requested (or broadcasting scale): the decomposed form, computed in f32
  // (stash_type 1) for narrow floats.
  DType dt = x.dtype();
  Tensor xf = (dt == f16 || dt == bf16) && c.i("stash_type", 1) == 1 ? cast(x, f32) : x;
  std::vector<int64_t> axes;
  for (int64_t k = axis; k < r; ++k) axes.push_back(k);
  Tensor m = mean(xf, axes, true);
  Tensor d = sub(xf, m);
  Tensor var = mean(mul(d, d), axes, true);
  Tensor inv = rsqrt(add(var, c.scalar_like(eps, var)));
  Tensor y = mul(d, inv);
  if (y.dtype() != dt) y = cast(y, dt);
  if (scale.defined()) y = mul(y, scale);
  if (bias.defined()) y = add(y, bias);
  return {y, m, inv};
}

std::vector<Tensor> split_onnx(Ctx& c) {
  const Tensor& x = c.x(0);
  int r = x.rank();
  int64_t axis = c.i("axis", 0);
  if (axis < 0) axis += r;
  if (axis < 0 || axis >= r) c.error("axis out of range");
  std::optional<std::vector<int64_t>> sizes =
      c.opset >= 13 ? c.const_ints(1, "split") : c.ints("split");
  size_t n = static_cast<size_t>(c.node.output_size());
  if (!sizes) {
    int64_t dim = x.shape()[static_cast<int>(axis)];
    if (dim < 0) c.error("splitting a dynamic dim needs explicit sizes");
    int64_t parts = c.i("num_outputs", static_cast<int64_t>(n));
    int64_t chunk = (dim + parts - 1) / parts;
    sizes.emplace();
    for (int64_t left = dim; left > 0; left -= chunk) sizes->push_back(std::min(chunk, left));
    if (sizes->size() != n) c.error("cannot split ", dim, " into ", n, " outputs");
  }
  return split(x, *sizes, axis);
}

// A start or end computed from dynamic dims, as an index Loom's slice takes: it must be the sliced
// dim plus a constant (e.g. Shape(x)[1] - 1); a non-negative offset clamps to the end.
int64_t relative_bound(Ctx& c, const DimValue& v, int64_t axis, bool is_end) {
  if (v.known) return v.value;
  auto xs = c.probe_shapes(c.x(0));
  int r = c.rank(0);
  int a = static_cast<int>(axis < 0 ? axis + r : axis);
  if (a < 0 || a >= r) c.error("axis out of range");
  int64_t off = v.probe[0] - xs[0][a];
  for (size_t p = 1; p < kProbes; ++p)
    if (v.probe[p] - xs[p][a] != off)
      c.error(is_end ? "an end" : "a start",
              " computed from a dynamic dim other than the sliced one is not supported (a "
              "value-dependent shape)");
  if (off < 0) return off;
  if (is_end) return kSliceEnd;
  c.error("a start at or past the end of a dynamic dim is not supported");
}

std::vector<Tensor> slice_onnx(Ctx& c) {
  auto sv = *c.dim_values(1, "starts");
  auto ev = *c.dim_values(2, "ends");
  auto axes = c.const_ints(3, "axes").value_or(all_axes(static_cast<int>(sv.size())));
  auto steps = c.const_ints(4, "steps").value_or(std::vector<int64_t>(sv.size(), 1));
  if (sv.size() != ev.size() || axes.size() != sv.size() || steps.size() != sv.size())
    c.error("starts, ends, axes and steps differ in length");
  std::vector<int64_t> starts, ends;
  for (size_t k = 0; k < sv.size(); ++k) {
    starts.push_back(relative_bound(c, sv[k], axes[k], false));
    ends.push_back(relative_bound(c, ev[k], axes[k], true));
  }
  int r = c.rank(0);
  for (size_t k = 0; k < starts.size(); ++k) {
    int64_t dim = k < axes.size()
                      ? c.x(0).shape()[static_cast<int>(axes[k] < 0 ? axes[k] + r : axes[k])]
                      : -1;
    // ONNX clamps ends (and starts) into the dim; Loom clamps ends but wants in-range starts and
    // kSliceEnd for "to the end".
    if (ends[k] >= (int64_t{1} << 62)) ends[k] = kSliceEnd;
    if (dim >= 0) {
      int64_t lo = steps[k] > 0 ? 0 : -1;
      auto clampi = [&](int64_t v) {
        if (v < 0) v += dim;
        return std::clamp(v, lo, steps[k] > 0 ? dim : dim - 1);
      };
      starts[k] = clampi(starts[k]);
      if (ends[k] != kSliceEnd) ends[k] = clampi(ends[k]);
      if (steps[k] < 0 && ends[k] == -1) ends[k] = -dim - 1;  // "before index 0"
      if (steps[k] < 0 && starts[k] == -1) starts[k] = -dim - 1;
    } else if (ends[k] <= -(int64_t{1} << 62)) {
      c.error("a negative-step slice to the start of a dynamic dim is not supported");
    }
  }
  return {slice(c.x(0), starts, ends, axes, steps)};
}

std::vector<Tensor> pad_onnx(Ctx& c) {
  std::string mode = c.s("mode", "constant");
  PadMode m = mode == "constant"  ? PadMode::constant
              : mode == "reflect" ? PadMode::reflect
              : mode == "edge"    ? PadMode::edge
                               : (c.error("mode '", mode, "' is not supported"), PadMode::constant);
  int r = c.rank(0);
  std::vector<int64_t> pads =
      c.opset >= 11 ? *c.const_ints(1, "pads") : c.ints("pads").value_or(std::vector<int64_t>{});
  double value =
      c.opset >= 11
          ? (c.has(2) ? (c.const_scalar(2)
                             ? *c.const_scalar(2)
                             : (c.error("a run-time constant_value is not supported"), 0.0))
                      : 0.0)
          : c.f("value", 0);
  auto axes = c.const_ints(3, "axes").value_or(all_axes(r));
  if (pads.size() != 2 * axes.size())
    c.error("pads has ", pads.size(), " values for ", axes.size(), " axes");
  std::vector<int64_t> before(static_cast<size_t>(r), 0), after(static_cast<size_t>(r), 0);
  for (size_t k = 0; k < axes.size(); ++k) {
    int64_t a = axes[k] < 0 ? axes[k] + r : axes[k];
    if (a < 0 || a >= r) c.error("axis out of range");
    before[static_cast<size_t>(a)] = pads[k];
    after[static_cast<size_t>(a)] = pads[k + axes.size()];
  }
  return {pad(c.x(0), before, after, m, value)};
}

std::vector<Tensor> constant_onnx(Ctx& c) {
  const auto& a = c.node.attribute(0);
  const std::string& n = a.name();
  NDArray v;
  if (n == "value")
    v = tensor_from_proto(a.t(), ".", "node '" + c.node.name() + "' value");
  else if (n == "value_float")
    v = NDArray::from_vector<float>({a.f()}, {});
  else if (n == "value_floats")
    v = vector_array(std::vector<float>(a.floats().begin(), a.floats().end()));
  else if (n == "value_int")
    v = NDArray::from_vector<int64_t>({a.i()}, {});
  else if (n == "value_ints")
    v = vector_array(std::vector<int64_t>(a.ints().begin(), a.ints().end()));
  else
    c.error("attribute '", n, "' is not supported");
  return {c.g.constant(v, c.node.output(0))};
}

std::vector<Tensor> gemm_onnx(Ctx& c) {
  Tensor y = matmul(c.x(0), c.x(1),
                    {.transpose_a = c.i("transA", 0) != 0, .transpose_b = c.i("transB", 0) != 0});
  double alpha = c.f("alpha", 1), beta = c.f("beta", 1);
  if (alpha != 1) y = mul(y, c.scalar_like(alpha, y));
  if (c.has(2)) {
    Tensor cc = c.x(2);
    if (beta != 1) cc = mul(cc, c.scalar_like(beta, cc));
    y = add(y, cc);
  }
  return {y};
}

std::vector<Tensor> clip_onnx(Ctx& c) {
  Tensor y = c.x(0);
  if (c.opset < 11)
    return {clamp(y, c.f("min", -3.4028234663852886e38), c.f("max", 3.4028234663852886e38))};
  if (c.has(1)) y = maximum(y, c.x(1));
  if (c.has(2)) y = minimum(y, c.x(2));
  return {y};
}

std::vector<Tensor> flatten_onnx(Ctx& c) {
  const Shape s = c.x(0).shape();
  int r = s.rank();
  int64_t axis = c.i("axis", 1);
  if (axis < 0) axis += r;
  if (axis < 0 || axis > r) c.error("axis out of range");
  auto prod = [&](int b, int e) -> int64_t {
    int64_t p = 1;
    for (int k = b; k < e; ++k) {
      if (s[k] < 0) return -1;
      p *= s[k];
    }
    return p;
  };
  int64_t a = prod(0, static_cast<int>(axis)), b = prod(static_cast<int>(axis), r);
  if (a < 0 && b < 0) {
    if (axis == 1) return {reshape(c.x(0), {0, -1})};
    c.error("cannot flatten with dynamic dims on both sides of the axis");
  }
  return {reshape(c.x(0), {a, b < 0 ? -1 : b})};
}

std::vector<Tensor> expand_onnx(Ctx& c) {
  auto shape = *c.dim_values(1, "shape");
  const Shape xs = c.x(0).shape();
  std::array<Shape, kProbes> xp;
  if (c.probed(1)) xp = c.probe_shapes(c.x(0));
  size_t r = std::max(shape.size(), static_cast<size_t>(xs.rank()));
  std::vector<int64_t> target(r);
  for (size_t k = 0; k < r; ++k) {
    size_t from_end = r - 1 - k;
    bool in_x = from_end < static_cast<size_t>(xs.rank());
    int xa = static_cast<int>(xs.rank() - 1 - from_end);
    DimValue s = from_end < shape.size() ? shape[shape.size() - 1 - from_end] : DimValue{};
    if (from_end >= shape.size()) s.value = 1;
    if (!s.known) {
      // A dynamic size: Loom's expand keeps x's dim (-1) when it is that same dim.
      bool same = in_x;
      for (size_t p = 0; p < kProbes && same; ++p) same = xp[p][xa] == s.probe[p];
      if (!same) {
        // Expand(x, Shape(t)): broadcast x against t through where(true, x, x) with a condition
        // of t's shape (ONNX's Expand is a bidirectional broadcast too).
        Tensor t = c.shape_carrier(1);
        if (!t.defined())
          c.error(
              "expanding to a size computed from another tensor's dynamic dim is not "
              "supported (only Expand(x, Shape(t)) is)");
        return {where(all_true_like(t), c.x(0), c.x(0))};
      }
      target[k] = -1;
      continue;
    }
    int64_t d = in_x ? xs[xa] : 1;
    target[k] = s.value == 1 ? (in_x ? -1 : 1) : s.value;
    if (s.value == 1 && d >= 0) target[k] = d;
  }
  return {expand(c.x(0), target)};
}

// Reshape's target may hold elements computed from dynamic dims (Shape -> Gather -> Concat):
// an element equal to the input's dim at the same position becomes 0 (keep), one other becomes
// -1 (inferred); ONNX's own 0 and -1 mean the same in Loom.
std::vector<Tensor> reshape_onnx(Ctx& c) {
  auto shape = *c.dim_values(1, "shape");
  bool allowzero = c.i("allowzero", 0) != 0;
  const Tensor& x = c.x(0);
  std::array<Shape, kProbes> xp;
  if (c.probed(1)) xp = c.probe_shapes(x);
  std::vector<int64_t> target;
  int inferred = 0;
  for (size_t k = 0; k < shape.size(); ++k) {
    const DimValue& v = shape[k];
    if (v.known) {
      if (allowzero && v.value == 0) c.error("allowzero=1 with a 0 in the shape is not supported");
      target.push_back(v.value);
      inferred += v.value == -1;
      continue;
    }
    bool same = static_cast<int>(k) < x.rank();
    for (size_t p = 0; p < kProbes && same; ++p) same = xp[p][static_cast<int>(k)] == v.probe[p];
    target.push_back(same ? 0 : -1);
    inferred += !same;
  }
  if (inferred > 1)
    c.error("the target shape has ", inferred,
            " elements that are neither constants nor the input's dim at their position; Loom's "
            "reshape infers one (-1), so this shape is not supported");
  return {reshape(x, target)};
}

std::vector<Tensor> argreduce(Ctx& c, bool is_max) {
  if (c.i("select_last_index", 0)) c.error("select_last_index=1 is not supported");
  int64_t axis = c.i("axis", 0);
  bool keep = c.i("keepdims", 1) != 0;
  return {is_max ? argmax(c.x(0), axis, keep) : argmin(c.x(0), axis, keep)};
}

std::vector<Tensor> shape_onnx(Ctx& c) {
  const Shape s = c.x(0).shape();
  int r = s.rank();
  int64_t b = c.i("start", 0), e = c.i("end", r);
  if (b < 0) b += r;
  if (e < 0) e += r;
  b = std::clamp<int64_t>(b, 0, r);
  e = std::clamp<int64_t>(e, 0, r);
  std::vector<int64_t> dims;
  for (int64_t k = b; k < e; ++k) {
    if (s[static_cast<int>(k)] < 0)
      c.error("Shape of a dynamic dim is not supported (Loom imports shape-free graphs)");
    dims.push_back(s[static_cast<int>(k)]);
  }
  return {c.g.constant(vector_array(dims))};
}

// ONNX pads (begin..., end...) for a window over x's spatial dims; auto_pad SAME_* needs them
// static, since Loom fixes the padding at import time.
std::vector<int64_t> onnx_pads(Ctx& c, const Tensor& x, const std::vector<int64_t>& kernel,
                               const std::vector<int64_t>& strides,
                               const std::vector<int64_t>& dilations) {
  size_t n = kernel.size();
  std::string mode = c.s("auto_pad", "NOTSET");
  if (mode == "NOTSET") return c.ints("pads").value_or(std::vector<int64_t>(2 * n, 0));
  if (mode == "VALID") return std::vector<int64_t>(2 * n, 0);
  if (mode != "SAME_UPPER" && mode != "SAME_LOWER") c.error("auto_pad '", mode, "' is unknown");
  std::vector<int64_t> pads(2 * n, 0);
  for (size_t i = 0; i < n; ++i) {
    int64_t in = x.shape()[static_cast<int>(i) + 2];
    if (in < 0) c.error("auto_pad ", mode, " needs static spatial dims");
    int64_t s = strides.empty() ? 1 : strides[i], d = dilations.empty() ? 1 : dilations[i];
    int64_t total = std::max<int64_t>(0, ((in + s - 1) / s - 1) * s + (kernel[i] - 1) * d + 1 - in);
    // SAME_UPPER puts the odd pad at the end, SAME_LOWER at the beginning.
    pads[i] = mode == "SAME_UPPER" ? total / 2 : total - total / 2;
    pads[n + i] = total - pads[i];
  }
  return pads;
}

// Loom's conv and pools take 1 or 2 spatial dims of float data.
void check_window_input(Ctx& c, const Tensor& x) {
  int r = x.shape().rank();
  if (r != 3 && r != 4) c.error(r - 2, " spatial dims are not supported (1 or 2 are)");
  if (!is_floating(x.dtype())) c.error(dtype_name(x.dtype()), " input is not supported");
}

std::vector<Tensor> conv_onnx(Ctx& c) {
  const Tensor &x = c.x(0), &w = c.x(1);
  check_window_input(c, x);
  if (w.shape().rank() < 3) c.error("weight must have rank >= 3");
  const Shape ws = w.shape();  // Tensor::shape() returns a copy: iterate one
  std::vector<int64_t> kernel(ws.dims().begin() + 2, ws.dims().end());
  if (auto k = c.ints("kernel_shape"); k && *k != kernel)
    c.error("kernel_shape does not match the weight's shape");
  ConvAttrs a;
  a.strides = c.ints("strides").value_or(std::vector<int64_t>{});
  a.dilations = c.ints("dilations").value_or(std::vector<int64_t>{});
  a.groups = c.i("group", 1);
  a.pads = onnx_pads(c, x, kernel, a.strides, a.dilations);
  return {conv(x, w, c.has(2) ? c.x(2) : Tensor{}, a)};
}

std::vector<Tensor> pool_onnx(Ctx& c, bool is_max) {
  if (c.node.output_size() > 1 && !c.node.output(1).empty())
    c.error("the Indices output is not supported");
  check_window_input(c, c.x(0));
  PoolAttrs a;
  auto k = c.ints("kernel_shape");
  if (!k) c.error("kernel_shape is required");
  a.kernel = *k;
  a.strides = c.ints("strides").value_or(std::vector<int64_t>{});
  a.dilations = c.ints("dilations").value_or(std::vector<int64_t>{});
  a.ceil_mode = c.i("ceil_mode", 0) != 0;
  a.count_include_pad = c.i("count_include_pad", 0) != 0;
  a.pads = onnx_pads(c, c.x(0), a.kernel, a.strides, a.dilations);
  return {is_max ? max_pool(c.x(0), a) : avg_pool(c.x(0), a)};
}

// --- quantization

// Affine parameters as Loom wants them: per tensor (one value), per axis ([dim]), or per block
// (x's shape with dim `axis` in blocks); a scalar zero point next to a 1-element scale is
// reshaped to match.
QuantAttrs quant_attrs(Ctx& c, const Tensor& x, const Tensor& scale, DType dtype) {
  int r = x.rank();
  int64_t axis = c.i("axis", 1), block = c.i("block_size", 0);
  if (block < 0) c.error("block_size must be >= 0");
  bool per_tensor = scale.shape().is_static() && scale.shape().numel() == 1 && block == 0;
  if (!per_tensor && (axis < -r || axis >= r)) c.error("axis ", axis, " out of range");
  if (block > 0 && scale.rank() != r) c.error("a blocked scale must have the input's rank");
  if (block == 0 && !per_tensor && scale.rank() != 1)
    c.error("scale must be a scalar, 1-D (per axis) or, with block_size, of the input's rank");
  return QuantAttrs{per_tensor ? -1 : (axis < 0 ? axis + r : axis), block, dtype};
}

Tensor zero_point_like(Ctx& c, size_t k, const Tensor& scale) {
  if (!c.has(k)) return {};
  Tensor zp = c.x(k);
  if (zp.shape() != scale.shape()) {
    if (!zp.shape().is_static() || zp.shape().numel() != 1 || !scale.shape().is_static() ||
        scale.shape().numel() != 1)
      c.error("zero point shape ", zp.shape().to_string(), " differs from the scale's ",
              scale.shape().to_string());
    zp = reshape(zp, scale.shape().dims());
  }
  return zp;
}

std::vector<Tensor> dequantize_linear_onnx(Ctx& c) {
  const Tensor &x = c.x(0), &scale = c.x(1);
  DType out = scale.dtype();
  if (int64_t od = c.i("output_dtype", 0)) out = dtype_of_onnx(static_cast<int>(od), c.node.name());
  QuantAttrs a = quant_attrs(c, x, scale, out);
  Tensor y = dequantize(x, scale, zero_point_like(c, 2, scale), a);
  return {y};
}

std::vector<Tensor> quantize_linear_onnx(Ctx& c) {
  const Tensor &x = c.x(0), &scale = c.x(1);
  DType out = u8;
  if (c.has(2))
    out = c.x(2).dtype();
  else if (int64_t od = c.i("output_dtype", 0))
    out = dtype_of_onnx(static_cast<int>(od), c.node.name());
  if (out != u8 && out != i8 && out != u4 && out != i4 && out != i16)
    c.error("output type ", dtype_name(out), " is not supported");
  if (c.i("precision", 0)) c.error("precision is not supported");
  QuantAttrs a = quant_attrs(c, x, scale, out);
  Tensor zp = zero_point_like(c, 2, scale);
  if (a.block_size == 0 && scale.shape().is_static() && x.dtype() == f32) {
    // ONNX rounds x / scale computed in f32; Loom's quantize divides in double, which differs at
    // ties. So the division is an f32 op here and quantize gets a scale of 1.
    Tensor s = scale.dtype() == f32 ? scale : cast(scale, f32);
    if (a.axis >= 0 && scale.rank() == 1) {
      std::vector<int64_t> dims(static_cast<size_t>(x.rank() - a.axis), 1);
      dims[0] = -1;
      s = reshape(s, dims);
    }
    Tensor ones = c.g.constant(full(scale.shape(), 1, f32));
    return {quantize(div(x, s), ones, zp, a)};
  }
  return {quantize(x, scale, zp, a)};
}

std::vector<Tensor> dynamic_quantize_linear_onnx(Ctx& c) {
  const Tensor& x = c.x(0);
  if (x.dtype() != f32) c.error("input must be f32");
  Tensor zero = c.scalar_like(0, x);
  Tensor lo = minimum(min(x), zero), hi = maximum(max(x), zero);
  Tensor scale = div(sub(hi, lo), c.scalar_like(255, x));
  Tensor zpf = round(clamp(neg(div(lo, scale)), 0, 255));
  // x / scale rounded in f32 as ONNX specifies (the quantize op divides in double, which differs
  // at ties; the scale here puts many values near them).
  Tensor y = clamp(add(round(div(x, scale)), zpf), 0, 255);
  return {cast(y, u8), scale, cast(zpf, u8)};
}

// (a - a_zp) · (b - b_zp) in i32 (MatMulInteger; QLinearMatMul's accumulator). a's zero point
// may be per row ([M]), b's per column ([N]).
Tensor integer_matmul(Ctx& c, size_t a, size_t azp, size_t b, size_t bzp) {
  for (size_t k : {a, b})
    if (c.x(k).dtype() != u8 && c.x(k).dtype() != i8)
      c.error("input ", k, " must be u8 or i8, got ", dtype_name(c.x(k).dtype()));
  Tensor ai = cast(c.x(a), i32), bi = cast(c.x(b), i32);
  if (c.has(azp)) {
    Tensor z = cast(c.x(azp), i32);
    if (z.rank() == 1 && z.shape()[0] != 1) z = reshape(z, {-1, 1});
    ai = sub(ai, z);
  }
  if (c.has(bzp)) bi = sub(bi, cast(c.x(bzp), i32));
  return matmul(ai, bi);
}

std::vector<Tensor> qlinear_matmul_onnx(Ctx& c) {
  Tensor acc = integer_matmul(c, 0, 2, 3, 5);
  auto as_f32 = [&](size_t k) { return c.x(k).dtype() == f32 ? c.x(k) : cast(c.x(k), f32); };
  Tensor a_scale = as_f32(1);
  if (a_scale.rank() == 1 && a_scale.shape()[0] != 1) a_scale = reshape(a_scale, {-1, 1});
  // The requantization ORT does: round(acc · (a_scale · b_scale / y_scale)) + y_zp, saturated.
  Tensor mult = div(mul(a_scale, as_f32(4)), as_f32(6));
  DType out = c.x(7).dtype();
  double lo = out == u8 ? 0 : -128, hi = out == u8 ? 255 : 127;
  Tensor y = add(round(mul(cast(acc, f32), mult)), cast(c.x(7), f32));
  return {cast(clamp(y, lo, hi), out)};
}

// com.microsoft MatMulNBits: y = a · dequantize(B)ᵀ with B [N, K] in `bits`-bit blocks along K
// (one scale and zero point per block; zero point 2^(bits-1) when absent). Written as matmul(a,
// dequantize(q), transpose_b) so that the quantized_matmul pass fuses it (weights never become
// float).
std::vector<Tensor> matmul_nbits_onnx(Ctx& c) {
  const Tensor& a = c.x(0);
  int64_t K = c.i("K", 0), N = c.i("N", 0), bits = c.i("bits", 4), block = c.i("block_size", 0);
  if (K <= 0 || N <= 0 || K > (int64_t{1} << 31) || N > (int64_t{1} << 31))
    c.error("attributes K and N must be in [1, 2^31]");
  if (bits != 4 && bits != 8) c.error("bits=", bits, " is not supported (4 and 8 are)");
  if (block < 16 || block > 65536 || (block & (block - 1)))
    c.error("block_size must be a power of 2 in [16, 65536]");
  if (c.has(4)) c.error("g_idx is not supported");
  if (!c.cin[1]) c.error("B must be a constant (an initializer)");
  int64_t nb = (K + block - 1) / block, blob = block * bits / 8;
  const NDArray& B = *c.cin[1];
  if (B.dtype() != u8 || B.numel() != N * nb * blob)
    c.error("B must be u8 [N, ", nb, ", ", blob, "], got ", B.type().to_string());
  DType qt = bits == 4 ? u4 : u8;
  // Element k of row n sits at nibble (or byte) k of the row's blocks: Loom's packing (low nibble
  // first), so a row-aligned copy suffices when K fills the blocks.
  NDArray q = NDArray::empty(qt, Shape({N, K}));
  const uint8_t* src = static_cast<const uint8_t*>(B.contiguous().data());
  auto* dst = static_cast<uint8_t*>(q.data());
  int64_t row_bytes = nb * blob;
  if (bits == 8 || K % 2 == 0) {
    int64_t kb = bits == 8 ? K : K / 2;
    for (int64_t n = 0; n < N; ++n)
      std::memcpy(dst + n * kb, src + n * row_bytes, static_cast<size_t>(kb));
  } else {
    std::memset(dst, 0, q.nbytes());
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) {
        uint8_t v = (src[n * row_bytes + k / 2] >> (4 * (k % 2))) & 15;
        int64_t f = n * K + k;
        dst[f / 2] |= static_cast<uint8_t>(v << (4 * (f % 2)));
      }
  }
  Tensor scales = c.x(2);
  if (!scales.shape().is_static() || scales.shape().numel() != N * nb)
    c.error("scales must have N * n_blocks = ", N * nb, " values");
  scales = c.cin[2] ? c.g.constant(c.cin[2]->reshape(Shape({N, nb}))) : reshape(scales, {N, nb});
  NDArray zp;
  if (c.has(3)) {
    if (!c.cin[3]) c.error("zero_points must be a constant");
    const NDArray& z = *c.cin[3];
    if (z.dtype() != u8) c.error("float zero_points are not supported (packed u8 are)");
    int64_t zrow = bits == 4 ? (nb + 1) / 2 : nb;
    if (z.numel() != N * zrow) c.error("zero_points must have ", N * zrow, " bytes");
    zp = zeros(Shape({N, nb}), qt);
    const uint8_t* zs = static_cast<const uint8_t*>(z.contiguous().data());
    auto* zd = static_cast<uint8_t*>(zp.data());
    for (int64_t n = 0; n < N; ++n)
      for (int64_t b = 0; b < nb; ++b) {
        int64_t f = n * nb + b;
        if (bits == 8) {
          zd[f] = zs[n * zrow + b];
        } else {
          uint8_t v = (zs[n * zrow + b / 2] >> (4 * (b % 2))) & 15;
          zd[f / 2] |= static_cast<uint8_t>(v << (4 * (f % 2)));
        }
      }
  } else {
    zp = full(Shape({N, nb}), bits == 4 ? 8 : 128, qt);
  }
  Tensor w = dequantize(c.g.constant(q), scales, c.g.constant(zp),
                        {.axis = 1, .block_size = block, .dtype = a.dtype()});
  Tensor y = matmul(a, w, {.transpose_a = false, .transpose_b = true});
  if (c.has(5)) y = add(y, c.x(5));
  return {y};
}

std::vector<Tensor> constant_of_shape_onnx(Ctx& c) {
  NDArray v = NDArray::from_vector<float>({0}, {1});
  if (auto* a = c.attr("value")) v = tensor_from_proto(a->t(), ".", c.node.name());
  if (v.numel() != 1) c.error("value must have one element");
  if (c.probed(0)) {
    // Used as data with a dynamic shape: ConstantOfShape(Shape(t)) fills t's run-time shape.
    Tensor t = c.shape_carrier(0);
    if (!t.defined())
      c.error("a shape computed from dynamic dims is only supported as Shape(t) here");
    Tensor s = c.g.scalar(v.at(0), v.dtype());
    return {where(all_true_like(t), s, s)};
  }
  auto shape = *c.const_ints(0, "shape");
  return {c.g.constant(full(Shape(shape), v.at(0), v.dtype()))};
}

std::vector<Tensor> range_onnx(Ctx& c) {
  auto s = c.const_scalar(0), l = c.const_scalar(1), d = c.const_scalar(2);
  if (!s || !l || !d)
    c.error(
        "each of start, limit and delta must be a constant (the output's shape depends on "
        "them)");
  if (*d == 0) c.error("delta must not be 0");
  return {arange(c.g, *s, *l, *d, c.x(0).dtype())};
}

// --- activations and reductions composed of Loom ops

Converter act(std::function<Tensor(Ctx&, const Tensor&)> f) {
  return [f](Ctx& c) -> std::vector<Tensor> {
    if (!is_floating(c.x(0).dtype()))
      c.error(dtype_name(c.x(0).dtype()), " input is not supported");
    return {f(c, c.x(0))};
  };
}
Tensor s_(Ctx& c, const Tensor& x, double v) { return c.scalar_like(v, x); }

std::vector<Tensor> batch_norm_onnx(Ctx& c) {
  if (c.i("training_mode", 0)) c.error("training_mode=1 is not supported");
  const Tensor& x = c.x(0);
  if (x.rank() < 2) c.error("input needs rank >= 2");
  // Per-channel parameters [C] broadcast over [N, C, ...].
  std::vector<int64_t> shape(static_cast<size_t>(x.rank() - 1), 1);
  shape[0] = -1;
  auto ch = [&](size_t k) { return reshape(c.x(k), shape); };
  Tensor inv = rsqrt(add(ch(4), s_(c, x, c.f("epsilon", 1e-5))));
  return {add(mul(mul(sub(x, ch(3)), inv), ch(1)), ch(2))};
}

std::vector<Tensor> instance_norm_onnx(Ctx& c) {
  const Tensor& x = c.x(0);
  if (x.rank() < 3) c.error("input needs rank >= 3");
  std::vector<int64_t> axes;
  for (int k = 2; k < x.rank(); ++k) axes.push_back(k);
  Tensor m = mean(x, axes, true), d = sub(x, m);
  Tensor inv = rsqrt(add(mean(mul(d, d), axes, true), s_(c, x, c.f("epsilon", 1e-5))));
  std::vector<int64_t> shape(static_cast<size_t>(x.rank() - 1), 1);
  shape[0] = -1;
  return {add(mul(mul(d, inv), reshape(c.x(1), shape)), reshape(c.x(2), shape))};
}

// ReduceL1 / L2 / LogSum / LogSumExp / SumSquare through reduce() with a transform around sum.
Converter reduce_composed(int kind) {
  return [kind](Ctx& c) -> std::vector<Tensor> {
    const Tensor& x = c.x(0);
    if (!is_floating(x.dtype()) && kind != 0 && kind != 4)
      c.error(dtype_name(x.dtype()), " input is not supported");
    Tensor in = kind == 0 ? abs(x) : (kind == 1 || kind == 4) ? mul(x, x) : x;
    if (kind == 3) {  // log(sum(exp(x - max))) + max: stable
      auto axes = c.opset >= 18 ? c.const_ints(1, "axes") : c.ints("axes");
      if (!axes || axes->empty()) {
        if (c.i("noop_with_empty_axes", 0)) return {x};
        axes = all_axes(x.rank());
      }
      Tensor mk = max(x, *axes, true);
      Tensor r = add(log(sum(exp(sub(x, mk)), *axes, true)), mk);
      if (c.i("keepdims", 1) == 0) r = squeeze(r, *axes);
      return {r};
    }
    Ctx ci = c;
    ci.in[0] = in;
    Tensor r = reduce(ci, sum, c.opset >= 18)[0];
    if (kind == 1) r = sqrt(r);
    if (kind == 2) r = log(r);
    return {r};
  };
}

// --- spectral ops: ONNX keeps complex values as a trailing dim of 2 (re, im) or 1 (real)

Tensor to_complex(Ctx& c, const Tensor& x) {
  int64_t last = x.shape()[x.rank() - 1];
  if (x.dtype() != f32) c.error(dtype_name(x.dtype()), " input is not supported (f32 is)");
  if (last == 1) return complex(squeeze(x, {-1}), c.g.scalar(0, f32));
  if (last != 2) c.error("the last dim must be 1 (real) or 2 (complex), got ", last);
  auto parts = split(x, {1, 1}, -1);
  return complex(squeeze(parts[0], {-1}), squeeze(parts[1], {-1}));
}
Tensor from_complex(const Tensor& z) {
  return concat({unsqueeze(real(z), {-1}), unsqueeze(imag(z), {-1})}, -1);
}

std::vector<Tensor> dft_onnx(Ctx& c) {
  const Tensor& x = c.x(0);
  int r = x.rank();
  int64_t axis = c.opset >= 20 ? (c.has(2) ? (*c.const_ints(2, "axis"))[0] : -2) : c.i("axis", 1);
  if (axis < 0) axis += r;
  if (axis < 0 || axis > r - 2) c.error("axis out of range");
  bool inverse = c.i("inverse", 0) != 0, onesided = c.i("onesided", 0) != 0;
  int64_t n = x.shape()[static_cast<int>(axis)];
  std::optional<int64_t> length;
  if (c.has(1)) length = (*c.const_ints(1, "dft_length"))[0];
  bool real_input = x.shape()[r - 1] == 1;
  if (real_input && !inverse && !length && n > 0) {
    // A real signal through rfft: bin 0 (and n/2) come out exactly real, as ONNX's reference
    // has them; the other half of a full spectrum is the mirrored conjugate.
    Tensor y = rfft(squeeze(x, {-1}), {{axis}, false, FftScaling::none, 0, false});
    if (!onesided && n > 2) {
      Tensor tail = slice(y, {1}, {n - n / 2}, {axis});
      y = concat({y, conj(flip(tail, {axis}))}, axis);
    }
    return {from_complex(y)};
  }
  Tensor z = to_complex(c, x);
  if (inverse && onesided) {  // the one-sided spectrum of a real signal -> the real signal
    FftAttrs a{{axis}, false, FftScaling::size, length.value_or(n < 0 ? 0 : 2 * (n - 1)), false};
    return {unsqueeze(irfft(z, a), {-1})};
  }
  if (length) {
    if (n < 0) c.error("dft_length on a dynamic dim is not supported");
    if (*length > n) {
      std::vector<int64_t> before(static_cast<size_t>(r - 1), 0), after = before;
      after[static_cast<size_t>(axis)] = *length - n;
      z = pad(z, before, after);
    } else if (*length < n) {
      z = slice(z, {0}, {*length}, {axis});
    }
    n = *length;
  }
  Tensor y = fft(z, {{axis}, inverse, inverse ? FftScaling::size : FftScaling::none, 0, false});
  if (onesided) {
    if (n < 0) c.error("onesided on a dynamic dim is not supported");
    y = slice(y, {0}, {n / 2 + 1}, {axis});
  }
  return {from_complex(y)};
}

std::vector<Tensor> stft_onnx(Ctx& c) {
  const Tensor& x = c.x(0);
  if (x.rank() != 3 || x.shape()[2] != 1) c.error("signal must be real, [batch, length, 1]");
  auto step = c.const_ints(1, "frame_step");
  if (!step || step->size() != 1 || (*step)[0] <= 0)
    c.error("frame_step must be a positive scalar");
  int64_t len = 0;
  if (c.has(3)) len = (*c.const_ints(3, "frame_length"))[0];
  if (c.has(2)) {
    int64_t w = c.x(2).shape()[0];
    if (len && w != len) c.error("window length ", w, " differs from frame_length ", len);
    len = w;
  }
  if (len <= 0) c.error("frame_length or a window is required");
  Tensor fr = frames(squeeze(x, {-1}), len, (*step)[0]);  // [batch, frames, len]
  if (c.has(2)) fr = mul(fr, c.x(2).dtype() == f32 ? c.x(2) : cast(c.x(2), f32));
  bool onesided = c.i("onesided", 1) != 0;
  Tensor y = onesided ? rfft(fr, {{-1}, false, FftScaling::none, 0, false})
                      : fft(complex(fr, c.g.scalar(0, f32)));
  return {from_complex(y)};
}

// HannWindow / HammingWindow / BlackmanWindow with ONNX's coefficients (Hamming: 25/46, 21/46).
Converter window_onnx(std::vector<double> a) {
  return [a](Ctx& c) -> std::vector<Tensor> {
    auto n = c.const_ints(0, "size");
    if (!n || n->size() != 1 || (*n)[0] < 0) c.error("size must be a non-negative scalar");
    int64_t size = (*n)[0];
    double period = static_cast<double>(c.i("periodic", 1) ? size : size - 1);
    std::vector<double> v(static_cast<size_t>(size));
    for (int64_t k = 0; k < size; ++k) {
      double t = 2 * M_PI * static_cast<double>(k) / period, w = a[0];
      for (size_t j = 1; j < a.size(); ++j)
        w += (j % 2 ? -a[j] : a[j]) * std::cos(static_cast<double>(j) * t);
      v[static_cast<size_t>(k)] = w;
    }
    DType dt = dtype_of_onnx(static_cast<int>(c.i("output_datatype", 1)), c.node.name());
    return {c.g.constant(NDArray::from_doubles(v, Shape({size}), dt))};
  };
}

const std::map<std::string, std::vector<Entry>>& ms_converters() {
  static const auto* table = new std::map<std::string, std::vector<Entry>>{
      {"MatMulNBits", {{1, matmul_nbits_onnx}}},
  };
  return *table;
}

const std::map<std::string, std::vector<Entry>>& converters() {
  static const auto* table = new std::map<std::string, std::vector<Entry>>{
      {"Add", {{7, binary(add)}}},
      {"Sub", {{7, binary(sub)}}},
      {"Mul", {{7, binary(mul)}}},
      {"Div", {{7, binary(div)}}},
      {"Pow",
       {{7,
         [](Ctx& c) -> std::vector<Tensor> {
           Tensor e = c.x(1);
           if (e.dtype() != c.x(0).dtype()) e = cast(e, c.x(0).dtype());
           return {pow(c.x(0), e)};
         }}}},
      {"Max", {{8, variadic(maximum)}}},
      {"Min", {{8, variadic(minimum)}}},
      {"Sum", {{8, variadic(add)}}},
      {"Mean", {{8, variadic(add, true)}}},
      {"Neg", {{6, unary(neg)}}},
      {"Abs", {{6, unary(abs)}}},
      {"Sign", {{9, unary(sign)}}},
      {"Exp", {{6, unary(exp)}}},
      {"Log", {{6, unary(log)}}},
      {"Sqrt", {{6, unary(sqrt)}}},
      {"Reciprocal", {{6, unary(reciprocal)}}},
      {"Sin", {{7, unary(sin)}}},
      {"Cos", {{7, unary(cos)}}},
      {"Tanh", {{6, unary(tanh)}}},
      {"Sigmoid", {{6, unary(sigmoid)}}},
      {"Erf", {{9, unary(erf)}}},
      {"Floor", {{6, unary(floor)}}},
      {"Ceil", {{6, unary(ceil)}}},
      {"Round", {{11, unary(round)}}},
      {"Relu",
       {{6,
         [](Ctx& c) -> std::vector<Tensor> {
           return {maximum(c.x(0), c.scalar_like(0, c.x(0)))};
         }}}},
      {"LeakyRelu",
       {{6,
         [](Ctx& c) -> std::vector<Tensor> {
           const Tensor& x = c.x(0);
           return {where(less(x, c.scalar_like(0, x)), mul(x, c.scalar_like(c.f("alpha", 0.01), x)),
                         x)};
         }}}},
      {"HardSigmoid",
       {{6,
         [](Ctx& c) -> std::vector<Tensor> {
           const Tensor& x = c.x(0);
           return {clamp(
               add(mul(x, c.scalar_like(c.f("alpha", 0.2), x)), c.scalar_like(c.f("beta", 0.5), x)),
               0, 1)};
         }}}},
      {"Softplus",
       {{1,
         [](Ctx& c) -> std::vector<Tensor> {
           const Tensor& x = c.x(0);
           return {log(add(exp(x), c.scalar_like(1, x)))};
         }}}},
      {"Gelu",
       {{20,
         [](Ctx& c) -> std::vector<Tensor> {
           return {gelu(c.x(0), c.s("approximate", "none") == "tanh")};
         }}}},
      {"Clip", {{6, clip_onnx}}},
      {"Equal", {{11, binary(equal)}}},
      {"Less", {{9, binary(less)}}},
      {"LessOrEqual", {{12, binary(less_equal)}}},
      {"Greater", {{9, binary(greater)}}},
      {"GreaterOrEqual", {{12, binary(greater_equal)}}},
      {"Not", {{1, unary(logical_not)}}},
      {"And", {{7, binary(logical_and)}}},
      {"Or", {{7, binary(logical_or)}}},
      {"Xor", {{7, binary(logical_xor)}}},
      {"Where",
       {{9, [](Ctx& c) -> std::vector<Tensor> { return {where(c.x(0), c.x(1), c.x(2))}; }}}},
      {"Cast",
       {{6,
         [](Ctx& c) -> std::vector<Tensor> {
           if (c.i("saturate", 1) == 0) c.error("saturate=0 is not supported");
           return {cast(c.x(0), dtype_of_onnx(static_cast<int>(c.i("to", 1)),
                                              "node '" + c.node.name() + "'"))};
         }}}},
      {"MatMul", {{1, binary([](const Tensor& a, const Tensor& b) { return matmul(a, b); })}}},
      {"Gemm", {{7, gemm_onnx}}},
      {"Conv", {{1, conv_onnx}}},
      {"MaxPool", {{1, [](Ctx& c) { return pool_onnx(c, true); }}}},
      {"AveragePool", {{1, [](Ctx& c) { return pool_onnx(c, false); }}}},
      {"GlobalMaxPool",
       {{1, [](Ctx& c) -> std::vector<Tensor> { return {global_max_pool(c.x(0))}; }}}},
      {"GlobalAveragePool",
       {{1, [](Ctx& c) -> std::vector<Tensor> { return {global_avg_pool(c.x(0))}; }}}},
      {"Softmax",
       {{13, [](Ctx& c) -> std::vector<Tensor> { return {softmax(c.x(0), c.i("axis", -1))}; }}}},
      {"LogSoftmax",
       {{13,
         [](Ctx& c) -> std::vector<Tensor> { return {log_softmax(c.x(0), c.i("axis", -1))}; }}}},
      {"LayerNormalization", {{17, layer_norm_onnx}}},
      {"ReduceSum",
       {{1, [](Ctx& c) { return reduce(c, sum, false); }},
        {13, [](Ctx& c) { return reduce(c, sum, true); }}}},
      {"ReduceMean",
       {{1, [](Ctx& c) { return reduce(c, mean, false); }},
        {18, [](Ctx& c) { return reduce(c, mean, true); }}}},
      {"ReduceMax",
       {{1, [](Ctx& c) { return reduce(c, max, false); }},
        {18, [](Ctx& c) { return reduce(c, max, true); }}}},
      {"ReduceMin",
       {{1, [](Ctx& c) { return reduce(c, min, false); }},
        {18, [](Ctx& c) { return reduce(c, min, true); }}}},
      {"ReduceProd",
       {{1, [](Ctx& c) { return reduce(c, prod, false); }},
        {18, [](Ctx& c) { return reduce(c, prod, true); }}}},
      {"ArgMax", {{11, [](Ctx& c) { return argreduce(c, true); }}}},
      {"ArgMin", {{11, [](Ctx& c) { return argreduce(c, false); }}}},
      {"Reshape", {{5, reshape_onnx}}},
      {"Transpose",
       {{1,
         [](Ctx& c) -> std::
                        vector<Tensor> {
                          return {
                              transpose(c.x(0), c.ints("perm").value_or(std::vector<int64_t>{}))};
                        }}}},
      {"Squeeze",
       {{1,
         [](Ctx& c)
             -> std::
                 vector<Tensor> {
                   return {squeeze(c.x(0), c.ints("axes").value_or(std::vector<int64_t>{}))};
                 }},
        {13,
         [](Ctx& c) -> std::
                        vector<Tensor> {
                          return {squeeze(
                              c.x(0), c.const_ints(1, "axes").value_or(std::vector<int64_t>{}))};
                        }}}},
      {"Unsqueeze",
       {{1, [](Ctx& c) -> std::vector<Tensor> { return {unsqueeze(c.x(0), *c.ints("axes"))}; }},
        {13,
         [](Ctx& c)
             -> std::vector<Tensor> { return {unsqueeze(c.x(0), *c.const_ints(1, "axes"))}; }}}},
      {"Concat",
       {{4,
         [](Ctx& c) -> std::
                        vector<Tensor> {
                          std::vector<Tensor> xs;
                          for (size_t k = 0; k < c.in.size(); ++k) xs.push_back(c.x(k));
                          return {concat(xs, c.i("axis", 0))};
                        }}}},
      {"Split", {{2, split_onnx}}},
      {"Slice", {{10, slice_onnx}}},
      {"Gather",
       {{1,
         [](Ctx& c) -> std::vector<Tensor> { return {gather(c.x(0), c.x(1), c.i("axis", 0))}; }}}},
      {"Pad", {{2, pad_onnx}}},
      {"Tile",
       {{6,
         [](Ctx& c)
             -> std::vector<Tensor> { return {tile(c.x(0), *c.const_ints(1, "repeats"))}; }}}},
      {"Expand", {{8, expand_onnx}}},
      {"Flatten", {{1, flatten_onnx}}},
      {"Identity", {{1, [](Ctx& c) -> std::vector<Tensor> { return {c.x(0)}; }}}},
      {"Constant", {{1, constant_onnx}}},
      {"Shape", {{1, shape_onnx}}},
      {"Size",
       {{1,
         [](Ctx& c) -> std::
                        vector<Tensor> {
                          Shape sh = c.x(0).shape();
                          if (!sh.is_static())
                            c.error("Size of a tensor with a dynamic dim needs probes");
                          return {c.g.scalar(static_cast<double>(sh.numel()), i64)};
                        }}}},
      {"ConstantOfShape", {{9, constant_of_shape_onnx}}},
      {"Range", {{11, range_onnx}}},
      {"DequantizeLinear", {{10, dequantize_linear_onnx}}},
      {"QuantizeLinear", {{10, quantize_linear_onnx}}},
      {"DynamicQuantizeLinear", {{11, dynamic_quantize_linear_onnx}}},
      {"MatMulInteger",
       {{10, [](Ctx& c) -> std::vector<Tensor> { return {integer_matmul(c, 0, 2, 1, 3)}; }}}},
      {"QLinearMatMul", {{10, qlinear_matmul_onnx}}},
      {"DFT", {{17, dft_onnx}}},
      {"Elu", {{6, act([](Ctx& c, const Tensor& x) {
                  return where(less(x, s_(c, x, 0)),
                               mul(s_(c, x, c.f("alpha", 1)), sub(exp(x), s_(c, x, 1))), x);
                })}}},
      {"Selu", {{6, act([](Ctx& c, const Tensor& x) {
                   double a = c.f("alpha", 1.67326319217681884765625),
                          g = c.f("gamma", 1.05070102214813232421875);
                   return mul(s_(c, x, g), where(less_equal(x, s_(c, x, 0)),
                                                 mul(s_(c, x, a), sub(exp(x), s_(c, x, 1))), x));
                 })}}},
      {"Celu", {{12, act([](Ctx& c, const Tensor& x) {
                   Tensor a = s_(c, x, c.f("alpha", 1));
                   return add(maximum(x, s_(c, x, 0)),
                              minimum(s_(c, x, 0), mul(a, sub(exp(div(x, a)), s_(c, x, 1)))));
                 })}}},
      {"HardSwish", {{14, act([](Ctx& c, const Tensor& x) {
                        return mul(x, clamp(add(mul(x, s_(c, x, 1.0 / 6)), s_(c, x, 0.5)), 0, 1));
                      })}}},
      {"Mish", {{18, act([](Ctx& c, const Tensor& x) {
                   return mul(x, tanh(log(add(exp(x), s_(c, x, 1)))));
                 })}}},
      {"Softsign",
       {{1, act([](Ctx& c, const Tensor& x) { return div(x, add(abs(x), s_(c, x, 1))); })}}},
      {"ThresholdedRelu", {{10, act([](Ctx& c, const Tensor& x) {
                              return where(greater(x, s_(c, x, c.f("alpha", 1))), x, s_(c, x, 0));
                            })}}},
      {"Tan", {{7, act([](Ctx&, const Tensor& x) { return div(sin(x), cos(x)); })}}},
      {"Sinh", {{9, act([](Ctx& c, const Tensor& x) {
                   return mul(sub(exp(x), exp(neg(x))), s_(c, x, 0.5));
                 })}}},
      {"Cosh", {{9, act([](Ctx& c, const Tensor& x) {
                   return mul(add(exp(x), exp(neg(x))), s_(c, x, 0.5));
                 })}}},
      {"IsNaN", {{13, act([](Ctx&, const Tensor& x) { return not_equal(x, x); })}}},
      {"IsInf", {{10, act([](Ctx& c, const Tensor& x) {
                    bool pos = c.i("detect_positive", 1) != 0,
                         neg_ = c.i("detect_negative", 1) != 0;
                    Tensor inf = s_(c, x, INFINITY), ninf = s_(c, x, -INFINITY);
                    Tensor p = equal(x, inf), n = equal(x, ninf);
                    return pos && neg_ ? logical_or(p, n) : pos ? p : neg_ ? n : logical_and(p, n);
                  })}}},
      {"PRelu",
       {{9,
         [](Ctx& c) -> std::
                        vector<Tensor> {
                          const Tensor& x = c.x(0);
                          return {where(less(x, c.scalar_like(0, x)), mul(x, c.x(1)), x)};
                        }}}},
      {"CastLike",
       {{15,
         [](Ctx& c) -> std::
                        vector<Tensor> {
                          if (c.i("saturate", 1) == 0) c.error("saturate=0 is not supported");
                          return {cast(c.x(0), c.x(1).dtype())};
                        }}}},
      {"Dropout",
       {{7,
         [](Ctx& c) -> std::
                        vector<Tensor> {
                          // Inference: identity; a training_mode input must be a constant false.
                          if (c.has(2) && (!c.const_scalar(2) || *c.const_scalar(2) != 0))
                            c.error("training_mode other than constant false is not supported");
                          if (c.node.output_size() > 1 && !c.node.output(1).empty())
                            c.error("the mask output is not supported");
                          return {c.x(0)};
                        }}}},
      {"BatchNormalization", {{15, batch_norm_onnx}}},
      {"InstanceNormalization", {{6, instance_norm_onnx}}},
      {"ReduceL1", {{18, reduce_composed(0)}}},
      {"ReduceL2", {{18, reduce_composed(1)}}},
      {"ReduceLogSum", {{18, reduce_composed(2)}}},
      {"ReduceLogSumExp", {{18, reduce_composed(3)}}},
      {"ReduceSumSquare", {{18, reduce_composed(4)}}},
      {"STFT", {{17, stft_onnx}}},
      {"HannWindow", {{17, window_onnx({0.5, 0.5})}}},
      {"HammingWindow", {{17, window_onnx({25.0 / 46, 21.0 / 46})}}},
      {"BlackmanWindow", {{17, window_onnx({0.42, 0.5, 0.08})}}},
  };
  return *table;
}

// Probe sizes for the dynamic input dims: symbol s (one per dim_param name, one per unnamed
// dynamic dim) gets a distinct prime in each probe, different primes in a different order in the
// other probe. Two dim expressions (products, sums, floor divisions of dims) that agree in every
// probe are taken as equal: a false match needs both probes to hit a root of their difference,
// which is vanishingly unlikely (polynomial identity testing). Small primes keep the per-probe
// evaluation of shape arithmetic cheap.
// `level` scales them up when the smallest do not fit the model (e.g. a convolution whose kernel is
// longer than a 101-sample probe): the import is retried at the next level.
constexpr int kProbeLevels = 3;
int64_t probe_size(size_t probe, int symbol, int level) {
  auto is_prime = [](int64_t n) {
    for (int64_t d = 2; d * d <= n; ++d)
      if (n % d == 0) return false;
    return true;
  };
  static const int64_t kStart[kProbeLevels][kProbes] = {{101, 211}, {1009, 2003}, {4099, 6007}};
  int want = probe == 0 ? symbol : (symbol ^ 1);
  int64_t n = kStart[level][probe];
  for (int found = -1;; ++n)
    if (is_prime(n) && ++found == want) return n;
}

bool same_array(const NDArray& a, const NDArray& b) {
  if (a.type() != b.type()) return false;
  NDArray ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data(), cb.data(), ca.nbytes()) == 0;
}

// The run-time size of dim `axis` of x, from existing ops: a line of x along the axis (index 0 on
// the other axes) turned into ones and summed. Used only when a dynamic dim's value is used as
// data (e.g. Cast(Shape(x)[1]) in arithmetic); reshapes never need it.
Tensor runtime_dim(const Tensor& x, int axis) {
  Shape s = x.shape();
  int r = s.rank();
  if (s[axis] >= 0) return x.graph().scalar(static_cast<double>(s[axis]), i64);
  std::vector<int64_t> starts(static_cast<size_t>(r), 0), ends(static_cast<size_t>(r), 1);
  ends[static_cast<size_t>(axis)] = kSliceEnd;
  Tensor line = reshape(slice(x, starts, ends), {-1});
  Tensor ones = logical_or(equal(line, line), not_equal(line, line));  // true even for NaN
  return sum(cast(ones, i64), {0}, false);
}

class Importer {
 public:
  Importer(std::string name, std::string base_dir, const OnnxImportOptions& options, int level)
      : name_(std::move(name)), base_(std::move(base_dir)), options_(options), level_(level) {}
  // Whether the probe shapes failed type inference (a retry at a larger level may fit).
  bool probe_failed() const { return !probe_error_.empty(); }

  OnnxModel run(const onnx::ModelProto& m) {
    OnnxModel out;
    for (const auto& o : m.opset_import())
      if (o.domain().empty() || o.domain() == "ai.onnx") out.opset = o.version();
    if (out.opset == 0) {
      std::string domains;
      for (const auto& o : m.opset_import()) domains += (domains.empty() ? "" : ", ") + o.domain();
      fail("[onnx] ", name_, ": models without the ai.onnx opset (domains: ", domains,
           ") are not supported");
    }
    for (const auto& o : m.opset_import())
      if (o.domain() == "com.microsoft") ms_opset_ = std::max<int64_t>(o.version(), 1);
    opset_ = out.opset;
    const onnx::GraphProto& gp = m.graph();
    g_ = &out.graph;
    Graph& g = out.graph;
    total_nodes_ = static_cast<size_t>(gp.node_size());
    add_initializers(gp);
    std::map<std::string, int> symbols;
    for (const auto& vi : gp.input()) {
      if (values_.count(vi.name())) continue;  // older models list initializers as inputs
      auto bound = std::find_if(options_.constant_inputs.begin(), options_.constant_inputs.end(),
                                [&](const auto& kv) { return kv.first == vi.name(); });
      if (bound != options_.constant_inputs.end()) {
        values_[vi.name()] = g.constant(bound->second, vi.name());
        consts_[vi.name()] = bound->second;
        continue;
      }
      LOOM_CHECK(vi.type().has_tensor_type(), "[onnx] ", name_, ": input '", vi.name(),
                 "' is not a tensor");
      const auto& tt = vi.type().tensor_type();
      DType dt = dtype_of_onnx(tt.elem_type(), "input '" + vi.name() + "'");
      std::vector<int64_t> dims;
      std::array<Shape, kProbes> probes;
      for (const auto& d : tt.shape().dim()) {
        dims.push_back(d.has_dim_value() ? d.dim_value() : kDynamic);
        int sym = -1;
        if (!d.has_dim_value()) {
          // Equal dim_params are the same dim (ONNX's contract); unnamed dims are distinct.
          const std::string& p = d.dim_param();
          sym = p.empty() ? static_cast<int>(symbols.size()) : -1;
          if (p.empty())
            symbols["\x01" + std::to_string(sym)] = sym;
          else
            sym = symbols.emplace(p, static_cast<int>(symbols.size())).first->second;
        }
        for (size_t q = 0; q < kProbes; ++q)
          probes[q].dims().push_back(sym < 0 ? dims.back() : probe_size(q, sym, level_));
      }
      Tensor ph = g.placeholder(Shape(dims), dt, vi.name());
      placeholder_probe_[ph.node()] = probes;
      values_[vi.name()] = ph;
      out.input_names.push_back(vi.name());
    }
    import_nodes(gp);
    for (const auto& o : gp.output()) {
      LOOM_CHECK(values_.count(o.name()) || probed_.count(o.name()), "[onnx] ", name_, ": output '",
                 o.name(), "' is not computed");
      out.outputs.push_back(materialize(o.name()));
      out.output_names.push_back(o.name());
    }
    rename_outputs(out);
    return out;
  }

 private:
  void add_initializers(const onnx::GraphProto& gp) {
    for (const auto& init : gp.initializer()) {
      NDArray v = tensor_from_proto(init, base_, "initializer '" + init.name() + "'");
      values_[init.name()] = g_->constant(v, init.name());
      consts_[init.name()] = v;
    }
  }

  const Entry& entry_for(const onnx::NodeProto& node) {
    auto where = [&]() { return "[onnx] node '" + node.name() + "' (" + node.op_type() + "): "; };
    bool ms = node.domain() == "com.microsoft";
    if (!node.domain().empty() && node.domain() != "ai.onnx" && !ms)
      fail(where(), "domain '", node.domain(), "' is not supported");
    const auto& table = ms ? ms_converters() : converters();
    auto it = table.find(node.op_type());
    if (it == table.end()) {
      if (node.op_type() == "Loop" || node.op_type() == "Scan" || node.op_type() == "If")
        fail(where(), "control flow is not supported (only If with a constant condition is)");
      fail(where(), "unsupported op type", ms ? " in domain com.microsoft" : "");
    }
    int64_t opset = ms ? ms_opset_ : opset_;
    const Entry* e = nullptr;
    for (const auto& cand : it->second)
      if (cand.since <= opset) e = &cand;
    if (!e) fail(where(), "is not supported at opset ", opset);
    return *e;
  }

  Ctx make_ctx(const onnx::NodeProto& node, Graph& g) {
    Ctx c{g, node, opset_, {}, {}};
    for (const auto& name : node.input()) {
      c.in.emplace_back();
      c.cin.emplace_back();
      c.probe.push_back(nullptr);
      if (name.empty()) continue;
      auto v = values_.find(name);
      if (v != values_.end() && v->second.defined()) {
        c.in.back() = v->second;
        auto k = consts_.find(name);
        if (k != consts_.end()) c.cin.back() = k->second;
        continue;
      }
      auto p = probed_.find(name);
      if (p == probed_.end())
        fail("[onnx] node '", node.name(), "' (", node.op_type(), "): input '", name,
             "' is not defined before the node");
      c.probe.back() = &p->second;
    }
    c.materialize = [this, &node](size_t k) {
      return materialize(node.input(static_cast<int>(k)));
    };
    c.probe_shapes = [this](const Tensor& t) { return probe_shapes(t); };
    c.shape_carrier = [this, &node](size_t k) {
      return shape_carrier(node.input(static_cast<int>(k)));
    };
    return c;
  }

  void import_nodes(const onnx::GraphProto& gp) {
    for (const auto& node : gp.node()) {
      auto where = [&]() { return "[onnx] node '" + node.name() + "' (" + node.op_type() + "): "; };
      if (node.op_type() == "If" && (node.domain().empty() || node.domain() == "ai.onnx")) {
        import_if(node);
        progress();
        continue;
      }
      const Entry& e = entry_for(node);
      Ctx c = make_ctx(node, *g_);
      std::vector<Tensor> res;
      try {
        bool any_probed = std::any_of(c.probe.begin(), c.probe.end(), [](auto* p) { return p; });
        bool shape_op = node.op_type() == "Shape" || node.op_type() == "Size";
        if (shape_op && c.in.size() == 1 && c.in[0].defined() && !c.in[0].shape().is_static()) {
          bool static_dims = true;  // Shape's start/end may leave the dynamic dims out
          try {
            res = e.fn(c);
          } catch (const Error&) {
            static_dims = false;
          }
          if (!static_dims) {
            probe_shape(c, e);
            progress();
            continue;
          }
        } else if (any_probed && all_known(c)) {
          fold_probed(e, c);
          progress();
          continue;
        } else {
          // Dequantizing constant weights is left to run time: folding would store them as floats
          // (and hide them from the quantized_matmul pass).
          bool keep = node.op_type() == "DequantizeLinear";
          res = all_constant(c) && !keep ? fold(e, c) : e.fn(c);
        }
      } catch (const Error& err) {
        std::string msg = err.what();
        if (msg.rfind("[onnx]", 0) == 0) throw;
        fail(where(), msg);
      }
      for (int k = 0; k < node.output_size(); ++k) {
        if (node.output(k).empty()) continue;
        if (static_cast<size_t>(k) >= res.size()) fail(where(), "output ", k, " is not supported");
        set_value(node.output(k), res[static_cast<size_t>(k)]);
      }
      progress();
    }
  }

  void set_value(const std::string& name, const Tensor& t) {
    values_[name] = t;
    // Values that are constants (Constant, Shape, Identity of one) stay known for the shape
    // inputs downstream.
    if (is_constant(t)) consts_[name] = constant_value(t);
  }

  void progress() {
    ++done_nodes_;
    if (options_.progress) options_.progress(std::min(done_nodes_, total_nodes_), total_nodes_);
  }

  // If with a condition known at import time: the chosen branch's nodes are imported in place
  // (they may use outer values); its outputs become the If's outputs.
  void import_if(const onnx::NodeProto& node) {
    auto where = [&]() { return "[onnx] node '" + node.name() + "' (If): "; };
    Ctx c = make_ctx(node, *g_);
    if (c.probed(0)) {
      const Probed& p = *c.probe[0];
      if (!same_array(p[0], p[1]))
        fail(where(), "the condition depends on dynamic dims; control flow is not supported");
      c.cin[0] = p[0];
    }
    if (!c.cin[0])
      fail(where(),
           "a condition computed at run time is not supported (control flow; only If "
           "with a constant condition is)");
    if (c.cin[0]->numel() != 1) fail(where(), "the condition must have one element");
    bool cond = c.cin[0]->at(0) != 0;
    const onnx::AttributeProto* branch = c.attr(cond ? "then_branch" : "else_branch");
    if (!branch || !branch->has_g()) fail(where(), "missing ", cond ? "then" : "else", "_branch");
    const onnx::GraphProto& bg = branch->g();
    if (bg.output_size() != node.output_size())
      fail(where(), "the branch has ", bg.output_size(), " outputs, the node ", node.output_size());
    total_nodes_ += static_cast<size_t>(bg.node_size());
    add_initializers(bg);
    import_nodes(bg);
    for (int k = 0; k < node.output_size(); ++k) {
      const std::string &from = bg.output(k).name(), &to = node.output(k);
      if (to.empty()) continue;
      if (auto v = values_.find(from); v != values_.end() && v->second.defined()) {
        set_value(to, v->second);
      } else if (auto p = probed_.find(from); p != probed_.end()) {
        probed_[to] = p->second;
        aliases_[to] = from;
      } else {
        fail(where(), "branch output '", from, "' is not computed");
      }
    }
  }

  static bool all_constant(const Ctx& c) {
    if (c.node.op_type() == "Constant" || c.in.empty()) return false;
    for (size_t k = 0; k < c.in.size(); ++k)
      if (c.in[k].defined() && !c.cin[k]) return false;
    return true;
  }
  static bool all_known(const Ctx& c) {
    for (size_t k = 0; k < c.in.size(); ++k)
      if (c.in[k].defined() && !c.cin[k]) return false;
    return true;
  }

  // Runs a node's converter on known input values in a scratch graph (reference backend).
  std::vector<NDArray> evaluate(const Entry& e, const Ctx& c,
                                const std::vector<std::optional<NDArray>>& values) {
    Graph scratch;
    Ctx sc{scratch, c.node, c.opset, {}, values};
    for (size_t k = 0; k < c.in.size(); ++k)
      sc.in.push_back(c.has(k) ? scratch.constant(*values[k]) : Tensor());
    std::vector<Tensor> outs = e.fn(sc);
    CompileOptions o;
    o.optimization_level = 0;
    o.device = Device::reference();
    return scratch.compile(outs, o).run({});
  }

  // Import-time constant folding: a node whose inputs are all known (shape arithmetic such as
  // Shape -> Gather -> Concat -> Reshape) is converted in a scratch graph, run, and enters the
  // model as constants, so that the shape inputs downstream are known.
  std::vector<Tensor> fold(const Entry& e, Ctx& c) {
    std::vector<NDArray> values = evaluate(e, c, c.cin);
    std::vector<Tensor> res;
    for (size_t k = 0; k < values.size(); ++k)
      res.push_back(c.g.constant(values[k], k < static_cast<size_t>(c.node.output_size())
                                                ? c.node.output(static_cast<int>(k))
                                                : ""));
    return res;
  }

  // A node whose inputs are known, some only per probe (shape arithmetic on dynamic dims): it is
  // evaluated once per probe. Outputs equal in every probe are constants (the static part of a
  // shape, a head count); the others stay probed, and enter the graph only if a node uses them
  // as data (materialize).
  void fold_probed(const Entry& e, Ctx& c) {
    std::array<std::vector<NDArray>, kProbes> outs;
    for (size_t p = 0; p < kProbes; ++p) {
      std::vector<std::optional<NDArray>> values = c.cin;
      for (size_t k = 0; k < c.in.size(); ++k)
        if (c.probed(k)) values[k] = (*c.probe[k])[p];
      outs[p] = evaluate(e, c, values);
    }
    for (int k = 0; k < c.node.output_size(); ++k) {
      const std::string& name = c.node.output(k);
      if (name.empty()) continue;
      size_t uk = static_cast<size_t>(k);
      if (uk >= outs[0].size()) c.error("output ", k, " is not supported");
      bool same = true;
      for (size_t p = 1; p < kProbes; ++p) same = same && same_array(outs[p][uk], outs[0][uk]);
      if (same) {
        set_value(name, c.g.constant(outs[0][uk], name));
      } else {
        Probed v;
        for (size_t p = 0; p < kProbes; ++p) v[p] = outs[p][uk];
        probed_[name] = v;
        sources_[name] = &c.node;
      }
    }
  }

  // Shape / Size of a tensor with dynamic dims: its value under each probe.
  void probe_shape(Ctx& c, const Entry& e) {
    auto xs = probe_shapes(c.in[0]);
    Probed v;
    for (size_t p = 0; p < kProbes; ++p) {
      Graph scratch;
      Ctx sc{scratch, c.node, c.opset, {scratch.placeholder(xs[p], c.in[0].dtype(), "x")}, {{}}};
      // Shape and Size read only the input's (static) shape: no data needed.
      std::vector<Tensor> o = e.fn(sc);
      v[p] = constant_value(o[0]);
    }
    const std::string& name = c.node.output(0);
    if (same_array(v[0], v[1])) {
      set_value(name, c.g.constant(v[0], name));
      return;
    }
    probed_[name] = v;
    sources_[name] = &c.node;
  }

  Tensor shape_carrier(std::string name) {
    for (int hops = 0; hops < 64; ++hops) {
      if (auto a = aliases_.find(name); a != aliases_.end()) {
        name = a->second;
        continue;
      }
      auto s = sources_.find(name);
      if (s == sources_.end()) return {};
      const onnx::NodeProto& n = *s->second;
      if (n.op_type() == "Identity") {
        name = n.input(0);
        continue;
      }
      if (n.op_type() != "Shape") return {};
      Tensor t = materialize(n.input(0));
      for (const auto& a : n.attribute())
        if ((a.name() == "start" && a.i() != 0) || (a.name() == "end" && a.i() != t.rank()))
          return {};
      return t;
    }
    return {};
  }

  // A probed value as a run-time tensor (built on first use as data).
  Tensor materialize(const std::string& name) {
    if (auto v = values_.find(name); v != values_.end() && v->second.defined()) return v->second;
    if (auto a = aliases_.find(name); a != aliases_.end()) {
      Tensor t = materialize(a->second);
      values_[name] = t;
      return t;
    }
    auto s = sources_.find(name);
    LOOM_CHECK(s != sources_.end(), "[onnx] ", name_, ": value '", name, "' is not computed");
    const onnx::NodeProto& node = *s->second;
    Ctx c = make_ctx(node, *g_);
    std::vector<Tensor> res;
    try {
      if (node.op_type() == "Shape" || node.op_type() == "Size") {
        const Tensor& x = c.x(0);
        int r = x.rank();
        int64_t b = 0, e = r;
        if (node.op_type() == "Shape") {
          b = c.i("start", 0), e = c.i("end", r);
          if (b < 0) b += r;
          if (e < 0) e += r;
          b = std::clamp<int64_t>(b, 0, r);
          e = std::clamp<int64_t>(e, 0, r);
        }
        std::vector<Tensor> dims;
        for (int64_t k = b; k < e; ++k)
          dims.push_back(unsqueeze(runtime_dim(x, static_cast<int>(k)), {0}));
        Tensor shape = dims.empty() ? g_->constant(NDArray::empty(i64, Shape({0})))
                                    : (dims.size() == 1 ? dims[0] : concat(dims, 0));
        res.push_back(node.op_type() == "Shape" ? shape : prod(shape, {0}, false));
      } else {
        res = entry_for(node).fn(c);
      }
    } catch (const Error& err) {
      std::string msg = err.what();
      if (msg.rfind("[onnx]", 0) == 0) throw;
      fail("[onnx] node '", node.name(), "' (", node.op_type(), "): ", msg);
    }
    for (int k = 0; k < node.output_size() && static_cast<size_t>(k) < res.size(); ++k)
      if (probed_.count(node.output(k))) values_[node.output(k)] = res[static_cast<size_t>(k)];
    auto v = values_.find(name);
    LOOM_CHECK(v != values_.end() && v->second.defined(), "[onnx] ", name_, ": value '", name,
               "' is not computed");
    return v->second;
  }

  // A tensor's shape under each probe: type inference re-run with the probe sizes for every
  // graph node not yet seen.
  std::array<Shape, kProbes> probe_shapes(const Tensor& t) {
    const auto& nodes = g_->data()->nodes;
    const auto& reg = ir::OpRegistry::get();
    for (size_t i = probe_types_.size(); i < nodes.size(); ++i) {
      const ir::Node& n = nodes[i];
      std::array<std::vector<TensorType>, kProbes> outs;
      auto ph = placeholder_probe_.find(static_cast<int32_t>(i));
      for (size_t p = 0; p < kProbes; ++p) {
        if (ph != placeholder_probe_.end()) {
          outs[p] = {TensorType{n.outputs[0].dtype, ph->second[p]}};
          continue;
        }
        if (n.inputs.empty() || !probe_error_.empty()) {
          outs[p] = n.outputs;
          continue;
        }
        const ir::OpInfo& info = reg.info(n.op);
        std::vector<TensorType> types;
        std::vector<const NDArray*> vals;
        for (const ir::Value& v : n.inputs) {
          types.push_back(
              probe_types_[static_cast<size_t>(v.node)][p][static_cast<size_t>(v.index)]);
          const ir::Node& src = nodes[static_cast<size_t>(v.node)];
          vals.push_back(src.op == ir::op::constant ? &attrs_as<ConstantAttrs>(*src.attrs).value
                                                    : nullptr);
        }
        try {
          outs[p] = info.infer(ir::InferContext{info, *n.attrs, types, vals});
        } catch (const Error& e) {
          probe_error_ = e.what();
          outs[p] = n.outputs;
        }
      }
      probe_types_.push_back(std::move(outs));
    }
    if (!probe_error_.empty())
      fail("dynamic dims could not be followed through the graph for its shape arithmetic (",
           probe_error_, "); equal dims of the inputs need the same dim_param");
    std::array<Shape, kProbes> out;
    for (size_t p = 0; p < kProbes; ++p)
      out[p] = probe_types_[static_cast<size_t>(t.node())][p][static_cast<size_t>(t.index())].shape;
    return out;
  }

  static bool is_constant(const Tensor& t);
  static NDArray constant_value(const Tensor& t);
  static void rename_outputs(OnnxModel& m);

  std::string name_, base_;
  const OnnxImportOptions& options_;
  int level_ = 0;
  Graph* g_ = nullptr;
  int64_t opset_ = 0, ms_opset_ = 0;
  size_t total_nodes_ = 0, done_nodes_ = 0;
  std::unordered_map<std::string, Tensor> values_;
  std::unordered_map<std::string, NDArray> consts_;
  // Shape-like values computed from dynamic dims: per-probe values, the node that makes each
  // (to build it in the graph if used as data), and If outputs that forward one.
  std::unordered_map<std::string, Probed> probed_;
  std::unordered_map<std::string, const onnx::NodeProto*> sources_;
  std::unordered_map<std::string, std::string> aliases_;
  std::unordered_map<int32_t, std::array<Shape, kProbes>> placeholder_probe_;
  std::vector<std::array<std::vector<TensorType>, kProbes>> probe_types_;
  std::string probe_error_;
};

bool Importer::is_constant(const Tensor& t) {
  return t.graph_data()->nodes[static_cast<size_t>(t.node())].op == ir::op::constant;
}

NDArray Importer::constant_value(const Tensor& t) {
  const auto& n = t.graph_data()->nodes[static_cast<size_t>(t.node())];
  return attrs_as<ConstantAttrs>(*n.attrs).value;
}

void Importer::rename_outputs(OnnxModel& m) {
  // Executable::outputs() names outputs after their nodes: give them the ONNX names (inputs
  // passed straight through keep their placeholder name).
  auto& nodes = m.graph.data()->nodes;
  for (size_t k = 0; k < m.outputs.size(); ++k) {
    auto& n = nodes[static_cast<size_t>(m.outputs[k].node())];
    if (n.op != ir::op::placeholder) n.name = m.output_names[k];
  }
}

}  // namespace

OnnxModel import_onnx_bytes(const std::string& bytes, const std::string& name,
                            const std::string& base_dir, const OnnxImportOptions& options) {
  onnx::ModelProto m;
  LOOM_CHECK(m.ParseFromString(bytes), "[onnx] ", name,
             ": not a valid ONNX model (protobuf parse failed)");
  for (int level = 0;; ++level) {
    Importer imp(name, base_dir, options, level);
    try {
      return imp.run(m);
    } catch (const Error&) {
      if (!imp.probe_failed() || level + 1 == kProbeLevels) throw;
    }
  }
}

OnnxModel import_onnx(const std::string& path, const OnnxImportOptions& options) {
  std::string dir = fs::path(path).parent_path().string();
  return import_onnx_bytes(read_file(path, "the model"), path, dir.empty() ? "." : dir, options);
}

NDArray read_onnx_tensor(const std::string& path) {
  onnx::TensorProto t;
  LOOM_CHECK(t.ParseFromString(read_file(path, "the tensor")), "[onnx] ", path,
             ": not a TensorProto");
  std::string dir = fs::path(path).parent_path().string();
  return tensor_from_proto(t, dir.empty() ? "." : dir, path);
}

std::vector<std::string> onnx_supported_ops() {
  std::vector<std::string> out;
  for (const auto& [name, e] : converters()) out.push_back(name);
  out.push_back("If");  // with a condition known at import time (Importer::import_if)
  for (const auto& [name, e] : ms_converters()) out.push_back("com.microsoft." + name);
  return out;
}

}  // namespace loom::io
