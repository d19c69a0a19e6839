// Complex elementwise ops on CUDA: complex, real, imag, conj, angle, and c64 add / sub / mul / div
// / neg / abs. The real kernels of the arithmetic ops are wrapped: c64 operands take these kernels,
// everything else the original one. Float arithmetic written out as the CPU backend does.
#include "backends/cuda/device_util.cuh"

namespace loom::backends::cuda {
namespace {
namespace op = ir::op;

enum CxOp { kAdd, kSub, kMul, kDiv, kNeg, kAbs, kComplex, kReal, kImag, kConj, kAngle };

template <int N>
struct CxArgs {
  const void* in[N];
  void* out;
  int64_t n;
  bool flat;
  StridedIndex<N> ix;
};

__device__ __forceinline__ float2 ld(const void* p, int64_t i, bool cplx) {
  if (cplx) return static_cast<const float2*>(p)[i];
  return make_float2(static_cast<const float*>(p)[i], 0.f);
}

template <int OP, int N>
__global__ void cx_kernel(CxArgs<N> a, bool in_c) {
  LOOM_GRID_STRIDE(i, a.n) {
    int64_t off[N];
    if (a.flat) {
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] = i;
    } else {
      a.ix.offsets(i, off);
    }
    float2 x = ld(a.in[0], off[0], in_c), y = make_float2(0.f, 0.f);
    if constexpr (N == 2) y = ld(a.in[1], off[1], in_c);
    float2 r;
    if constexpr (OP == kAdd) r = make_float2(x.x + y.x, x.y + y.y);
    if constexpr (OP == kSub) r = make_float2(x.x - y.x, x.y - y.y);
    if constexpr (OP == kMul) r = make_float2(x.x * y.x - x.y * y.y, x.x * y.y + x.y * y.x);
    if constexpr (OP == kDiv) {
      float d = y.x * y.x + y.y * y.y;
      r = make_float2((x.x * y.x + x.y * y.y) / d, (x.y * y.x - x.x * y.y) / d);
    }
    if constexpr (OP == kNeg) r = make_float2(-x.x, -x.y);
    if constexpr (OP == kConj) r = make_float2(x.x, -x.y);
    if constexpr (OP == kComplex) r = make_float2(x.x, y.x);
    constexpr bool real_out = OP == kAbs || OP == kReal || OP == kImag || OP == kAngle;
    if constexpr (real_out) {
      float v;
      if constexpr (OP == kAbs) v = sqrtf(x.x * x.x + x.y * x.y);
      if constexpr (OP == kReal) v = x.x;
      if constexpr (OP == kImag) v = x.y;
      if constexpr (OP == kAngle) v = atan2f(x.y, x.x);
      static_cast<float*>(a.out)[i] = v;
    } else {
      static_cast<float2*>(a.out)[i] = r;
    }
  }
}

template <int OP, int N>
void launch(const KernelContext& c) {
  const NDArray& out = c.outputs[0];
  CxArgs<N> a{};
  a.n = out.numel();
  if (a.n == 0) return;
  a.out = out.data();
  a.flat = true;
  std::array<std::vector<int64_t>, N> st;
  for (int k = 0; k < N; ++k) {
    const NDArray& x = c.inputs[static_cast<size_t>(k)];
    a.in[k] = x.data();
    a.flat = a.flat && x.shape() == out.shape();
    st[static_cast<size_t>(k)] = broadcast_strides(x.shape(), out.shape());
  }
  if (!a.flat) a.ix = make_index<N>(dims_of(out.shape()), st);
  bool in_c = c.inputs[0].dtype() == DType::c64;
  cx_kernel<OP, N><<<blocks_for(a.n), 256, 0, stream_for(c)>>>(a, in_c);
  LOOM_CUDA_LAUNCHED();
}

template <int OP, int N>
void wrap(KernelTable& t, ir::OpId id) {
  const KernelFn* prev = t.find(id);
  LOOM_CHECK(prev, "[cuda] register_complex must run after register_elementwise");
  KernelFn real_kernel = *prev;
  t.set(id, [real_kernel](const KernelContext& c) {
    if (c.inputs[0].dtype() == DType::c64)
      launch<OP, N>(c);
    else
      real_kernel(c);
  });
}

}  // namespace

void register_complex(KernelTable& t) {
  wrap<kAdd, 2>(t, op::add);
  wrap<kSub, 2>(t, op::sub);
  wrap<kMul, 2>(t, op::mul);
  wrap<kDiv, 2>(t, op::div);
  wrap<kNeg, 1>(t, op::neg);
  wrap<kAbs, 1>(t, op::abs);
  t.set(op::complex, launch<kComplex, 2>);
  t.set(op::real, launch<kReal, 1>);
  t.set(op::imag, launch<kImag, 1>);
  t.set(op::conj, launch<kConj, 1>);
  t.set(op::angle, launch<kAngle, 1>);
}

}  // namespace loom::backends::cuda
