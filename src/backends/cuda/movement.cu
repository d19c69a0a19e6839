// CUDA data movement. Most ops are one strided copy (dst and src strides per dim, both possibly
// negative or zero): transpose, slice, expand, flip, tile (as a 2*rank expand), concat/split
// windows, dynamic_slice, slice_update. gather, pad and arange have their own kernels, and so
// does rope_write_slice (rope fused into the KV-cache write).
#include <cstring>

#include "backends/cuda/device_util.cuh"
#include "backends/cuda/pdl.cuh"
#include "backends/cuda/rope.cuh"
#include "ops/shape_rules.h"

namespace loom::backends::cuda {
namespace {
namespace op = ir::op;

template <class E>
__global__ void copy_kernel(const E* src, E* dst, int64_t n, StridedIndex<2> ix, int64_t src_base,
                            int64_t dst_base) {
  pdl_begin();
  LOOM_GRID_STRIDE(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    dst[dst_base + off[0]] = src[src_base + off[1]];
  }
}

size_t elem_bytes(DType t, const char* op) {
  LOOM_CHECK(!is_packed(t), "[cuda] ", op, " of packed ", dtype_name(t),
             " is not supported on cuda");
  return static_cast<size_t>(dtype_bits(t) / 8);
}

// dst[dst_base + Σ i_d dst_st_d] = src[src_base + Σ i_d src_st_d] over `shape` (elements).
void strided_copy(const KernelContext& c, DType t, const void* src, void* dst,
                  const std::vector<int64_t>& shape, const std::vector<int64_t>& dst_st,
                  const std::vector<int64_t>& src_st, int64_t src_base, int64_t dst_base,
                  const char* name) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (n == 0) return;
  auto ix = make_index<2>(shape, {dst_st, src_st});
  cudaStream_t s = stream_for(c);
  unsigned g = blocks_for(n);
  switch (elem_bytes(t, name)) {
    case 1:
      launch_pdl(copy_kernel<uint8_t>, g, 256, 0, s, static_cast<const uint8_t*>(src),
                 static_cast<uint8_t*>(dst), n, ix, src_base, dst_base);
      break;
    case 2:
      launch_pdl(copy_kernel<uint16_t>, g, 256, 0, s, static_cast<const uint16_t*>(src),
                 static_cast<uint16_t*>(dst), n, ix, src_base, dst_base);
      break;
    case 4:
      launch_pdl(copy_kernel<uint32_t>, g, 256, 0, s, static_cast<const uint32_t*>(src),
                 static_cast<uint32_t*>(dst), n, ix, src_base, dst_base);
      break;
    case 8:
      launch_pdl(copy_kernel<uint64_t>, g, 256, 0, s, static_cast<const uint64_t*>(src),
                 static_cast<uint64_t*>(dst), n, ix, src_base, dst_base);
      break;
    default:
      fail("[cuda] ", name, " of ", dtype_name(t), " is not supported on cuda");
  }
  LOOM_CUDA_LAUNCHED();
}

// Output-shaped copy from x with per-dim source strides.
void gather_view(const KernelContext& c, const std::vector<int64_t>& src_st, int64_t src_base,
                 const char* name) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  strided_copy(c, x.dtype(), x.data(), out.data(), dims_of(out.shape()),
               contiguous_strides(out.shape()), src_st, src_base, 0, name);
}

// Start offsets read on the device (never copied to the host: no sync, so a run can be captured
// as a CUDA graph and replayed with new starts). A start outside [0, dim - size] is clamped and
// recorded in the device error record (cuda_common.h), raised at the next sync.
struct DynStarts {
  const void* starts = nullptr;
  int dt = 0, rank = 0, code = 0;
  int64_t stride[kMaxRank] = {};  // elements of the array the starts index
  int64_t size[kMaxRank] = {}, dim[kMaxRank] = {};
  DeviceError* err = nullptr;
};

// Every start is loaded before any is checked: one L2 round trip, not one per dimension (a
// check's possible error store kept the loads in sequence, and a rank-4 KV-cache write waited for
// four). dyn_load loads them, dyn_fold checks them against one region and sums the offset.
__device__ __forceinline__ void dyn_load(const DynStarts& d, int64_t (&st)[kMaxRank]) {
  if (d.dt == kI64) {
#pragma unroll
    for (int i = 0; i < kMaxRank; ++i)
      st[i] = i < d.rank ? __ldg(static_cast<const long long*>(d.starts) + i) : 0;
  } else if (d.dt == kI32) {
#pragma unroll
    for (int i = 0; i < kMaxRank; ++i)
      st[i] = i < d.rank ? __ldg(static_cast<const int*>(d.starts) + i) : 0;
  } else {
    for (int i = 0; i < d.rank; ++i) st[i] = load<int64_t>(d.dt, d.starts, i);
  }
}
__device__ int64_t dyn_fold(const DynStarts& d, const int64_t (&st)[kMaxRank], bool report) {
  int64_t base = 0;
  for (int i = 0; i < d.rank; ++i) {
    int64_t s = st[i];
    int64_t hi = d.dim[i] - d.size[i];
    if (s < 0 || s > hi) {
      if (report) {  // one reporting thread; the code goes last (the host reads it first)
        d.err->axis = i, d.err->value = s, d.err->size = d.size[i], d.err->dim = d.dim[i];
        __threadfence_system();
        d.err->code = d.code;
      }
      s = s < 0 ? 0 : hi;
    }
    base += s * d.stride[i];
  }
  return base;
}
// Element (row, dim) of a [B, H, L, D] region (row = (b·H + h)·L + l) in the rank-4 array the
// starts index, whose region begins at `base`.
__device__ __forceinline__ int64_t region_offset(const DynStarts& d, int64_t base, int64_t row,
                                                 int64_t dim, int64_t H, int64_t L) {
  const int64_t l = row % L, h = (row / L) % H, b = row / (L * H);
  return base + b * d.stride[0] + h * d.stride[1] + l * d.stride[2] + dim * d.stride[3];
}
__device__ int64_t dyn_base(const DynStarts& d, bool report) {
  int64_t st[kMaxRank];
  dyn_load(d, st);
  return dyn_fold(d, st, report);
}

// As copy_kernel, with the source (dst_dyn false) or destination base read from the starts.
template <class E>
__global__ void dyn_copy_kernel(const E* src, E* dst, int64_t n, StridedIndex<2> ix, DynStarts d,
                                bool dst_dyn) {
  pdl_begin();
  int64_t base = dyn_base(d, blockIdx.x == 0 && threadIdx.x == 0);
  LOOM_GRID_STRIDE(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    if (dst_dyn)
      dst[base + off[0]] = src[off[1]];
    else
      dst[off[0]] = src[base + off[1]];
  }
}

DynStarts dyn_starts(const KernelContext& c, const NDArray& starts, const Shape& base,
                     const Shape& region, int code, const char* op) {
  LOOM_CHECK(starts.numel() == base.rank(), "[", op, "] ", starts.numel(), " starts for rank ",
             base.rank());
  LOOM_CHECK(base.rank() <= kMaxRank, "[cuda] ", op, " of rank ", base.rank());
  DynStarts d;
  d.starts = starts.data();
  d.dt = static_cast<int>(starts.dtype());
  d.rank = base.rank();
  d.code = code;
  auto st = contiguous_strides(base);
  for (int i = 0; i < base.rank(); ++i)
    d.stride[i] = st[static_cast<size_t>(i)], d.size[i] = region[i], d.dim[i] = base[i];
  d.err = device_error(c.outputs[0].device().index);
  return d;
}

void dyn_copy(const KernelContext& c, DType t, const void* src, void* dst, const Shape& region,
              const std::vector<int64_t>& dst_st, const std::vector<int64_t>& src_st,
              const DynStarts& d, bool dst_dyn, const char* name) {
  int64_t n = region.numel();
  if (n == 0) return;
  auto ix = make_index<2>(dims_of(region), {dst_st, src_st});
  cudaStream_t s = stream_for(c);
  unsigned g = blocks_for(n);
  switch (elem_bytes(t, name)) {
    case 1:
      launch_pdl(dyn_copy_kernel<uint8_t>, g, 256, 0, s, static_cast<const uint8_t*>(src),
                 static_cast<uint8_t*>(dst), n, ix, d, dst_dyn);
      break;
    case 2:
      launch_pdl(dyn_copy_kernel<uint16_t>, g, 256, 0, s, static_cast<const uint16_t*>(src),
                 static_cast<uint16_t*>(dst), n, ix, d, dst_dyn);
      break;
    case 4:
      launch_pdl(dyn_copy_kernel<uint32_t>, g, 256, 0, s, static_cast<const uint32_t*>(src),
                 static_cast<uint32_t*>(dst), n, ix, d, dst_dyn);
      break;
    case 8:
      launch_pdl(dyn_copy_kernel<uint64_t>, g, 256, 0, s, static_cast<const uint64_t*>(src),
                 static_cast<uint64_t*>(dst), n, ix, d, dst_dyn);
      break;
    default:
      fail("[cuda] ", name, " of ", dtype_name(t), " is not supported on cuda");
  }
  LOOM_CUDA_LAUNCHED();
}

// dyn_copy into dst at the starts, converting: element of src's float dtype `ds` -> dst's `dd`
// (slice_update's update of another float dtype). Through f32, exact for f32 / f16 / bf16 and
// f64 <- any (only the dtypes differ here): the values cast gives, as on the host (f64 rounded to
// f32 first, then to f16 / bf16).
__global__ void dyn_convert_kernel(const void* src, int ds, void* dst, int dd, int64_t n,
                                   StridedIndex<2> ix, DynStarts d) {
  pdl_begin();
  int64_t base = dyn_base(d, blockIdx.x == 0 && threadIdx.x == 0);
  LOOM_GRID_STRIDE(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    store(dd, dst, base + off[0], load<float>(ds, src, off[1]));
  }
}

void dyn_convert(const KernelContext& c, DType src_t, const void* src, DType dst_t, void* dst,
                 const Shape& region, const std::vector<int64_t>& dst_st,
                 const std::vector<int64_t>& src_st, const DynStarts& d, const char* name) {
  LOOM_CHECK(is_floating(src_t) && is_floating(dst_t), "[cuda] ", name,
             " converts only floats, got ", dtype_name(src_t), " into ", dtype_name(dst_t));
  int64_t n = region.numel();
  if (n == 0) return;
  auto ix = make_index<2>(dims_of(region), {dst_st, src_st});
  launch_pdl(dyn_convert_kernel, blocks_for(n), 256, 0, stream_for(c), src, static_cast<int>(src_t),
             dst, static_cast<int>(dst_t), n, ix, d);
  LOOM_CUDA_LAUNCHED();
}

void transpose(const KernelContext& c) {
  const auto& perm = c.attrs_as<PermuteAttrs>().perm;
  const NDArray& x = c.inputs[0];
  auto st = contiguous_strides(x.shape());
  std::vector<int64_t> src(perm.size());
  for (size_t i = 0; i < perm.size(); ++i)
    src[i] = st[static_cast<size_t>(normalize_axis(perm[i], x.rank()))];
  gather_view(c, src, 0, "transpose");
}

void expand(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  gather_view(c, broadcast_strides(x.shape(), out.shape()), 0, "expand");
}

void slice(const KernelContext& c) {
  const NDArray& x = c.inputs[0];
  auto r = ops::resolve_slice(x.shape(), c.attrs_as<SliceAttrs>());
  auto st = contiguous_strides(x.shape());
  std::vector<int64_t> src(st.size());
  int64_t base = 0;
  for (size_t i = 0; i < st.size(); ++i) {
    base += r.starts[i] * st[i];
    src[i] = r.steps[i] * st[i];
  }
  gather_view(c, src, base, "slice");
}

void flip(const KernelContext& c) {
  const NDArray& x = c.inputs[0];
  const auto& axes = c.attrs_as<AxesAttrs>().axes;
  std::vector<bool> f(static_cast<size_t>(x.rank()), axes.empty());
  for (int64_t a : axes) f[static_cast<size_t>(normalize_axis(a, x.rank()))] = true;
  auto st = contiguous_strides(x.shape());
  int64_t base = 0;
  for (size_t i = 0; i < st.size(); ++i)
    if (f[i]) {
      base += (x.shape()[static_cast<int>(i)] - 1) * st[i];
      st[i] = -st[i];
    }
  gather_view(c, st, base, "flip");
}

void tile(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  auto st = contiguous_strides(x.shape());
  std::vector<int64_t> shape, dst, src;
  auto ost = contiguous_strides(out.shape());
  for (int i = 0; i < x.rank(); ++i) {
    int64_t n = x.shape()[i], reps = n ? out.shape()[i] / n : 0;
    auto ui = static_cast<size_t>(i);
    shape.insert(shape.end(), {reps, n});
    dst.insert(dst.end(), {n * ost[ui], ost[ui]});
    src.insert(src.end(), {0, st[ui]});
  }
  strided_copy(c, x.dtype(), x.data(), out.data(), shape, dst, src, 0, 0, "tile");
}

void concat(const KernelContext& c) {
  const NDArray& out = c.outputs[0];
  int axis = normalize_axis(c.attrs_as<ConcatAttrs>().axis, out.rank());
  auto ost = contiguous_strides(out.shape());
  int64_t pos = 0;
  for (const NDArray& x : c.inputs) {
    strided_copy(c, x.dtype(), x.data(), out.data(), dims_of(x.shape()), ost,
                 contiguous_strides(x.shape()), 0, pos * ost[static_cast<size_t>(axis)], "concat");
    pos += x.shape()[axis];
  }
}

void split(const KernelContext& c) {
  const NDArray& x = c.inputs[0];
  int axis = normalize_axis(c.attrs_as<SplitAttrs>().axis, x.rank());
  auto xst = contiguous_strides(x.shape());
  int64_t pos = 0;
  for (const NDArray& out : c.outputs) {
    strided_copy(c, x.dtype(), x.data(), out.data(), dims_of(out.shape()),
                 contiguous_strides(out.shape()), xst, pos * xst[static_cast<size_t>(axis)], 0,
                 "split");
    pos += out.shape()[axis];
  }
}

void dynamic_slice(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  auto d = dyn_starts(c, c.inputs[1], x.shape(), out.shape(), kErrDynamicSlice, "slice");
  dyn_copy(c, x.dtype(), x.data(), out.data(), out.shape(), contiguous_strides(out.shape()),
           contiguous_strides(x.shape()), d, false, "dynamic_slice");
}

void write_region(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &u = c.inputs[1], &out = c.outputs[0];
  auto d = dyn_starts(c, c.inputs[2], x.shape(), u.shape(), kErrSliceUpdate, "slice_update");
  cudaStream_t s = stream_for(c);
  if (out.data() != x.data())
    LOOM_CUDA_CHECK(cudaMemcpyAsync(out.data(), x.data(), x.nbytes(), cudaMemcpyDeviceToDevice, s));
  if (u.dtype() == out.dtype())
    dyn_copy(c, u.dtype(), u.data(), out.data(), u.shape(), contiguous_strides(out.shape()),
             contiguous_strides(u.shape()), d, true, "slice_update");
  else  // an update of another float dtype, converted to the base's
    dyn_convert(c, u.dtype(), u.data(), out.dtype(), out.data(), u.shape(),
                contiguous_strides(out.shape()), contiguous_strides(u.shape()), d, "slice_update");
}

// v rounded to the float dtype dt, as a store into dt then a load would give.
__device__ __forceinline__ double round_to(int dt, double v) {
  switch (dt) {
    case kF32:
      return static_cast<float>(v);
    case kF16:
      return h2f(f2h(static_cast<float>(v)));
    case kBF16:
      return bf2f(f2bf(static_cast<float>(v)));
    default:
      return v;
  }
}

// rope_write_slice(cache, x, positions, starts) = write_slice(cache, rope(x, positions), starts) in
// one kernel: each thread takes one rope work item of x (rope.cuh: the rope kernel's math) and
// stores its values into the cache at the starts, read on the device as write_region does (an
// out-of-range start is clamped and reported under this op's name). No temporary, no cache copy.
// A cache of another float dtype than x's gets the unfused ops' values: each rounded to x's dtype
// (rope's output), then converted to the cache's by the store.
__global__ void rope_write_slice_kernel(RopeArgs a, void* cache, int dc, int64_t n, DynStarts d) {
  pdl_begin();
  const int64_t base = dyn_base(d, blockIdx.x == 0 && threadIdx.x == 0);
  const bool convert = a.dx != dc;
  LOOM_GRID_STRIDE(t, n) {
    rope_item(a, t, [&](int64_t row, int64_t dim, double v) {
      store(dc, cache, region_offset(d, base, row, dim, a.H, a.L), convert ? round_to(a.dx, v) : v);
    });
  }
}

void rope_write_slice(const KernelContext& c) {
  const NDArray &cache = c.inputs[0], &x = c.inputs[1], &out = c.outputs[0];
  LOOM_CHECK(cache.rank() == 4, "[rope_write_slice] the cache must be [B, H, L, D], got rank ",
             cache.rank());
  auto d =
      dyn_starts(c, c.inputs[3], cache.shape(), x.shape(), kErrRopeWriteSlice, "rope_write_slice");
  cudaStream_t s = stream_for(c);
  if (out.data() != cache.data())
    LOOM_CUDA_CHECK(
        cudaMemcpyAsync(out.data(), cache.data(), cache.nbytes(), cudaMemcpyDeviceToDevice, s));
  RopeArgs a = rope_args(c.attrs_as<RopeAttrs>(), x, c.inputs[2]);
  int64_t n = rope_items(a);
  if (n == 0) return;
  launch_pdl(rope_write_slice_kernel, blocks_for(n), 256, 0, s, a, out.data(),
             static_cast<int>(out.dtype()), n, d);
  LOOM_CUDA_LAUNCHED();
}

// rope_write_kv(k_cache, v_cache, k, v, positions, starts [, q]): a decoder layer's KV-cache
// update in one launch, one thread per item: rope_write_slice's items for the keys, then one per
// value element (write_slice: converted to the cache's dtype as dyn_convert converts), then rope's
// items for q. In a Mistral-7B decode step this is one small kernel per layer instead of three
// (~2.5-4 us each on an H100, mostly launch and dependency latency).
struct KvWriteArgs {
  RopeArgs k, q;  // q.x null: no q
  void *kc, *vc, *qout;
  int dkc, dvc, dq;
  const void* v;
  int dv;
  int64_t vH, vL, vD;  // v's [B, H, L, D] (B from the item count)
  int64_t nk, nv, nq;  // items of each part
  DynStarts dk, dvs;   // the same starts, against each cache
};

__global__ void rope_write_kv_kernel(KvWriteArgs a) {
  pdl_begin();
  int64_t st[kMaxRank];
  dyn_load(a.dk, st);  // one load for both caches (the same starts)
  const bool report = blockIdx.x == 0 && threadIdx.x == 0;
  const int64_t kbase = dyn_fold(a.dk, st, report), vbase = dyn_fold(a.dvs, st, report);
  const bool convert = a.k.dx != a.dkc;
  LOOM_GRID_STRIDE(t, a.nk + a.nv + a.nq) {
    if (t < a.nk) {
      rope_item(a.k, t, [&](int64_t row, int64_t dim, double v) {
        store(a.dkc, a.kc, region_offset(a.dk, kbase, row, dim, a.k.H, a.k.L),
              convert ? round_to(a.k.dx, v) : v);
      });
    } else if (t < a.nk + a.nv) {
      const int64_t i = t - a.nk;
      const double x = load<double>(a.dv, a.v, i);
      store(a.dvc, a.vc, region_offset(a.dvs, vbase, i / a.vD, i % a.vD, a.vH, a.vL),
            a.dv == kF64 && a.dvc != kF64 ? static_cast<double>(static_cast<float>(x)) : x);
    } else {
      rope_item(a.q, t - a.nk - a.nv, [&](int64_t row, int64_t dim, double v) {
        store(a.dq, a.qout, row * a.q.D + dim, v);
      });
    }
  }
}

// rope_write_kv for f32 k / v / q with every dim rotated (a decode step's usual case), in a shape
// whose latency is short: the generic kernel above pays, per item, 64-bit divisions, dtype switches
// and a double sincos, all on the step's critical path (6.4 us per layer of a Mistral-7B step on an
// H100, longer than its attention). Here a thread takes one rotary pair of one position for up to
// kRopeHeads heads of k and q (their x loads issued before the position's, one sincos for all of
// them, 32-bit index math; the pairs of a warp are consecutive, so its loads and stores are), or 4
// elements of v. Results are the generic kernel's: the same double
// math, rounded to f32, then to the cache's dtype.
constexpr int kRopeHeads = 4;

// Its own arguments, not KvWriteArgs: that struct's two RopeArgs (128 frequencies each) make a
// 2.3 KB parameter block against 1.2 KB here, and the kernel taking it measured 4.46 instead of
// 3.92 us per Mistral-7B layer (H100, CUPTI).
struct KvFastArgs {
  const float *k, *v, *q;  // [B, Hk, L, D], [B, Hv, L, D], [B, Hq, L, D] (q may be null)
  const void* pos;         // [L] or [B, L] (pos_batched)
  int dp;
  bool pos_batched, interleaved;
  double position_scale;
  double inv_freq[kRopeFreqs];
  void *kc, *vc;
  float* qout;
  int dkc, dvc;
  int B, Hk, Hv, Hq, L, D, half, chunks;  // chunks of kRopeHeads over the Hk + Hq heads
  int n_rot, n_v4;                        // items: B·L·half·chunks, then v's elements / 4
  DynStarts dk, dvs;
};

__global__ void rope_write_kv_fast_kernel(KvFastArgs a) {
  pdl_begin();
  int64_t st[kMaxRank];
  dyn_load(a.dk, st);
  const bool report = blockIdx.x == 0 && threadIdx.x == 0;
  const int t = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (t < a.n_rot) {
    const int k = t % a.half, c = t / a.half % a.chunks, p = t / (a.chunks * a.half);
    const int b = p / a.L, l = p % a.L;
    const int i0 = a.interleaved ? 2 * k : k, i1 = a.interleaved ? 2 * k + 1 : k + a.half;
    const int h0 = c * kRopeHeads, nh = min(kRopeHeads, a.Hk + a.Hq - h0);
    float x0[kRopeHeads], x1[kRopeHeads];
#pragma unroll
    for (int j = 0; j < kRopeHeads; ++j) {
      if (j >= nh) break;
      const int h = h0 + j;
      const float* x = h < a.Hk ? a.k + ((b * a.Hk + h) * a.L + l) * a.D
                                : a.q + ((b * a.Hq + h - a.Hk) * a.L + l) * a.D;
      x0[j] = __ldg(x + i0), x1[j] = __ldg(x + i1);
    }
    const int pi = a.pos_batched ? b * a.L + l : l;
    const double pos = load<double>(a.dp, a.pos, pi) / a.position_scale;
    double sn, cs;
    sincos(pos * a.inv_freq[k], &sn, &cs);
    const int64_t kbase = dyn_fold(a.dk, st, report);
    if (report) dyn_fold(a.dvs, st, true);  // a start past the value cache is reported too
#pragma unroll
    for (int j = 0; j < kRopeHeads; ++j) {
      if (j >= nh) break;
      const int h = h0 + j;
      const auto r0 = static_cast<float>(x0[j] * cs - x1[j] * sn);
      const auto r1 = static_cast<float>(x1[j] * cs + x0[j] * sn);
      if (h < a.Hk) {
        const int64_t o = kbase + b * a.dk.stride[0] + h * a.dk.stride[1] + l * a.dk.stride[2];
        store(a.dkc, a.kc, o + i0 * a.dk.stride[3], r0);
        store(a.dkc, a.kc, o + i1 * a.dk.stride[3], r1);
      } else {
        float* y = a.qout + ((b * a.Hq + h - a.Hk) * a.L + l) * a.D;
        y[i0] = r0, y[i1] = r1;
      }
    }
  } else if (t < a.n_rot + a.n_v4) {
    const int e = 4 * (t - a.n_rot), row = e / a.D, d = e % a.D;
    const int l = row % a.L, h = row / a.L % a.Hv, b = row / (a.L * a.Hv);
    const float4 x = __ldg(reinterpret_cast<const float4*>(a.v) + (t - a.n_rot));
    const int64_t o = dyn_fold(a.dvs, st, report) + b * a.dvs.stride[0] + h * a.dvs.stride[1] +
                      l * a.dvs.stride[2] + d * a.dvs.stride[3];
    store(a.dvc, a.vc, o, x.x), store(a.dvc, a.vc, o + a.dvs.stride[3], x.y);
    store(a.dvc, a.vc, o + 2 * a.dvs.stride[3], x.z),
        store(a.dvc, a.vc, o + 3 * a.dvs.stride[3], x.w);
  }
}

// The fast kernel's arguments when it applies (f32 inputs, full rotary dims, small sizes).
bool kv_fast_args(const KvWriteArgs& g, const NDArray& k, const NDArray& v, const NDArray* q,
                  KvFastArgs& a) {
  const RopeArgs& r = g.k;
  if (k.dtype() != DType::f32 || v.dtype() != DType::f32 || (q && q->dtype() != DType::f32) ||
      r.rd != r.D || r.half > kRopeFreqs || r.D % 4 || !aligned16(v.data()) ||
      (r.dp != kI32 && r.dp != kI64) ||
      r.B * r.L * (r.H + (q ? q->shape()[1] : 0)) * r.D > (1 << 24) || v.numel() > (1 << 24) ||
      v.shape()[0] != r.B || v.shape()[2] != r.L || v.shape()[3] != r.D)
    return false;
  if (q && (g.q.rd != g.q.D || q->shape()[0] != r.B || q->shape()[2] != r.L || g.q.D != r.D))
    return false;
  a.k = k.data_as<float>(), a.v = v.data_as<float>(), a.q = q ? q->data_as<float>() : nullptr;
  a.pos = r.pos, a.dp = r.dp, a.pos_batched = r.pos_batched;  // set only for rank-2 positions
  a.interleaved = r.interleaved, a.position_scale = r.position_scale;
  for (int i = 0; i < kRopeFreqs; ++i) a.inv_freq[i] = r.inv_freq[i];
  a.kc = g.kc, a.vc = g.vc, a.qout = static_cast<float*>(g.qout), a.dkc = g.dkc, a.dvc = g.dvc;
  a.B = static_cast<int>(r.B), a.Hk = static_cast<int>(r.H), a.L = static_cast<int>(r.L);
  a.D = static_cast<int>(r.D), a.half = static_cast<int>(r.half);
  a.Hv = static_cast<int>(v.shape()[1]), a.Hq = q ? static_cast<int>(q->shape()[1]) : 0;
  a.chunks = (a.Hk + a.Hq + kRopeHeads - 1) / kRopeHeads;
  a.n_rot = a.B * a.L * a.half * a.chunks, a.n_v4 = static_cast<int>(v.numel() / 4);
  a.dk = g.dk, a.dvs = g.dvs;
  return true;
}

void rope_write_kv(const KernelContext& c) {
  const NDArray &kc = c.inputs[0], &vc = c.inputs[1], &k = c.inputs[2], &v = c.inputs[3];
  LOOM_CHECK(kc.rank() == 4 && vc.rank() == 4,
             "[rope_write_kv] the caches must be [B, H, L, D], got ranks ", kc.rank(), " and ",
             vc.rank());
  LOOM_CHECK(is_floating(v.dtype()) && is_floating(vc.dtype()),
             "[rope_write_kv] values and their cache must be floats, got ", dtype_name(v.dtype()),
             " into ", dtype_name(vc.dtype()));
  cudaStream_t s = stream_for(c);
  KvWriteArgs a{};
  a.dk = dyn_starts(c, c.inputs[5], kc.shape(), k.shape(), kErrRopeWriteKv, "rope_write_kv");
  a.dvs = dyn_starts(c, c.inputs[5], vc.shape(), v.shape(), kErrRopeWriteKv, "rope_write_kv");
  for (int i = 0; i < 2; ++i)  // not in place (a run outside the planner): copy the caches first
    if (c.outputs[i].data() != c.inputs[i].data())
      LOOM_CUDA_CHECK(cudaMemcpyAsync(c.outputs[i].data(), c.inputs[i].data(), c.inputs[i].nbytes(),
                                      cudaMemcpyDeviceToDevice, s));
  const auto& at = c.attrs_as<RopeAttrs>();
  a.k = rope_args(at, k, c.inputs[4]);
  a.kc = c.outputs[0].data(), a.dkc = static_cast<int>(kc.dtype());
  a.vc = c.outputs[1].data(), a.dvc = static_cast<int>(vc.dtype());
  a.v = v.data(), a.dv = static_cast<int>(v.dtype());
  a.vH = v.shape()[1], a.vL = v.shape()[2], a.vD = v.shape()[3];
  a.nk = rope_items(a.k), a.nv = v.numel();
  if (c.inputs.size() == 7) {
    a.q = rope_args(at, c.inputs[6], c.inputs[4]);
    a.qout = c.outputs[2].data(), a.dq = static_cast<int>(c.outputs[2].dtype());
    a.nq = rope_items(a.q);
  }
  const int64_t n = a.nk + a.nv + a.nq;
  if (n == 0) return;
  static const bool fast_on = env_on("LOOM_ROPE_KV_FAST");  // 0: the generic kernel (A/B)
  KvFastArgs f;
  if (fast_on && kv_fast_args(a, k, v, c.inputs.size() == 7 ? &c.inputs[6] : nullptr, f)) {
    const int items = f.n_rot + f.n_v4;
    launch_pdl(rope_write_kv_fast_kernel, static_cast<unsigned>((items + 127) / 128), 128, 0, s, f);
    LOOM_CUDA_LAUNCHED();
    return;
  }
  launch_pdl(rope_write_kv_kernel, blocks_for(n), 256, 0, s, a);
  LOOM_CUDA_LAUNCHED();
}

// Indices are checked on the device: one out of range reads row 0 and is recorded in the device
// error record (raised at the next sync), never read stray memory.
template <class E>
__global__ void gather_kernel(const E* x, const void* ind, int dti, E* out, int64_t n_out,
                              int64_t n_ind, int64_t inner, int64_t axis_len, int axis,
                              DeviceError* err) {
  pdl_begin();
  LOOM_GRID_STRIDE(i, n_out) {
    int64_t in = i % inner, k = (i / inner) % n_ind, o = i / (inner * n_ind);
    int64_t idx = load<int64_t>(dti, ind, k);
    if (idx < -axis_len || idx >= axis_len) {
      if (in == 0) {  // racing reporters write the same fields but one index: any one is right
        err->axis = axis, err->value = idx, err->size = 1, err->dim = axis_len;
        __threadfence_system();
        err->code = kErrGather;
      }
      idx = 0;
    }
    if (idx < 0) idx += axis_len;
    out[i] = x[(o * axis_len + idx) * inner + in];
  }
}

void gather(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &ind = c.inputs[1], &out = c.outputs[0];
  int axis = normalize_axis(c.attrs_as<GatherAttrs>().axis, x.rank());
  int64_t n = x.shape()[axis], inner = 1;
  for (int i = axis + 1; i < x.rank(); ++i) inner *= x.shape()[i];
  DeviceError* err = device_error(out.device().index);
  int64_t n_out = out.numel();
  if (n_out == 0) return;
  cudaStream_t s = stream_for(c);
  unsigned g = blocks_for(n_out);
  int dti = static_cast<int>(ind.dtype());
  switch (elem_bytes(x.dtype(), "gather")) {
    case 1:
      launch_pdl(gather_kernel<uint8_t>, g, 256, 0, s, x.data_as<uint8_t>(), ind.data(), dti,
                 out.data_as<uint8_t>(), n_out, ind.numel(), inner, n, axis, err);
      break;
    case 2:
      launch_pdl(gather_kernel<uint16_t>, g, 256, 0, s, x.data_as<uint16_t>(), ind.data(), dti,
                 out.data_as<uint16_t>(), n_out, ind.numel(), inner, n, axis, err);
      break;
    case 4:
      launch_pdl(gather_kernel<uint32_t>, g, 256, 0, s, x.data_as<uint32_t>(), ind.data(), dti,
                 out.data_as<uint32_t>(), n_out, ind.numel(), inner, n, axis, err);
      break;
    case 8:
      launch_pdl(gather_kernel<uint64_t>, g, 256, 0, s, x.data_as<uint64_t>(), ind.data(), dti,
                 out.data_as<uint64_t>(), n_out, ind.numel(), inner, n, axis, err);
      break;
    default:
      fail("[cuda] gather of ", dtype_name(x.dtype()), " is not supported on cuda");
  }
  LOOM_CUDA_LAUNCHED();
}

struct PadArgs {
  int rank;
  int64_t out_shape[kMaxRank], in_shape[kMaxRank], in_st[kMaxRank], before[kMaxRank];
};

__global__ void pad_kernel(const void* x, void* out, int dt, int64_t n, PadArgs a, int mode,
                           double value) {
  LOOM_GRID_STRIDE(i, n) {
    int64_t rem = i, src = 0;
    bool inside = true;
    for (int d = a.rank - 1; d >= 0; --d) {
      int64_t idx = rem % a.out_shape[d];
      rem /= a.out_shape[d];
      int64_t len = a.in_shape[d], p = idx - a.before[d];
      if (p < 0 || p >= len) {
        if (mode == static_cast<int>(PadMode::constant)) {
          inside = false;
        } else if (mode == static_cast<int>(PadMode::edge)) {
          p = p < 0 ? 0 : len - 1;
        } else {
          int64_t period = 2 * (len - 1);
          p = period ? ((p % period) + period) % period : 0;
          if (p >= len) p = period - p;
        }
      }
      src += p * a.in_st[d];
    }
    if (inside) {
      if (dt == kF64 || dt == kI64)
        store(dt, out, i, load<int64_t>(kI64, x, src));  // raw 8 bytes
      else
        store(dt, out, i, load<double>(dt, x, src));
    } else {
      store(dt, out, i, value);
    }
  }
}

void pad(const KernelContext& c) {
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  const auto& a = c.attrs_as<PadAttrs>();
  LOOM_CHECK(x.rank() <= kMaxRank, "[cuda] pad of rank ", x.rank());
  elem_bytes(x.dtype(), "pad");
  PadArgs p{};
  p.rank = x.rank();
  auto st = contiguous_strides(x.shape());
  for (int d = 0; d < x.rank(); ++d) {
    auto ud = static_cast<size_t>(d);
    p.out_shape[d] = out.shape()[d];
    p.in_shape[d] = x.shape()[d];
    p.in_st[d] = st[ud];
    p.before[d] = a.before[ud];
  }
  int64_t n = out.numel();
  if (n == 0) return;
  // f64 and i64 both travel as raw 8 bytes through an i64 load/store (bit-exact).
  int dt = static_cast<int>(x.dtype() == DType::f64 ? DType::i64 : x.dtype());
  if (x.dtype() == DType::f64 && a.mode == PadMode::constant) dt = kF64;
  pad_kernel<<<blocks_for(n), 256, 0, stream_for(c)>>>(x.data(), out.data(), dt, n, p,
                                                       static_cast<int>(a.mode), a.value);
  LOOM_CUDA_LAUNCHED();
}

__global__ void arange_kernel(void* out, int dt, int64_t n, double start, double step) {
  LOOM_GRID_STRIDE(i, n) { store(dt, out, i, start + static_cast<double>(i) * step); }
}

void arange(const KernelContext& c) {
  const auto& a = c.attrs_as<ArangeAttrs>();
  const NDArray& out = c.outputs[0];
  if (out.numel() == 0) return;
  arange_kernel<<<blocks_for(out.numel()), 256, 0, stream_for(c)>>>(
      out.data(), static_cast<int>(out.dtype()), out.numel(), a.start, a.step);
  LOOM_CUDA_LAUNCHED();
}

}  // namespace

void register_movement(KernelTable& t) {
  t.set(op::dynamic_slice, dynamic_slice);
  t.set(op::slice_update, write_region);
  t.set(op::write_slice, write_region);
  t.set(op::rope_write_slice, rope_write_slice);
  t.set(op::rope_write_kv, rope_write_kv);
  t.set(op::transpose, transpose);
  t.set(op::expand, expand);
  t.set(op::slice, slice);
  t.set(op::flip, flip);
  t.set(op::tile, tile);
  t.set(op::pad, pad);
  t.set(op::concat, concat);
  t.set(op::split, split);
  t.set(op::gather, gather);
  t.set(op::arange, arange);
}

}  // namespace loom::backends::cuda
