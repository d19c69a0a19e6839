// loom/attrs.h — typed op attributes, declared once.
//
// Every attribute struct lists its fields with LOOM_FIELDS(...). From that one declaration Loom
// derives hashing and equality (CSE), printing and parsing (IR text), and serialization
// (packages): no attribute is ever stored in an untyped slot.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <typeinfo>
#include <utility>
#include <variant>
#include <vector>

#include "loom/dtype.h"
#include "loom/ndarray.h"

#define LOOM_FIELDS(...)                                        \
  static constexpr std::string_view kFieldNames = #__VA_ARGS__; \
  auto fields() { return std::tie(__VA_ARGS__); }               \
  auto fields() const { return std::tie(__VA_ARGS__); }

namespace loom {

// The value of one attribute field in its generic form (for printing and serialization).
using AttrValue = std::variant<int64_t, double, bool, std::string, std::vector<int64_t>,
                               std::vector<double>, NDArray>;
using AttrFields = std::vector<std::pair<std::string, AttrValue>>;

std::string attr_value_to_string(const AttrValue& v);

// Type-erased attributes of a node.
class Attrs {
 public:
  virtual ~Attrs() = default;
  virtual size_t hash() const = 0;
  virtual bool equals(const Attrs& other) const = 0;
  virtual AttrFields fields() const = 0;
  // Sets the named fields (others keep their defaults); throws on unknown names or wrong types.
  virtual void set_fields(const AttrFields& fields) = 0;
  virtual std::shared_ptr<Attrs> clone() const = 0;
  virtual const std::type_info& type() const = 0;
  std::string to_string() const;  // "{axes=[0,1], keepdims=true}"
};
using AttrsPtr = std::shared_ptr<const Attrs>;

// ---------------------------------------------------------------------------------------------
// Attribute structs (one per op family that needs one).

struct NoAttrs {
  auto fields() const { return std::tie(); }
  auto fields() { return std::tie(); }
  static constexpr std::string_view kFieldNames = "";
};
struct PlaceholderAttrs {
  std::string name;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  LOOM_FIELDS(name, dtype, shape)
};
struct ConstantAttrs {
  NDArray value;
  LOOM_FIELDS(value)
};
struct VariableRefAttrs {  // read / assign: the variable's name and (static) type
  std::string variable;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  LOOM_FIELDS(variable, dtype, shape)
};
struct CastAttrs {
  DType dtype = DType::f32;
  LOOM_FIELDS(dtype)
};
struct ClampAttrs {
  double min = -1e300;
  double max = 1e300;
  LOOM_FIELDS(min, max)
};
struct GeluAttrs {
  bool tanh_approximation = false;
  LOOM_FIELDS(tanh_approximation)
};
struct ReduceAttrs {
  std::vector<int64_t> axes;  // empty: all axes
  bool keepdims = false;
  LOOM_FIELDS(axes, keepdims)
};
struct ArgReduceAttrs {
  int64_t axis = 0;
  bool keepdims = false;
  LOOM_FIELDS(axis, keepdims)
};
// sample: temperature / top-k / top-p sampling of the last axis (ops.h `sample`).
struct SampleAttrs {
  double temperature = 1;  // > 0
  int64_t top_k = 0;       // 0: every logit; else the k largest (ties: lower index first)
  double top_p = 1;        // in (0, 1]: the smallest most-probable prefix of at least this mass
  LOOM_FIELDS(temperature, top_k, top_p)
};
struct AxisAttrs {  // softmax, log_softmax
  int64_t axis = -1;
  LOOM_FIELDS(axis)
};
struct NormAttrs {  // layer_norm, rms_norm, add_rms_norm: normalise over axes [axis, rank)
  int64_t axis = -1;
  double eps = 1e-5;
  LOOM_FIELDS(axis, eps)
};
struct MatmulAttrs {
  bool transpose_a = false;
  bool transpose_b = false;
  LOOM_FIELDS(transpose_a, transpose_b)
};
struct ShapeAttrs {  // reshape, expand: -1 in reshape infers one dim; 0 keeps the input dim
  std::vector<int64_t> shape;
  LOOM_FIELDS(shape)
};
struct PermuteAttrs {
  std::vector<int64_t> perm;
  LOOM_FIELDS(perm)
};
struct AxesAttrs {  // squeeze, unsqueeze, flip
  std::vector<int64_t> axes;
  LOOM_FIELDS(axes)
};
struct ConcatAttrs {
  int64_t axis = 0;
  LOOM_FIELDS(axis)
};
struct SplitAttrs {
  int64_t axis = 0;
  std::vector<int64_t> sizes;
  LOOM_FIELDS(axis, sizes)
};
// numpy-style basic slicing per axis; ends are clamped, kSliceEnd means "to the end".
inline constexpr int64_t kSliceEnd = INT64_MAX;
struct SliceAttrs {
  std::vector<int64_t> axes;
  std::vector<int64_t> starts;
  std::vector<int64_t> ends;
  std::vector<int64_t> steps;
  LOOM_FIELDS(axes, starts, ends, steps)
};
struct GatherAttrs {
  int64_t axis = 0;
  LOOM_FIELDS(axis)
};
enum class PadMode : int64_t { constant = 0, reflect = 1, edge = 2 };
struct PadAttrs {
  std::vector<int64_t> before;
  std::vector<int64_t> after;
  PadMode mode = PadMode::constant;
  double value = 0;
  LOOM_FIELDS(before, after, mode, value)
};
struct TileAttrs {
  std::vector<int64_t> reps;
  LOOM_FIELDS(reps)
};
struct ArangeAttrs {
  double start = 0;
  double stop = 0;
  double step = 1;
  DType dtype = DType::i64;
  LOOM_FIELDS(start, stop, step, dtype)
};
struct DynamicSliceAttrs {  // start from a tensor, static sizes
  std::vector<int64_t> sizes;
  LOOM_FIELDS(sizes)
};
struct SdpaAttrs {
  bool causal = false;
  double scale = 0;       // 0: 1/sqrt(head dim)
  bool has_mask = false;  // inputs: q, k, v, [mask], [kv_len]
  bool has_kv_len = false;
  LOOM_FIELDS(causal, scale, has_mask, has_kv_len)
};
struct RopeAttrs {
  bool interleaved = false;  // true: GPT-J pairs (x0,x1); false: half split (x_i, x_{i+d/2})
  double theta = 10000;
  double position_scale = 1;  // positions are divided by this (linear scaling)
  int64_t rotary_dim = 0;     // 0: the whole head dim
  LOOM_FIELDS(interleaved, theta, position_scale, rotary_dim)
};
// rope_write_kv_sdpa: rope_write_kv's attributes (the rope), then sdpa's.
struct RopeSdpaAttrs {
  bool interleaved = false;
  double theta = 10000;
  double position_scale = 1;
  int64_t rotary_dim = 0;
  bool causal = false;
  double scale = 0;
  bool has_mask = false;
  bool has_kv_len = false;
  LOOM_FIELDS(interleaved, theta, position_scale, rotary_dim, causal, scale, has_mask, has_kv_len)
  RopeAttrs rope() const { return {interleaved, theta, position_scale, rotary_dim}; }
  SdpaAttrs sdpa() const { return {causal, scale, has_mask, has_kv_len}; }
};
// Affine quantization x ≈ (q − zero_point) · scale. Granularity follows the scale's shape:
// one element: per tensor; a vector of q.shape[axis] values: per axis; q's shape with
// q.shape[axis] replaced by ceil(q.shape[axis] / block_size): per block of `block_size` along axis.
struct QuantAttrs {
  int64_t axis = -1;
  int64_t block_size = 0;    // 0: per tensor or per axis
  DType dtype = DType::f32;  // dequantize: the float result; quantize: the integer result
  LOOM_FIELDS(axis, block_size, dtype)
};
// Lookup-table weights: x = table[q] (one table of 16/256 entries), or table[row, q] with one table
// per index of axis 0 (table shape [q.shape[0], entries]).
struct LutAttrs {
  DType dtype = DType::f32;
  LOOM_FIELDS(dtype)
};
// Weights packed in a block format (GGUF's q4_0 q4_1 q8_0 q5_0 q5_1 q4_k q5_k q6_k iq4_nl, or
// Loom's affine_u4 affine_i8): u8 [rows, row_bytes] decoding to f32 [rows, k].
struct BlockQuantAttrs {
  std::string format;
  int64_t k = 0;
  LOOM_FIELDS(format, k)
};
// y = x · Wᵀ with W [n, k] never materialised. format: a block format (inputs x, packed), "affine"
// (inputs x, q [n,k], scale, [zero_point]; axis/block_size as QuantAttrs) or "lut" (x, q, table).
struct QuantizedMatmulAttrs {
  std::string format;
  int64_t n = 0;
  int64_t k = 0;
  int64_t axis = 0;
  int64_t block_size = 0;
  LOOM_FIELDS(format, n, k, axis, block_size)
};
// add_rms_norm_quantized_matmul: quantized_matmul's fields (a block format only: inputs a, b,
// gamma, packed) and the norm's eps; the norm is over the last axis.
struct AddRmsNormQuantizedMatmulAttrs {
  std::string format;
  int64_t n = 0;
  int64_t k = 0;
  int64_t axis = 0;
  int64_t block_size = 0;
  double eps = 1e-6;
  LOOM_FIELDS(format, n, k, axis, block_size, eps)
  QuantizedMatmulAttrs matmul() const { return {format, n, k, axis, block_size}; }
};
// FFT ops (MPSGraphFFTDescriptor). Scaling multiplies the result by 1, 1/V or 1/sqrt(V), where V
// is the product of the transformed lengths (of the real signal for rfft / irfft).
enum class FftScaling : int64_t { none = 0, size = 1, unitary = 2 };
struct FftAttrs {                    // fft, rfft, irfft
  std::vector<int64_t> axes = {-1};  // any set; rfft / irfft: the last listed axis is the real one
  bool inverse = false;              // fft only: exp(+i...) instead of exp(-i...); never scales
  FftScaling scaling = FftScaling::none;
  int64_t length = 0;         // irfft: the real output length of the last axis; 0: from the input
  bool round_to_odd = false;  // irfft with length 0: 2(m-1)+1 instead of 2(m-1) (MPSGraph)
  LOOM_FIELDS(axes, inverse, scaling, length, round_to_odd)
};
// window: a creation op; kind is hann, hamming, blackman or gaussian (param: its std in samples).
struct WindowAttrs {
  std::string kind = "hann";
  int64_t length = 0;
  bool periodic = true;  // periodic (for spectral analysis, like torch/scipy fftbins) or symmetric
  double param = 0;
  DType dtype = DType::f32;
  LOOM_FIELDS(kind, length, periodic, param, dtype)
};
struct FramesAttrs {  // frames: [..., T] -> [..., 1 + (T + 2 pad - length) / hop, length];
                      // overlap_add
  int64_t frame_length = 0;
  int64_t hop = 0;
  int64_t pad = 0;  // frames: reflect-pad both ends by this many samples first (stft center=True)
  LOOM_FIELDS(frame_length, hop, pad)
};
// call: runs the executable bound to `symbol` (CompileOptions::callables, Executable::bind). The
// declared output types: dtypes as "f32,i64", ranks, and all dims flattened (-1: dynamic).
// optional: while unbound, outputs are zeros (dynamic dims taken from input 0) instead of an error.
struct CallAttrs {
  std::string symbol;
  std::string output_dtypes;
  std::vector<int64_t> output_ranks;
  std::vector<int64_t> output_dims;
  bool optional = false;
  LOOM_FIELDS(symbol, output_dtypes, output_ranks, output_dims, optional)
};
// stitched: a region of elementwise ops run as one kernel (made by the `stitch` pass). `program`
// is the region as a small graph in IR text: placeholders in0..inN-1 are the node's inputs in
// order, then the member ops, then `return` of the region's output (src/ops/stitched.h).
struct StitchedAttrs {
  std::string program;
  LOOM_FIELDS(program)
};
// conv (ONNX Conv): x [B, C, spatial...], w [O, C / groups, k...], bias [O]; 1 or 2 spatial
// dims. Empty strides / dilations mean 1s, empty pads mean 0s; pads = (begin..., end...).
struct ConvAttrs {
  std::vector<int64_t> strides;
  std::vector<int64_t> pads;
  std::vector<int64_t> dilations;
  int64_t groups = 1;
  LOOM_FIELDS(strides, pads, dilations, groups)
};
// max_pool / avg_pool (ONNX MaxPool / AveragePool): same layout and conventions as ConvAttrs.
// count_include_pad: avg_pool divides by the whole window (padding included), else by the
// number of input elements under it.
struct PoolAttrs {
  std::vector<int64_t> kernel;
  std::vector<int64_t> strides;
  std::vector<int64_t> pads;
  std::vector<int64_t> dilations;
  bool ceil_mode = false;
  bool count_include_pad = false;
  LOOM_FIELDS(kernel, strides, pads, dilations, ceil_mode, count_include_pad)
};
// Attributes of a user-registered op: a free-form list of named values.
struct CustomAttrs {
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::string text;
  LOOM_FIELDS(ints, floats, text)
};

// ---------------------------------------------------------------------------------------------
// The generic machinery behind LOOM_FIELDS.
namespace detail {

std::vector<std::string_view> split_field_names(std::string_view names);
size_t hash_combine(size_t seed, size_t v);
size_t hash_attr_value(const AttrValue& v);

template <class T>
AttrValue to_attr_value(const T& v) {
  if constexpr (std::is_same_v<T, bool>)
    return v;
  else if constexpr (std::is_enum_v<T> && !std::is_same_v<T, DType>)
    return static_cast<int64_t>(v);
  else if constexpr (std::is_same_v<T, DType>)
    return std::string(dtype_name(v));
  else if constexpr (std::is_integral_v<T>)
    return static_cast<int64_t>(v);
  else if constexpr (std::is_floating_point_v<T>)
    return static_cast<double>(v);
  else if constexpr (std::is_same_v<T, std::vector<float>>)
    return std::vector<double>(v.begin(), v.end());
  else
    return AttrValue(v);
}

template <class T>
void from_attr_value(const AttrValue& a, T& out, std::string_view field) {
  auto wrong = [&]() {
    fail("[attrs] field '", field, "' has the wrong type: ", attr_value_to_string(a));
  };
  if constexpr (std::is_same_v<T, bool>) {
    if (auto* p = std::get_if<bool>(&a))
      out = *p;
    else if (auto* q = std::get_if<int64_t>(&a))
      out = *q != 0;
    else
      wrong();
  } else if constexpr (std::is_same_v<T, DType>) {
    if (auto* p = std::get_if<std::string>(&a))
      out = dtype_from_name(*p);
    else
      wrong();
  } else if constexpr (std::is_enum_v<T>) {
    if (auto* p = std::get_if<int64_t>(&a))
      out = static_cast<T>(*p);
    else
      wrong();
  } else if constexpr (std::is_integral_v<T>) {
    if (auto* p = std::get_if<int64_t>(&a))
      out = static_cast<T>(*p);
    else
      wrong();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (auto* p = std::get_if<double>(&a))
      out = static_cast<T>(*p);
    else if (auto* q = std::get_if<int64_t>(&a))
      out = static_cast<T>(*q);
    else
      wrong();
  } else if constexpr (std::is_same_v<T, std::vector<double>>) {
    if (auto* p = std::get_if<std::vector<double>>(&a))
      out = *p;
    else if (auto* q = std::get_if<std::vector<int64_t>>(&a))
      out.assign(q->begin(), q->end());
    else
      wrong();
  } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
    if (auto* p = std::get_if<std::vector<int64_t>>(&a))
      out = *p;
    else if (auto* q = std::get_if<std::vector<double>>(&a); q && q->empty())
      out.clear();
    else
      wrong();
  } else {
    if (auto* p = std::get_if<T>(&a))
      out = *p;
    else
      wrong();
  }
}

template <class T>
class AttrsImpl final : public Attrs {
 public:
  explicit AttrsImpl(T v) : value(std::move(v)) {}
  T value;

  size_t hash() const override {
    size_t h = typeid(T).hash_code();
    for (auto& [name, v] : fields()) h = hash_combine(h, hash_attr_value(v));
    return h;
  }
  bool equals(const Attrs& other) const override {
    if (other.type() != typeid(T)) return false;
    return fields_equal(value, static_cast<const AttrsImpl<T>&>(other).value);
  }
  AttrFields fields() const override {
    AttrFields out;
    auto names = split_field_names(T::kFieldNames);
    size_t i = 0;
    std::apply(
        [&](const auto&... f) {
          (out.emplace_back(std::string(names[i++]), to_attr_value(f)), ...);
        },
        value.fields());
    return out;
  }
  void set_fields(const AttrFields& in) override {
    auto names = split_field_names(T::kFieldNames);
    for (const auto& [name, v] : in) {
      bool found = false;
      size_t i = 0;
      std::apply(
          [&](auto&... f) {
            ((names[i++] == name ? (from_attr_value(v, f, name), found = true) : false), ...);
          },
          value.fields());
      LOOM_CHECK(found, "[attrs] unknown field '", name, "'");
    }
  }
  std::shared_ptr<Attrs> clone() const override { return std::make_shared<AttrsImpl<T>>(value); }
  const std::type_info& type() const override { return typeid(T); }

 private:
  static bool fields_equal(const T& a, const T& b) {
    // NDArray fields compare by identity of storage + layout (constants are deduplicated by
    // value in CSE through their hash and a byte compare there).
    return field_tuple_equal(a.fields(), b.fields(),
                             std::make_index_sequence<std::tuple_size_v<decltype(a.fields())>>{});
  }
  template <class Tup, size_t... I>
  static bool field_tuple_equal(const Tup& x, const Tup& y, std::index_sequence<I...>) {
    return (field_equal(std::get<I>(x), std::get<I>(y)) && ...);
  }
  template <class F>
  static bool field_equal(const F& x, const F& y) {
    if constexpr (std::is_same_v<F, NDArray>) {
      return x.storage() == y.storage() && x.offset() == y.offset() && x.shape() == y.shape() &&
             x.strides() == y.strides() && x.dtype() == y.dtype();
    } else {
      return x == y;
    }
  }
};

}  // namespace detail

template <class T>
AttrsPtr make_attrs(T value) {
  return std::make_shared<detail::AttrsImpl<T>>(std::move(value));
}

// Typed access; throws if the node's attributes are of another type.
template <class T>
const T& attrs_as(const Attrs& a) {
  LOOM_CHECK(a.type() == typeid(T), "[attrs] expected ", typeid(T).name(), ", got ",
             a.type().name());
  return static_cast<const detail::AttrsImpl<T>&>(a).value;
}

}  // namespace loom
