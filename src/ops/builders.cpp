// The public op builders (loom/ops.h): each adds one node through ir::add_node.
#include "ir/op_registry.h"
#include "loom/custom_op.h"
#include "loom/ops.h"
#include "ops/call.h"

namespace loom {
namespace {
namespace op = ir::op;

std::vector<Tensor> make_n(ir::OpId id, const std::vector<Tensor>& inputs, AttrsPtr attrs,
                           const std::shared_ptr<ir::GraphData>& graph = nullptr) {
  std::shared_ptr<ir::GraphData> g = graph;
  std::vector<ir::Value> values;
  for (const Tensor& t : inputs) {
    const char* name = ir::OpRegistry::get().info(id).name.c_str();
    LOOM_CHECK(t.defined(), "[", name, "] input ", values.size(), " is an undefined tensor");
    if (!g) g = t.graph_data();
    LOOM_CHECK(t.graph_data() == g, "[", name, "] inputs come from different graphs");
    values.push_back({t.node(), t.index()});
  }
  LOOM_CHECK(g != nullptr, "[", ir::OpRegistry::get().info(id).name, "] needs a graph");
  auto outs = ir::add_node(*g, id, std::move(values), std::move(attrs));
  std::vector<Tensor> result;
  for (const auto& v : outs) result.emplace_back(g, v.node, v.index);
  return result;
}

Tensor make(ir::OpId id, const std::vector<Tensor>& inputs, AttrsPtr attrs = nullptr) {
  return make_n(id, inputs, std::move(attrs))[0];
}

Tensor scalar_like(const Tensor& t, double v) {
  LOOM_CHECK(t.defined(), "[scalar] tensor is undefined");
  return t.graph().scalar(v, t.dtype());
}
}  // namespace

// --- Tensor / Graph ---------------------------------------------------------------------------
TensorType Tensor::type() const {
  LOOM_CHECK(defined(), "[tensor] undefined tensor");
  return g_->type({node_, index_});
}
std::string Tensor::name() const { return g_->nodes[static_cast<size_t>(node_)].name; }
Graph Tensor::graph() const { return Graph(g_); }

TensorType Variable::type() const {
  int i = g_->find_variable(name_);
  return g_->variables[static_cast<size_t>(i)].type();
}

Graph::Graph() : g_(std::make_shared<ir::GraphData>()) {}

Tensor Graph::placeholder(Shape shape, DType dtype, const std::string& name) {
  LOOM_CHECK(!name.empty(), "[placeholder] needs a name");
  LOOM_CHECK(g_->find_placeholder(name) < 0, "[placeholder] name '", name, "' is already used");
  auto v = ir::add_node(*g_, op::placeholder, {},
                        make_attrs(PlaceholderAttrs{name, dtype, shape.dims()}), name);
  return Tensor(g_, v[0].node, 0);
}

Tensor Graph::constant(const NDArray& value, const std::string& name) {
  LOOM_CHECK(value.defined(), "[constant] array is undefined");
  auto v = ir::add_node(*g_, op::constant, {}, make_attrs(ConstantAttrs{value}), name);
  return Tensor(g_, v[0].node, 0);
}

Tensor Graph::scalar(double value, DType dtype) { return constant(full({}, value, dtype)); }

Variable Graph::variable(const NDArray& initial, const std::string& name) {
  LOOM_CHECK(!name.empty(), "[variable] needs a name");
  LOOM_CHECK(initial.defined(), "[variable] '", name, "' has no initial value");
  LOOM_CHECK(g_->find_variable(name) < 0, "[variable] name '", name, "' is already used");
  g_->variables.push_back({name, initial.contiguous()});
  return Variable(g_, name);
}

Tensor Graph::read(const Variable& v) {
  LOOM_CHECK(v.graph_data() == g_, "[read] variable '", v.name(), "' belongs to another graph");
  TensorType t = v.type();
  auto out = ir::add_node(*g_, op::read, {},
                          make_attrs(VariableRefAttrs{v.name(), t.dtype, t.shape.dims()}));
  return Tensor(g_, out[0].node, 0);
}

void Graph::assign(const Variable& v, const Tensor& value) {
  LOOM_CHECK(v.graph_data() == g_, "[assign] variable '", v.name(), "' belongs to another graph");
  TensorType t = v.type();
  make_n(op::assign, {value}, make_attrs(VariableRefAttrs{v.name(), t.dtype, t.shape.dims()}));
}

std::string Graph::to_text(const std::vector<Tensor>& outputs) const {
  std::vector<ir::Value> outs;
  for (const auto& t : outputs) outs.push_back({t.node(), t.index()});
  return ir::print_graph(*g_, outs);
}

size_t Graph::num_ops() const { return g_->nodes.size(); }

// --- custom ops --------------------------------------------------------------------------------
void register_op(const CustomOpDef& def) {
  LOOM_CHECK(!def.name.empty(), "[register_op] the op needs a name");
  LOOM_CHECK(def.infer && def.kernel, "[register_op] '", def.name, "' needs infer and kernel");
  ir::OpInfo info;
  info.name = def.name;
  info.fusion = ir::FusionClass::custom;
  info.arity = def.num_inputs;
  info.default_attrs = [] { return make_attrs(CustomAttrs{}); };
  auto infer = def.infer;
  info.infer = [infer](const ir::InferContext& ctx) {
    try {
      return infer(ctx.inputs, ctx.attrs_as<CustomAttrs>());
    } catch (const Error& e) {
      ctx.fail(e.what());
    }
  };
  info.host_kernel = def.kernel;
  ir::OpRegistry::get().add(std::move(info));
}

std::vector<Tensor> custom_op(const std::string& name, const std::vector<Tensor>& inputs,
                              const CustomAttrs& attrs) {
  return make_n(ir::OpRegistry::get().find(name), inputs, make_attrs(attrs));
}

// --- elementwise -------------------------------------------------------------------------------
#define LOOM_BINARY(fn) \
  Tensor fn(const Tensor& a, const Tensor& b) { return make(op::fn, {a, b}); }
LOOM_BINARY(add)
LOOM_BINARY(sub) LOOM_BINARY(mul) LOOM_BINARY(div) LOOM_BINARY(pow) LOOM_BINARY(maximum)
    LOOM_BINARY(minimum) LOOM_BINARY(mod) LOOM_BINARY(equal) LOOM_BINARY(not_equal)
        LOOM_BINARY(less) LOOM_BINARY(less_equal) LOOM_BINARY(greater) LOOM_BINARY(greater_equal)
            LOOM_BINARY(logical_and) LOOM_BINARY(logical_or) LOOM_BINARY(logical_xor)
#undef LOOM_BINARY
#define LOOM_UNARY(fn) \
  Tensor fn(const Tensor& x) { return make(op::fn, {x}); }
                LOOM_UNARY(neg) LOOM_UNARY(abs) LOOM_UNARY(sign) LOOM_UNARY(square)
                    LOOM_UNARY(reciprocal) LOOM_UNARY(exp) LOOM_UNARY(log) LOOM_UNARY(sqrt)
                        LOOM_UNARY(rsqrt) LOOM_UNARY(sin) LOOM_UNARY(cos) LOOM_UNARY(tanh)
                            LOOM_UNARY(sigmoid) LOOM_UNARY(silu) LOOM_UNARY(erf) LOOM_UNARY(floor)
                                LOOM_UNARY(ceil) LOOM_UNARY(round) LOOM_UNARY(logical_not)
#undef LOOM_UNARY

                                    Tensor gelu(const Tensor& x, bool tanh_approximation) {
  return make(op::gelu, {x}, make_attrs(GeluAttrs{tanh_approximation}));
}
Tensor clamp(const Tensor& x, double lo, double hi) {
  LOOM_CHECK(lo <= hi, "[clamp] min ", lo, " > max ", hi);
  return make(op::clamp, {x}, make_attrs(ClampAttrs{lo, hi}));
}
Tensor where(const Tensor& c, const Tensor& a, const Tensor& b) {
  return make(op::where, {c, a, b});
}
Tensor cast(const Tensor& x, DType dtype) {
  return make(op::cast, {x}, make_attrs(CastAttrs{dtype}));
}

// --- reductions / normalization / matmul --------------------------------------------------------
#define LOOM_REDUCE(fn, id)                                                       \
  Tensor fn(const Tensor& x, std::vector<int64_t> axes, bool keepdims) {          \
    return make(op::id, {x}, make_attrs(ReduceAttrs{std::move(axes), keepdims})); \
  }
LOOM_REDUCE(sum, reduce_sum)
LOOM_REDUCE(mean, reduce_mean) LOOM_REDUCE(max, reduce_max) LOOM_REDUCE(min, reduce_min)
    LOOM_REDUCE(prod, reduce_prod)
#undef LOOM_REDUCE
        Tensor argmax(const Tensor& x, int64_t axis, bool keepdims) {
  return make(op::argmax, {x}, make_attrs(ArgReduceAttrs{axis, keepdims}));
}
Tensor argmin(const Tensor& x, int64_t axis, bool keepdims) {
  return make(op::argmin, {x}, make_attrs(ArgReduceAttrs{axis, keepdims}));
}
Tensor sample(const Tensor& logits, const Tensor& seed, SampleAttrs o) {
  return make(op::sample, {logits, seed}, make_attrs(o));
}
Tensor softmax(const Tensor& x, int64_t axis) {
  return make(op::softmax, {x}, make_attrs(AxisAttrs{axis}));
}
Tensor log_softmax(const Tensor& x, int64_t axis) {
  return make(op::log_softmax, {x}, make_attrs(AxisAttrs{axis}));
}
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, NormAttrs o) {
  LOOM_CHECK(gamma.defined() || !beta.defined(),
             "[layer_norm] beta without gamma: pass a gamma of ones");
  std::vector<Tensor> in{x};
  if (gamma.defined()) in.push_back(gamma);
  if (beta.defined()) in.push_back(beta);
  return make(op::layer_norm, in, make_attrs(o));
}
Tensor rms_norm(const Tensor& x, const Tensor& gamma, NormAttrs o) {
  std::vector<Tensor> in{x};
  if (gamma.defined()) in.push_back(gamma);
  return make(op::rms_norm, in, make_attrs(o));
}
std::vector<Tensor> add_rms_norm(const Tensor& a, const Tensor& b, const Tensor& gamma,
                                 NormAttrs o) {
  std::vector<Tensor> in{a, b};
  if (gamma.defined()) in.push_back(gamma);
  return make_n(op::add_rms_norm, in, make_attrs(o));
}
Tensor matmul(const Tensor& a, const Tensor& b, MatmulAttrs o) {
  return make(op::matmul, {a, b}, make_attrs(o));
}

Tensor conv(const Tensor& x, const Tensor& w, const Tensor& bias, ConvAttrs o) {
  std::vector<Tensor> in{x, w};
  if (bias.defined()) in.push_back(bias);
  return make(op::conv, in, make_attrs(o));
}
Tensor max_pool(const Tensor& x, PoolAttrs o) { return make(op::max_pool, {x}, make_attrs(o)); }
Tensor avg_pool(const Tensor& x, PoolAttrs o) { return make(op::avg_pool, {x}, make_attrs(o)); }
Tensor global_max_pool(const Tensor& x) { return make(op::global_max_pool, {x}); }
Tensor global_avg_pool(const Tensor& x) { return make(op::global_avg_pool, {x}); }

// --- shape ---------------------------------------------------------------------------------------
Tensor reshape(const Tensor& x, std::vector<int64_t> s) {
  return make(op::reshape, {x}, make_attrs(ShapeAttrs{std::move(s)}));
}
Tensor squeeze(const Tensor& x, std::vector<int64_t> a) {
  return make(op::squeeze, {x}, make_attrs(AxesAttrs{std::move(a)}));
}
Tensor unsqueeze(const Tensor& x, std::vector<int64_t> a) {
  return make(op::unsqueeze, {x}, make_attrs(AxesAttrs{std::move(a)}));
}
Tensor expand(const Tensor& x, std::vector<int64_t> s) {
  return make(op::expand, {x}, make_attrs(ShapeAttrs{std::move(s)}));
}
Tensor transpose(const Tensor& x, std::vector<int64_t> perm) {
  if (perm.empty())
    for (int i = x.rank() - 1; i >= 0; --i) perm.push_back(i);
  return make(op::transpose, {x}, make_attrs(PermuteAttrs{std::move(perm)}));
}
Tensor permute(const Tensor& x, std::vector<int64_t> perm) { return transpose(x, std::move(perm)); }
Tensor concat(const std::vector<Tensor>& xs, int64_t axis) {
  LOOM_CHECK(!xs.empty(), "[concat] needs at least one input");
  return make(op::concat, xs, make_attrs(ConcatAttrs{axis}));
}
std::vector<Tensor> split(const Tensor& x, std::vector<int64_t> sizes, int64_t axis) {
  return make_n(op::split, {x}, make_attrs(SplitAttrs{axis, std::move(sizes)}));
}
Tensor slice(const Tensor& x, std::vector<int64_t> starts, std::vector<int64_t> ends,
             std::vector<int64_t> axes, std::vector<int64_t> steps) {
  return make(op::slice, {x},
              make_attrs(SliceAttrs{std::move(axes), std::move(starts), std::move(ends),
                                    std::move(steps)}));
}
Tensor gather(const Tensor& x, const Tensor& idx, int64_t axis) {
  return make(op::gather, {x, idx}, make_attrs(GatherAttrs{axis}));
}
Tensor pad(const Tensor& x, std::vector<int64_t> before, std::vector<int64_t> after, PadMode mode,
           double value) {
  return make(op::pad, {x}, make_attrs(PadAttrs{std::move(before), std::move(after), mode, value}));
}
Tensor tile(const Tensor& x, std::vector<int64_t> reps) {
  return make(op::tile, {x}, make_attrs(TileAttrs{std::move(reps)}));
}
Tensor flip(const Tensor& x, std::vector<int64_t> axes) {
  return make(op::flip, {x}, make_attrs(AxesAttrs{std::move(axes)}));
}
Tensor arange(Graph& g, double start, double stop, double step, DType dtype) {
  return make_n(op::arange, {}, make_attrs(ArangeAttrs{start, stop, step, dtype}), g.data())[0];
}

// --- KV cache / transformers --------------------------------------------------------------------
Tensor slice(const Tensor& x, const Tensor& starts, std::vector<int64_t> sizes) {
  return make(op::dynamic_slice, {x, starts}, make_attrs(DynamicSliceAttrs{std::move(sizes)}));
}
Tensor slice_update(const Tensor& x, const Tensor& update, const Tensor& starts) {
  return make(op::slice_update, {x, update, starts});
}
Tensor slice_update(const Tensor& x, const Tensor& update, std::vector<int64_t> starts) {
  LOOM_CHECK(x.defined(), "[slice_update] base is undefined");
  auto s = x.graph().constant(
      NDArray::from_vector<int64_t>(starts, {static_cast<int64_t>(starts.size())}));
  return slice_update(x, update, s);
}
Tensor sdpa(const Tensor& q, const Tensor& k, const Tensor& v, const SdpaOptions& o) {
  std::vector<Tensor> in{q, k, v};
  if (o.mask.defined()) in.push_back(o.mask);
  if (o.kv_len.defined()) in.push_back(o.kv_len);
  return make(op::sdpa, in,
              make_attrs(SdpaAttrs{o.causal, o.scale, o.mask.defined(), o.kv_len.defined()}));
}
Tensor rope(const Tensor& x, const Tensor& positions, RopeAttrs o) {
  return make(op::rope, {x, positions}, make_attrs(o));
}

// --- quantization
// ---------------------------------------------------------------------------------
Tensor dequantize(const Tensor& q, const Tensor& scale, const Tensor& zero_point, QuantAttrs o) {
  std::vector<Tensor> in{q, scale};
  if (zero_point.defined()) in.push_back(zero_point);
  return make(op::dequantize, in, make_attrs(o));
}
Tensor quantize(const Tensor& x, const Tensor& scale, const Tensor& zero_point, QuantAttrs o) {
  std::vector<Tensor> in{x, scale};
  if (zero_point.defined()) in.push_back(zero_point);
  return make(op::quantize, in, make_attrs(o));
}
Tensor dequantize_lut(const Tensor& indices, const Tensor& table, DType dtype) {
  return make(op::dequantize_lut, {indices, table}, make_attrs(LutAttrs{dtype}));
}
Tensor dequantize_blocks(const Tensor& packed, const std::string& format, int64_t k) {
  return make(op::dequantize_blocks, {packed}, make_attrs(BlockQuantAttrs{format, k}));
}
Tensor quantized_matmul(const Tensor& x, const Tensor& packed, const std::string& format, int64_t n,
                        int64_t k) {
  return make(op::quantized_matmul, {x, packed},
              make_attrs(QuantizedMatmulAttrs{format, n, k, 0, 0}));
}
Tensor swiglu_quantized_matmul(const Tensor& p, const Tensor& packed, const std::string& format,
                               int64_t n, int64_t k) {
  return make(op::swiglu_quantized_matmul, {p, packed},
              make_attrs(QuantizedMatmulAttrs{format, n, k, 0, 0}));
}
std::vector<Tensor> add_rms_norm_quantized_matmul(const Tensor& a, const Tensor& b,
                                                  const Tensor& gamma, const Tensor& packed,
                                                  const std::string& format, int64_t n, int64_t k,
                                                  double eps) {
  return make_n(op::add_rms_norm_quantized_matmul, {a, b, gamma, packed},
                make_attrs(AddRmsNormQuantizedMatmulAttrs{format, n, k, 0, 0, eps}));
}

// --- complex numbers, FFT and spectral ops (compositions: src/ops/spectral.cpp) ---------------
Tensor complex(const Tensor& re, const Tensor& im) { return make(op::complex, {re, im}); }
Tensor real(const Tensor& x) { return make(op::real, {x}); }
Tensor imag(const Tensor& x) { return make(op::imag, {x}); }
Tensor conj(const Tensor& x) { return make(op::conj, {x}); }
Tensor angle(const Tensor& x) { return make(op::angle, {x}); }
Tensor fft(const Tensor& x, FftAttrs o) { return make(op::fft, {x}, make_attrs(std::move(o))); }
Tensor ifft(const Tensor& x, std::vector<int64_t> axes, FftScaling scaling) {
  return fft(x, {.axes = std::move(axes), .inverse = true, .scaling = scaling});
}
Tensor rfft(const Tensor& x, FftAttrs o) { return make(op::rfft, {x}, make_attrs(std::move(o))); }
Tensor irfft(const Tensor& x, FftAttrs o) { return make(op::irfft, {x}, make_attrs(std::move(o))); }
static Tensor window_op(Graph& g, const char* kind, int64_t n, bool periodic, double param) {
  return make_n(op::window, {}, make_attrs(WindowAttrs{kind, n, periodic, param, DType::f32}),
                g.data())[0];
}
Tensor hann_window(Graph& g, int64_t n, bool periodic) {
  return window_op(g, "hann", n, periodic, 0);
}
Tensor hamming_window(Graph& g, int64_t n, bool periodic) {
  return window_op(g, "hamming", n, periodic, 0);
}
Tensor blackman_window(Graph& g, int64_t n, bool periodic) {
  return window_op(g, "blackman", n, periodic, 0);
}
Tensor gaussian_window(Graph& g, int64_t n, double std, bool periodic) {
  return window_op(g, "gaussian", n, periodic, std);
}
Tensor frames(const Tensor& x, int64_t frame_length, int64_t hop, int64_t reflect_pad) {
  return make(op::frames, {x}, make_attrs(FramesAttrs{frame_length, hop, reflect_pad}));
}
Tensor overlap_add(const Tensor& x, int64_t hop) {
  return make(op::overlap_add, {x}, make_attrs(FramesAttrs{0, hop, 0}));
}

// --- operators -----------------------------------------------------------------------------------
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, double b) { return add(a, scalar_like(a, b)); }
Tensor operator-(const Tensor& a, double b) { return sub(a, scalar_like(a, b)); }
Tensor operator*(const Tensor& a, double b) { return mul(a, scalar_like(a, b)); }
Tensor operator/(const Tensor& a, double b) { return div(a, scalar_like(a, b)); }
Tensor operator+(double a, const Tensor& b) { return add(scalar_like(b, a), b); }
Tensor operator-(double a, const Tensor& b) { return sub(scalar_like(b, a), b); }
Tensor operator*(double a, const Tensor& b) { return mul(scalar_like(b, a), b); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_like(b, a), b); }

std::vector<Tensor> call(const std::string& symbol, const std::vector<Tensor>& inputs,
                         const std::vector<TensorType>& output_types, const CallOptions& options) {
  LOOM_CHECK(!inputs.empty(), "[call] '", symbol, "' needs at least one input");
  CallAttrs a{.symbol = symbol, .optional = options.optional};
  ops::set_call_output_types(a, output_types);
  return make_n(op::call, inputs, make_attrs(std::move(a)));
}

const char* version() { return "0.1.0"; }

}  // namespace loom
