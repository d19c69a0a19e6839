// matmul on CUDA through cuBLASLt (f32 exact — TF32 is opt-in later —, f16, bf16 with f32
// accumulation, f64; batched and broadcast batches as strided batches with stride 0), integer
// matmuls through a plain kernel, and quantized_matmul / dequantize_blocks on the packed weights
// (quant_matmul*.cu: GEMV kernels for m <= 8, device dequantize + the same GEMM above).
#include <cublasLt.h>

#include <map>
#include <mutex>
#include <vector>

#include "backends/add_norm_matmul.h"
#include "backends/cuda/cublas_check.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/quant_matmul.h"
#include "backends/cuda/strided.h"
#include "ops/matmul_shape.h"

namespace loom::backends::cuda {
namespace {
namespace op = ir::op;

constexpr size_t kWorkspace = size_t{32} << 20;

struct LtState {
  cublasLtHandle_t handle = nullptr;
  std::shared_ptr<Storage> workspace;
};

LtState& lt(int device) {
  static std::mutex m;
  static std::map<int, LtState> states;
  std::lock_guard lock(m);
  LtState& s = states[device];
  if (!s.handle) {
    LOOM_CUBLAS_CHECK(cublasLtCreate(&s.handle));
    s.workspace = scratch(device, kWorkspace);
  }
  return s;
}

// Largest power of two (<= 256) dividing the address and every batch stride, in bytes.
uint32_t alignment(const void* p, int64_t stride_bytes) {
  auto v = reinterpret_cast<uintptr_t>(p) | static_cast<uintptr_t>(stride_bytes) | 256;
  return static_cast<uint32_t>(v & (~v + 1));
}

struct Gemm {
  const void *a, *b;
  void* c;
  DType t;
  int64_t m, n, k, batch;
  int64_t sa, sb, sc;  // batch strides in elements (0: broadcast)
  bool ta, tb;
};

// Row-major C[m,n] = op(A)·op(B) is column-major Cᵀ[n,m] = op(B)ᵀ·op(A)ᵀ: B goes first.
void lt_gemm(cudaStream_t stream, int device, const Gemm& g) {
  cudaDataType_t dt;
  cublasComputeType_t ct = CUBLAS_COMPUTE_32F;
  cudaDataType_t st = CUDA_R_32F;
  switch (g.t) {
    case DType::f32:
      dt = CUDA_R_32F;
      break;
    case DType::f16:
      dt = CUDA_R_16F;
      break;
    case DType::bf16:
      dt = CUDA_R_16BF;
      break;
    case DType::f64:
      dt = CUDA_R_64F, ct = CUBLAS_COMPUTE_64F, st = CUDA_R_64F;
      break;
    default:
      fail("[cuda] matmul: no cuBLAS path for ", dtype_name(g.t));
  }
  LtState& s = lt(device);
  size_t es = static_cast<size_t>(dtype_bits(g.t) / 8);
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  struct Cleanup {
    cublasLtMatmulDesc_t& d;
    cublasLtMatrixLayout_t &a, &b, &c;
    cublasLtMatmulPreference_t& p;
    ~Cleanup() {
      if (p) cublasLtMatmulPreferenceDestroy(p);
      if (c) cublasLtMatrixLayoutDestroy(c);
      if (b) cublasLtMatrixLayoutDestroy(b);
      if (a) cublasLtMatrixLayoutDestroy(a);
      if (d) cublasLtMatmulDescDestroy(d);
    }
  } cleanup{desc, la, lb, lc, pref};
  LOOM_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, ct, st));
  cublasOperation_t op_x = g.tb ? CUBLAS_OP_T : CUBLAS_OP_N;  // X = B
  cublasOperation_t op_y = g.ta ? CUBLAS_OP_T : CUBLAS_OP_N;  // Y = A
  LOOM_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_x, sizeof(op_x)));
  LOOM_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_y, sizeof(op_y)));
  // Column-major views of the row-major buffers.
  auto u = [](int64_t v) { return static_cast<uint64_t>(v); };
  LOOM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, dt, g.tb ? u(g.k) : u(g.n),
                                               g.tb ? u(g.n) : u(g.k), g.tb ? g.k : g.n));
  LOOM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, dt, g.ta ? u(g.m) : u(g.k),
                                               g.ta ? u(g.k) : u(g.m), g.ta ? g.m : g.k));
  LOOM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lc, dt, u(g.n), u(g.m), g.n));
  if (g.batch > 1) {
    int32_t count = static_cast<int32_t>(g.batch);
    for (auto [l, stride] : {std::pair{la, g.sb}, std::pair{lb, g.sa}, std::pair{lc, g.sc}}) {
      LOOM_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                         &count, sizeof(count)));
      LOOM_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
          l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
    }
  }
  LOOM_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  size_t ws = kWorkspace;
  LOOM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  // Arena offsets and batch strides need not be 256-byte aligned: say what they are.
  uint32_t al_a = alignment(g.b, g.sb * static_cast<int64_t>(es));
  uint32_t al_b = alignment(g.a, g.sa * static_cast<int64_t>(es));
  uint32_t al_c = alignment(g.c, g.sc * static_cast<int64_t>(es));
  LOOM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a)));
  LOOM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b)));
  LOOM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof(al_c)));
  LOOM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof(al_c)));
  cublasLtMatmulHeuristicResult_t h{};
  int found = 0;
  LOOM_CUBLAS_CHECK(
      cublasLtMatmulAlgoGetHeuristic(s.handle, desc, la, lb, lc, lc, pref, 1, &h, &found));
  LOOM_CHECK(found > 0, "[cuda] matmul: cuBLASLt has no algorithm for ", dtype_name(g.t), " ", g.m,
             "x", g.k, "x", g.n);
  float one = 1, zero = 0;
  double one_d = 1, zero_d = 0;
  const void* alpha = g.t == DType::f64 ? static_cast<const void*>(&one_d) : &one;
  const void* beta = g.t == DType::f64 ? static_cast<const void*>(&zero_d) : &zero;
  LOOM_CUBLAS_CHECK(cublasLtMatmul(s.handle, desc, alpha, g.b, la, g.a, lb, beta, g.c, lc, g.c, lc,
                                   &h.algo, s.workspace->data(), kWorkspace, stream));
}

void matmul(const KernelContext& c) {
  const NDArray &a = c.inputs[0], &b = c.inputs[1], &out = c.outputs[0];
  const auto& at = c.attrs_as<MatmulAttrs>();
  auto s = ops::matmul_shape(a.type(), b.type(), at, nullptr);
  cudaStream_t stream = stream_for(c);
  int device = out.device().index;
  if (out.numel() == 0) return;
  if (s.k == 0) {
    LOOM_CUDA_CHECK(cudaMemsetAsync(out.data(), 0, out.nbytes(), stream));
    return;
  }
  Shape abatch(std::vector<int64_t>(a.shape().dims().begin(),
                                    a.shape().dims().end() - std::min(a.rank(), 2)));
  Shape bbatch(std::vector<int64_t>(b.shape().dims().begin(),
                                    b.shape().dims().end() - std::min(b.rank(), 2)));
  int64_t a_mat = s.m * s.k, b_mat = s.k * s.n, o_mat = s.m * s.n;
  auto sa = broadcast_strides(abatch, s.batch), sb = broadcast_strides(bbatch, s.batch);
  for (auto& v : sa) v *= a_mat;
  for (auto& v : sb) v *= b_mat;
  auto so = contiguous_strides(s.batch);
  for (auto& v : so) v *= o_mat;
  // Collapse the batch dims; the innermost one becomes cuBLAS's strided batch, the rest a loop.
  std::vector<int64_t> dims(s.batch.dims().begin(), s.batch.dims().end());
  auto ix = make_index<3>(dims, {sa, sb, so});
  int64_t inner = ix.rank ? ix.shape[ix.rank - 1] : 1;
  int64_t isa = ix.rank ? ix.stride[0][ix.rank - 1] : 0,
          isb = ix.rank ? ix.stride[1][ix.rank - 1] : 0;
  int64_t iso = ix.rank ? ix.stride[2][ix.rank - 1] : 0;
  int64_t outer = s.batch.numel() / std::max<int64_t>(inner, 1);
  size_t es = static_cast<size_t>(dtype_bits(a.dtype()) / 8);
  bool blas = a.dtype() == DType::f32 || a.dtype() == DType::f16 || a.dtype() == DType::bf16 ||
              a.dtype() == DType::f64;
  for (int64_t o = 0; o < outer; ++o) {
    int64_t offa = 0, offb = 0, offo = 0, rem = o;
    for (int d = ix.rank - 2; d >= 0; --d) {
      int64_t i = rem % ix.shape[d];
      rem /= ix.shape[d];
      offa += i * ix.stride[0][d], offb += i * ix.stride[1][d], offo += i * ix.stride[2][d];
    }
    const char* pa = static_cast<const char*>(a.data()) + static_cast<size_t>(offa) * es;
    const char* pb = static_cast<const char*>(b.data()) + static_cast<size_t>(offb) * es;
    char* po = static_cast<char*>(out.data()) + static_cast<size_t>(offo) * es;
    if (blas) {
      lt_gemm(stream, device,
              {pa, pb, po, a.dtype(), s.m, s.n, s.k, inner, isa, isb, iso, at.transpose_a,
               at.transpose_b});
    } else {
      for (int64_t i = 0; i < inner; ++i)
        launch_naive_gemm(stream, pa + static_cast<size_t>(i * isa) * es,
                          static_cast<int>(a.dtype()), pb + static_cast<size_t>(i * isb) * es,
                          static_cast<int>(b.dtype()), po + static_cast<size_t>(i * iso) * es,
                          static_cast<int>(out.dtype()), s.m, s.n, s.k, at.transpose_a,
                          at.transpose_b);
    }
  }
}

// The packed weights of a quantized_matmul as the device kernels see them (format -1: a layout
// with no kernel, e.g. scales per column).
QuantWeights quant_weights(const KernelContext& c, const QuantizedMatmulAttrs& a) {
  QuantWeights w;
  const NDArray& q = c.inputs[1];
  w.n = a.n, w.k = a.k, w.w = q.data();
  const uint64_t params = (uint64_t{1} << (c.inputs.size() - 1)) - 1;  // inputs 1..: W's parts
  w.constant = ((c.constant_inputs >> 1) & params) == params;
  if (a.format == "affine") {
    const NDArray& s = c.inputs[2];
    const NDArray* zp = c.inputs.size() > 3 ? &c.inputs[3] : nullptr;
    bool four = q.dtype() == DType::u4 || q.dtype() == DType::i4;
    w.format = q.dtype() == DType::u4   ? kAffU4
               : q.dtype() == DType::i4 ? kAffI4
               : q.dtype() == DType::u8 ? kAffU8
               : q.dtype() == DType::i8 ? kAffI8
                                        : -1;
    w.row_bytes = four ? a.k / 2 : a.k;
    w.scale = s.data(), w.scale_dtype = static_cast<int>(s.dtype());
    if (zp) w.zero_point = zp->data(), w.zero_dtype = static_cast<int>(zp->dtype());
    int64_t axis = a.axis < 0 ? a.axis + 2 : a.axis;
    if (s.numel() == 1) {
      w.scale_kind = 0;
    } else if (axis == 1 && a.block_size > 0) {
      w.scale_kind = 1, w.block = a.block_size, w.nblocks = (a.k + a.block_size - 1) / a.block_size;
    } else if (axis == 0 && a.block_size == 0) {
      w.scale_kind = 3;
    } else {
      w.format = -1;
    }
  } else if (a.format == "lut") {
    const NDArray& t = c.inputs[2];
    w.format = q.dtype() == DType::u4 ? kLutU4 : q.dtype() == DType::u8 ? kLutU8 : -1;
    w.row_bytes = q.dtype() == DType::u4 ? a.k / 2 : a.k;
    w.table = t.data(), w.table_dtype = static_cast<int>(t.dtype());
    w.entries = t.shape()[t.rank() - 1], w.table_per_row = t.rank() == 2;
  } else {
    w.format = quant_block_format(a.format);
    w.row_bytes = a.n ? static_cast<int64_t>(q.nbytes()) / a.n : 0;
  }
  return w;
}

// Decode-sized products (m <= 8 rows of x) run the GEMV kernels on the packed weights. Prefill
// (m > 8) and layouts without a GEMV dequantize W on the device into a scratch matrix of x's
// dtype, then one cuBLASLt GEMM (f32 x: exact f32 GEMM, f16/bf16: tensor cores, f32 accumulate).
void quantized_matmul(const KernelContext& c) {
  const auto& a = c.attrs_as<QuantizedMatmulAttrs>();
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  cudaStream_t stream = stream_for(c);
  int device = out.device().index;
  int64_t m = a.k ? x.numel() / a.k : 0;
  if (out.numel() == 0) return;
  if (m == 0 || a.k == 0) {
    LOOM_CUDA_CHECK(cudaMemsetAsync(out.data(), 0, out.nbytes(), stream));
    return;
  }
  QuantWeights qw = quant_weights(c, a);
  if (m <= 8 && launch_quant_gemv(stream, qw, x.data(), static_cast<int>(x.dtype()), m, out.data()))
    return;
  DType wt = x.dtype();
  auto ws = scratch(device, storage_bytes(wt, a.n * a.k));
  NDArray w(ws, wt, Shape({a.n, a.k}), contiguous_strides(Shape({a.n, a.k})), 0);
  if (!launch_quant_dequantize(stream, qw, w.data(), static_cast<int>(wt))) {
    if (a.format == "affine")
      launch_affine(stream, c.inputs[1], c.inputs[2], c.inputs.size() > 3 ? &c.inputs[3] : nullptr,
                    w, a.axis, a.block_size, false);
    else if (a.format == "lut")
      launch_lut(stream, c.inputs[1], c.inputs[2], w);
    else
      fail("[cuda] quantized_matmul: no device decoder for format '", a.format, "'");
  }
  lt_gemm(stream, device,
          {x.data(), w.data(), out.data(), x.dtype(), m, a.n, a.k, 1, 0, 0, 0, false, true});
  // `w` goes back to the cache when this returns; the stream orders its reuse after the GEMM.
}

// add_rms_norm_quantized_matmul(a, b, gamma, packed) -> (sum, y). Decode rows (m <= 8) of f32 with
// a and b of the sum's shape: the int8 GEMV (quant_gemv_int8.cu), whose CTAs form the sum and the
// normed x themselves for short rows (no norm kernel), and copy x normalised and quantized by one
// kernel for long ones (the norm kernel's place). Otherwise, or where that GEMV does not apply,
// the unfused pair's kernels with the normed x in a scratch buffer.
void add_rms_norm_quantized_matmul(const KernelContext& c) {
  const auto& at = c.attrs_as<AddRmsNormQuantizedMatmulAttrs>();
  const NDArray &a = c.inputs[0], &b = c.inputs[1], &gamma = c.inputs[2];
  const NDArray &sum = c.outputs[0], &y = c.outputs[1];
  const int64_t k = at.k, m = k ? sum.numel() / k : 0;
  const bool f32 = a.dtype() == DType::f32 && b.dtype() == DType::f32 &&
                   gamma.dtype() == DType::f32 && sum.dtype() == DType::f32;
  if (f32 && m >= 1 && m <= 8 && a.shape() == sum.shape() && b.shape() == sum.shape() &&
      sum.rank() >= 1 && sum.shape()[sum.rank() - 1] == k && gamma.numel() == k) {
    const NDArray in[] = {a, c.inputs[3]};  // quant_weights reads the weights' part only
    const uint64_t early = c.settled_inputs | c.constant_inputs;  // readable before the wait
    if (launch_quant_gemv_int8_add_norm(
            stream_for(c), quant_weights(matmul_context(c, in, nullptr), at.matmul()),
            a.data_as<float>(), b.data_as<float>(), gamma.data_as<float>(),
            static_cast<float>(at.eps), m, sum.data_as<float>(), y.data_as<float>(),
            (early & 1) != 0, (early & 4) != 0))
      return;
  }
  auto xs = scratch(sum.device().index, storage_bytes(sum.dtype(), sum.numel()));
  add_norm_then_matmul(c, NDArray(xs, sum.dtype(), sum.shape(), contiguous_strides(sum.shape()), 0),
                       add_rms_norm, quantized_matmul);
  // The scratch x goes back to the cache when this returns; the stream orders its reuse.
}

// swiglu_quantized_matmul(p, packed) = quantized_matmul(silu(g) · u, packed) over p's halves.
// Decode rows (m <= 8) of f32 in an int8-GEMV format: the GEMV forms x where it quantizes it (every
// CTA, or quantize_x_kernel once for long rows), so neither x nor a silu · mul kernel exists.
// Otherwise one elementwise kernel into a scratch x, then quantized_matmul's path.
void swiglu_quantized_matmul(const KernelContext& c) {
  const auto& a = c.attrs_as<QuantizedMatmulAttrs>();
  const NDArray &p = c.inputs[0], &out = c.outputs[0];
  const int64_t m = a.k ? p.numel() / (2 * a.k) : 0;
  if (out.numel() == 0) return;
  cudaStream_t stream = stream_for(c);
  if (p.dtype() == DType::f32 && m >= 1 && m <= 8 &&
      launch_quant_gemv_int8_swiglu(stream, quant_weights(c, a), p.data_as<float>(), m,
                                    out.data_as<float>()))
    return;
  const Shape xs({m, a.k});
  auto x = scratch(out.device().index, storage_bytes(p.dtype(), xs.numel()));
  launch_swiglu_halves(stream, p.data(), x->data(), p.dtype(), m, a.k);
  const NDArray in[] = {NDArray(x, p.dtype(), xs, contiguous_strides(xs), 0), c.inputs[1]};
  quantized_matmul({in, c.outputs, c.attrs, c.pool, c.constant_inputs & 2});
  // The scratch x goes back to the cache when this returns; the stream orders its reuse.
}

void dequantize_blocks(const KernelContext& c) {
  const auto& a = c.attrs_as<BlockQuantAttrs>();
  const NDArray &p = c.inputs[0], &out = c.outputs[0];
  QuantWeights w;
  w.format = quant_block_format(a.format);
  w.w = p.data(), w.k = a.k, w.n = a.k ? out.numel() / a.k : 0;
  if (w.n == 0) return;
  w.row_bytes = static_cast<int64_t>(p.nbytes()) / w.n;
  LOOM_CHECK(launch_quant_dequantize(stream_for(c), w, out.data(), static_cast<int>(out.dtype())),
             "[cuda] dequantize_blocks: no device decoder for format '", a.format, "'");
}

}  // namespace

void register_matmul(KernelTable& t) {
  t.set(op::matmul, matmul);
  t.set(op::quantized_matmul, quantized_matmul);
  t.set(op::add_rms_norm_quantized_matmul, add_rms_norm_quantized_matmul);
  t.set(op::swiglu_quantized_matmul, swiglu_quantized_matmul);
  t.set(op::dequantize_blocks, dequantize_blocks);
}

}  // namespace loom::backends::cuda
