// Split-KV flash-decoding for sdpa (Lq <= 8): the keys of each (batch, kv head) are split over
// many blocks so that a single query row still fills the GPU. A block copies its key range of K
// and V into shared memory with cp.async (all copies in flight at once; scores start when K has
// landed, while V is still arriving), then serves every query row of the kv head's group from it
// (all query heads of a GQA group share one read of K/V). Each split writes a partial
// (max, sum, unnormalised acc) in f32, and the last of a kv head's splits to finish merges them by
// log-sum-exp (merge_if_last): no second kernel, whose launch and wait cost a decode step ~1.6 us
// per layer.
// f16, bf16 and f32 K/V; all math in f32. kv_len is read on the device and divided among the
// splits (split_plan), so a fixed-size cache filled to kv_len costs what its keys cost.
//
// Two block kernels share that scheme. For f16/bf16 K/V with D 64 or 128 and at most 16 query
// rows per kv head (group·Lq), the scores and P V run on the tensor cores (decode_mma_kernel);
// everything else takes the scalar kernel (decode_kernel), whose f32 FMAs and shared-memory loads
// at 8 warps per SM cap it near 1 TB/s even when K/V stream from HBM.
#include <algorithm>

#include "backends/cuda/attention_common.cuh"
#include "backends/cuda/cuda_common.h"
#include "backends/cuda/mma.cuh"
#include "backends/cuda/pdl.cuh"

namespace loom::backends::cuda::attn {
namespace {

constexpr int kThreads = 128;
constexpr int kRT = 8;             // query rows per pass over the shared K/V
constexpr int kMaxSplits = 1024;   // splits per kv head at most
constexpr int kMergeWarps = 8;     // merge kernel: warps per block, each a share of the splits
constexpr int kMergeAhead = 8;     // merge kernel: loads per lane issued before the weights
constexpr int kKvSmem = 72 << 10;  // shared-memory budget for the K and V ranges
enum { kEarlyNever, kEarlyAlways, kEarlyArgs };  // decode_mma_kernel's EARLY

struct DecodeArgs {
  const void* q;
  const void *k, *v;
  void* out;
  int q_dt, out_dt;
  bool q_pairs;  // Q in K's 16-bit type, 4-byte aligned: the tensor-core kernel loads pairs
  bool q_f32x2;  // Q f32, 8-byte aligned: the tensor-core kernel loads float2 pairs
  int64_t Hq, Hkv, Lq, Lk;
  int group, rows;  // rows = group * Lq: the query rows sharing one kv head
  MaskView mask;
  const void* kv_len;
  int kv_len_dt;
  float scale_log2;
  bool causal;
  int nsplit, ks_max;  // splits per kv head; keys per split at most
  int step;            // split_plan's rounding
  float* part_acc;     // [B*Hq*Lq][nsplit][D]
  float* part_ml;      // [B*Hq*Lq][nsplit][2]: max (log2 domain), sum
  // The splits of (batch b, kv head g) count themselves in counters[b * Hkv + g] (null: the merge
  // kernel merges).
  int* counters;
  bool prefetch;  // prefetch_split before pdl_begin (LOOM_DECODE_L2_PREFETCH=0: not)
  // No kernel that may still run when this one starts writes K or V (SdpaLaunch::kv_settled):
  // the split's rows are copied before pdl_begin, for the kv_len read there, and copied again
  // after it only where kv_len turns out different.
  bool kv_early;
  int early_skew;         // SdpaLaunch::decode_early_skew
  SdpaLaunch::RopeKv rk;  // decode_mma_kernel<..., true>: q rotated as loaded, the new rows written
  unsigned long long* timeline;  // SdpaLaunch::decode_timeline
  int timeline_seq;
  int64_t timeline_rows;
};

// Built with -DLOOM_DECODE_TIMELINE=ON only (otherwise nothing): thread 0 of each block of the
// tensor-core decode kernel stores %globaltimer (ns, 32 ns ticks on an H100) at event e into
// timeline[(timeline_seq * blocks + block) * kTimelineEvents + e]; slot 9 holds the block's SM
// and the launch's block count.
// bench/cuda/attention_bench.cpp writes them out, scripts/decode_timeline.py reads them.
enum TimelineEvent {
  kTlStart,     // block entered
  kTlIssued,    // early copies issued (just before pdl_begin)
  kTlReleased,  // pdl_begin returned: the previous kernel completed
  kTlPlanned,   // kv_len and the split plan known
  kTlKeys,      // warp 0's keys landed
  kTlComputed,  // every warp done with its keys (after the barrier)
  kTlPartial,   // the split's partial written
  kTlCounted,   // the merge counter's answer came back
  kTlEnd,       // the block's last instruction (the last split: after its merge)
  kTlSm,
  kTimelineEvents
};
static_assert(kTimelineEvents == kDecodeTimelineSlots);
__device__ __forceinline__ void timeline_mark(const DecodeArgs& a, int e) {
#ifdef LOOM_DECODE_TIMELINE
  if (a.timeline && threadIdx.x == 0) {
    unsigned long long t;
    const size_t blocks = static_cast<size_t>(gridDim.x) * gridDim.y * gridDim.z;
    if (e == kTlSm) {  // the SM, and the launch's block count above bit 32
      unsigned sm;
      asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
      t = sm | static_cast<unsigned long long>(blocks) << 32;
    } else {
      asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)::"memory");
    }
    const size_t block =
        (static_cast<size_t>(blockIdx.z) * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    const size_t row = a.timeline_seq * blocks + block;
    if (row < static_cast<size_t>(a.timeline_rows)) a.timeline[row * kTimelineEvents + e] = t;
  }
#else
  (void)a, (void)e;
#endif
}

template <int KT>
struct Elem;
template <>
struct Elem<kF16> {
  static constexpr int kSize = 2;
  // 16 bytes -> 8 floats.
  __device__ static void chunk(const unsigned char* p, float* f) {
    uint4 u = *reinterpret_cast<const uint4*>(p);
    const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float2 x = __half22float2(h[i]);
      f[2 * i] = x.x, f[2 * i + 1] = x.y;
    }
  }
  __device__ static float2 pair(const unsigned char* p) {
    return __half22float2(*reinterpret_cast<const __half2*>(p));
  }
};
template <>
struct Elem<kBF16> {
  static constexpr int kSize = 2;
  __device__ static void chunk(const unsigned char* p, float* f) {
    uint4 u = *reinterpret_cast<const uint4*>(p);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float2 x = __bfloat1622float2(h[i]);
      f[2 * i] = x.x, f[2 * i + 1] = x.y;
    }
  }
  __device__ static float2 pair(const unsigned char* p) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
  }
};
template <>
struct Elem<kF32> {
  static constexpr int kSize = 4;
  __device__ static void chunk(const unsigned char* p, float* f) {
    float4 u = *reinterpret_cast<const float4*>(p);
    f[0] = u.x, f[1] = u.y, f[2] = u.z, f[3] = u.w;
  }
  __device__ static float2 pair(const unsigned char* p) {
    return *reinterpret_cast<const float2*>(p);
  }
};

// An invalid kv_len: the kv head's rows become NaN, written by split 0 (or, with the merge
// kernel, which reads kv_len too, by it).
__device__ __forceinline__ void nan_rows(const DecodeArgs& a, int64_t g, int64_t b, int D, int tid,
                                         int nthreads) {
  if (a.nsplit != 1 && (!a.counters || blockIdx.x != 0)) return;
  for (int idx = tid; idx < a.rows * D; idx += nthreads) {
    const int r = idx / D;
    const int64_t h = g * a.group + r / a.Lq, i = r % a.Lq;
    store(a.out_dt, a.out, ((b * a.Hq + h) * a.Lq + i) * D + idx % D, __int_as_float(0x7fffffff));
  }
}

// How kv_len, read on the device, is shared among the nsplit splits of a launch sized for the
// cache's length Lk: splits of `per` keys (a multiple of `step`, at most ks_max), of which the
// first `active` hold keys. The others return at once and the merge skips them, and with one active
// split (a short context) the split kernel writes the output itself and the merge kernel has
// nothing to do: a decode step early in a long cache pays for the keys it has, not for the cache.
struct SplitPlan {
  int64_t per;
  int active;
};
__device__ __forceinline__ SplitPlan split_plan(int64_t kv_len, int nsplit, int step, int ks_max) {
  int64_t per = ((kv_len + nsplit - 1) / nsplit + step - 1) / step * step;
  if (per == 0) per = step;  // an empty cache: one split writes the zero rows
  if (per > ks_max) per = ks_max;
  return {per, kv_len > per ? static_cast<int>((kv_len + per - 1) / per) : 1};
}

// Before pdl_begin: asks the L2 for the split's keys (thread 0) and values (thread 1), so that the
// memory streams them while the previous kernel runs (in a decode step rope_write_kv, which
// writes q and this step's cache row: the L2 is where writes meet, so a prefetched line is never
// stale). kv_len may not be written yet: read as a hint, clamped to the cache.
__device__ __forceinline__ void prefetch_split(const DecodeArgs& a, int split, int64_t g, int64_t b,
                                               int64_t row_bytes) {
  if (!a.prefetch || threadIdx.x >= 2) return;
  int64_t n = a.Lk;
  if (a.kv_len) {
    n = a.kv_len_dt == kI32 ? *static_cast<const volatile int32_t*>(a.kv_len)
                            : *static_cast<const volatile int64_t*>(a.kv_len);
    n = n < 0 ? 0 : n > a.Lk ? a.Lk : n;
  }
  const SplitPlan plan = split_plan(n, a.nsplit, a.step, a.ks_max);
  if (split >= plan.active) return;
  const int64_t j0 = split * plan.per, j1 = min(j0 + plan.per, n), head = b * a.Hkv + g;
  const auto* base = static_cast<const uint8_t*>(threadIdx.x ? a.v : a.k);
  prefetch_l2(base + (head * a.Lk + j0) * row_bytes, (j1 - j0) * row_bytes,
              base + (head + 1) * a.Lk * row_bytes);
}

// rope_write_kv_sdpa: the cache row this step's key and value go to, starts[2] (the other starts
// must be 0: the new rows span the caches' other axes). A start out of range is recorded under the
// op's name by one thread of the grid and clamped, as rope_write_kv does. (Not movement.cu's
// DynStarts / dyn_fold: its per-axis stride, size and dim arrays would add ~200 bytes to every
// decode launch's parameters, and a larger parameter block measured slower for the rope kernel,
// 3.92 -> 4.46 us per Mistral-7B layer.)
__device__ __forceinline__ int64_t rope_kv_row(const DecodeArgs& a, int D) {
  int64_t st[4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
    st[i] = static_cast<int>(a.rk.starts_dtype) == kI32
                ? static_cast<const int32_t*>(a.rk.starts)[i]
                : static_cast<const int64_t*>(a.rk.starts)[i];
  const int64_t hi[4] = {0, 0, a.Lk - 1, 0}, dim[4] = {gridDim.z, a.Hkv, a.Lk, D},
                size[4] = {gridDim.z, a.Hkv, 1, D};
  for (int i = 0; i < 4; ++i)
    if (st[i] < 0 || st[i] > hi[i]) {
      if (blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0 && threadIdx.x == 0) {
        DeviceError* e = a.rk.err;
        e->axis = i, e->value = st[i], e->size = size[i], e->dim = dim[i];
        __threadfence_system();
        e->code = kErrRopeWriteKvSdpa;
      }
      st[i] = st[i] < 0 ? 0 : hi[i];
    }
  return st[2];
}

// Rotary angles of rope_write_kv_sdpa's position for pair t (thread t < D / 2) as (cos, sin):
// the frequencies and angles in double, as rope_args and rope_item compute them. The frequency
// reads no memory, and the angles are computed before pdl_begin for the position read then (through
// the L2 only, so that the read after it cannot hit a stale L1 line), and again after it only
// where the position turns out different: the double sincos stays off the critical path.
__device__ __forceinline__ double rope_kv_freq(const DecodeArgs& a, int D) {
  const int t = static_cast<int>(threadIdx.x);
  return t < D / 2 ? pow(a.rk.theta, -2.0 * static_cast<double>(t) / static_cast<double>(D)) : 0.0;
}
__device__ __forceinline__ int64_t rope_kv_pos(const DecodeArgs& a, int b, bool early) {
  const int64_t pi = a.rk.pos_batched ? b : 0;
  if (a.rk.pos_dtype == DType::i32) {
    const int32_t* p = static_cast<const int32_t*>(a.rk.pos) + pi;
    return early ? __ldcg(p) : *p;
  }
  const auto* p = static_cast<const long long*>(a.rk.pos) + pi;
  return early ? __ldcg(p) : *p;
}
__device__ __forceinline__ double2 rope_kv_cs(const DecodeArgs& a, int64_t pos, double freq) {
  double sn, c;
  sincos(static_cast<double>(pos) / a.rk.position_scale * freq, &sn, &c);
  return make_double2(c, sn);
}

// The rotated pair (x0, x1) of rotary pair p, as rope_item rounds it (double math, then f32).
__device__ __forceinline__ float2 rope_pair(float2 x, double2 cs) {
  return make_float2(static_cast<float>(x.x * cs.x - x.y * cs.y),
                     static_cast<float>(x.y * cs.x + x.x * cs.y));
}

// rope_write_kv_sdpa's new key (rotated) and value rows of (batch b, kv head g), packed to the
// cache's 16-bit type, into kd and vd (a cache row, or a warp's shared-memory copy of it): a lane
// per pair, the warp's lanes over the D / 2 pairs.
template <bool BF16, int D>
__device__ __forceinline__ void rope_kv_new_rows(const double2* cs, int lane,
                                                 const float2 (&kr)[D / 64],
                                                 const float2 (&vr)[D / 64], uint16_t* kd,
                                                 uint16_t* vd) {
#pragma unroll
  for (int i = 0; i < D / 64; ++i) {
    const int p = lane + 32 * i;
    const float2 k = rope_pair(kr[i], cs[p]);
    reinterpret_cast<uint32_t*>(kd)[p] = pack2<BF16>(k.x, k.y);
    reinterpret_cast<uint32_t*>(vd)[p] = pack2<BF16>(vr[i].x, vr[i].y);
  }
}
// Lane's pairs p = lane + 32 i of the new key (not rotated) and value rows of (batch b, kv head g).
template <int D>
__device__ __forceinline__ void load_new_rows(const DecodeArgs& a, int b, int g, int lane,
                                              float2 (&kr)[D / 64], float2 (&vr)[D / 64]) {
  const size_t src = (static_cast<size_t>(b) * a.Hkv + g) * D;
#pragma unroll
  for (int i = 0; i < D / 64; ++i) {
    kr[i] = reinterpret_cast<const float2*>(a.rk.k + src)[lane + 32 * i];
    vr[i] = reinterpret_cast<const float2*>(a.rk.v + src)[lane + 32 * i];
  }
}

// The merge, in the split kernel: every block that wrote a partial counts itself in its kv head's
// counter (after a fence: its partial is visible before the count), and the last to arrive merges
// the `active` partials of the kv head's rows by log-sum-exp and resets the counter for the next
// launch. Counters live in a zeroed per-device array (split_counters); launches on the device's one
// stream never overlap in the counters (a PDL kernel waits for the previous grid first). A thread
// takes 4 columns of a row; the block's threads make J such sets, each a share of the splits,
// whose loads go out kMergeLoads at a time (one L2 round trip each) and are summed with a running
// max; the J shares meet in `red` (the block's shared memory, free by now: at most 6 floats per
// thread).
//
// Why only for one wave of at most kKernelMergeSplits splits (launch_decode): it saves the merge
// kernel's launch and wait (a Mistral-7B decode step early in a reply, kv_len 128 of a 1024 cache:
// attention 6.9 -> 5.4 us), but the last block's merge is serial work after the slowest split, and
// every block pays a fence and an atomic before it retires: with several waves (B = 8, L = 4096)
// that cost 8 %, and with 64 or more splits a single block's merge outlasted the merge kernel's
// (2.5x at 64).
constexpr int kKernelMergeSplits = 32;
constexpr int kMergeLoads = 16;

template <int D>
__device__ void merge_if_last(const DecodeArgs& a, int64_t g, int64_t row0, int active,
                              float* red) {
  __shared__ int last;
  __syncthreads();  // the block's partial is written (and its shared memory free)
  if (threadIdx.x == 0) {
    __threadfence();
    int* counter = a.counters + blockIdx.z * a.Hkv + g;
    last = atomicAdd(counter, 1) == active - 1;
    if (last) *counter = 0;  // every split has counted
  }
  timeline_mark(a, kTlCounted);
  __syncthreads();
  if (!last) return timeline_mark(a, kTlEnd);
  constexpr int Q = D / 4;  // threads per row
  const int tid = static_cast<int>(threadIdx.x), nt = static_cast<int>(blockDim.x);
  // Rows per pass (all of them when they fit) and shares of the splits.
  const int rp = min(a.rows, nt / Q), J = nt / (rp * Q);
  const int j = tid / (rp * Q), r_in = tid % (rp * Q) / Q, c4 = tid % Q;
  float* red_t = red + J * rp * D;  // [J][rp] (max, sum) after J·rp·D sums
  for (int r0 = 0; r0 < a.rows; r0 += rp) {
    const int r = r0 + r_in;
    const bool on = j < J && r < a.rows;
    float m = -INFINITY, l = 0.f;
    float4 t = make_float4(0.f, 0.f, 0.f, 0.f);
    if (on) {
      const int64_t grow = row0 + r;
      const float2* ml = reinterpret_cast<const float2*>(a.part_ml) + grow * a.nsplit;
      const float4* acc = reinterpret_cast<const float4*>(a.part_acc + grow * a.nsplit * D) + c4;
      for (int s0 = j; s0 < active; s0 += J * kMergeLoads) {
        float2 w[kMergeLoads];
        float4 v[kMergeLoads];
#pragma unroll
        for (int u = 0; u < kMergeLoads; ++u) {
          const int sp = s0 + u * J;
          w[u] = sp < active ? __ldcg(ml + sp) : make_float2(-INFINITY, 0.f);
          v[u] = sp < active ? __ldcg(acc + static_cast<int64_t>(sp) * Q)
                             : make_float4(0.f, 0.f, 0.f, 0.f);
        }
        float mc = m;
#pragma unroll
        for (int u = 0; u < kMergeLoads; ++u) mc = fmaxf(mc, w[u].x);
        if (mc == -INFINITY) continue;  // empty or fully masked splits weigh 0
        const float sc = ex2(m - mc);   // 0 while m is -inf
        l *= sc, t.x *= sc, t.y *= sc, t.z *= sc, t.w *= sc;
#pragma unroll
        for (int u = 0; u < kMergeLoads; ++u) {
          const float e = ex2(w[u].x - mc);
          l += e * w[u].y;
          t.x += e * v[u].x, t.y += e * v[u].y, t.z += e * v[u].z, t.w += e * v[u].w;
        }
        m = mc;
      }
    }
    if (on) {
      reinterpret_cast<float4*>(red + (j * rp + r_in) * D)[c4] = t;
      if (c4 == 0) red_t[2 * (j * rp + r_in)] = m, red_t[2 * (j * rp + r_in) + 1] = l;
    }
    __syncthreads();
    if (on && j == 0) {
      float mx = -INFINITY;
      for (int q = 0; q < J; ++q) mx = fmaxf(mx, red_t[2 * (q * rp + r_in)]);
      float lt = 0.f;
      float4 tt = make_float4(0.f, 0.f, 0.f, 0.f);
      for (int q = 0; mx != -INFINITY && q < J; ++q) {
        const float e = ex2(red_t[2 * (q * rp + r_in)] - mx);
        const float4 o = reinterpret_cast<const float4*>(red + (q * rp + r_in) * D)[c4];
        lt += e * red_t[2 * (q * rp + r_in) + 1];
        tt.x += e * o.x, tt.y += e * o.y, tt.z += e * o.z, tt.w += e * o.w;
      }
      const float inv = lt > 0.f ? 1.f / lt : 0.f;
      const int64_t o0 = (row0 + r) * D + 4 * c4;
      store(a.out_dt, a.out, o0, tt.x * inv), store(a.out_dt, a.out, o0 + 1, tt.y * inv);
      store(a.out_dt, a.out, o0 + 2, tt.z * inv), store(a.out_dt, a.out, o0 + 3, tt.w * inv);
    }
    __syncthreads();  // `red` is rewritten by the next pass
  }
  timeline_mark(a, kTlEnd);
}

template <int D>
constexpr int kGroups = D >= 256 ? 1 : 256 / D;  // thread groups splitting the keys in P V

template <int KT, int D>
constexpr int row_bytes() {
  return D * Elem<KT>::kSize + 16;  // +16 B: each thread reads its own key row conflict-free
}

template <int KT, int D>
size_t decode_smem(int ks) {
  return static_cast<size_t>(2 * ks * row_bytes<KT, D>()) +
         sizeof(float) * (kRT * D + 2 * kRT * ks + kGroups<D> * kRT * D + 2 * kRT);
}

template <int KT, int D>
__global__ void __launch_bounds__(kThreads) decode_kernel(DecodeArgs a) {
  using E = Elem<KT>;
  constexpr int RB = row_bytes<KT, D>();
  constexpr int CPR = D * E::kSize / 16;  // 16-byte chunks per row
  constexpr int EPC = 16 / E::kSize;      // elements per chunk
  constexpr int NP = D / 2;               // column pairs
  constexpr int G = kGroups<D>;
  extern __shared__ __align__(16) unsigned char smem[];
  unsigned char* sK = smem;
  unsigned char* sV = sK + a.ks_max * RB;
  float* sQ = reinterpret_cast<float*>(sV + a.ks_max * RB);  // [kRT][D], pre-scaled
  float* sS = sQ + kRT * D;                                  // [kRT][ks_max] scores
  float* sP = sS + kRT * a.ks_max;                           // [ks_max][kRT] p, key-major
  float* sRed = sP + kRT * a.ks_max;                         // [G][kRT][D]
  float* sML = sRed + G * kRT * D;                           // [kRT][2]

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int split = blockIdx.x;
  const int64_t g = blockIdx.y, b = blockIdx.z;
  prefetch_split(a, split, g, b, D * E::kSize);
  pdl_begin();  // the merge kernel (a programmatic dependent) waits for this grid itself

  bool bad;
  const int64_t kv_len = read_kv_len(a.kv_len, a.kv_len_dt, a.Lk, &bad);
  if (bad) return nan_rows(a, g, b, D, tid, kThreads);
  // Keys are shared evenly by the actual length (multiples of 8 keys per split).
  const SplitPlan plan = split_plan(kv_len, a.nsplit, a.step, a.ks_max);
  if (split >= plan.active) return;
  const bool direct = plan.active == 1;  // no merge: this block writes the output
  const int64_t j0 = split * plan.per, j1 = min(j0 + plan.per, kv_len);
  const int nk = static_cast<int>(j1 - j0);

  const size_t kv_off = static_cast<size_t>((b * a.Hkv + g) * a.Lk + j0) * D * E::kSize;
  const unsigned char* kg = static_cast<const unsigned char*>(a.k) + kv_off;
  const unsigned char* vg = static_cast<const unsigned char*>(a.v) + kv_off;
  for (int c = tid; c < nk * CPR; c += kThreads)
    cp_async16(sK + (c / CPR) * RB + (c % CPR) * 16, kg + static_cast<size_t>(c) * 16, true);
  cp_async_commit();
  for (int c = tid; c < nk * CPR; c += kThreads)
    cp_async16(sV + (c / CPR) * RB + (c % CPR) * 16, vg + static_cast<size_t>(c) * 16, true);
  cp_async_commit();

  const int64_t off = kv_len - a.Lq;  // position of query 0
  // Query rows of this kv head: row r is (head g·group + r / Lq, position r % Lq), contiguous.
  const int64_t row0 = (b * a.Hq + g * a.group) * a.Lq;
  for (int rt0 = 0; rt0 < a.rows; rt0 += kRT) {
    const int nr = min(kRT, a.rows - rt0);
    {  // Q rows of the pass: every load in flight before the first store
      constexpr int kPer = kRT * D / kThreads;
      float x[kPer];
#pragma unroll
      for (int u = 0; u < kPer; ++u) {
        const int idx = tid + u * kThreads, r = idx / D, rr = rt0 + r;
        x[u] = r < nr ? load<float>(a.q_dt, a.q, (row0 + rr) * D + idx % D) * a.scale_log2 : 0.f;
      }
#pragma unroll
      for (int u = 0; u < kPer; ++u) sQ[tid + u * kThreads] = x[u];
    }
    if (rt0 == 0) cp_async_wait<1>();  // K has landed (V may still be in flight)
    __syncthreads();

    // Scores: one key per thread, all rows of the pass.
    for (int jj = tid; jj < nk; jj += kThreads) {
      float acc[kRT];
#pragma unroll
      for (int r = 0; r < kRT; ++r) acc[r] = 0.f;
      const unsigned char* kr = sK + jj * RB;
#pragma unroll 4
      for (int c = 0; c < CPR; ++c) {
        float kf[EPC];
        E::chunk(kr + c * 16, kf);
#pragma unroll
        for (int r = 0; r < kRT; ++r) {
          if (r < nr) {
            const float4* qv = reinterpret_cast<const float4*>(sQ + r * D + c * EPC);
#pragma unroll
            for (int e4 = 0; e4 < EPC / 4; ++e4) {
              float4 qq = qv[e4];
              acc[r] += qq.x * kf[4 * e4] + qq.y * kf[4 * e4 + 1] + qq.z * kf[4 * e4 + 2] +
                        qq.w * kf[4 * e4 + 3];
            }
          }
        }
      }
      const int64_t j = j0 + jj;
#pragma unroll
      for (int r = 0; r < kRT; ++r) {
        float x = -INFINITY;
        if (r < nr) {
          x = acc[r];
          if (a.causal || a.mask.p) {  // (head, position) of the row only when masking
            const int rr = rt0 + r, i = rr % static_cast<int>(a.Lq);
            if (a.causal && j > off + i)
              x = -INFINITY;
            else if (a.mask.p)
              x += mask_log2(a.mask, b, g * a.group + rr / static_cast<int>(a.Lq), i, j);
          }
        }
        sS[r * a.ks_max + jj] = x;
      }
    }
    __syncthreads();

    // Softmax of each row over this split's keys (a warp per row).
    for (int r = warp; r < kRT; r += kThreads / 32) {
      float mx = -INFINITY;
      for (int jj = lane; jj < nk; jj += 32) mx = fmaxf(mx, sS[r * a.ks_max + jj]);
      for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      const float muse = mx == -INFINITY ? 0.f : mx;
      float sum = 0.f;
      for (int jj = lane; jj < nk; jj += 32) {
        float p = ex2(sS[r * a.ks_max + jj] - muse);
        sP[jj * kRT + r] = p;
        sum += p;
      }
      for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      if (lane == 0) sML[2 * r] = mx, sML[2 * r + 1] = sum;
    }
    if (rt0 == 0) cp_async_wait<0>();
    __syncthreads();

    // acc = P V: a thread owns a column pair; G thread groups take interleaved keys.
    {
      const int pr = tid % NP, kgp = tid / NP;
      if (kgp < G) {
        float acc[kRT][2];
#pragma unroll
        for (int r = 0; r < kRT; ++r) acc[r][0] = acc[r][1] = 0.f;
        for (int jj = kgp; jj < nk; jj += G) {
          float2 vv = E::pair(sV + jj * RB + pr * 2 * E::kSize);
          const float4 p0 = *reinterpret_cast<const float4*>(sP + jj * kRT);
          const float4 p1 = *reinterpret_cast<const float4*>(sP + jj * kRT + 4);
          const float p[kRT] = {p0.x, p0.y, p0.z, p0.w, p1.x, p1.y, p1.z, p1.w};
#pragma unroll
          for (int r = 0; r < kRT; ++r) {
            if (r < nr) {
              acc[r][0] += p[r] * vv.x;
              acc[r][1] += p[r] * vv.y;
            }
          }
        }
#pragma unroll
        for (int r = 0; r < kRT; ++r) {
          sRed[(kgp * kRT + r) * D + 2 * pr] = acc[r][0];
          sRed[(kgp * kRT + r) * D + 2 * pr + 1] = acc[r][1];
        }
      }
    }
    __syncthreads();
    for (int idx = tid; idx < nr * D; idx += kThreads) {
      const int r = idx / D, d = idx % D;
      float sum = 0.f;
#pragma unroll
      for (int q = 0; q < G; ++q) sum += sRed[(q * kRT + r) * D + d];
      const int rr = rt0 + r;
      const int64_t grow = row0 + rr;
      if (direct) {
        const float l = sML[2 * r + 1];
        store(a.out_dt, a.out, grow * D + d, l > 0.f ? sum / l : 0.f);
      } else {
        const int64_t pi = grow * a.nsplit + split;
        a.part_acc[pi * D + d] = sum;
        if (d == 0) a.part_ml[2 * pi] = sML[2 * r], a.part_ml[2 * pi + 1] = sML[2 * r + 1];
      }
    }
    __syncthreads();  // the next pass reuses sQ, sS, sRed
  }
  if (!direct && a.counters)
    merge_if_last<D>(a, g, row0, plan.active, reinterpret_cast<float*>(smem));
}

// Tensor-core decode with the query rows on the mma's N side: per 16-key tile, Sᵀ = K Qᵀ (keys
// are the M side, the ≤ 8·NT query rows of a kv head's group the N side) and Oᵀ += Vᵀ Pᵀ, with
// mma.sync m16n8k16. Decode has few query rows (4 for a 32/8 GQA group at Lq = 1), so putting them
// on N (8 wide) instead of M (16 wide) halves the tensor-core work, the Q fragments and the
// accumulators; the registers saved buy 8 warps per block. Each warp owns an eighth of the
// split's keys: it copies them itself (K, then V, as two cp.async groups), waits only for its own
// copies, and keeps an online softmax in registers. Sᵀ's accumulators become Pᵀ's B fragments by
// one movmatrix (8×8 transpose in registers) per half. Q's B fragments come straight from global
// memory (the group's rows are contiguous), issued before kv_len is known. The warps' (max, sum,
// acc) meet once in shared memory, which then holds the split's partial result or the output.
constexpr int kMmaWarps = 8;
constexpr int kTileKeys = 16;

template <int D>
constexpr int mma_pitch() {
  return D + 8;  // elements: 16 bytes of padding make the 8 rows an ldmatrix reads conflict-free
}
template <int D>
constexpr int mma_out_pitch() {
  return D + 4;  // floats: the 4 rows a fragment column spans land in different banks
}

// K and V ranges, or afterwards the warps' partial results (which reuse them).
template <int D, int NT>
size_t mma_smem(int ks) {
  const size_t kv = 2 * static_cast<size_t>(ks) * mma_pitch<D>() * 2;
  const size_t part = sizeof(float) * kMmaWarps * 8 * NT * (mma_out_pitch<D>() + 2);
  return std::max(kv, part);
}

// ROPE (rope_write_kv_sdpa, one query position): q arrives unrotated and is rotated as its
// fragments are packed; split 0's warp 0 writes this step's key (rotated) and value rows into the
// caches, and the warp whose keys hold that row puts the same values into its shared-memory copy
// (its cp.async read the row's old contents, which it overwrites): no rope_write_kv kernel before
// this one, and its launch and wait leave the step.
// EARLY: whether the split's keys are copied before pdl_begin (kEarlyNever / kEarlyAlways, or
// kEarlyArgs: DecodeArgs::kv_early). The plain kernels take it as a template argument: with the
// branch, their launches that may not copy early measured 0.3-0.6 us slower. The ROPE kernel keeps
// the branch (kEarlyArgs), the form the Mistral-7B step was timed with (516-519 tok/s; its
// two-instantiation form gave 515 in the one round it was timed).
template <bool BF16, int D, int NT, bool ROPE, int EARLY>
__global__ void __launch_bounds__(kMmaWarps * 32) decode_mma_kernel(DecodeArgs a) {
  constexpr int P = mma_pitch<D>(), OP = mma_out_pitch<D>();
  constexpr int CH = D / 8, KK = D / 16, R = 8 * NT;  // CH: 16-byte chunks per row
  extern __shared__ __align__(16) uint16_t smem16[];
  const int KW = a.ks_max / kMmaWarps;  // shared-memory rows per warp (a multiple of 16)
  uint16_t* sK = smem16;                // [ks_max][P]
  uint16_t* sV = sK + a.ks_max * P;     // [ks_max][P]
  // After the key loop: [warp][R][OP] partial acc, then [warp][R] (max, sum).
  float* sO = reinterpret_cast<float*>(smem16);
  float* sML = sO + kMmaWarps * R * OP;

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  timeline_mark(a, kTlStart);
  timeline_mark(a, kTlSm);
  const int split = blockIdx.x, g = blockIdx.y, b = blockIdx.z;
  // This warp's keys of a split plan -> its rows of sK / sV; rows up to the tile edge are
  // zero-filled (V rows must be zeros: P is 0 there, and 0 * stale NaN would poison the sums).
  // Two commit groups per lane: K, then V.
  const size_t kv_base = (static_cast<size_t>(b) * a.Hkv + g) * a.Lk * D;
  uint16_t* wK = sK + warp * KW * P;
  uint16_t* wV = sV + warp * KW * P;
  struct WarpKeys {
    int64_t wj0, wj1;
    int nkw, ntiles;
  };
  auto warp_keys = [&](const SplitPlan& plan, int64_t kv_len, bool live) {
    WarpKeys w;
    const int64_t j0 = split * plan.per, j1 = min(j0 + plan.per, kv_len);
    const int64_t wper = plan.per / kMmaWarps;  // keys per warp, a multiple of 16
    w.wj0 = j0 + warp * wper, w.wj1 = min(w.wj0 + wper, j1);
    w.nkw = live && w.wj1 > w.wj0 ? static_cast<int>(w.wj1 - w.wj0) : 0;
    w.ntiles = (w.nkw + kTileKeys - 1) / kTileKeys;
    return w;
  };
  auto copy_keys = [&](const WarpKeys& w) {
    const uint16_t* kg = static_cast<const uint16_t*>(a.k) + kv_base + w.wj0 * D;
    const uint16_t* vg = static_cast<const uint16_t*>(a.v) + kv_base + w.wj0 * D;
    constexpr int kRowStep = 32 / CH;  // rows one pass of the warp's lanes copies
    const int cc = lane % CH;
    for (int r = lane / CH; r < w.ntiles * kTileKeys; r += kRowStep)
      cp_async16(wK + r * P + cc * 8, kg + (r < w.nkw ? r : 0) * D + cc * 8, r < w.nkw);
    cp_async_commit();
    for (int r = lane / CH; r < w.ntiles * kTileKeys; r += kRowStep)
      cp_async16(wV + r * P + cc * 8, vg + (r < w.nkw ? r : 0) * D + cc * 8, r < w.nkw);
    cp_async_commit();
  };
  // kv_early: the copies for kv_len as read now (-1: none issued). Read through the L2 only, so
  // that the read after pdl_begin cannot hit a stale L1 line.
  int64_t early_len = -1;
  if (EARLY == kEarlyAlways || (EARLY == kEarlyArgs && a.kv_early)) {
    early_len = a.Lk;
    if (a.kv_len)
      early_len = a.kv_len_dt == kI32 ? __ldcg(static_cast<const int32_t*>(a.kv_len))
                                      : __ldcg(static_cast<const long long*>(a.kv_len));
    early_len += a.early_skew;
    if (early_len >= 0 && early_len <= a.Lk) {
      const SplitPlan plan = split_plan(early_len, a.nsplit, a.step, a.ks_max);
      copy_keys(warp_keys(plan, early_len, split < plan.active));
    } else {
      early_len = -1;
    }
  } else {
    prefetch_split(a, split, g, b, D * 2);
  }
  const bool angles = ROPE && tid < D / 2;  // thread t: pair t's rotary angle
  const double freq = angles ? rope_kv_freq(a, D) : 0.0;
  int64_t early_pos = 0;
  double2 cs = make_double2(1.0, 0.0);
  if (angles) early_pos = rope_kv_pos(a, b, true), cs = rope_kv_cs(a, early_pos, freq);
  timeline_mark(a, kTlIssued);
  pdl_begin();
  timeline_mark(a, kTlReleased);

  const int rows = a.rows, Lq = static_cast<int>(a.Lq);
  // Query rows of this kv head: row r is (head g·group + r / Lq, position r % Lq), contiguous.
  const int64_t row0 = (static_cast<int64_t>(b) * a.Hq + static_cast<int64_t>(g) * a.group) * Lq;

  // Q's B fragments (n = query row lane/4, k = d), rows past the group zero. Issued first: they
  // do not depend on kv_len.
  // One loop per layout, so that all of a lane's loads are issued before the first is used (a
  // dtype switch per element kept an f32 Q's 64 loads apart: 10.9 vs 6.8 us per decode step).
  uint32_t qb[NT][KK][2];
  // f(nt, kk, h, n, i) for each of the lane's Q pairs: group row n (past the group: row 0's
  // element), element i of Q.
  auto q_pairs = [&](auto f) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const int n = nt * 8 + lane / 4;
      const int64_t base = (row0 + (n < rows ? n : 0)) * D + 2 * (lane % 4);
#pragma unroll
      for (int kk = 0; kk < KK; ++kk)
#pragma unroll
        for (int h = 0; h < 2; ++h) f(nt, kk, h, n, base + kk * 16 + h * 8);
    }
  };
  auto load_q = [&](auto pair) {
    q_pairs(
        [&](int nt, int kk, int h, int n, int64_t i) { qb[nt][kk][h] = n < rows ? pair(i) : 0u; });
  };
  __shared__ double2 rope_cs[ROPE ? D / 2 : 1];
  __shared__ int64_t rope_row;
  float2 raw[ROPE ? NT : 1][ROPE ? KK : 1][2];  // ROPE: q's pairs, rotated once the angles are in
  // ROPE: the lane's pairs of the new key and value rows, loaded with q (every warp: the one that
  // holds the row's slot learns it only later).
  float2 new_k[ROPE ? D / 64 : 1], new_v[ROPE ? D / 64 : 1];
  if constexpr (ROPE) {
    q_pairs([&](int nt, int kk, int h, int, int64_t i) {
      raw[nt][kk][h] = *reinterpret_cast<const float2*>(static_cast<const float*>(a.q) + i);
    });
    load_new_rows<D>(a, b, g, lane, new_k, new_v);
    if (angles) {
      const int64_t pos = rope_kv_pos(a, b, false);
      rope_cs[tid] = pos == early_pos ? cs : rope_kv_cs(a, pos, freq);
    }
    if (tid == 0) rope_row = rope_kv_row(a, D);
  } else if (a.q_pairs) {
    load_q([&](int64_t i) {
      return *reinterpret_cast<const uint32_t*>(static_cast<const uint16_t*>(a.q) + i);
    });
  } else if (a.q_f32x2) {
    load_q([&](int64_t i) {
      const float2 f = *reinterpret_cast<const float2*>(static_cast<const float*>(a.q) + i);
      return pack2<BF16>(f.x, f.y);
    });
  } else {
    load_q([&](int64_t i) {
      return pack2<BF16>(load<float>(a.q_dt, a.q, i), load<float>(a.q_dt, a.q, i + 1));
    });
  }

  bool bad;
  const int64_t kv_len = read_kv_len(a.kv_len, a.kv_len_dt, a.Lk, &bad);
  // The split's keys, divided by the actual length in multiples of 16 per warp.
  const SplitPlan plan = split_plan(kv_len, a.nsplit, a.step, a.ks_max);
  // (ROPE: every thread still goes to the barrier below; a dead split copies nothing.)
  const bool live = !bad && split < plan.active;
  if (EARLY == kEarlyNever || bad || early_len != kv_len) {
    if (EARLY != kEarlyNever && early_len >= 0) cp_async_wait<0>();  // before the rows are reused
    if constexpr (!ROPE) {
      if (bad) return nan_rows(a, g, b, D, tid, kMmaWarps * 32);
      if (split >= plan.active) return;
    }
    copy_keys(warp_keys(plan, kv_len, live));
  } else if constexpr (!ROPE && EARLY != kEarlyNever) {
    if (split >= plan.active) {
      cp_async_wait<0>();
      return;
    }
  }
  const bool direct = plan.active == 1;  // no merge: this block writes the output
  const WarpKeys wk = warp_keys(plan, kv_len, live);
  const int64_t wj0 = wk.wj0, wj1 = wk.wj1;
  const int nkw = wk.nkw, ntiles = wk.ntiles;
  timeline_mark(a, kTlPlanned);

  if constexpr (ROPE) {  // with the copies in flight: q rotated, this step's rows written
    __syncthreads();     // the angles and the row
    q_pairs([&](int nt, int kk, int h, int n, int64_t) {
      const float2 r = rope_pair(raw[nt][kk][h], rope_cs[kk * 8 + h * 4 + lane % 4]);
      qb[nt][kk][h] = n < rows ? pack2<BF16>(r.x, r.y) : 0u;
    });
    if (split == 0 && warp == 0) {  // into the caches (even past kv_len)
      const size_t o = ((static_cast<size_t>(b) * a.Hkv + g) * a.Lk + rope_row) * D;
      rope_kv_new_rows<BF16, D>(rope_cs, lane, new_k, new_v,
                                static_cast<uint16_t*>(const_cast<void*>(a.k)) + o,
                                static_cast<uint16_t*>(const_cast<void*>(a.v)) + o);
    }
    if (bad || !live) {
      if constexpr (EARLY != kEarlyNever) cp_async_wait<0>();  // none may land after the block
      if (bad) return nan_rows(a, g, b, D, tid, kMmaWarps * 32);
      return;
    }
  }

  // Masking needs each of this lane's rows as (head, position): hoisted out of the key loop.
  const bool masked = a.causal || a.mask.p;
  const int64_t off = kv_len - Lq;  // position of query 0
  // ldmatrix row/column of this lane: K as a 16x16 A tile; V transposed (Vᵀ as A).
  const int a_row = (lane % 8) + ((lane / 8) % 2) * 8, a_col = (lane / 16) * 8;
  const int v_row = (lane % 8) + (lane / 16) * 8, v_col = ((lane / 8) % 2) * 8;

  // Oᵀ accumulators: o[dm][nt] holds d = dm·16 + lane/4 (+8 in [2], [3]) of rows
  // nt·8 + 2·(lane%4) (+1 in [1], [3]).
  float o[KK][NT][4];
#pragma unroll
  for (int dm = 0; dm < KK; ++dm)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) o[dm][nt][0] = o[dm][nt][1] = o[dm][nt][2] = o[dm][nt][3] = 0.f;
  float mrow[NT][2], lrow[NT][2];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
    mrow[nt][0] = mrow[nt][1] = -INFINITY, lrow[nt][0] = lrow[nt][1] = 0.f;

  if constexpr (ROPE) {
    if (rope_row >= wj0 && rope_row < wj1) {  // this warp's copy of the row: the new values
      cp_async_wait<0>();
      __syncwarp();
      const int r = static_cast<int>(rope_row - wj0);
      rope_kv_new_rows<BF16, D>(rope_cs, lane, new_k, new_v, wK + r * P, wV + r * P);
    }
  }
  cp_async_wait<1>();  // this lane's K copies have landed; __syncwarp publishes the others'
  __syncwarp();
  timeline_mark(a, kTlKeys);
  for (int t = 0; t < ntiles; ++t) {
    // Sᵀ (16 keys x 8·NT rows); two accumulator chains halve the dependent mma latency.
    float sc[NT][4], sc2[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) sc[nt][e] = sc2[nt][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KK; ++kk) {
      uint32_t ka[4];
      ldsm_x4(ka, wK + (t * kTileKeys + a_row) * P + kk * 16 + a_col);
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
        mma16816<BF16>(kk % 2 ? sc2[nt] : sc[nt], ka, qb[nt][kk][0], qb[nt][kk][1]);
    }
    // Scale into the log2 domain; mask keys past this warp's range, causal and user masks.
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int jj = t * kTileKeys + lane / 4 + (e / 2) * 8;
        const int row = nt * 8 + 2 * (lane % 4) + (e % 2);
        float x = (sc[nt][e] + sc2[nt][e]) * a.scale_log2;
        if (jj >= nkw) {
          x = -INFINITY;
        } else if (masked && row < rows) {
          const int i = row % Lq;
          const int64_t j = wj0 + jj;
          if (a.causal && j > off + i)
            x = -INFINITY;
          else if (a.mask.p)
            x += mask_log2(a.mask, b, static_cast<int64_t>(g) * a.group + row / Lq, i, j);
        }
        sc[nt][e] = x;
      }
    // Online softmax: a row's keys sit in the 8 lanes sharing lane%4 (two per lane).
    uint32_t pb[NT][2];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        float mx = fmaxf(sc[nt][c], sc[nt][c + 2]);
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 4));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 8));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 16));
        const float mnew = fmaxf(mrow[nt][c], mx);
        const float muse = mnew == -INFINITY ? 0.f : mnew;  // all masked so far: no NaN
        const float alpha = ex2(mrow[nt][c] - muse);
        mrow[nt][c] = mnew;
        const float p0 = ex2(sc[nt][c] - muse), p1 = ex2(sc[nt][c + 2] - muse);
        sc[nt][c] = p0, sc[nt][c + 2] = p1;
        lrow[nt][c] = lrow[nt][c] * alpha + p0 + p1;  // lane-partial; reduced after the loop
#pragma unroll
        for (int dm = 0; dm < KK; ++dm) o[dm][nt][c] *= alpha, o[dm][nt][c + 2] *= alpha;
      }
      // Pᵀ (keys x rows) as the B fragment (k = key, n = row): one 8x8 transpose per 8 keys.
      pb[nt][0] = movmatrix_t(pack2<BF16>(sc[nt][0], sc[nt][1]));
      pb[nt][1] = movmatrix_t(pack2<BF16>(sc[nt][2], sc[nt][3]));
    }
    if (t == 0) {
      cp_async_wait<0>();  // V
      __syncwarp();
    }
    // Oᵀ += Vᵀ Pᵀ: Vᵀ's A fragments are transposed ldmatrix loads of V's rows.
#pragma unroll
    for (int dm = 0; dm < KK; ++dm) {
      uint32_t va[4];
      ldsm_x4_t(va, wV + (t * kTileKeys + v_row) * P + dm * 16 + v_col);
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) mma16816<BF16>(o[dm][nt], va, pb[nt][0], pb[nt][1]);
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // every warp is done with sK / sV: they become the partial-result area
  timeline_mark(a, kTlComputed);

#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      float l = lrow[nt][c];
      l += __shfl_xor_sync(0xffffffffu, l, 4);
      l += __shfl_xor_sync(0xffffffffu, l, 8);
      l += __shfl_xor_sync(0xffffffffu, l, 16);
      const int row = nt * 8 + 2 * (lane % 4) + c;
      if (row < rows) {
        float* dst = sO + (warp * R + row) * OP + lane / 4;
#pragma unroll
        for (int dm = 0; dm < KK; ++dm)
          dst[dm * 16] = o[dm][nt][c], dst[dm * 16 + 8] = o[dm][nt][c + 2];
        if (lane < 4) sML[2 * (warp * R + row)] = mrow[nt][c], sML[2 * (warp * R + row) + 1] = l;
      }
    }
  __syncthreads();

  // The warps' partials by log-sum-exp: the split's (max, sum, acc), or the output.
  for (int idx = tid; idx < rows * D; idx += kMmaWarps * 32) {
    const int r = idx / D, d = idx % D;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < kMmaWarps; ++w) mx = fmaxf(mx, sML[2 * (w * R + r)]);
    const float muse = mx == -INFINITY ? 0.f : mx;
    float l = 0.f, acc = 0.f;
#pragma unroll
    for (int w = 0; w < kMmaWarps; ++w) {
      const float wt = ex2(sML[2 * (w * R + r)] - muse);
      l += wt * sML[2 * (w * R + r) + 1];
      acc += wt * sO[(w * R + r) * OP + d];
    }
    const int64_t grow = row0 + r;
    if (direct) {
      store(a.out_dt, a.out, grow * D + d, l > 0.f ? acc / l : 0.f);
    } else {
      const int64_t pi = grow * a.nsplit + split;
      a.part_acc[pi * D + d] = acc;
      if (d == 0) a.part_ml[2 * pi] = mx, a.part_ml[2 * pi + 1] = l;
    }
  }
  timeline_mark(a, kTlPartial);
  if (!direct && a.counters) merge_if_last<D>(a, g, row0, plan.active, sO);
}

struct MergeArgs {
  const float *part_acc, *part_ml;
  void* out;
  int out_dt;
  int nsplit, D;
  int step, ks_max;  // the split kernel's split_plan
  int64_t Lk;
  const void* kv_len;
  int kv_len_dt;
};

// One block per (query row, 32 columns): out = sum_s w_s acc_s / sum_s w_s l_s with weights
// w_s = 2^(m_s - M). Each warp takes every kMergeWarps-th split; its first kMergeAhead loads of
// acc go out before the weights are known, so with up to kMergeWarps·kMergeAhead splits the whole
// merge is one L2 round trip. Every warp finds M and the sum itself (no barrier for them); warp 0
// publishes the weights and, at the end, adds up the warps' sums.
__global__ void __launch_bounds__(kMergeWarps * 32) merge_kernel(MergeArgs a) {
  __shared__ float sw[kMaxSplits];
  __shared__ float st[kMergeWarps][32];
  pdl_begin();  // the split kernel's results
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t row = blockIdx.x;
  const int d = blockIdx.y * 32 + lane;
  // The loads go out first: the first kMergeAhead of this warp's acc and the first 32 splits'
  // (max, sum) need neither kv_len nor the weights (splits past the active ones are read, not
  // used).
  const float* ml = a.part_ml + row * a.nsplit * 2;
  const float* acc = a.part_acc + row * a.nsplit * a.D + d;
  float av[kMergeAhead];
#pragma unroll
  for (int u = 0; u < kMergeAhead; ++u) {
    const int s = warp + u * kMergeWarps;
    av[u] = s < a.nsplit ? acc[static_cast<int64_t>(s) * a.D] : 0.f;
  }
  const float m0 = lane < a.nsplit ? ml[2 * lane] : -INFINITY;
  const float l0 = lane < a.nsplit ? ml[2 * lane + 1] : 0.f;
  bool bad;
  const int64_t kv_len = read_kv_len(a.kv_len, a.kv_len_dt, a.Lk, &bad);
  if (bad) {
    if (warp == 0) store(a.out_dt, a.out, row * a.D + d, __int_as_float(0x7fffffff));
    return;
  }
  const int ns = split_plan(kv_len, a.nsplit, a.step, a.ks_max).active;
  if (ns == 1) return;  // the split kernel wrote the output
  float mx = lane < ns ? m0 : -INFINITY;
  for (int s = lane + 32; s < ns; s += 32) mx = fmaxf(mx, ml[2 * s]);
  for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  float l = 0.f;
  for (int s = lane; s < ns; s += 32) {
    const float m = s < 32 ? m0 : ml[2 * s];
    const float w = m == -INFINITY ? 0.f : ex2(m - mx);  // empty or fully masked splits weigh 0
    l += w * (s < 32 ? l0 : ml[2 * s + 1]);
    if (warp == 0) sw[s] = w;
  }
  for (int o = 16; o > 0; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
  __syncthreads();
  float t[4] = {};
#pragma unroll
  for (int u = 0; u < kMergeAhead; ++u) {
    const int s = warp + u * kMergeWarps;
    if (s < ns) t[u % 4] += sw[s] * av[u];
  }
  // Longer contexts: the rest four loads at a time.
  int s = warp + kMergeAhead * kMergeWarps;
  for (; s + 3 * kMergeWarps < ns; s += 4 * kMergeWarps)
#pragma unroll
    for (int u = 0; u < 4; ++u)
      t[u] += sw[s + u * kMergeWarps] * acc[static_cast<int64_t>(s + u * kMergeWarps) * a.D];
  for (; s < ns; s += kMergeWarps) t[0] += sw[s] * acc[static_cast<int64_t>(s) * a.D];
  st[warp][lane] = (t[0] + t[1]) + (t[2] + t[3]);
  __syncthreads();
  if (warp == 0) {
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < kMergeWarps; ++w) sum += st[w][lane];
    store(a.out_dt, a.out, row * a.D + d, l > 0.f ? sum / l : 0.f);
  }
}

template <int KT, int D>
void launch_split(const DecodeArgs& a, int64_t B, cudaStream_t s) {
  auto kern = decode_kernel<KT, D>;
  size_t smem = decode_smem<KT, D>(a.ks_max);
  LOOM_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem)));
  dim3 grid(static_cast<unsigned>(a.nsplit), static_cast<unsigned>(a.Hkv),
            static_cast<unsigned>(B));
  launch_pdl(kern, grid, kThreads, smem, s, a);
}

template <bool BF16, int D, int NT, bool ROPE = false>
void launch_split_mma(const DecodeArgs& a, int64_t B, cudaStream_t s) {
  void (*kern)(DecodeArgs) = nullptr;
  if constexpr (ROPE)
    kern = decode_mma_kernel<BF16, D, NT, ROPE, kEarlyArgs>;
  else
    kern = a.kv_early ? decode_mma_kernel<BF16, D, NT, ROPE, kEarlyAlways>
                      : decode_mma_kernel<BF16, D, NT, ROPE, kEarlyNever>;
  size_t smem = mma_smem<D, NT>(a.ks_max);
  LOOM_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem)));
  dim3 grid(static_cast<unsigned>(a.nsplit), static_cast<unsigned>(a.Hkv),
            static_cast<unsigned>(B));
  launch_pdl(kern, grid, kMmaWarps * 32, smem, s, a);
}

using SplitFn = void (*)(const DecodeArgs&, int64_t, cudaStream_t);
template <int KT>
SplitFn split_fn(int64_t d) {
  return d == 64 ? launch_split<KT, 64> : d == 128 ? launch_split<KT, 128> : launch_split<KT, 256>;
}
// The tensor-core kernel for D and the rows per kv head (one n8 tile up to 8 rows, else two).
template <bool BF16>
SplitFn mma_fn(int64_t d, int rows, bool rope) {
  if (rope)
    return d == 64 ? launch_split_mma<BF16, 64, 1, true> : launch_split_mma<BF16, 128, 1, true>;
  if (rows <= 8) return d == 64 ? launch_split_mma<BF16, 64, 1> : launch_split_mma<BF16, 128, 1>;
  return d == 64 ? launch_split_mma<BF16, 64, 2> : launch_split_mma<BF16, 128, 2>;
}

int elem_size(DType t) { return t == DType::f32 ? 4 : 2; }

// Largest keys-per-split whose K and V ranges fit the shared-memory budget. Larger splits (fewer
// blocks of more keys per SM) measured slower for the tensor-core kernel too.
int max_split_keys(const SdpaLaunch& a) {
  int64_t rb = a.D * elem_size(a.kv_dtype) + 16;
  int ks = 256;
  while (ks > 8 && 2 * ks * rb > kKvSmem) ks /= 2;
  return ks;
}

// Keys per split: the largest (<= the shared-memory bound) that still gives a block per
// multiprocessor; more splits only add merge work. The tensor-core kernel takes multiples of 128
// (a 16-key tile per warp).
int choose_split_keys(const SdpaLaunch& a, int sms, bool mma) {
  const int lo = mma ? kTileKeys * kMmaWarps : 32;
  int ks = max_split_keys(a);
  if (a.decode_split_keys > 0) {  // asked for, within what the kernels and the merge take
    int want = std::min(ks, a.decode_split_keys);
    want = mma ? std::max(lo, want / lo * lo) : want;
    while (want < ks && (a.Lk + want - 1) / want > kMaxSplits) want *= 2;
    return want;
  }
  while (ks > lo && a.B * a.Hkv * ((a.Lk + ks - 1) / ks) < sms) ks /= 2;
  return ks;
}

bool use_mma(const SdpaLaunch& a) {
  const bool fits = (a.kv_dtype == DType::f16 || a.kv_dtype == DType::bf16) &&
                    (a.D == 64 || a.D == 128) && a.Hq / a.Hkv * a.Lq <= 16 &&
                    max_split_keys(a) >= kTileKeys * kMmaWarps;
  return fits && a.decode_kernel != 0;
}

}  // namespace

bool decode_supports(const SdpaLaunch& a) {
  bool kv = a.kv_dtype == DType::f16 || a.kv_dtype == DType::bf16 || a.kv_dtype == DType::f32;
  if (!(a.Lq >= 1 && a.Lq <= 8 && kv && a.D == a.Dv && (a.D == 64 || a.D == 128 || a.D == 256) &&
        aligned16(a.k) && aligned16(a.v) && a.Hkv <= 65535 && a.B <= 65535 &&
        a.Hq / a.Hkv * a.Lq < (int64_t{1} << 20)))
    return false;
  int64_t ks = max_split_keys(a);
  return (a.Lk + ks - 1) / ks <= kMaxSplits;
}

bool decode_rope_kv_fits(const SdpaLaunch& a) {
  return decode_supports(a) && use_mma(a) && a.Lq == 1 && a.Hq / a.Hkv <= 8 &&
         a.q_dtype == DType::f32 && (reinterpret_cast<uintptr_t>(a.q) & 7u) == 0 &&
         (reinterpret_cast<uintptr_t>(a.rope_kv.k) & 7u) == 0 &&
         (reinterpret_cast<uintptr_t>(a.rope_kv.v) & 7u) == 0 &&
         (a.rope_kv.pos_dtype == DType::i32 || a.rope_kv.pos_dtype == DType::i64) &&
         (a.rope_kv.starts_dtype == DType::i32 || a.rope_kv.starts_dtype == DType::i64);
}

void launch_decode(const SdpaLaunch& a, cudaStream_t s, int device) {
  DecodeArgs d{};
  d.q = a.q, d.k = a.k, d.v = a.v, d.out = a.out;
  d.q_dt = static_cast<int>(a.q_dtype), d.out_dt = static_cast<int>(a.out_dtype);
  d.Hq = a.Hq, d.Hkv = a.Hkv, d.Lq = a.Lq, d.Lk = a.Lk;
  d.group = static_cast<int>(a.Hq / a.Hkv);
  d.rows = static_cast<int>(d.group * a.Lq);
  d.mask = mask_view(a);
  d.kv_len = a.kv_len;
  d.kv_len_dt = static_cast<int>(a.kv_len_dtype);
  d.scale_log2 = a.scale * kLog2e;
  d.causal = a.causal;
  static const bool prefetch = env_on("LOOM_DECODE_L2_PREFETCH");
  d.prefetch = prefetch;
  static const bool kv_early = env_on("LOOM_DECODE_KV_EARLY");
  d.kv_early = kv_early && a.kv_settled;
  d.early_skew = a.decode_early_skew;
  d.timeline = a.decode_timeline, d.timeline_seq = a.decode_timeline_seq;
  d.timeline_rows = a.decode_timeline_rows;
  d.q_pairs = a.q_dtype == a.kv_dtype && (reinterpret_cast<uintptr_t>(a.q) & 3u) == 0;
  d.q_f32x2 = a.q_dtype == DType::f32 && (reinterpret_cast<uintptr_t>(a.q) & 7u) == 0;
  const bool rope = a.rope_kv.k != nullptr;
  LOOM_CHECK(!rope || decode_rope_kv_fits(a),
             "[cuda] sdpa: the decode kernel cannot take "
             "rope_write_kv_sdpa's rows for this launch");
  d.rk = a.rope_kv;
  const bool mma = use_mma(a);
  d.ks_max = choose_split_keys(a, sm_count(device), mma);
  d.step = mma ? kTileKeys * kMmaWarps : 8;  // a 16-key tile per warp; 8 keys
  d.nsplit = static_cast<int>(std::max<int64_t>(1, (a.Lk + d.ks_max - 1) / d.ks_max));
  LOOM_CHECK(d.nsplit <= kMaxSplits, "[cuda] sdpa: ", d.nsplit, " key splits exceed ", kMaxSplits);
  std::shared_ptr<Storage> part;
  if (d.nsplit > 1) {
    int64_t rows = a.B * a.Hq * a.Lq;
    size_t n_acc = static_cast<size_t>(rows * d.nsplit * a.D);
    part = scratch(device, (n_acc + static_cast<size_t>(rows * d.nsplit * 2)) * sizeof(float));
    d.part_acc = reinterpret_cast<float*>(part->data());
    d.part_ml = d.part_acc + n_acc;
  }
  SplitFn f = mma ? (a.kv_dtype == DType::bf16 ? mma_fn<true>(a.D, d.rows, rope)
                                               : mma_fn<false>(a.D, d.rows, rope))
              : a.kv_dtype == DType::f16  ? split_fn<kF16>(a.D)
              : a.kv_dtype == DType::bf16 ? split_fn<kBF16>(a.D)
                                          : split_fn<kF32>(a.D);
  // One wave of blocks (about 2 per SM) with at most kKernelMergeSplits splits merges its own
  // splits (merge_if_last); other launches (and all with LOOM_DECODE_SELF_MERGE=0) are followed by
  // the merge kernel. (One wave has far fewer (batch, kv head) pairs than there are counters.)
  static const bool self_merge = env_on("LOOM_DECODE_SELF_MERGE");
  if (d.nsplit > 1 && d.nsplit <= kKernelMergeSplits && self_merge &&
      a.B * a.Hkv * d.nsplit <= 2 * sm_count(device) && a.B * a.Hkv <= kSplitCounters)
    d.counters = split_counters(device);
  f(d, a.B, s);
  if (d.nsplit == 1 || d.counters) return;

  MergeArgs m{};
  m.part_acc = d.part_acc, m.part_ml = d.part_ml;
  m.out = a.out, m.out_dt = d.out_dt;
  m.nsplit = d.nsplit, m.D = static_cast<int>(a.D);
  m.step = d.step, m.ks_max = d.ks_max;
  m.Lk = a.Lk, m.kv_len = a.kv_len, m.kv_len_dt = d.kv_len_dt;
  launch_pdl(merge_kernel,
             dim3(static_cast<unsigned>(a.B * a.Hq * a.Lq), static_cast<unsigned>(a.D / 32)),
             kMergeWarps * 32, 0, s, m);
}

}  // namespace loom::backends::cuda::attn
