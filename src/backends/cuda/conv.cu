// conv on CUDA as an implicit GEMM: im2col on the device into a scratch matrix [C/g * kh * kw,
// oh * ow] per (batch, group), then cuBLAS strided-batched GEMMs W[O/g, K] x col[K, N] (no cuDNN:
// its library would have to travel with every binary). f16 / bf16 compute in f32 and round once
// (like the CPU backend), f64 in f64. A 1x1 kernel with unit strides and no padding reads the
// input as it is. Pools are direct kernels, one thread per output; global pools a block per plane.
#include <cublas_v2.h>

#include <map>
#include <mutex>

#include "backends/cuda/cublas_check.h"
#include "backends/cuda/device_util.cuh"
#include "ops/conv_shape.h"

namespace loom::backends::cuda {
namespace {
namespace op = ir::op;

// im2col scratch per chunk of batches (the rest of the batch loops over chunks).
constexpr size_t kColBytes = size_t{256} << 20;

struct Blas {
  cublasHandle_t h = nullptr;
  std::mutex m;  // the handle's stream is set per call
};

Blas& blas(int device) {
  static std::mutex m;
  static std::map<int, Blas>* handles = new std::map<int, Blas>;  // lives to process exit
  std::lock_guard lock(m);
  Blas& b = (*handles)[device];
  if (!b.h) {
    LOOM_CUBLAS_CHECK(cublasCreate(&b.h));
    // Default math: exact f32 (no TF32), matching the CPU backend within the harness's tolerance.
    LOOM_CUBLAS_CHECK(cublasSetMathMode(b.h, CUBLAS_DEFAULT_MATH));
  }
  return b;
}

// Row r of a (batch, group) block = tap (ci, ky, kx); column = output position; zeros in padding.
// Blocks take rows (one 64-bit decode per row), threads take positions with 32-bit arithmetic:
// 64-bit divisions per element would cost more than the copy.
template <class T>
__global__ void im2col_kernel(const void* x, int dt, T* col, int64_t rows, int64_t C, int64_t cg,
                              int64_t b0, ops::Window2d g) {
  const int ow = static_cast<int>(g.ow), N = static_cast<int>(g.oh * g.ow);
  const int64_t kk = g.kh * g.kw, K = cg * kk, groups = C / cg;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    int64_t tap = r % K, bg = r / K;  // bg = local batch * groups + group
    int64_t b = b0 + bg / groups, grp = bg % groups;
    int64_t ci = tap / kk, ky = tap / g.kw % g.kh, kx = tap % g.kw;
    int64_t plane = ((b * C + grp * cg + ci) * g.ih) * g.iw;
    int y0 = static_cast<int>(ky * g.dh - g.ph), x0 = static_cast<int>(kx * g.dw - g.pw);
    int ih = static_cast<int>(g.ih), iw = static_cast<int>(g.iw);
    int sh = static_cast<int>(g.sh), sw = static_cast<int>(g.sw);
    T* dst = col + r * N;
    for (int pos = blockIdx.y * blockDim.x + threadIdx.x; pos < N; pos += gridDim.y * blockDim.x) {
      int oy = pos / ow, ox = pos - oy * ow;
      int iy = oy * sh + y0, ix = ox * sw + x0;
      T v = T(0);
      if (iy >= 0 && iy < ih && ix >= 0 && ix < iw)
        v = load<T>(dt, x, plane + static_cast<int64_t>(iy) * iw + ix);
      dst[pos] = v;
    }
  }
}

template <class T>
__global__ void convert_kernel(const void* x, int dt, T* out, int64_t n) {
  LOOM_GRID_STRIDE(i, n) { out[i] = load<T>(dt, x, i); }
}

// out[b, o, pos] = acc[b, o, pos] + bias[o], stored in the output dtype.
template <class T>
__global__ void finish_kernel(const T* acc, const void* bias, int bdt, void* out, int odt,
                              int64_t n, int64_t O, int64_t N) {
  LOOM_GRID_STRIDE(i, n) {
    T v = acc[i];
    if (bias) v += load<T>(bdt, bias, i / N % O);
    store(odt, out, i, static_cast<double>(v));
  }
}

template <class T>
void gemm_batched(cublasHandle_t h, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
                  int64_t sa, const T* b, int64_t ldb, int64_t sb, T* c, int64_t ldc, int64_t sc,
                  int64_t count) {
  T one = 1, zero = 0;
  auto i = [](int64_t v) { return static_cast<int>(v); };
  if constexpr (std::is_same_v<T, float>)
    LOOM_CUBLAS_CHECK(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, i(m), i(n), i(k), &one,
                                                a, i(lda), sa, b, i(ldb), sb, &zero, c, i(ldc), sc,
                                                i(count)));
  else
    LOOM_CUBLAS_CHECK(cublasDgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, i(m), i(n), i(k), &one,
                                                a, i(lda), sa, b, i(ldb), sb, &zero, c, i(ldc), sc,
                                                i(count)));
}

template <class T>
void conv_impl(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &w = c.inputs[1], &out = c.outputs[0];
  const auto& a = c.attrs_as<ConvAttrs>();
  auto g = ops::conv_window(x.shape(), w.shape(), a);
  if (out.numel() == 0) return;
  int64_t B = x.shape()[0], C = x.shape()[1], O = w.shape()[0], G = a.groups;
  int64_t cg = C / G, og = O / G;
  int64_t K = cg * g.kh * g.kw, N = g.oh * g.ow;
  LOOM_CHECK(K < (int64_t{1} << 31) && N < (int64_t{1} << 31) && g.ih * g.iw < (int64_t{1} << 31),
             "[cuda] conv: a GEMM or spatial dim is over the 32-bit limit (K ", K, ", N ", N, ")");
  int dev = out.device().index;
  cudaStream_t s = stream_for(c);
  DType ct = std::is_same_v<T, double> ? DType::f64 : DType::f32;
  auto ptr = [](const std::shared_ptr<Storage>& st) {
    return static_cast<T*>(static_cast<void*>(st->data()));
  };
  // Weights and the accumulator in the compute type.
  std::shared_ptr<Storage> wtmp, acc_tmp, col_tmp;
  const T* wp = static_cast<const T*>(w.data());
  if (w.dtype() != ct) {
    wtmp = scratch(dev, static_cast<size_t>(w.numel()) * sizeof(T));
    convert_kernel<T><<<blocks_for(w.numel()), 256, 0, s>>>(w.data(), static_cast<int>(w.dtype()),
                                                            ptr(wtmp), w.numel());
    LOOM_CUDA_LAUNCHED();
    wp = ptr(wtmp);
  }
  bool has_bias = c.inputs.size() > 2;
  bool direct_out = out.dtype() == ct && !has_bias;
  T* acc = static_cast<T*>(out.data());
  if (!direct_out) {
    acc_tmp = scratch(dev, static_cast<size_t>(out.numel()) * sizeof(T));
    acc = ptr(acc_tmp);
  }
  bool direct_in = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0 &&
                   g.phe == 0 && g.pwe == 0 && x.dtype() == ct;
  size_t per_batch = static_cast<size_t>(G * K * N) * sizeof(T);
  int64_t chunk = direct_in ? B : std::max<int64_t>(1, static_cast<int64_t>(kColBytes / per_batch));
  chunk = std::min(chunk, B);
  if (!direct_in) col_tmp = scratch(dev, per_batch * static_cast<size_t>(chunk));
  Blas& bl = blas(dev);
  std::lock_guard lock(bl.m);
  LOOM_CUBLAS_CHECK(cublasSetStream(bl.h, s));
  for (int64_t b0 = 0; b0 < B; b0 += chunk) {
    int64_t nb = std::min(chunk, B - b0);
    const T* col;
    if (direct_in) {
      col = static_cast<const T*>(x.data()) + b0 * C * N;
    } else {
      int64_t rows = nb * G * K;
      dim3 grid(static_cast<unsigned>(std::min<int64_t>(rows, int64_t{1} << 30)),
                static_cast<unsigned>(std::min<int64_t>((N + 255) / 256, 65535)));
      im2col_kernel<T><<<grid, 256, 0, s>>>(x.data(), static_cast<int>(x.dtype()), ptr(col_tmp),
                                            rows, C, cg, b0, g);
      LOOM_CUDA_LAUNCHED();
      col = ptr(col_tmp);
    }
    T* dst = acc + b0 * O * N;
    // Row-major out[og, N] = W[og, K] x col[K, N] is column-major outᵀ = colᵀ x Wᵀ.
    if (G == 1) {
      gemm_batched<T>(bl.h, N, og, K, col, N, K * N, wp, K, 0, dst, N, og * N, nb);
    } else if (nb <= G) {  // a call per batch, the groups batched
      for (int64_t b = 0; b < nb; ++b)
        gemm_batched<T>(bl.h, N, og, K, col + b * G * K * N, N, K * N, wp, K, og * K,
                        dst + b * O * N, N, og * N, G);
    } else {  // a call per group, the batches batched
      for (int64_t grp = 0; grp < G; ++grp)
        gemm_batched<T>(bl.h, N, og, K, col + grp * K * N, N, G * K * N, wp + grp * og * K, K, 0,
                        dst + grp * og * N, N, O * N, nb);
    }
  }
  if (!direct_out) {
    const void* bias = has_bias ? c.inputs[2].data() : nullptr;
    int bdt = has_bias ? static_cast<int>(c.inputs[2].dtype()) : 0;
    finish_kernel<T><<<blocks_for(out.numel()), 256, 0, s>>>(
        acc, bias, bdt, out.data(), static_cast<int>(out.dtype()), out.numel(), O, N);
    LOOM_CUDA_LAUNCHED();
  }
}

void conv(const KernelContext& c) {
  if (c.inputs[0].dtype() == DType::f64)
    conv_impl<double>(c);
  else
    conv_impl<float>(c);
}

template <class T, bool MAX>
__global__ void pool_kernel(const void* x, int dt, void* out, int odt, int64_t n, ops::Window2d g,
                            bool include_pad) {
  LOOM_GRID_STRIDE(i, n) {
    int64_t on = g.oh * g.ow, p = i / on, pos = i - p * on;
    int64_t oy = pos / g.ow, ox = pos - oy * g.ow;
    T acc = MAX ? T(-INFINITY) : T(0);
    int64_t count = 0, padded = 0;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      int64_t iy = oy * g.sh - g.ph + ky * g.dh;
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        int64_t ix = ox * g.sw - g.pw + kx * g.dw;
        if (iy < g.ih + g.phe && ix < g.iw + g.pwe) ++padded;
        if (iy < 0 || iy >= g.ih || ix < 0 || ix >= g.iw) continue;
        T v = load<T>(dt, x, (p * g.ih + iy) * g.iw + ix);
        if constexpr (MAX)
          acc = acc < v ? v : acc;  // std::max, as the CPU backend
        else
          acc += v;
        ++count;
      }
    }
    if constexpr (!MAX) acc /= static_cast<T>(include_pad ? padded : count);
    store(odt, out, i, static_cast<double>(acc));
  }
}

template <bool MAX>
void pool(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  const auto& a = c.attrs_as<PoolAttrs>();
  auto g = ops::pool_window(x.shape(), a, MAX ? "max_pool" : "avg_pool");
  int64_t n = out.numel();
  if (n == 0) return;
  cudaStream_t s = stream_for(c);
  int dt = static_cast<int>(x.dtype()), odt = static_cast<int>(out.dtype());
  if (x.dtype() == DType::f64)
    pool_kernel<double, MAX>
        <<<blocks_for(n), 256, 0, s>>>(x.data(), dt, out.data(), odt, n, g, a.count_include_pad);
  else
    pool_kernel<float, MAX>
        <<<blocks_for(n), 256, 0, s>>>(x.data(), dt, out.data(), odt, n, g, a.count_include_pad);
  LOOM_CUDA_LAUNCHED();
}

// A block of 256 threads per [B, C] plane.
template <class T, bool MAX>
__global__ void global_pool_kernel(const void* x, int dt, void* out, int odt, int64_t len) {
  __shared__ T part[256];
  int64_t p = blockIdx.x;
  T acc = MAX ? T(-INFINITY) : T(0);
  for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
    T v = load<T>(dt, x, p * len + i);
    acc = MAX ? (acc < v ? v : acc) : acc + v;
  }
  part[threadIdx.x] = acc;
  __syncthreads();
  for (int w = 128; w > 0; w >>= 1) {
    if (static_cast<int>(threadIdx.x) < w) {
      T o = part[threadIdx.x + w], m = part[threadIdx.x];
      part[threadIdx.x] = MAX ? (m < o ? o : m) : m + o;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    T r = part[0];
    if (!MAX) r /= static_cast<T>(len);
    store(odt, out, p, static_cast<double>(r));
  }
}

template <bool MAX>
void global_pool(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  int64_t planes = x.shape()[0] * x.shape()[1];
  if (planes == 0) return;
  int64_t len = x.numel() / planes;
  LOOM_CHECK(planes < (int64_t{1} << 31), "[cuda] global pool: too many planes (", planes, ")");
  cudaStream_t s = stream_for(c);
  int dt = static_cast<int>(x.dtype()), odt = static_cast<int>(out.dtype());
  auto grid = static_cast<unsigned>(planes);
  if (x.dtype() == DType::f64)
    global_pool_kernel<double, MAX><<<grid, 256, 0, s>>>(x.data(), dt, out.data(), odt, len);
  else
    global_pool_kernel<float, MAX><<<grid, 256, 0, s>>>(x.data(), dt, out.data(), odt, len);
  LOOM_CUDA_LAUNCHED();
}

}  // namespace

void register_conv(KernelTable& t) {
  t.set(op::conv, conv);
  t.set(op::max_pool, pool<true>);
  t.set(op::avg_pool, pool<false>);
  t.set(op::global_max_pool, global_pool<true>);
  t.set(op::global_avg_pool, global_pool<false>);
}

}  // namespace loom::backends::cuda
