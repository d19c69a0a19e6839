// CUDA quantization kernels (affine quantize/dequantize per tensor/axis/block, lookup tables) and
// the plain GEMM used for integer matmuls. Block formats (GGUF) are dequantized in matmul.cpp.
#include "backends/cuda/device_util.cuh"
#include "backends/cuda/kernels.h"
#include "backends/cuda/pdl.cuh"
#include "ops/affine_quant.h"
#include "ops/elementwise_functors.h"

namespace loom::backends::cuda {
namespace {
namespace op = ir::op;

struct Affine {
  const void *x, *s, *z;
  void* out;
  int dx, ds, dz, dout;
  int64_t n, outer, len, inner, block, nblocks;
  int kind;
  bool quantize, packed_out;
  double lo, hi;
};

__device__ __forceinline__ double affine_value(const Affine& a, int64_t e) {
  int64_t i = e % a.inner, ax = (e / a.inner) % a.len, o = e / (a.inner * a.len);
  int64_t si = a.kind == 0 ? 0 : a.kind == 1 ? ax : (o * a.nblocks + ax / a.block) * a.inner + i;
  double scale = load<double>(a.ds, a.s, si);
  double z = a.z ? load<double>(a.dz, a.z, si) : 0;
  double v = load<double>(a.dx, a.x, e);
  if (!a.quantize) return (v - z) * scale;
  double q = nearbyint(v / scale) + z;  // ops::quantize_value, on the device
  if (q != q) return 0;
  return q < a.lo ? a.lo : (q > a.hi ? a.hi : q);
}

// Packed outputs: one thread per byte (two elements), so no two threads share a byte.
__global__ void affine_kernel(Affine a) {
  if (a.packed_out) {
    LOOM_GRID_STRIDE(t, (a.n + 1) / 2) {
      int v0 = static_cast<int>(affine_value(a, 2 * t)) & 15;
      int v1 = 2 * t + 1 < a.n ? static_cast<int>(affine_value(a, 2 * t + 1)) & 15 : 0;
      static_cast<uint8_t*>(a.out)[t] = static_cast<uint8_t>(v0 | (v1 << 4));
    }
  } else {
    LOOM_GRID_STRIDE(e, a.n) { store(a.dout, a.out, e, affine_value(a, e)); }
  }
}

__global__ void lut_kernel(const void* q, int dq, const void* t, int dt, void* out, int dout,
                           int64_t n, int64_t entries, int64_t per_row) {
  LOOM_GRID_STRIDE(e, n) {
    int64_t idx = load<int64_t>(dq, q, e);
    int64_t row = per_row ? e / per_row : 0;
    store(dout, out, e, load<double>(dt, t, row * entries + idx));
  }
}

__global__ void naive_gemm_kernel(const void* a, int dta, const void* b, int dtb, void* out,
                                  int dto, int64_t m, int64_t n, int64_t k, bool ta, bool tb) {
  LOOM_GRID_STRIDE(e, m * n) {
    int64_t i = e / n, j = e % n;
    double acc = 0;
    for (int64_t p = 0; p < k; ++p)
      acc += load<double>(dta, a, ta ? p * m + i : i * k + p) *
             load<double>(dtb, b, tb ? j * k + p : p * n + j);
    store(dto, out, e, acc);
  }
}

}  // namespace

void launch_affine(cudaStream_t s, const NDArray& x, const NDArray& scale, const NDArray* zp,
                   const NDArray& out, int64_t axis, int64_t block, bool quantize) {
  ops::AffineLayout L(x.shape(), axis, block, scale.numel());
  Affine a{};
  a.x = x.data(), a.s = scale.data(), a.z = zp ? zp->data() : nullptr, a.out = out.data();
  a.dx = static_cast<int>(x.dtype()), a.ds = static_cast<int>(scale.dtype());
  a.dz = zp ? static_cast<int>(zp->dtype()) : 0, a.dout = static_cast<int>(out.dtype());
  a.n = x.numel(), a.outer = L.outer, a.len = L.len, a.inner = L.inner, a.block = L.block;
  a.nblocks = L.nblocks, a.kind = L.kind, a.quantize = quantize;
  a.packed_out = is_packed(out.dtype());
  if (quantize) ops::integer_range(out.dtype(), &a.lo, &a.hi);
  if (a.n == 0) return;
  affine_kernel<<<blocks_for(a.packed_out ? (a.n + 1) / 2 : a.n), 256, 0, s>>>(a);
  LOOM_CUDA_LAUNCHED();
}

namespace {

// y[r, j] = silu(p[r, j]) · p[r, h + j]: the stitched silu · mul over a product's halves, in T.
template <class T>
__global__ void swiglu_halves_kernel(const void* p, void* y, int dt, int64_t m, int64_t h) {
  pdl_begin();
  LOOM_GRID_STRIDE(i, m * h) {
    const int64_t r = i / h, j = i % h;
    const T g = load<T>(dt, p, r * 2 * h + j), u = load<T>(dt, p, r * 2 * h + h + j);
    store(dt, y, i, ops::fn::mul::apply(ops::fn::silu::apply(g), u));
  }
}

}  // namespace

void launch_swiglu_halves(cudaStream_t s, const void* p, void* y, DType dtype, int64_t m,
                          int64_t h) {
  if (m * h == 0) return;
  const auto dt = static_cast<int>(dtype);
  if (dtype == DType::f64)
    launch_pdl(swiglu_halves_kernel<double>, blocks_for(m * h), 256, 0, s, p, y, dt, m, h);
  else
    launch_pdl(swiglu_halves_kernel<float>, blocks_for(m * h), 256, 0, s, p, y, dt, m, h);
  LOOM_CUDA_LAUNCHED();
}

void launch_lut(cudaStream_t s, const NDArray& q, const NDArray& t, const NDArray& out) {
  int64_t entries = t.shape()[t.rank() - 1];
  int64_t per_row = t.rank() == 2 ? q.numel() / std::max<int64_t>(q.shape()[0], 1) : 0;
  if (q.numel() == 0) return;
  lut_kernel<<<blocks_for(q.numel()), 256, 0, s>>>(
      q.data(), static_cast<int>(q.dtype()), t.data(), static_cast<int>(t.dtype()), out.data(),
      static_cast<int>(out.dtype()), q.numel(), entries, per_row);
  LOOM_CUDA_LAUNCHED();
}

void launch_naive_gemm(cudaStream_t s, const void* a, int dta, const void* b, int dtb, void* out,
                       int dto, int64_t m, int64_t n, int64_t k, bool ta, bool tb) {
  if (m * n == 0) return;
  naive_gemm_kernel<<<blocks_for(m * n), 256, 0, s>>>(a, dta, b, dtb, out, dto, m, n, k, ta, tb);
  LOOM_CUDA_LAUNCHED();
}

void register_quantization(KernelTable& t) {
  t.set(op::dequantize, [](const KernelContext& c) {
    const auto& a = c.attrs_as<QuantAttrs>();
    launch_affine(stream_for(c), c.inputs[0], c.inputs[1],
                  c.inputs.size() > 2 ? &c.inputs[2] : nullptr, c.outputs[0], a.axis, a.block_size,
                  false);
  });
  t.set(op::quantize, [](const KernelContext& c) {
    const auto& a = c.attrs_as<QuantAttrs>();
    launch_affine(stream_for(c), c.inputs[0], c.inputs[1],
                  c.inputs.size() > 2 ? &c.inputs[2] : nullptr, c.outputs[0], a.axis, a.block_size,
                  true);
  });
  t.set(op::dequantize_lut, [](const KernelContext& c) {
    launch_lut(stream_for(c), c.inputs[0], c.inputs[1], c.outputs[0]);
  });
}

}  // namespace loom::backends::cuda
