// CUDA `sample` (definition: loom/ops.h, ops/sampling.h): one thread block per row, no host
// syncs (the seed is read on the device), so a decode step that samples is capturable.
//
// Fast path, k = min(top_k, V) <= 1024 (top_k 40 over a 49152 vocabulary): the row's logits
// become order-preserving u32 keys (NaN -> -inf, -0 -> +0), cached in shared memory when
// V <= 52224 (re-read from global memory otherwise); a radix select (4 passes of 8 bits, 256-bin
// histograms in shared memory, warp-aggregated atomics) finds the k-th largest key T; the keys
// > T and the first (by index) keys == T are gathered (ties in index order by warp ballots over
// contiguous segments), bitonic-sorted in shared memory by (key desc, index asc), then softmax,
// inclusive block scan, top-p cut and the pick, all in the block. Probabilities and sums are in
// double, as on the CPU and the reference (ops/sampling.h says why), so all three pick alike.
// Slow path, k > 1024 (top_k 0 over a large vocabulary): keys and indices to scratch, a stable
// CUB radix sort per row (descending: ties keep index order), then one block per row scans the
// sorted probabilities tile by tile. Tens of microseconds instead of a few.
#include <atomic>
#include <climits>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>

#include "backends/cuda/device_util.cuh"
#include "ops/sampling.h"

namespace loom::backends::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxCand = 1024;    // fast path: k <= kMaxCand
constexpr int kCacheMax = 52224;  // keys cached in shared memory (204 KiB) up to this V

template <int DT>
__device__ __forceinline__ float ld(const void* p, int64_t i) {
  if constexpr (DT == kF32)
    return static_cast<const float*>(p)[i];
  else if constexpr (DT == kF16)
    return h2f(static_cast<const uint16_t*>(p)[i]);
  else
    return bf2f(static_cast<const uint16_t*>(p)[i]);
}

// Larger logit -> larger key; NaN orders as -inf and -0 as +0 (sampling::canonical).
__device__ __forceinline__ uint32_t order_key(float v) {
  if (v != v) v = -INFINITY;
  if (v == 0.0f) v = 0.0f;
  uint32_t b = __float_as_uint(v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ float key_value(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

// Inclusive sum over the block (blockDim.x == kThreads); `total` gets the block's sum.
__device__ __forceinline__ double block_inclusive_sum(double v, double* warp_sums, double* total) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 1; o < 32; o <<= 1) {
    double n = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o) v += n;
  }
  if (lane == 31) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    double w = warp_sums[lane];
    for (int o = 1; o < 32; o <<= 1) {
      double n = __shfl_up_sync(0xffffffffu, w, o);
      if (lane >= o) w += n;
    }
    warp_sums[lane] = w;  // inclusive over warps
  }
  __syncthreads();
  double r = v + (warp > 0 ? warp_sums[warp - 1] : 0.0);
  *total = warp_sums[kWarps - 1];
  __syncthreads();  // warp_sums may be reused by the caller's next scan
  return r;
}

template <int DT, bool kCached>
__global__ void __launch_bounds__(kThreads)
    sample_topk_kernel(const void* __restrict__ x, int64_t V, int k, const int64_t* seed_p,
                       double temperature, double top_p, int32_t* __restrict__ out) {
  extern __shared__ uint32_t cache[];  // V keys (kCached)
  __shared__ uint32_t hist[256];
  __shared__ unsigned long long cand[kMaxCand];  // (key << 32) | (0xffffffff - index)
  __shared__ double cum[kMaxCand];
  __shared__ double warp_sums[kWarps];
  __shared__ uint32_t warp_ties[kWarps];
  __shared__ uint32_t s_bin, s_above, s_greater;
  __shared__ int s_first;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t row = blockIdx.x, base = row * V;
  auto key_at = [&](int64_t j) -> uint32_t {
    if constexpr (kCached)
      return cache[j];
    else
      return order_key(ld<DT>(x, base + j));
  };
  if constexpr (kCached)
    for (int64_t j = tid; j < V; j += kThreads) cache[j] = order_key(ld<DT>(x, base + j));

  // Radix select of the k-th largest key: `prefix` under `mask` narrows down to it; `remaining`
  // is its rank among the keys that match the prefix.
  uint32_t prefix = 0, mask = 0, remaining = static_cast<uint32_t>(k);
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = tid; i < 256; i += kThreads) hist[i] = 0;
    __syncthreads();  // also orders the cache writes before the first reads
    for (int64_t j = tid; j < V; j += kThreads) {
      uint32_t key = key_at(j);
      if ((key & mask) == prefix) {
        uint32_t bin = (key >> shift) & 255u;
        unsigned peers = __match_any_sync(__activemask(), bin);
        if (lane == __ffs(peers) - 1) atomicAdd(&hist[bin], static_cast<uint32_t>(__popc(peers)));
      }
    }
    __syncthreads();
    if (warp == 0) {  // lane l owns bins 255 - 8l .. 248 - 8l, counted from the top
      uint32_t c[8], sum = 0;
      for (int t = 0; t < 8; ++t) sum += c[t] = hist[255 - 8 * lane - t];
      uint32_t incl = sum;
      for (int o = 1; o < 32; o <<= 1) {
        uint32_t n = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += n;
      }
      uint32_t acc = incl - sum;
      if (acc < remaining && remaining <= incl)
        for (int t = 0; t < 8; ++t) {
          if (acc + c[t] >= remaining) {
            s_bin = 255u - 8u * lane - t;
            s_above = acc;
            break;
          }
          acc += c[t];
        }
    }
    __syncthreads();
    prefix |= s_bin << shift;
    mask |= 255u << shift;
    remaining -= s_above;
  }
  const uint32_t T = prefix;  // the k-th largest key; take `remaining` of the keys equal to it
  const uint32_t greater = static_cast<uint32_t>(k) - remaining;

  // Gather: keys > T anywhere in [0, greater); keys == T in index order into [greater, k).
  const int64_t seg = ((V + kWarps - 1) / kWarps + 31) / 32 * 32;
  const int64_t w0 = warp * seg, w1 = w0 + seg < V ? w0 + seg : V;
  uint32_t ties = 0;
  for (int64_t j0 = w0; j0 < w1; j0 += 32) {
    int64_t j = j0 + lane;
    ties += __popc(__ballot_sync(0xffffffffu, j < w1 && key_at(j) == T));
  }
  if (lane == 0) warp_ties[warp] = ties;
  if (tid == 0) s_greater = 0;
  __syncthreads();
  uint32_t rank = 0;
  for (int w = 0; w < warp; ++w) rank += warp_ties[w];
  for (int64_t j0 = w0; j0 < w1; j0 += 32) {
    int64_t j = j0 + lane;
    uint32_t key = j < w1 ? key_at(j) : 0;
    unsigned eq = __ballot_sync(0xffffffffu, j < w1 && key == T);
    auto packed =
        (static_cast<unsigned long long>(key) << 32) | (0xffffffffu - static_cast<uint32_t>(j));
    if (j < w1 && key > T) cand[atomicAdd(&s_greater, 1u)] = packed;
    if (j < w1 && key == T) {
      uint32_t r = rank + __popc(eq & ((1u << lane) - 1u));
      if (r < remaining) cand[greater + r] = packed;
    }
    rank += __popc(eq);
  }
  // Bitonic sort, descending, over the next power of two (padding 0 sorts last: real keys > 0).
  int n2 = 1;
  while (n2 < k) n2 <<= 1;
  for (int i = k + tid; i < n2; i += kThreads) cand[i] = 0;
  __syncthreads();
  for (int size = 2; size <= n2; size <<= 1)
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int i = tid; i < n2 / 2; i += kThreads) {
        int lo = 2 * i - (i & (stride - 1)), hi = lo + stride;
        bool desc = (lo & size) == 0;
        unsigned long long a = cand[lo], b = cand[hi];
        if ((a < b) == desc) cand[lo] = b, cand[hi] = a;
      }
      __syncthreads();
    }

  auto index_of = [](unsigned long long p) {
    return static_cast<int32_t>(0xffffffffu - static_cast<uint32_t>(p));
  };
  const float mx = key_value(static_cast<uint32_t>(cand[0] >> 32));
  if (!isfinite(mx)) {  // +inf, or every kept logit -inf / NaN: the first candidate
    if (tid == 0) out[row] = index_of(cand[0]);
    return;
  }
  // Softmax numerators in sorted order and their inclusive cumulative sums (k <= kThreads).
  double p = tid < k ? exp((static_cast<double>(key_value(static_cast<uint32_t>(cand[tid] >> 32))) -
                            static_cast<double>(mx)) /
                           temperature)
                     : 0.0;
  double total;
  double c = block_inclusive_sum(p, warp_sums, &total);
  if (tid < k) cum[tid] = c;
  if (tid == 0) s_first = k - 1;
  __syncthreads();
  total = cum[k - 1];
  // Top-p: the smallest prefix whose mass reaches top_p of the total.
  if (tid < k && cum[tid] >= top_p * total) atomicMin(&s_first, tid);
  __syncthreads();
  const int m = s_first + 1;
  const double u = sampling::uniform(static_cast<uint64_t>(*seed_p), static_cast<uint64_t>(row));
  const double target = u * cum[m - 1];
  __syncthreads();
  if (tid == 0) s_first = m - 1;
  __syncthreads();
  if (tid < m && cum[tid] > target) atomicMin(&s_first, tid);
  __syncthreads();
  if (tid == 0) out[row] = index_of(cand[s_first]);
}

// --- slow path: every logit (k > kMaxCand)
// --------------------------------------------------------

template <int DT>
__global__ void keys_kernel(const void* __restrict__ x, int64_t V, int64_t n, uint32_t* keys,
                            int32_t* idx, int64_t* offsets, int64_t rows) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    keys[i] = order_key(ld<DT>(x, i));
    idx[i] = static_cast<int32_t>(i % V);
    if (i <= rows && i * V <= n) offsets[i] = i * V;
  }
  if (blockIdx.x == 0 && threadIdx.x == 0 && rows >= n) offsets[rows] = n;
}

// One block per row over its sorted keys: cumulative sums tile by tile (carried), written to
// `cum`, then the top-p cut and the pick as in the fast path.
__global__ void __launch_bounds__(kThreads)
    sorted_pick_kernel(const uint32_t* __restrict__ keys, const int32_t* __restrict__ idx,
                       double* __restrict__ cum, int64_t V, int64_t k, const int64_t* seed_p,
                       double temperature, double top_p, int32_t* __restrict__ out) {
  __shared__ double warp_sums[kWarps];
  __shared__ unsigned long long s_first;
  const int tid = threadIdx.x;
  const int64_t row = blockIdx.x;
  keys += row * V, idx += row * V, cum += row * V;
  const double mx = key_value(keys[0]);
  if (!isfinite(mx)) {
    if (tid == 0) out[row] = idx[0];
    return;
  }
  double carry = 0;
  for (int64_t t0 = 0; t0 < k; t0 += kThreads) {
    int64_t i = t0 + tid;
    double p = i < k ? exp((static_cast<double>(key_value(keys[i])) - mx) / temperature) : 0.0;
    double tile;
    double c = block_inclusive_sum(p, warp_sums, &tile) + carry;
    if (i < k) cum[i] = c;
    carry += tile;
  }
  __syncthreads();  // cum written by other threads
  if (tid == 0) s_first = static_cast<unsigned long long>(k - 1);
  __syncthreads();
  const double total = cum[k - 1];
  for (int64_t i = tid; i < k; i += kThreads)
    if (cum[i] >= top_p * total) {
      atomicMin(&s_first, static_cast<unsigned long long>(i));
      break;
    }
  __syncthreads();
  const int64_t m = static_cast<int64_t>(s_first) + 1;
  const double u = sampling::uniform(static_cast<uint64_t>(*seed_p), static_cast<uint64_t>(row));
  const double target = u * cum[m - 1];
  __syncthreads();
  if (tid == 0) s_first = static_cast<unsigned long long>(m - 1);
  __syncthreads();
  for (int64_t i = tid; i < m; i += kThreads)
    if (cum[i] > target) {
      atomicMin(&s_first, static_cast<unsigned long long>(i));
      break;
    }
  __syncthreads();
  if (tid == 0) out[row] = idx[s_first];
}

template <int DT>
void launch(const KernelContext& c, int64_t rows, int64_t V, int64_t k, const SampleAttrs& a) {
  cudaStream_t s = stream_for(c);
  const void* x = c.inputs[0].data();
  const auto* seed = c.inputs[1].data_as<int64_t>();
  auto* out = c.outputs[0].data_as<int32_t>();
  // top_p 1 never cuts (2: no cumulative sum reaches twice the total, which is >= 1).
  const double temp = a.temperature, top_p = a.top_p < 1 ? a.top_p : 2.0;
  LOOM_CHECK(rows <= INT_MAX, "[sample] ", rows, " rows exceed the CUDA kernel's grid");
  if (k <= kMaxCand) {
    if (V <= kCacheMax) {
      // Above 48 KiB of dynamic shared memory a kernel must opt in (once per device).
      static std::atomic<uint64_t> opted{0};
      int dev = c.outputs[0].device().index;
      uint64_t bit = uint64_t{1} << (dev & 63);
      if (!(opted.load() & bit)) {
        LOOM_CUDA_CHECK(cudaFuncSetAttribute(sample_topk_kernel<DT, true>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             kCacheMax * static_cast<int>(sizeof(uint32_t))));
        opted.fetch_or(bit);
      }
      sample_topk_kernel<DT, true>
          <<<static_cast<unsigned>(rows), kThreads, static_cast<size_t>(V) * sizeof(uint32_t), s>>>(
              x, V, static_cast<int>(k), seed, temp, top_p, out);
    } else {
      sample_topk_kernel<DT, false><<<static_cast<unsigned>(rows), kThreads, 0, s>>>(
          x, V, static_cast<int>(k), seed, temp, top_p, out);
    }
    LOOM_CUDA_LAUNCHED();
    return;
  }
  const int64_t n = rows * V;
  LOOM_CHECK(n <= INT_MAX && V <= INT_MAX, "[sample] ", rows, " x ", V,
             " logits exceed the sort path's 32-bit sizes");
  auto align = [](size_t b) { return (b + 255) / 256 * 256; };
  size_t key_bytes = align(static_cast<size_t>(n) * 4), off_bytes = align((rows + 1) * 8);
  size_t temp_bytes = 0;
  const int num = static_cast<int>(n), segs = static_cast<int>(rows);
  if (rows == 1)
    LOOM_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(
        nullptr, temp_bytes, static_cast<const uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr),
        static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), num, 0, 32, s));
  else
    LOOM_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
        nullptr, temp_bytes, static_cast<const uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr),
        static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), num, segs,
        static_cast<const int64_t*>(nullptr), static_cast<const int64_t*>(nullptr), 0, 32, s));
  // keys in/out, indices in/out, cumulative sums (double, over keys in and idx in), offsets, CUB's
  // temporary storage.
  auto buf = scratch(c.outputs[0].device().index, 6 * key_bytes + off_bytes + align(temp_bytes));
  auto* p = reinterpret_cast<char*>(buf->data());
  auto* keys_in = reinterpret_cast<uint32_t*>(p);
  auto* keys_out = reinterpret_cast<uint32_t*>(p + key_bytes);
  auto* idx_in = reinterpret_cast<int32_t*>(p + 2 * key_bytes);
  auto* idx_out = reinterpret_cast<int32_t*>(p + 3 * key_bytes);
  auto* cum = reinterpret_cast<double*>(p + 4 * key_bytes);
  auto* offsets = reinterpret_cast<int64_t*>(p + 6 * key_bytes);
  void* cub_temp = p + 6 * key_bytes + off_bytes;
  keys_kernel<DT><<<blocks_for(n), 256, 0, s>>>(x, V, n, keys_in, idx_in, offsets, rows);
  LOOM_CUDA_LAUNCHED();
  if (rows == 1)
    LOOM_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(
        cub_temp, temp_bytes, keys_in, keys_out, idx_in, idx_out, num, 0, 32, s));
  else
    LOOM_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
        cub_temp, temp_bytes, keys_in, keys_out, idx_in, idx_out, num, segs, offsets, offsets + 1,
        0, 32, s));
  sorted_pick_kernel<<<static_cast<unsigned>(rows), kThreads, 0, s>>>(keys_out, idx_out, cum, V, k,
                                                                      seed, temp, top_p, out);
  LOOM_CUDA_LAUNCHED();
}

void sample(const KernelContext& c) {
  const NDArray& x = c.inputs[0];
  const auto& a = c.attrs_as<SampleAttrs>();
  const int64_t V = x.shape()[x.rank() - 1], rows = c.outputs[0].numel();
  if (rows == 0) return;
  const int64_t k = sampling::top_k_count(a.top_k, V);
  switch (x.dtype()) {
    case DType::f32:
      return launch<kF32>(c, rows, V, k, a);
    case DType::f16:
      return launch<kF16>(c, rows, V, k, a);
    case DType::bf16:
      return launch<kBF16>(c, rows, V, k, a);
    default:
      fail("[sample] logits must be f32, f16 or bf16, got ", dtype_name(x.dtype()));
  }
}

}  // namespace

void register_sampling(KernelTable& t) { t.set(ir::op::sample, sample); }

}  // namespace loom::backends::cuda
