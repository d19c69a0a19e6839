// ONNX importer: ModelProto -> loom::Graph through a table of converters (op type + opset).
#include "io/onnx_import.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <unordered_map>

#include "ir/graph.h"
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

struct Ctx {
  Graph& g;
  const onnx::NodeProto& node;
  int64_t opset;
  std::vector<Tensor> in;                   // undefined for omitted optional inputs
  std::vector<std::optional<NDArray>> cin;  // values of constant inputs

  template <class... Args>
  [[noreturn]] void error(const Args&... args) const {
    fail("[onnx] node '", node.name(), "' (", node.op_type(), "): ", args...);
  }
  bool has(size_t i) const { return i < in.size() && in[i].defined(); }
  const Tensor& x(size_t i) const {
    if (!has(i)) error("input ", i, " is required");
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
    if (!cin[k])
      error("input ", k, " (", what, ") must be a constant: Loom needs it at import time");
    auto d = cin[k]->to_doubles();
    return std::vector<int64_t>(d.begin(), d.end());
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

std::vector<Tensor> slice_onnx(Ctx& c) {
  auto starts = *c.const_ints(1, "starts");
  auto ends = *c.const_ints(2, "ends");
  auto axes = c.const_ints(3, "axes").value_or(all_axes(static_cast<int>(starts.size())));
  auto steps = c.const_ints(4, "steps").value_or(std::vector<int64_t>(starts.size(), 1));
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
          ? (c.has(2) ? (c.const_scalar(2) ? *c.const_scalar(2)
                                           : (c.error("constant_value must be a constant"), 0.0))
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
    v = NDArray::from_vector<float>(std::vector<float>(a.floats().begin(), a.floats().end()),
                                    {a.floats_size()});
  else if (n == "value_int")
    v = NDArray::from_vector<int64_t>({a.i()}, {});
  else if (n == "value_ints")
    v = NDArray::from_vector<int64_t>(std::vector<int64_t>(a.ints().begin(), a.ints().end()),
                                      {a.ints_size()});
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
  auto shape = *c.const_ints(1, "shape");
  const Shape xs = c.x(0).shape();
  size_t r = std::max(shape.size(), static_cast<size_t>(xs.rank()));
  std::vector<int64_t> target(r);
  for (size_t k = 0; k < r; ++k) {
    size_t from_end = r - 1 - k;
    int64_t s = from_end < shape.size() ? shape[shape.size() - 1 - from_end] : 1;
    int64_t d = from_end < static_cast<size_t>(xs.rank())
                    ? xs[static_cast<int>(xs.rank() - 1 - from_end)]
                    : 1;
    target[k] = s == 1 ? (from_end < static_cast<size_t>(xs.rank()) ? -1 : 1) : s;
    if (s == 1 && d >= 0) target[k] = d;
  }
  return {expand(c.x(0), target)};
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
  return {c.g.constant(NDArray::from_vector<int64_t>(dims, {static_cast<int64_t>(dims.size())}))};
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
      {"Reshape",
       {{5,
         [](Ctx&
                c) -> std::
                       vector<Tensor> {
                         auto shape = *c.const_ints(1, "shape");
                         if (c.i("allowzero", 0) && std::count(shape.begin(), shape.end(), 0))
                           c.error("allowzero=1 with a 0 in the shape is not supported");
                         return {reshape(c.x(0), shape)};
                       }}}},
      {"Transpose",
       {{1,
         [](Ctx& c) -> std::
                        vector<Tensor> {
                          return {
                              transpose(c.x(0), c.ints("perm").value_or(std::vector<int64_t>{}))};
                        }}}},
      {"Squeeze",
       {{1,
         [](Ctx&
                c) -> std::
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
  };
  return *table;
}

class Importer {
 public:
  Importer(std::string name, std::string base_dir, const OnnxImportOptions& options)
      : name_(std::move(name)), base_(std::move(base_dir)), options_(options) {}

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
    const onnx::GraphProto& gp = m.graph();
    Graph& g = out.graph;
    for (const auto& init : gp.initializer()) {
      NDArray v = tensor_from_proto(init, base_, "initializer '" + init.name() + "'");
      values_[init.name()] = g.constant(v, init.name());
      consts_[init.name()] = v;
    }
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
      for (const auto& d : tt.shape().dim())
        dims.push_back(d.has_dim_value() ? d.dim_value() : kDynamic);
      values_[vi.name()] = g.placeholder(Shape(dims), dt, vi.name());
      out.input_names.push_back(vi.name());
    }
    const auto& table = converters();
    for (const auto& node : gp.node()) {
      auto where = [&]() { return "[onnx] node '" + node.name() + "' (" + node.op_type() + "): "; };
      if (!node.domain().empty() && node.domain() != "ai.onnx")
        fail(where(), "domain '", node.domain(), "' is not supported");
      auto it = table.find(node.op_type());
      if (it == table.end()) fail(where(), "unsupported op type");
      const Entry* e = nullptr;
      for (const auto& cand : it->second)
        if (cand.since <= out.opset) e = &cand;
      if (!e) fail(where(), "not supported at opset ", out.opset);
      Ctx c{g, node, out.opset, {}, {}};
      for (const auto& name : node.input()) {
        if (name.empty()) {
          c.in.emplace_back();
          c.cin.emplace_back();
          continue;
        }
        auto v = values_.find(name);
        if (v == values_.end()) fail(where(), "input '", name, "' is not defined before the node");
        c.in.push_back(v->second);
        auto k = consts_.find(name);
        c.cin.push_back(k == consts_.end() ? std::nullopt : std::optional<NDArray>(k->second));
      }
      std::vector<Tensor> res;
      try {
        res = all_constant(c) ? fold(*e, c) : e->fn(c);
      } catch (const Error& err) {
        std::string msg = err.what();
        if (msg.rfind("[onnx]", 0) == 0) throw;
        fail(where(), msg);
      }
      for (int k = 0; k < node.output_size(); ++k) {
        if (node.output(k).empty()) continue;
        if (static_cast<size_t>(k) >= res.size()) fail(where(), "output ", k, " is not supported");
        const Tensor& t = res[static_cast<size_t>(k)];
        values_[node.output(k)] = t;
        // Values that are constants (Constant, Shape, Identity of one) stay known for the shape
        // inputs downstream.
        if (is_constant(t)) consts_[node.output(k)] = constant_value(t);
      }
    }
    for (const auto& o : gp.output()) {
      auto v = values_.find(o.name());
      LOOM_CHECK(v != values_.end(), "[onnx] ", name_, ": output '", o.name(), "' is not computed");
      out.outputs.push_back(v->second);
      out.output_names.push_back(o.name());
    }
    rename_outputs(out);
    return out;
  }

 private:
  static bool is_constant(const Tensor& t);
  static bool all_constant(const Ctx& c) {
    if (c.node.op_type() == "Constant" || c.in.empty()) return false;
    for (size_t k = 0; k < c.in.size(); ++k)
      if (c.in[k].defined() && !c.cin[k]) return false;
    return true;
  }
  // Import-time constant folding: a node whose inputs are all known (shape arithmetic such as
  // Shape -> Gather -> Concat -> Reshape) is converted in a scratch graph, run, and enters the
  // model as constants, so that the shape inputs downstream are known.
  std::vector<Tensor> fold(const Entry& e, Ctx& c) {
    Graph scratch;
    Ctx sc{scratch, c.node, c.opset, {}, c.cin};
    for (size_t k = 0; k < c.in.size(); ++k)
      sc.in.push_back(c.in[k].defined() ? scratch.constant(*c.cin[k]) : Tensor());
    std::vector<Tensor> outs = e.fn(sc);
    CompileOptions o;
    o.optimization_level = 0;
    o.device = Device::reference();
    std::vector<NDArray> values = scratch.compile(outs, o).run({});
    std::vector<Tensor> res;
    for (size_t k = 0; k < values.size(); ++k)
      res.push_back(c.g.constant(values[k], k < static_cast<size_t>(c.node.output_size())
                                                ? c.node.output(static_cast<int>(k))
                                                : ""));
    return res;
  }
  static NDArray constant_value(const Tensor& t);
  static void rename_outputs(OnnxModel& m);

  std::string name_, base_;
  const OnnxImportOptions& options_;
  std::unordered_map<std::string, Tensor> values_;
  std::unordered_map<std::string, NDArray> consts_;
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
  return Importer(name, base_dir, options).run(m);
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
  return out;
}

}  // namespace loom::io
