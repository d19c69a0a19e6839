// CUDA reductions (sum/mean/max/min/prod over any axes, argmax/argmin) and row normalisations
// (softmax, log_softmax, layer_norm, rms_norm, add_rms_norm): one block per output row (a warp per
// short add_rms_norm row), accumulating in double for reductions (as the reference does) and in
// f32 (f64 for f64) for softmax and norms.
#include <cfloat>

#include "backends/cuda/device_util.cuh"
#include "backends/cuda/kernels.h"
#include "backends/cuda/pdl.cuh"
#include "backends/row_split.h"

namespace loom::backends::cuda {
namespace {
namespace op = ir::op;

constexpr int kThreads = 256;

// Sum over the block (every thread gets the result).
template <class T, class F>
__device__ T block_reduce(T v, F combine) {
  __shared__ T sh[32];
  for (int o = 16; o > 0; o >>= 1) v = combine(v, __shfl_xor_sync(0xffffffffu, v, o));
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // sh may still be read by a previous call
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  int nw = (blockDim.x + 31) / 32;
  v = sh[0];
  for (int w = 1; w < nw; ++w) v = combine(v, sh[w]);
  return v;
}

enum RedOp { kSum, kMean, kMax, kMin, kProd };

__device__ __forceinline__ double red_combine(int r, double a, double b) {
  switch (r) {
    case kMax:
      return (a != a) ? a : ((b != b) ? b : (a > b ? a : b));
    case kMin:
      return (a != a) ? a : ((b != b) ? b : (a < b ? a : b));
    case kProd:
      return a * b;
    default:
      return a + b;
  }
}
__device__ __forceinline__ int64_t red_combine_int(int r, int64_t a, int64_t b) {
  switch (r) {
    case kMax:
      return a > b ? a : b;
    case kMin:
      return a < b ? a : b;
    case kProd:
      return a * b;
    default:
      return a + b;
  }
}

template <class T>
__device__ __forceinline__ T combine(int r, T a, T b) {
  if constexpr (std::is_same_v<T, double>)
    return red_combine(r, a, b);
  else
    return red_combine_int(r, a, b);
}

// x[base + red(j)] for j in [begin, end) combined over the block (every thread gets the result).
template <class T>
__device__ T reduce_range(const void* x, int dtx, int r, int64_t base, int64_t begin, int64_t end,
                          const StridedIndex<1>& red, T init) {
  T acc = init;
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) {
    int64_t off;
    red.offsets(j, &off);
    acc = combine(r, acc, load<T>(dtx, x, base + off));
  }
  return block_reduce(acc, [r](T a, T b) { return combine(r, a, b); });
}

// The value stored for an output: a mean divides by the count.
template <class T>
__device__ T finish(int r, T acc, int64_t n_red) {
  if constexpr (std::is_same_v<T, double>) {
    if (r == kMean) return n_red ? acc / static_cast<double>(n_red) : NAN;
  }
  return acc;
}

// kept: output index -> input offset; red: reduced index -> input offset.
template <class T>
__global__ void reduce_kernel(const void* x, int dtx, void* out, int dto, int r, int64_t n_out,
                              int64_t n_red, StridedIndex<1> kept, StridedIndex<1> red, T init) {
  for (int64_t o = blockIdx.x; o < n_out; o += gridDim.x) {
    int64_t base;
    kept.offsets(o, &base);
    T acc = reduce_range(x, dtx, r, base, 0, n_red, red, init);
    if (threadIdx.x == 0) store(dto, out, o, finish(r, acc, n_red));
  }
}

// Few outputs over many elements (a global max, a loss): one block per output would leave the GPU
// idle, so each output's range is split over `parts` blocks writing partials, then one block per
// output combines them.
template <class T>
__global__ void reduce_partial_kernel(const void* x, int dtx, T* partial, int r, int64_t n_red,
                                      int parts, StridedIndex<1> kept, StridedIndex<1> red,
                                      T init) {
  int64_t o = blockIdx.x / parts, p = blockIdx.x % parts;
  int64_t chunk = (n_red + parts - 1) / parts, begin = p * chunk;
  int64_t end = begin + chunk < n_red ? begin + chunk : n_red;
  int64_t base;
  kept.offsets(o, &base);
  T acc = reduce_range(x, dtx, r, base, begin, end, red, init);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

template <class T>
__global__ void reduce_finish_kernel(const T* partial, int parts, void* out, int dto, int r,
                                     int64_t n_red, T init) {
  T acc = init;
  for (int j = threadIdx.x; j < parts; j += blockDim.x)
    acc = combine(r, acc, partial[static_cast<int64_t>(blockIdx.x) * parts + j]);
  acc = block_reduce(acc, [r](T a, T b) { return combine(r, a, b); });
  if (threadIdx.x == 0) store(dto, out, blockIdx.x, finish(r, acc, n_red));
}

struct Split {
  StridedIndex<1> kept, red;
  int64_t n_out = 1, n_red = 1;
};

Split split_axes(const Shape& s, const std::vector<bool>& reduced) {
  auto st = contiguous_strides(s);
  std::vector<int64_t> ks, kst, rs, rst;
  Split sp;
  for (int d = 0; d < s.rank(); ++d) {
    if (reduced[static_cast<size_t>(d)]) {
      rs.push_back(s[d]);
      rst.push_back(st[static_cast<size_t>(d)]);
      sp.n_red *= s[d];
    } else {
      ks.push_back(s[d]);
      kst.push_back(st[static_cast<size_t>(d)]);
      sp.n_out *= s[d];
    }
  }
  sp.kept = make_index<1>(ks, {kst});
  sp.red = make_index<1>(rs, {rst});
  return sp;
}

unsigned grid_rows(int64_t rows) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(rows, 65535 * 4)));
}

void reduce(const KernelContext& c, RedOp r, const char* name) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  const auto& a = c.attrs_as<ReduceAttrs>();
  std::vector<bool> red(static_cast<size_t>(x.rank()), a.axes.empty());
  for (int64_t ax : a.axes) red[static_cast<size_t>(normalize_axis(ax, x.rank()))] = true;
  Split sp = split_axes(x.shape(), red);
  if (sp.n_out == 0) return;
  bool floating = is_floating(x.dtype());
  LOOM_CHECK(floating || sp.n_red > 0 || (r != kMax && r != kMin), "[", name,
             "] empty reduction of an integer tensor");
  cudaStream_t s = stream_for(c);
  // Blocks per output so that the GPU has ~4 blocks per SM, each over ≥ 4096 elements.
  int64_t parts = std::min<int64_t>(528 / std::max<int64_t>(sp.n_out, 1), sp.n_red / 4096);
  if (sp.n_out <= 256 && parts >= 2) {
    auto run = [&]<class T>(T init) {
      auto part = scratch(out.device().index, sizeof(T) * static_cast<size_t>(sp.n_out * parts));
      T* partial = reinterpret_cast<T*>(part->data());
      reduce_partial_kernel<T><<<static_cast<unsigned>(sp.n_out * parts), kThreads, 0, s>>>(
          x.data(), static_cast<int>(x.dtype()), partial, r, sp.n_red, static_cast<int>(parts),
          sp.kept, sp.red, init);
      LOOM_CUDA_LAUNCHED();
      reduce_finish_kernel<T><<<static_cast<unsigned>(sp.n_out), kThreads, 0, s>>>(
          partial, static_cast<int>(parts), out.data(), static_cast<int>(out.dtype()), r, sp.n_red,
          init);
      LOOM_CUDA_LAUNCHED();
    };
    if (floating)
      run(double(r == kProd ? 1 : r == kMax ? -INFINITY : r == kMin ? INFINITY : 0));
    else
      run(int64_t(r == kProd ? 1 : r == kMax ? INT64_MIN : r == kMin ? INT64_MAX : 0));
    return;
  }
  if (floating) {
    double init = r == kProd ? 1 : r == kMax ? -INFINITY : r == kMin ? INFINITY : 0;
    reduce_kernel<double><<<grid_rows(sp.n_out), kThreads, 0, s>>>(
        x.data(), static_cast<int>(x.dtype()), out.data(), static_cast<int>(out.dtype()), r,
        sp.n_out, sp.n_red, sp.kept, sp.red, init);
  } else {
    int64_t init = r == kProd ? 1 : r == kMax ? INT64_MIN : r == kMin ? INT64_MAX : 0;
    reduce_kernel<int64_t><<<grid_rows(sp.n_out), kThreads, 0, s>>>(
        x.data(), static_cast<int>(x.dtype()), out.data(), static_cast<int>(out.dtype()), r,
        sp.n_out, sp.n_red, sp.kept, sp.red, init);
  }
  LOOM_CUDA_LAUNCHED();
}

// The reference's rule: the first NaN wins; otherwise the strictly better value; ties keep the
// lower index.
struct Arg {
  double v;
  int64_t i;
};
__device__ __forceinline__ Arg arg_pick(Arg a, Arg b, bool is_max) {
  if (a.i < 0) return b;
  if (b.i < 0) return a;
  bool an = a.v != a.v, bn = b.v != b.v;
  if (an || bn) return an && bn ? (a.i < b.i ? a : b) : (an ? a : b);
  if (a.v == b.v) return a.i < b.i ? a : b;
  return (is_max ? a.v > b.v : a.v < b.v) ? a : b;
}

// The block's best (value, index); every thread gets it.
__device__ Arg block_arg(Arg best, bool is_max) {
  __shared__ double sv[kThreads];
  __shared__ int64_t si[kThreads];
  __syncthreads();  // the arrays may still be read by a previous call
  sv[threadIdx.x] = best.v;
  si[threadIdx.x] = best.i;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) {
      Arg r = arg_pick(Arg{sv[threadIdx.x], si[threadIdx.x]},
                       Arg{sv[threadIdx.x + w], si[threadIdx.x + w]}, is_max);
      sv[threadIdx.x] = r.v;
      si[threadIdx.x] = r.i;
    }
    __syncthreads();
  }
  return Arg{sv[0], si[0]};
}

__global__ void arg_kernel(const void* x, int dtx, int64_t* out, int64_t n_out, int64_t n_red,
                           StridedIndex<1> kept, int64_t red_stride, bool is_max) {
  pdl_begin();
  for (int64_t o = blockIdx.x; o < n_out; o += gridDim.x) {
    int64_t base;
    kept.offsets(o, &base);
    Arg best{0, -1};
    for (int64_t j = threadIdx.x; j < n_red; j += blockDim.x)
      best = arg_pick(best, Arg{load<double>(dtx, x, base + j * red_stride), j}, is_max);
    best = block_arg(best, is_max);
    if (threadIdx.x == 0) out[o] = best.i;
  }
}

// Few rows over many elements (an LLM's argmax over the vocabulary): each row's range is split
// over `parts` blocks, whose bests (global indices, so ties still go to the lowest) are merged.
__global__ void arg_partial_kernel(const void* x, int dtx, Arg* partial, int64_t n_red, int parts,
                                   StridedIndex<1> kept, int64_t red_stride, bool is_max) {
  pdl_begin();
  int64_t o = blockIdx.x / parts, p = blockIdx.x % parts;
  int64_t chunk = (n_red + parts - 1) / parts, begin = p * chunk;
  int64_t end = begin + chunk < n_red ? begin + chunk : n_red;
  int64_t base;
  kept.offsets(o, &base);
  Arg best{0, -1};
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x)
    best = arg_pick(best, Arg{load<double>(dtx, x, base + j * red_stride), j}, is_max);
  best = block_arg(best, is_max);
  if (threadIdx.x == 0) partial[blockIdx.x] = best;
}

__global__ void arg_finish_kernel(const Arg* partial, int parts, int64_t* out, bool is_max) {
  pdl_begin();
  Arg best{0, -1};
  for (int j = threadIdx.x; j < parts; j += blockDim.x)
    best = arg_pick(best, partial[static_cast<int64_t>(blockIdx.x) * parts + j], is_max);
  best = block_arg(best, is_max);
  if (threadIdx.x == 0) out[blockIdx.x] = best.i;
}

void arg_reduce(const KernelContext& c, bool is_max) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  int axis = normalize_axis(c.attrs_as<ArgReduceAttrs>().axis, x.rank());
  std::vector<bool> red(static_cast<size_t>(x.rank()), false);
  red[static_cast<size_t>(axis)] = true;
  Split sp = split_axes(x.shape(), red);
  if (sp.n_out == 0) return;
  int64_t stride = contiguous_strides(x.shape())[static_cast<size_t>(axis)];
  cudaStream_t s = stream_for(c);
  int64_t parts = std::min<int64_t>(528 / std::max<int64_t>(sp.n_out, 1), sp.n_red / 2048);
  if (sp.n_out <= 256 && parts >= 2) {
    auto part = scratch(out.device().index, sizeof(Arg) * static_cast<size_t>(sp.n_out * parts));
    Arg* partial = reinterpret_cast<Arg*>(part->data());
    launch_pdl(arg_partial_kernel, static_cast<unsigned>(sp.n_out * parts), kThreads, 0, s,
               x.data(), static_cast<int>(x.dtype()), partial, sp.n_red, static_cast<int>(parts),
               sp.kept, stride, is_max);
    LOOM_CUDA_LAUNCHED();
    launch_pdl(arg_finish_kernel, static_cast<unsigned>(sp.n_out), kThreads, 0, s, partial,
               static_cast<int>(parts), out.data_as<int64_t>(), is_max);
    LOOM_CUDA_LAUNCHED();
    return;
  }
  launch_pdl(arg_kernel, grid_rows(sp.n_out), kThreads, 0, s, x.data(), static_cast<int>(x.dtype()),
             out.data_as<int64_t>(), sp.n_out, sp.n_red, sp.kept, stride, is_max);
  LOOM_CUDA_LAUNCHED();
}

// Softmax over `len` elements spaced `inner` apart: online max/sum in one read, then the write.
template <class T>
__global__ void softmax_kernel(const void* x, int dtx, void* out, int dto, int64_t rows,
                               int64_t len, int64_t inner, bool log_out) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    int64_t base = (r / inner) * len * inner + r % inner;
    T m = -INFINITY, s = 0;
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
      T v = load<T>(dtx, x, base + j * inner);
      if (v > m) {
        s = s * exp(m - v) + 1;
        m = v;
      } else {
        s += exp(v - m);
      }
    }
    // Combine (m, s) pairs: rescale each partial sum to the block's max.
    T bm = block_reduce(m, [](T a, T b) { return a > b ? a : b; });
    T part = m == -INFINITY ? T(0) : s * exp(m - bm);
    T bs = block_reduce(part, [](T a, T b) { return a + b; });
    T lse = log(bs);
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
      T v = load<T>(dtx, x, base + j * inner) - bm;
      store(dto, out, base + j * inner, log_out ? v - lse : exp(v) / bs);
    }
  }
}

void softmax(const KernelContext& c, bool log_out) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  int axis = normalize_axis(c.attrs_as<AxisAttrs>().axis, x.rank());
  int64_t len = x.shape()[axis], inner = 1;
  for (int i = axis + 1; i < x.rank(); ++i) inner *= x.shape()[i];
  int64_t rows = len * inner ? x.numel() / len : 0;
  if (rows == 0 || len == 0) return;
  cudaStream_t s = stream_for(c);
  if (x.dtype() == DType::f64)
    softmax_kernel<double><<<grid_rows(rows), kThreads, 0, s>>>(
        x.data(), static_cast<int>(x.dtype()), out.data(), static_cast<int>(out.dtype()), rows, len,
        inner, log_out);
  else
    softmax_kernel<float><<<grid_rows(rows), kThreads, 0, s>>>(
        x.data(), static_cast<int>(x.dtype()), out.data(), static_cast<int>(out.dtype()), rows, len,
        inner, log_out);
  LOOM_CUDA_LAUNCHED();
}

// Layer/RMS norm over contiguous rows of `cols`; gamma/beta broadcast to the normalised shape.
template <class T>
__global__ void norm_kernel(const void* x, int dtx, void* out, int dto, int64_t rows, int64_t cols,
                            const void* g, int dtg, const void* b, int dtb, StridedIndex<2> gb,
                            bool rms, double eps) {
  pdl_begin();
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    int64_t base = r * cols;
    T s = 0, ss = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      T v = load<T>(dtx, x, base + j);
      s += v;
      ss += v * v;
    }
    s = block_reduce(s, [](T a, T c) { return a + c; });
    ss = block_reduce(ss, [](T a, T c) { return a + c; });
    T n = static_cast<T>(cols);
    T mean = rms ? T(0) : s / n;
    T var = rms ? ss / n : ss / n - mean * mean;
    if (var < 0) var = 0;
    T inv = T(1) / sqrt(var + static_cast<T>(eps));
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      T v = (load<T>(dtx, x, base + j) - mean) * inv;
      if (g || b) {
        int64_t off[2];
        gb.offsets(j, off);
        if (g) v *= load<T>(dtg, g, off[0]);
        if (b) v += load<T>(dtb, b, off[1]);
      }
      store(dto, out, base + j, v);
    }
  }
}

// The common case — f32 rows of ≤ 8192 elements (a multiple of 4), f32 gamma/beta over the whole
// normalised shape — in one pass over memory: the row stays in registers (float4 loads), the mean
// and then the variance around it are reduced from registers (two-pass: no cancellation), and
// each element is written once. One block per row; a decode step's norms are latency bound, so
// this matters more than bandwidth.
constexpr int kNormThreads = 256, kNormPer = 8;  // ≤ 8 float4 per thread: cols ≤ 8192
template <bool kRms>
__global__ void norm_rows_f32(const float* __restrict__ x, float* __restrict__ out, int64_t rows,
                              int cols, const float* __restrict__ g, const float* __restrict__ b,
                              float eps) {
  pdl_begin();
  const int n4 = cols / 4;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float4* xr = reinterpret_cast<const float4*>(x + r * cols);
    float4 v[kNormPer];
    float s = 0;
#pragma unroll
    for (int i = 0; i < kNormPer; ++i) {
      int j = threadIdx.x + i * kNormThreads;
      v[i] = j < n4 ? xr[j] : make_float4(0, 0, 0, 0);
      s += kRms ? 0.0f : (v[i].x + v[i].y) + (v[i].z + v[i].w);
    }
    float mean = 0;
    if (!kRms) mean = block_reduce(s, [](float a, float c) { return a + c; }) / cols;
    float ss = 0;
#pragma unroll
    for (int i = 0; i < kNormPer; ++i) {
      int j = threadIdx.x + i * kNormThreads;
      if (j < n4) {
        float a = v[i].x - mean, bb = v[i].y - mean, c = v[i].z - mean, d = v[i].w - mean;
        ss += (a * a + bb * bb) + (c * c + d * d);
      }
    }
    ss = block_reduce(ss, [](float a, float c) { return a + c; });
    const float inv = rsqrtf(ss / cols + eps);
    float4* orow = reinterpret_cast<float4*>(out + r * cols);
#pragma unroll
    for (int i = 0; i < kNormPer; ++i) {
      int j = threadIdx.x + i * kNormThreads;
      if (j >= n4) continue;
      float4 o{(v[i].x - mean) * inv, (v[i].y - mean) * inv, (v[i].z - mean) * inv,
               (v[i].w - mean) * inv};
      if (g) {
        float4 gg = reinterpret_cast<const float4*>(g)[j];
        o = make_float4(o.x * gg.x, o.y * gg.y, o.z * gg.z, o.w * gg.w);
      }
      if (b) {
        float4 bv = reinterpret_cast<const float4*>(b)[j];
        o = make_float4(o.x + bv.x, o.y + bv.y, o.z + bv.z, o.w + bv.w);
      }
      orow[j] = o;
    }
  }
}

void norm(const KernelContext& c, bool rms) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  const auto& a = c.attrs_as<NormAttrs>();
  const auto [axis, rows, cols] = row_split(x.shape(), a.axis);
  if (rows == 0) return;
  Shape ns(std::vector<int64_t>(x.shape().dims().begin() + axis, x.shape().dims().end()));
  const NDArray* g = c.inputs.size() > 1 ? &c.inputs[1] : nullptr;
  const NDArray* b = c.inputs.size() > 2 ? &c.inputs[2] : nullptr;
  std::array<std::vector<int64_t>, 2> st{
      g ? broadcast_strides(g->shape(), ns)
        : std::vector<int64_t>(static_cast<size_t>(ns.rank()), 0),
      b ? broadcast_strides(b->shape(), ns)
        : std::vector<int64_t>(static_cast<size_t>(ns.rank()), 0)};
  StridedIndex<2> gb = make_index<2>(dims_of(ns), st);
  cudaStream_t s = stream_for(c);
  auto whole_f32 = [&](const NDArray* p) {
    return !p || (p->dtype() == DType::f32 && p->numel() == cols && p->is_contiguous() &&
                  reinterpret_cast<uintptr_t>(p->data()) % 16 == 0);
  };
  if (x.dtype() == DType::f32 && out.dtype() == DType::f32 && cols % 4 == 0 &&
      cols <= 4 * kNormThreads * kNormPer && whole_f32(g) && whole_f32(b) &&
      reinterpret_cast<uintptr_t>(x.data()) % 16 == 0 &&
      reinterpret_cast<uintptr_t>(out.data()) % 16 == 0) {
    auto gp = g ? static_cast<const float*>(g->data()) : nullptr;
    auto bp = b ? static_cast<const float*>(b->data()) : nullptr;
    auto xp = static_cast<const float*>(x.data());
    auto op = static_cast<float*>(out.data());
    if (rms)
      launch_pdl(norm_rows_f32<true>, grid_rows(rows), kNormThreads, 0, s, xp, op, rows,
                 static_cast<int>(cols), gp, bp, static_cast<float>(a.eps));
    else
      launch_pdl(norm_rows_f32<false>, grid_rows(rows), kNormThreads, 0, s, xp, op, rows,
                 static_cast<int>(cols), gp, bp, static_cast<float>(a.eps));
    LOOM_CUDA_LAUNCHED();
    return;
  }
  auto launch = [&]<class T>() {
    launch_pdl(norm_kernel<T>, grid_rows(rows), kThreads, 0, s, x.data(),
               static_cast<int>(x.dtype()), out.data(), static_cast<int>(out.dtype()), rows, cols,
               g ? g->data() : nullptr, g ? static_cast<int>(g->dtype()) : 0,
               b ? b->data() : nullptr, b ? static_cast<int>(b->dtype()) : 0, gb, rms, a.eps);
  };
  // Sums of squares in f32 lose digits for long rows with a large mean: accumulate in f64.
  launch.template operator()<double>();
  LOOM_CUDA_LAUNCHED();
}

// add_rms_norm, the common case — f32, a and b of the sum's shape, rows of ≤ 8192 elements (a
// multiple of 4), f32 gamma over the whole row or none — in one pass: each thread adds its float4s,
// writes the sum and keeps it in registers for the scaling (as norm_rows_f32). kTPR threads per
// row: a warp for rows of ≤ 1024 (8 rows per block, shuffles only), else the whole block.
template <int kTPR>
__global__ void add_rms_norm_f32(const float* __restrict__ a, const float* __restrict__ b,
                                 float* __restrict__ sum, float* __restrict__ out, int64_t rows,
                                 int cols, const float* __restrict__ g, float eps, bool g_const) {
  constexpr int kRowsPerBlock = kNormThreads / kTPR;
  const int n4 = cols / 4, lane = threadIdx.x % kTPR;
  // This thread's γ (the same columns in every row): a graph constant, which no kernel writes, is
  // loaded before the wait for the previous kernel, off the critical path (pdl.cuh).
  float4 gv[kNormPer];
  auto load_gamma = [&] {
#pragma unroll
    for (int i = 0; i < kNormPer; ++i) {
      const int j = lane + i * kTPR;
      gv[i] = g && j < n4 ? reinterpret_cast<const float4*>(g)[j] : make_float4(1, 1, 1, 1);
    }
  };
  if (g_const) load_gamma();
  pdl_begin();
  if (!g_const) load_gamma();
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kTPR; r < rows;
       r += static_cast<int64_t>(gridDim.x) * kRowsPerBlock) {
    const float4* a4 = reinterpret_cast<const float4*>(a + r * cols);
    const float4* b4 = reinterpret_cast<const float4*>(b + r * cols);
    float4* s4 = reinterpret_cast<float4*>(sum + r * cols);
    float4 v[kNormPer];
    float ss = 0;
#pragma unroll
    for (int i = 0; i < kNormPer; ++i) {
      int j = lane + i * kTPR;
      v[i] = make_float4(0, 0, 0, 0);
      if (j < n4) {
        float4 x = a4[j], y = b4[j];
        v[i] = make_float4(x.x + y.x, x.y + y.y, x.z + y.z, x.w + y.w);
        s4[j] = v[i];
        ss += (v[i].x * v[i].x + v[i].y * v[i].y) + (v[i].z * v[i].z + v[i].w * v[i].w);
      }
    }
    if constexpr (kTPR == 32) {
      for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    } else {
      ss = block_reduce(ss, [](float x, float y) { return x + y; });
    }
    const float inv = rsqrtf(ss / cols + eps);
    float4* o4 = reinterpret_cast<float4*>(out + r * cols);
#pragma unroll
    for (int i = 0; i < kNormPer; ++i) {
      int j = lane + i * kTPR;
      if (j >= n4) continue;
      o4[j] = make_float4(v[i].x * inv * gv[i].x, v[i].y * inv * gv[i].y, v[i].z * inv * gv[i].z,
                          v[i].w * inv * gv[i].w);
    }
  }
}

// Every other case: any float dtype, a and b broadcast to the sum's shape, gamma broadcast over
// the row. The sum is stored (rounded to the dtype) and read back, so the norm sees what the
// unfused rms_norm would; squares in f64 as in norm_kernel. One block per row.
__global__ void add_rms_norm_kernel(const void* a, const void* b, int dt, void* sum, void* out,
                                    int64_t rows, int64_t cols, StridedIndex<2> ab, const void* g,
                                    int dtg, StridedIndex<1> gi, double eps) {
  pdl_begin();
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t base = r * cols;
    double ss = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      int64_t off[2];
      ab.offsets(base + j, off);
      store(dt, sum, base + j, load<double>(dt, a, off[0]) + load<double>(dt, b, off[1]));
      double v = load<double>(dt, sum, base + j);
      ss += v * v;
    }
    ss = block_reduce(ss, [](double x, double y) { return x + y; });
    const double inv = 1.0 / sqrt(ss / static_cast<double>(cols) + eps);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      double v = load<double>(dt, sum, base + j) * inv;
      if (g) {
        int64_t o;
        gi.offsets(j, &o);
        v *= load<double>(dtg, g, o);
      }
      store(dt, out, base + j, v);
    }
  }
}

}  // namespace

// Declared in kernels.h (add_rms_norm_quantized_matmul's fallback runs it).
void add_rms_norm(const KernelContext& c) {
  const NDArray &a = c.inputs[0], &b = c.inputs[1], &sum = c.outputs[0], &out = c.outputs[1];
  const auto& at = c.attrs_as<NormAttrs>();
  const auto [axis, rows, cols] = row_split(sum.shape(), at.axis);
  if (rows == 0) return;
  const NDArray* g = c.inputs.size() > 2 ? &c.inputs[2] : nullptr;
  cudaStream_t s = stream_for(c);
  auto aligned = [](const NDArray& x) { return reinterpret_cast<uintptr_t>(x.data()) % 16 == 0; };
  if (sum.dtype() == DType::f32 && a.shape() == sum.shape() && b.shape() == sum.shape() &&
      cols % 4 == 0 && cols <= 4 * kNormThreads * kNormPer && aligned(a) && aligned(b) &&
      aligned(sum) && aligned(out) &&
      (!g || (g->dtype() == DType::f32 && g->numel() == cols && aligned(*g)))) {
    auto launch = [&](auto kernel, int64_t blocks) {
      launch_pdl(kernel, grid_rows(blocks), kNormThreads, 0, s, static_cast<const float*>(a.data()),
                 static_cast<const float*>(b.data()), static_cast<float*>(sum.data()),
                 static_cast<float*>(out.data()), rows, static_cast<int>(cols),
                 g ? static_cast<const float*>(g->data()) : nullptr, static_cast<float>(at.eps),
                 g && ((c.constant_inputs >> 2) & 1));
    };
    if (cols <= 4 * 32 * kNormPer)
      launch(add_rms_norm_f32<32>, (rows + kNormThreads / 32 - 1) / (kNormThreads / 32));
    else
      launch(add_rms_norm_f32<kNormThreads>, rows);
    LOOM_CUDA_LAUNCHED();
    return;
  }
  Shape ns(std::vector<int64_t>(sum.shape().dims().begin() + axis, sum.shape().dims().end()));
  StridedIndex<2> ab = make_index<2>(
      dims_of(sum.shape()),
      {broadcast_strides(a.shape(), sum.shape()), broadcast_strides(b.shape(), sum.shape())});
  StridedIndex<1> gi =
      make_index<1>(dims_of(ns), {g ? broadcast_strides(g->shape(), ns)
                                    : std::vector<int64_t>(static_cast<size_t>(ns.rank()), 0)});
  launch_pdl(add_rms_norm_kernel, grid_rows(rows), kThreads, 0, s, a.data(), b.data(),
             static_cast<int>(sum.dtype()), sum.data(), out.data(), rows, cols, ab,
             g ? g->data() : nullptr, g ? static_cast<int>(g->dtype()) : 0, gi, at.eps);
  LOOM_CUDA_LAUNCHED();
}

void register_reduction(KernelTable& t) {
  t.set(op::reduce_sum, [](const KernelContext& c) { reduce(c, kSum, "reduce_sum"); });
  t.set(op::reduce_mean, [](const KernelContext& c) { reduce(c, kMean, "reduce_mean"); });
  t.set(op::reduce_max, [](const KernelContext& c) { reduce(c, kMax, "reduce_max"); });
  t.set(op::reduce_min, [](const KernelContext& c) { reduce(c, kMin, "reduce_min"); });
  t.set(op::reduce_prod, [](const KernelContext& c) { reduce(c, kProd, "reduce_prod"); });
  t.set(op::argmax, [](const KernelContext& c) { arg_reduce(c, true); });
  t.set(op::argmin, [](const KernelContext& c) { arg_reduce(c, false); });
  t.set(op::softmax, [](const KernelContext& c) { softmax(c, false); });
  t.set(op::log_softmax, [](const KernelContext& c) { softmax(c, true); });
  t.set(op::layer_norm, [](const KernelContext& c) { norm(c, false); });
  t.set(op::rms_norm, [](const KernelContext& c) { norm(c, true); });
  t.set(op::add_rms_norm, add_rms_norm);
}

}  // namespace loom::backends::cuda
