// CUDA `stitched` kernel: code generation from the region's program, NVRTC compilation (cached),
// launch with broadcast strides as parameters (see stitched.h).
//
// Each member op is a device expression over f32 values, written to match the CPU kernel's
// apply_f32 (src/backends/cpu/elementwise.cpp over ops/elementwise_functors.h) op for op: the
// functors' header pulls in <cmath> and the IR, which NVRTC cannot compile, so their math is
// restated here in one table (op_expr) with the same formulas and constants.
#include "backends/cuda/stitched.h"

#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>

#include "backends/broadcast_plan.h"
#include "backends/cuda/cuda_common.h"
#include "backends/cuda/nvrtc_compile.h"

namespace loom::backends::cuda {
namespace {
namespace op = ir::op;

constexpr int kMaxIn = 16;  // the stitch pass's limit (kMaxInputs in src/passes/stitch.cpp)
constexpr int kRank = 8;
constexpr int kVec = 4;  // elements per thread and load in the vectorised kernels

// Kernel parameters; the generated source declares the same struct (kParamsDecl).
struct Params {
  const void* in[kMaxIn];
  void* out;
  long long n;
  long long dims[kRank];
  long long strides[kMaxIn][kRank];
  int rank;
};

const char* kParamsDecl = R"(#define LOOM_MAX_IN 16
#define LOOM_RANK 8
struct LoomParams {
  const void* in[LOOM_MAX_IN];
  void* out;
  long long n;
  long long dims[LOOM_RANK];
  long long strides[LOOM_MAX_IN][LOOM_RANK];
  int rank;
};
)";

// Dtype conversions without headers (NVRTC finds no toolkit include dir by default): f16 through
// the PTX conversion (round to nearest even), bf16 with the same bit arithmetic as core's
// f32_to_bf16 (quiet NaN kept), bool as 0/1.
const char* kHelpers = R"(
// Programmatic dependent launch (pdl.cuh): wait for the previous kernel, let the next one start.
__device__ __forceinline__ void loom_pdl_begin() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;");
#endif
}
__device__ __forceinline__ float loom_h2f(unsigned short h) {
  float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f;
}
__device__ __forceinline__ unsigned short loom_f2h(float f) {
  unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h;
}
__device__ __forceinline__ float loom_bf2f(unsigned short h) {
  return __uint_as_float(((unsigned)h) << 16);
}
__device__ __forceinline__ unsigned short loom_f2bf(float f) {
  unsigned u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (unsigned short)(u >> 16);
}
__device__ __forceinline__ float loom_round16(float f) { return loom_h2f(loom_f2h(f)); }
__device__ __forceinline__ float loom_roundbf(float f) { return loom_bf2f(loom_f2bf(f)); }
__device__ __forceinline__ float loom_b(bool c) { return c ? 1.0f : 0.0f; }

// Scalar loads and stores by dtype.
__device__ __forceinline__ float loom_ld_f32(const void* p, long long i) { return __ldg((const float*)p + i); }
__device__ __forceinline__ float loom_ld_f16(const void* p, long long i) { return loom_h2f(__ldg((const unsigned short*)p + i)); }
__device__ __forceinline__ float loom_ld_bf16(const void* p, long long i) { return loom_bf2f(__ldg((const unsigned short*)p + i)); }
__device__ __forceinline__ float loom_ld_bool(const void* p, long long i) { return ((const unsigned char*)p)[i] != 0 ? 1.0f : 0.0f; }
__device__ __forceinline__ void loom_st_f32(void* p, long long i, float v) { ((float*)p)[i] = v; }
__device__ __forceinline__ void loom_st_f16(void* p, long long i, float v) { ((unsigned short*)p)[i] = loom_f2h(v); }
__device__ __forceinline__ void loom_st_bf16(void* p, long long i, float v) { ((unsigned short*)p)[i] = loom_f2bf(v); }
__device__ __forceinline__ void loom_st_bool(void* p, long long i, float v) { ((unsigned char*)p)[i] = v != 0.0f; }

// Vector loads and stores of 4 consecutive elements (the host checked the alignment).
__device__ __forceinline__ void loom_ld4_f32(const void* p, long long i, float* x) {
  float4 q = __ldg((const float4*)((const float*)p + i));
  x[0] = q.x; x[1] = q.y; x[2] = q.z; x[3] = q.w;
}
__device__ __forceinline__ void loom_ld4_f16(const void* p, long long i, float* x) {
  uint2 q = __ldg((const uint2*)((const unsigned short*)p + i));
  x[0] = loom_h2f(q.x & 0xffffu); x[1] = loom_h2f(q.x >> 16);
  x[2] = loom_h2f(q.y & 0xffffu); x[3] = loom_h2f(q.y >> 16);
}
__device__ __forceinline__ void loom_ld4_bf16(const void* p, long long i, float* x) {
  uint2 q = __ldg((const uint2*)((const unsigned short*)p + i));
  x[0] = __uint_as_float(q.x << 16); x[1] = __uint_as_float(q.x & 0xffff0000u);
  x[2] = __uint_as_float(q.y << 16); x[3] = __uint_as_float(q.y & 0xffff0000u);
}
__device__ __forceinline__ void loom_ld4_bool(const void* p, long long i, float* x) {
  unsigned q = *(const unsigned*)((const unsigned char*)p + i);
  for (int e = 0; e < 4; ++e) x[e] = ((q >> (8 * e)) & 0xffu) != 0 ? 1.0f : 0.0f;
}
__device__ __forceinline__ void loom_st4_f32(void* p, long long i, const float* y) {
  *(float4*)((float*)p + i) = make_float4(y[0], y[1], y[2], y[3]);
}
__device__ __forceinline__ void loom_st4_f16(void* p, long long i, const float* y) {
  uint2 q;
  q.x = (unsigned)loom_f2h(y[0]) | ((unsigned)loom_f2h(y[1]) << 16);
  q.y = (unsigned)loom_f2h(y[2]) | ((unsigned)loom_f2h(y[3]) << 16);
  *(uint2*)((unsigned short*)p + i) = q;
}
__device__ __forceinline__ void loom_st4_bf16(void* p, long long i, const float* y) {
  uint2 q;
  q.x = (unsigned)loom_f2bf(y[0]) | ((unsigned)loom_f2bf(y[1]) << 16);
  q.y = (unsigned)loom_f2bf(y[2]) | ((unsigned)loom_f2bf(y[3]) << 16);
  *(uint2*)((unsigned short*)p + i) = q;
}
__device__ __forceinline__ void loom_st4_bool(void* p, long long i, const float* y) {
  unsigned q = 0;
  for (int e = 0; e < 4; ++e) q |= (unsigned)(y[e] != 0.0f) << (8 * e);
  *(unsigned*)((unsigned char*)p + i) = q;
}

// Offsets of flat output index i in each input: the collapsed dims, innermost last.
template <class I, int N>
__device__ __forceinline__ void loom_offsets(const LoomParams& p, I i, I* o) {
#pragma unroll
  for (int k = 0; k < N; ++k) o[k] = 0;
#pragma unroll
  for (int d = LOOM_RANK - 1; d >= 0; --d) {
    if (d < p.rank) {
      I x = i;
      if (d > 0) {
        I dim = (I)p.dims[d];
        I q = i / dim;
        x = i - q * dim;
        i = q;
      }
#pragma unroll
      for (int k = 0; k < N; ++k) o[k] += x * (I)p.strides[k][d];
    }
  }
}
)";

const char* suffix(DType t) {
  switch (t) {
    case DType::f32:
      return "f32";
    case DType::f16:
      return "f16";
    case DType::bf16:
      return "bf16";
    case DType::boolean:
      return "bool";
    default:
      fail("[stitched] dtype ", dtype_name(t), " cannot be stitched on cuda");
  }
}

// An exact f32 constant (no decimal round trip).
std::string lit(double v) {
  float f = static_cast<float>(v);
  uint32_t u;
  std::memcpy(&u, &f, 4);
  char buf[40];
  std::snprintf(buf, sizeof buf, "__uint_as_float(0x%08xu)", u);
  return buf;
}

// The device expression of one member op over f32 operands a, b, c (CPU: apply_f32).
std::string op_expr(const ops::StitchInstr& in, const std::vector<std::string>& x) {
  const ir::OpInfo& info = ir::OpRegistry::get().info(in.op);
  auto need = [&](size_t n) {
    LOOM_CHECK(x.size() == n, "[stitched] op '", info.name, "' takes ", n, " operand(s), got ",
               x.size());
  };
  auto un = [&](const std::string& f) {
    need(1);
    return f + "(" + x[0] + ")";
  };
  auto bin = [&](const std::string& o) {
    need(2);
    return "(" + x[0] + " " + o + " " + x[1] + ")";
  };
  auto cmp = [&](const std::string& o) { return "loom_b" + bin(o); };
  const std::string a = x.empty() ? "" : x[0];
  switch (in.op) {
    case op::add:
      return bin("+");
    case op::sub:
      return bin("-");
    case op::mul:
      return bin("*");
    case op::div:
      return bin("/");
    case op::pow:
      need(2);
      return "powf(" + x[0] + ", " + x[1] + ")";
    case op::maximum:
      need(2);  // NaN propagates (a + b), else the larger
      return "((" + x[0] + " != " + x[0] + " || " + x[1] + " != " + x[1] + ") ? " + x[0] + " + " +
             x[1] + " : (" + x[0] + " > " + x[1] + " ? " + x[0] + " : " + x[1] + "))";
    case op::minimum:
      need(2);
      return "((" + x[0] + " != " + x[0] + " || " + x[1] + " != " + x[1] + ") ? " + x[0] + " + " +
             x[1] + " : (" + x[0] + " < " + x[1] + " ? " + x[0] + " : " + x[1] + "))";
    case op::mod:
      need(2);  // numpy: the sign of the divisor
      return "loom_mod(" + x[0] + ", " + x[1] + ")";
    case op::neg:
      need(1);
      return "(-" + a + ")";
    case op::abs:
      need(1);
      return "(" + a + " < 0.0f ? -" + a + " : " + a + ")";
    case op::sign:
      need(1);
      return "(float)((int)(" + a + " > 0.0f) - (int)(" + a + " < 0.0f))";
    case op::square:
      need(1);
      return "(" + a + " * " + a + ")";
    case op::reciprocal:
      need(1);
      return "(1.0f / " + a + ")";
    case op::exp:
      return un("expf");
    case op::log:
      return un("logf");
    case op::sqrt:
      return un("sqrtf");
    case op::rsqrt:
      need(1);
      return "(1.0f / sqrtf(" + a + "))";
    case op::sin:
      return un("sinf");
    case op::cos:
      return un("cosf");
    case op::tanh:
      return un("tanhf");
    case op::sigmoid:
      need(1);
      return "(1.0f / (1.0f + expf(-" + a + ")))";
    case op::silu:
      need(1);
      return "(" + a + " / (1.0f + expf(-" + a + ")))";
    case op::erf:
      return un("erff");
    case op::floor:
      return un("floorf");
    case op::ceil:
      return un("ceilf");
    case op::round:
      return un("rintf");  // half to even, as nearbyint
    case op::gelu:
      need(1);
      if (attrs_as<GeluAttrs>(*in.attrs).tanh_approximation)
        return "(" + lit(0.5) + " * " + a + " * (1.0f + tanhf(" + lit(0.79788456080286535588) +
               " * (" + a + " + " + lit(0.044715) + " * " + a + " * " + a + " * " + a + "))))";
      return "(" + lit(0.5) + " * " + a + " * (1.0f + erff(" + a + " * " +
             lit(0.70710678118654752440) + ")))";
    case op::equal:
      return cmp("==");
    case op::not_equal:
      return cmp("!=");
    case op::less:
      return cmp("<");
    case op::less_equal:
      return cmp("<=");
    case op::greater:
      return cmp(">");
    case op::greater_equal:
      return cmp(">=");
    case op::logical_and:
      need(2);
      return "loom_b(" + x[0] + " != 0.0f && " + x[1] + " != 0.0f)";
    case op::logical_or:
      need(2);
      return "loom_b(" + x[0] + " != 0.0f || " + x[1] + " != 0.0f)";
    case op::logical_xor:
      need(2);
      return "loom_b((" + x[0] + " != 0.0f) != (" + x[1] + " != 0.0f))";
    case op::logical_not:
      need(1);
      return "loom_b(" + a + " == 0.0f)";
    case op::clamp: {
      need(1);  // NaN falls through unchanged
      const auto& c = attrs_as<ClampAttrs>(*in.attrs);
      std::string lo = lit(c.min), hi = lit(c.max);
      return "(" + a + " < " + lo + " ? " + lo + " : (" + a + " > " + hi + " ? " + hi + " : " + a +
             "))";
    }
    case op::where:
      need(3);
      return "(" + x[0] + " != 0.0f ? " + x[1] + " : " + x[2] + ")";
    case op::cast:  // values are f32 inside a region: a cast rounds to its target type
      need(1);
      switch (in.dtype) {
        case DType::f16:
          return "loom_round16(" + a + ")";
        case DType::bf16:
          return "loom_roundbf(" + a + ")";
        case DType::boolean:
          return "loom_b(" + a + " != 0.0f)";
        default:
          return a;
      }
    default:
      fail("[stitched] op '", info.name, "' cannot run in a stitched region on cuda");
  }
}

struct Compiled {
  std::shared_ptr<const ops::StitchProgram> prog;
  std::string source;
  std::string what;
  int device = -1;
  std::shared_ptr<const nvrtc::Module> module;
  const void* vec32 = nullptr;
  const void* idx32 = nullptr;
  const void* idx64 = nullptr;
};

void load_into(Compiled& k, int device) {
  k.module = nvrtc::load(k.source, device, k.what);
  k.vec32 = reinterpret_cast<const void*>(k.module->kernel(kStitchedVec));
  k.idx32 = reinterpret_cast<const void*>(k.module->kernel(kStitchedIdx32));
  k.idx64 = reinterpret_cast<const void*>(k.module->kernel(kStitchedIdx64));
  k.device = device;
  // Load every variant into the device's context now: never lazily inside a CUDA graph capture.
  LOOM_CUDA_CHECK(cudaSetDevice(device));
  for (const void* f : {k.vec32, k.idx32, k.idx64}) {
    cudaFuncAttributes attr;
    LOOM_CUDA_CHECK(cudaFuncGetAttributes(&attr, f));
  }
}

std::shared_ptr<Compiled> build(const std::string& text, int device) {
  auto k = std::make_shared<Compiled>();
  k->prog = ops::parse_stitch_program(text);
  LOOM_CHECK(k->prog->num_inputs() <= kMaxIn, "[stitched] ", k->prog->num_inputs(),
             " inputs exceed the CUDA kernel's limit of ", kMaxIn);
  k->source = stitched_source(*k->prog);
  k->what = "stitched region (" + k->prog->summary() + ")";
  load_into(*k, device);
  return k;
}

void run(const Compiled& k0, const KernelContext& c) {
  const NDArray& out = c.outputs[0];
  const int64_t n = out.numel();
  if (n == 0) return;
  cudaStream_t stream = stream_for(c);
  const int dev = out.device().index;
  const Compiled* k = &k0;
  Compiled other;
  if (dev != k0.device) {  // another GPU than the one compiled for at lowering (cached load)
    other = k0;
    load_into(other, dev);
    k = &other;
  }
  const size_t nin = c.inputs.size();
  LOOM_CHECK(nin == static_cast<size_t>(k->prog->num_inputs()), "[stitched] the program takes ",
             k->prog->num_inputs(), " inputs, the node has ", nin);
  std::vector<Shape> shapes;
  for (const auto& in : c.inputs) shapes.push_back(in.shape());
  BroadcastPlan plan = plan_broadcast(out.shape(), shapes);
  LOOM_CHECK(plan.dims.size() <= kRank, "[stitched] ", plan.dims.size(),
             " dims after collapsing exceed the CUDA kernel's limit of ", kRank);
  Params p{};
  p.out = out.data();
  p.n = n;
  p.rank = static_cast<int>(plan.dims.size());
  for (size_t d = 0; d < plan.dims.size(); ++d) p.dims[d] = plan.dims[d];
  // Vectorised: 4 consecutive outputs share their outer index when the innermost dim is a
  // multiple of 4 (or the only one); inputs then read 4 elements at once (stride 1) or one value
  // (stride 0), which needs aligned pointers.
  const int64_t inner = plan.dims.back();
  bool vec = (inner % kVec == 0 || plan.dims.size() == 1) &&
             reinterpret_cast<uintptr_t>(out.data()) % (kVec * (dtype_bits(out.dtype()) / 8)) == 0;
  for (size_t i = 0; i < nin; ++i) {
    const NDArray& x = c.inputs[i];
    LOOM_CHECK(x.dtype() == k->prog->inputs[i], "[stitched] input ", i, " is ",
               dtype_name(x.dtype()), ", the program expects ", dtype_name(k->prog->inputs[i]));
    p.in[i] = x.data();
    for (size_t d = 0; d < plan.dims.size(); ++d) p.strides[i][d] = plan.strides[i][d];
    int64_t st = plan.strides[i].back();
    vec = vec && (st == 0 || (st == 1 && reinterpret_cast<uintptr_t>(x.data()) %
                                                 (kVec * (dtype_bits(x.dtype()) / 8)) ==
                                             0));
  }
  // 32-bit index math where it fits (cheaper divisions); arrays of 2^31 elements or more take
  // the 64-bit broadcast kernel (one vectorised variant only: each variant costs NVRTC time).
  const bool small = n < (int64_t{1} << 31) - 1024;
  vec = vec && small;
  const void* fn = vec ? k->vec32 : (small ? k->idx32 : k->idx64);
  const int64_t work = vec ? (n + kVec - 1) / kVec : n;
  const int threads = 256;
  int64_t blocks = (work + threads - 1) / threads;
  blocks = std::max<int64_t>(1, std::min<int64_t>(blocks, int64_t{sm_count(dev)} * 16));
  void* args[] = {&p};
  cudaLaunchConfig_t cfg{};  // a programmatic dependent of the previous kernel (pdl.cuh)
  cfg.gridDim = dim3(static_cast<unsigned>(blocks));
  cfg.blockDim = dim3(threads);
  cfg.stream = stream;
  cudaLaunchAttribute attr[1] = {pdl_attribute()};
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  LOOM_CUDA_CHECK(cudaLaunchKernelExC(&cfg, fn, args));
}

std::mutex g_table_mutex;
std::map<std::pair<std::string, int>, std::shared_ptr<Compiled>>& table_cache() {
  static std::map<std::pair<std::string, int>, std::shared_ptr<Compiled>> m;
  return m;
}

}  // namespace

std::string stitched_source(const ops::StitchProgram& prog) {
  const int nin = prog.num_inputs();
  LOOM_CHECK(nin >= 1 && nin <= kMaxIn, "[stitched] a CUDA region takes 1 to ", kMaxIn,
             " inputs, not ", nin);
  std::ostringstream s;
  s << "// Loom stitched region: " << prog.summary() << "\n" << kParamsDecl << kHelpers;
  s << R"(
__device__ __forceinline__ float loom_mod(float a, float b) {
  float r = fmodf(a, b);
  return (r != 0.0f && ((r < 0.0f) != (b < 0.0f))) ? r + b : r;
}
)";
  // The region as one function of its inputs' f32 values.
  s << "__device__ __forceinline__ float loom_body(";
  for (int i = 0; i < nin; ++i) s << (i ? ", " : "") << "float a" << i;
  s << ") {\n";
  auto name = [&](int arg) {
    LOOM_CHECK(arg >= 0 && arg < nin + static_cast<int>(prog.code.size()), "[stitched] operand ",
               arg, " is out of range");
    std::string v(1, arg < nin ? 'a' : 'v');
    return v += std::to_string(arg < nin ? arg : arg - nin);
  };
  for (size_t j = 0; j < prog.code.size(); ++j) {
    std::vector<std::string> x;
    for (int arg : prog.code[j].args) {
      LOOM_CHECK(arg < nin + static_cast<int>(j), "[stitched] instruction ", j,
                 " reads a later value");
      x.push_back(name(arg));
    }
    s << "  const float v" << j << " = " << op_expr(prog.code[j], x) << ";\n";
  }
  s << "  return v" << prog.code.size() - 1 << ";\n}\n";
  const char* out = suffix(prog.output_dtype());

  // Broadcast kernels: one element per iteration, offsets from the collapsed dims.
  s << "template <class I>\n__device__ __forceinline__ void loom_idx(const LoomParams& p) {\n"
    << "  const I n = (I)p.n, step = (I)blockDim.x * (I)gridDim.x;\n"
    << "  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < n; i += step) {\n"
    << "    I o[" << nin << "];\n    loom_offsets<I, " << nin << ">(p, i, o);\n"
    << "    loom_st_" << out << "(p.out, i, loom_body(";
  for (int i = 0; i < nin; ++i)
    s << (i ? ", " : "") << "loom_ld_" << suffix(prog.inputs[static_cast<size_t>(i)]) << "(p.in["
      << i << "], o[" << i << "])";
  s << "));\n  }\n}\n";

  // Vectorised kernels: 4 outputs per iteration; each input 4 loads at once or one broadcast.
  s << "template <class I>\n__device__ __forceinline__ void loom_vec(const LoomParams& p) {\n"
    << "  const I nv = (I)(p.n / 4), step = (I)blockDim.x * (I)gridDim.x;\n"
    << "  const I t = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x;\n"
    << "  for (I v = t; v < nv; v += step) {\n"
    << "    I o[" << nin << "];\n    loom_offsets<I, " << nin << ">(p, v * 4, o);\n";
  for (int i = 0; i < nin; ++i) {
    const char* sf = suffix(prog.inputs[static_cast<size_t>(i)]);
    s << "    float x" << i << "[4];\n"
      << "    if (p.strides[" << i << "][p.rank - 1]) loom_ld4_" << sf << "(p.in[" << i << "], o["
      << i << "], x" << i << ");\n"
      << "    else { x" << i << "[0] = loom_ld_" << sf << "(p.in[" << i << "], o[" << i << "]); x"
      << i << "[1] = x" << i << "[2] = x" << i << "[3] = x" << i << "[0]; }\n";
  }
  s << "    float y[4];\n#pragma unroll\n    for (int e = 0; e < 4; ++e) y[e] = loom_body(";
  for (int i = 0; i < nin; ++i) s << (i ? ", " : "") << "x" << i << "[e]";
  s << ");\n    loom_st4_" << out << "(p.out, v * 4, y);\n  }\n"
    << "  // The tail (only when the collapsed shape is one dim not a multiple of 4).\n"
    << "  for (I i = nv * 4 + t; i < (I)p.n; i += step) {\n"
    << "    I o[" << nin << "];\n    loom_offsets<I, " << nin << ">(p, i, o);\n"
    << "    loom_st_" << out << "(p.out, i, loom_body(";
  for (int i = 0; i < nin; ++i)
    s << (i ? ", " : "") << "loom_ld_" << suffix(prog.inputs[static_cast<size_t>(i)]) << "(p.in["
      << i << "], o[" << i << "])";
  s << "));\n  }\n}\n";
  s << "extern \"C\" __global__ void __launch_bounds__(256) " << kStitchedVec
    << "(const LoomParams p) { loom_pdl_begin(); loom_vec<unsigned>(p); }\n"
    << "extern \"C\" __global__ void __launch_bounds__(256) " << kStitchedIdx32
    << "(const LoomParams p) { loom_pdl_begin(); loom_idx<unsigned>(p); }\n"
    << "extern \"C\" __global__ void __launch_bounds__(256) " << kStitchedIdx64
    << "(const LoomParams p) { loom_pdl_begin(); loom_idx<long long>(p); }\n";
  return s.str();
}

KernelFn make_stitched_kernel(const ir::Node& node, int device) {
  std::shared_ptr<const Compiled> k = build(attrs_as<StitchedAttrs>(*node.attrs).program, device);
  return [k](const KernelContext& c) { run(*k, c); };
}

void register_stitched(KernelTable& t) {
  t.set(op::stitched, [](const KernelContext& c) {
    const std::string& text = c.attrs_as<StitchedAttrs>().program;
    const int dev = c.outputs.empty() ? 0 : c.outputs[0].device().index;
    std::shared_ptr<Compiled> k;
    {
      std::lock_guard lock(g_table_mutex);
      auto it = table_cache().find({text, dev});
      if (it != table_cache().end()) k = it->second;
    }
    if (!k) {
      k = build(text, dev);
      std::lock_guard lock(g_table_mutex);
      if (table_cache().size() > 1024) table_cache().clear();
      table_cache().emplace(std::make_pair(text, dev), k);
    }
    run(*k, c);
  });
}

}  // namespace loom::backends::cuda
