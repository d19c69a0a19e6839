// GEMV with int8 activations for the block formats whose CPU kernels use an integer dot
// (q4_0, q4_1, q8_0, affine_u4, affine_i8): the same arithmetic as the CPU backend, on dp4a.
//
// Why: the float GEMV (quant_matmul.cuh) spends ~40 instructions per 8 weights decoding codes to
// floats and multiplying them, which bounds it at ~35 % of the memory bandwidth on an H100. Here a
// CTA first quantizes x per block of 32 into shared memory exactly as the CPU does (d = max|x| /
// 127, q = round(x / d), s = d·Σq), then every block of 32 weights costs a few byte loads, mask /
// shift and 8 dp4a: y += d_w·d_x·Σ q_w·q_x + m_w·s_x. Since CPU and GPU quantize x identically and
// integer sums are exact, the two backends agree to float rounding of the final sums.
//
// Shape of the work: one wave of persistent CTAs of 8 warps (so x is quantized once per CTA, not
// once per row); a warp owns two weight rows at a time, its lanes take the rows' blocks
// with a stride of 32, and the loads of both rows and two blocks each are in flight together.
#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>

#include "backends/cuda/device_util.cuh"
#include "backends/cuda/quant_matmul.h"

namespace loom::backends::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kRows = 2;  // weight rows per warp at a time

struct Int8Args {
  const uint8_t* w;
  int64_t n, rb;
  int k, kb, m;
  const void* x;
  int xdt;
  bool xvec;  // x f32 rows 16-byte aligned: vector loads
  void* y;
};

// Block layouts: BYTES per block, QS where its codes start, FOUR for 4-bit codes, ALIGN4 when
// blocks are 4-byte aligned (codes read as words, else as half-words), INTER for affine_u4's
// nibble pairs; offset() is the block's m_w (CPU: block_offset in cpu/quant/internal.h).
template <int F>
struct Blk;
template <>
struct Blk<kQ4_0> {
  static constexpr int BYTES = 18, QS = 2;
  static constexpr bool FOUR = true, ALIGN4 = false, INTER = false;
  static __device__ float offset(const uint8_t*, float d) { return -8.f * d; }
};
template <>
struct Blk<kQ4_1> {
  static constexpr int BYTES = 20, QS = 4;
  static constexpr bool FOUR = true, ALIGN4 = true, INTER = false;
  static __device__ float offset(const uint8_t* b, float) {
    return h2f(*reinterpret_cast<const uint16_t*>(b + 2));
  }
};
template <>
struct Blk<kQ8_0> {
  static constexpr int BYTES = 34, QS = 2;
  static constexpr bool FOUR = false, ALIGN4 = false, INTER = false;
  static __device__ float offset(const uint8_t*, float) { return 0.f; }
};
template <>
struct Blk<kAffineU4Blocks> {  // element 2i in the low nibble of byte i, 2i+1 in the high one
  static constexpr int BYTES = 20, QS = 4;
  static constexpr bool FOUR = true, ALIGN4 = true, INTER = true;
  static __device__ float offset(const uint8_t* b, float d) {
    return -h2f(*reinterpret_cast<const uint16_t*>(b + 2)) * d;
  }
};
template <>
struct Blk<kAffineI8Blocks> {
  static constexpr int BYTES = 36, QS = 4;
  static constexpr bool FOUR = false, ALIGN4 = true, INTER = false;
  static __device__ float offset(const uint8_t* b, float d) {
    return -h2f(*reinterpret_cast<const uint16_t*>(b + 2)) * d;
  }
};

// 4-byte word j of the block's codes (2-byte aligned blocks: two half-word loads).
template <class B>
__device__ __forceinline__ int code_word(const uint8_t* qs, int j) {
  if constexpr (B::ALIGN4) {
    return __ldg(reinterpret_cast<const int*>(qs) + j);
  } else {
    const auto* h = reinterpret_cast<const uint16_t*>(qs) + 2 * j;
    return static_cast<int>(static_cast<uint32_t>(__ldg(h)) |
                            (static_cast<uint32_t>(__ldg(h + 1)) << 16));
  }
}

template <int F, int MT>
__global__ void __launch_bounds__(kWarps * 32) gemv_int8_kernel(const Int8Args a) {
  using B = Blk<F>;
  extern __shared__ int4 smem4[];
  int* xq = reinterpret_cast<int*>(smem4);                    // [MT][k / 4] int8 x 4
  float* xd = reinterpret_cast<float*>(xq + MT * (a.k / 4));  // [MT][kb] scales
  float* xs = xd + MT * a.kb;                                 // [MT][kb] scale · Σq
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

  // x -> int8 per block of 32, the CPU backend's rounding (quantize_activations). A thread takes
  // a whole block: its 32 loads are independent and in flight together (a warp-per-block loop
  // would pay one L2 round trip per block in sequence, microseconds for a long x).
  for (int mb = threadIdx.x; mb < a.m * a.kb; mb += kWarps * 32) {
    const int mi = mb / a.kb, b = mb % a.kb;
    const int64_t x0 = static_cast<int64_t>(mi) * a.k + 32 * b;
    float v[32];
    if (a.xdt == kF32 && a.xvec) {
      const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(a.x) + x0);
#pragma unroll
      for (int t = 0; t < 8; ++t) {
        const float4 f = __ldg(p + t);
        v[4 * t] = f.x, v[4 * t + 1] = f.y, v[4 * t + 2] = f.z, v[4 * t + 3] = f.w;
      }
    } else {
#pragma unroll
      for (int t = 0; t < 32; ++t) v[t] = load<float>(a.xdt, a.x, x0 + t);
    }
    float amax = 0.f;
#pragma unroll
    for (int t = 0; t < 32; ++t) amax = fmaxf(amax, fabsf(v[t]));
    const float d = __fdiv_rn(amax, 127.0f);
    const float id = d != 0.f ? __fdiv_rn(1.0f, d) : 0.f;
    int sum = 0;
    uint32_t words[8] = {};
#pragma unroll
    for (int t = 0; t < 32; ++t) {
      const int q = static_cast<int>(rintf(__fmul_rn(v[t], id)));
      sum += q;
      // affine_u4 pairs element 2i with 2i+1 in one byte: x is stored evens first, then odds.
      const int pos = B::INTER ? ((t & 1) ? 16 + (t >> 1) : t >> 1) : t;
      words[pos >> 2] |= (static_cast<uint32_t>(q) & 0xFFu) << (8 * (pos & 3));
    }
    int4* dst = reinterpret_cast<int4*>(xq + mi * (a.k / 4) + 8 * b);
    dst[0] = make_int4(static_cast<int>(words[0]), static_cast<int>(words[1]),
                       static_cast<int>(words[2]), static_cast<int>(words[3]));
    dst[1] = make_int4(static_cast<int>(words[4]), static_cast<int>(words[5]),
                       static_cast<int>(words[6]), static_cast<int>(words[7]));
    xd[mb] = d, xs[mb] = d * static_cast<float>(sum);
  }
  __syncthreads();

  // A warp takes kRows rows at a time and interleaves their loads: twice the bytes in flight.
  for (int64_t row0 = (static_cast<int64_t>(blockIdx.x) * kWarps + warp) * kRows; row0 < a.n;
       row0 += static_cast<int64_t>(gridDim.x) * kWarps * kRows) {
    float acc[kRows][MT];
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int mi = 0; mi < MT; ++mi) acc[r][mi] = 0.f;
#pragma unroll 2
    for (int b = lane; b < a.kb; b += 32) {
      float dw[kRows], wm[kRows];
      int c[kRows][B::FOUR ? 4 : 8];
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        // Rows past n re-read the last row (in bounds; their sums are never stored).
        const int64_t row = row0 + r < a.n ? row0 + r : a.n - 1;
        const uint8_t* blk = a.w + row * a.rb + static_cast<int64_t>(b) * B::BYTES;
        dw[r] = h2f(__ldg(reinterpret_cast<const uint16_t*>(blk)));
        wm[r] = B::offset(blk, dw[r]);
#pragma unroll
        for (int j = 0; j < (B::FOUR ? 4 : 8); ++j) c[r][j] = code_word<B>(blk + B::QS, j);
      }
#pragma unroll
      for (int mi = 0; mi < MT; ++mi) {
        if (mi >= a.m) break;
        const int4* xv = reinterpret_cast<const int4*>(xq + mi * (a.k / 4) + 8 * b);
        const int4 x0 = xv[0], x1 = xv[1];
        const int xw[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
        const int xi = mi * a.kb + b;
        const float dx = xd[xi], sx = xs[xi];
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          int sumi = 0;
          if constexpr (B::FOUR) {
#pragma unroll
            for (int j = 0; j < 4; ++j) {
              sumi = __dp4a(c[r][j] & 0x0F0F0F0F, xw[j], sumi);
              sumi = __dp4a((c[r][j] >> 4) & 0x0F0F0F0F, xw[4 + j], sumi);
            }
          } else {
#pragma unroll
            for (int j = 0; j < 8; ++j) sumi = __dp4a(c[r][j], xw[j], sumi);
          }
          acc[r][mi] += dw[r] * dx * static_cast<float>(sumi) + wm[r] * sx;
        }
      }
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int mi = 0; mi < MT; ++mi) {
        float v = acc[r][mi];
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (lane == 0 && mi < a.m && row0 + r < a.n)
          store(a.xdt, a.y, static_cast<int64_t>(mi) * a.n + row0 + r, v);
      }
  }
}

template <int F, int MT>
void launch_int8(cudaStream_t s, const Int8Args& a, size_t smem) {
  auto kern = gemv_int8_kernel<F, MT>;
  if (smem > 48 * 1024)
    LOOM_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem)));
  // One wave of persistent CTAs, as many as fit on the SMs at once: x is quantized once per CTA
  // (k·m bytes of shared memory, read from L2), and a CTA beyond the resident ones would run
  // its whole share after the others, doubling the time. LOOM_QMM_INT8_CTAS caps CTAs per SM.
  static std::mutex mutex;
  static std::map<size_t, int> fit;  // resident CTAs per SM by shared-memory size
  int per_sm = 0;
  {
    std::lock_guard lock(mutex);
    int& f = fit[smem];
    if (!f) {
      LOOM_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&f, kern, kWarps * 32, smem));
      f = std::max(f, 1);
    }
    per_sm = f;
  }
  static const int cap = [] {  // read once: this runs for every decode-step product
    const char* e = std::getenv("LOOM_QMM_INT8_CTAS");
    return e ? std::max(std::atoi(e), 0) : 0;
  }();
  if (cap > 0) per_sm = std::min(per_sm, cap);
  int device = 0;  // the backend made the launch's device current (stream_for)
  LOOM_CUDA_CHECK(cudaGetDevice(&device));
  const int64_t want = (a.n + kWarps * kRows - 1) / (kWarps * kRows);
  const auto grid = static_cast<unsigned>(
      std::min<int64_t>(want, static_cast<int64_t>(per_sm) * sm_count(device)));
  kern<<<grid, kWarps * 32, smem, s>>>(a);
  LOOM_CUDA_LAUNCHED();
}

template <int F>
void launch_mt(cudaStream_t s, const Int8Args& a, size_t smem, int mt) {
  switch (mt) {
    case 1:
      return launch_int8<F, 1>(s, a, smem);
    case 2:
      return launch_int8<F, 2>(s, a, smem);
    case 4:
      return launch_int8<F, 4>(s, a, smem);
    default:
      return launch_int8<F, 8>(s, a, smem);
  }
}

}  // namespace

bool quant_gemv_int8_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("LOOM_QMM_INT8");
    return !(e && e[0] == '0');
  }();
  return on;
}

bool launch_quant_gemv_int8(cudaStream_t s, const QuantWeights& w, const void* x, int x_dtype,
                            int64_t m, void* y) {
  const int f = w.format;
  if (!quant_gemv_int8_enabled() || m < 1 || m > 8 || w.k % 32 || w.k > (1 << 24) || !w.w)
    return false;
  if (f != kQ4_0 && f != kQ4_1 && f != kQ8_0 && f != kAffineU4Blocks && f != kAffineI8Blocks)
    return false;
  if (x_dtype != kF32 && x_dtype != kF16 && x_dtype != kBF16) return false;
  // Codes are read as half-words (18- and 34-byte blocks) or words: rows must keep that alignment.
  const int64_t align = f == kQ4_0 || f == kQ8_0 ? 2 : 4;
  if (reinterpret_cast<uintptr_t>(w.w) % align || w.row_bytes % align) return false;
  const int mt = m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : 8;
  const size_t smem = static_cast<size_t>(mt) * static_cast<size_t>(w.k) +
                      2 * sizeof(float) * static_cast<size_t>(mt) * static_cast<size_t>(w.k / 32);
  if (smem > 200 * 1024) return false;
  Int8Args a;
  a.w = static_cast<const uint8_t*>(w.w), a.n = w.n, a.rb = w.row_bytes;
  a.k = static_cast<int>(w.k), a.kb = static_cast<int>(w.k / 32), a.m = static_cast<int>(m);
  a.x = x, a.xdt = x_dtype, a.xvec = reinterpret_cast<uintptr_t>(x) % 16 == 0, a.y = y;
  switch (f) {
    case kQ4_0:
      launch_mt<kQ4_0>(s, a, smem, mt);
      break;
    case kQ4_1:
      launch_mt<kQ4_1>(s, a, smem, mt);
      break;
    case kQ8_0:
      launch_mt<kQ8_0>(s, a, smem, mt);
      break;
    case kAffineU4Blocks:
      launch_mt<kAffineU4Blocks>(s, a, smem, mt);
      break;
    default:
      launch_mt<kAffineI8Blocks>(s, a, smem, mt);
      break;
  }
  return true;
}

}  // namespace loom::backends::cuda
