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
// once per row); a warp owns one or two weight rows at a time and its lanes take the rows' blocks
// with a stride of 32. Two ways to read the weights:
// - staged (every format, 16-byte aligned weights): each warp copies its rows into shared memory
//   with 16-byte cp.async, 2 or 4 steps ahead of the one it computes, and its lanes parse the
//   blocks from there. Read directly, 2-byte aligned blocks (q4_0, q8_0) take 8 (16) half-word
//   loads per block per lane, and that count of narrow loads held q4_0 at ~63 % of the copy
//   bandwidth; the 4-byte aligned ones (q4_1, affine_u4, affine_i8) reached 53-65 % at 7B
//   shapes (m = 1), 69-87 % staged. With m >= 4 (two rows per warp) those stay direct.
// - direct (LOOM_QMM_INT8_STAGE=0, or where the stages do not fit): the loads of two rows and
//   two blocks each are in flight together, codes read straight from global memory.
// Either kernel can form x itself as rms_norm(a + b)·γ (op add_rms_norm_quantized_matmul, short
// rows): the norm then costs no kernel of its own.
#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>

#include "backends/cuda/device_util.cuh"
#include "backends/cuda/pdl.cuh"
#include "backends/cuda/quant_int8_blocks.cuh"
#include "backends/cuda/quant_matmul.h"
#include "backends/cuda/quant_stage.cuh"

namespace loom::backends::cuda {

// quant_stage.cuh
int resident_ctas(const void* kern, int device, int threads, size_t smem) {
  static std::mutex mutex;
  static std::map<std::pair<const void*, int>, size_t> opt_in;
  static std::map<std::tuple<const void*, int, size_t>, int> fit;
  std::lock_guard lock(mutex);
  int& f = fit[{kern, device, smem}];
  if (!f) {
    size_t& o = opt_in[{kern, device}];
    // Without the opt-in, dynamic + static shared memory must stay within 48 KB (the norm
    // prologue's static arrays took a 48896-byte launch over it).
    cudaFuncAttributes fa{};
    LOOM_CUDA_CHECK(cudaFuncGetAttributes(&fa, kern));
    if (smem + fa.sharedSizeBytes > 48 * 1024 && smem > o) {
      LOOM_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(smem)));
      o = smem;
    }
    LOOM_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&f, kern, threads, smem));
    f = std::max(f, 1);
  }
  return f;
}

namespace {

constexpr int kWarps = 8;
constexpr int kRows = 2;  // direct path: weight rows per warp at a time
// CTAs per SM the register allocation must allow (__launch_bounds__): for m <= 2, 3 CTAs of
// either kernel fit in shared memory at k = 4096, and without the bound ptxas sometimes takes
// ~127 registers (2 CTAs) or spills at 64.
template <int MT>
constexpr int kMinCtas = MT <= 2 ? 3 : 2;

struct Int8Args {
  const uint8_t* w;  // 16-byte aligned for the staged path
  int64_t n, rb;
  int k, kb, kbp, m;  // kbp: kb rounded up to 32 (x's layout in shared memory)
  const void* x;
  int xdt;
  bool xvec;  // x f32 rows 16-byte aligned: vector loads
  int early;  // w is a constant: steps whose copies start before the previous kernel ends
  void* y;
  // x = rms_norm(na + nb) · gamma instead of x (add_rms_norm_quantized_matmul): f32 rows of k;
  // CTA 0 stores na + nb to nsum.
  const float *na = nullptr, *nb = nullptr, *gamma = nullptr;
  float* nsum = nullptr;
  float eps = 0.f;
  // na / gamma are read before the previous kernel ends (quantize_x_kernel; KernelContext's
  // settled and constant inputs): no kernel that may still run writes them.
  bool na_early = false, gamma_early = false;
  // x = silu(g) · u where [g, u] are the halves of the f32 rows of 2k at x
  // (swiglu_quantized_matmul): formed by quantize_x_kernel, so long rows only.
  bool swiglu = false;
  // x already quantized by quantize_x_kernel (long rows): the image of x's shared memory, which
  // the prologue copies instead of quantizing.
  const int4* xg = nullptr;
  // The image holds (na + nb) · gamma, not yet normalised, and here its blocks' sums of squares
  // of na + nb (long rows of add_rms_norm_quantized_matmul): the prologue reduces them to each
  // row's 1 / rms, which scales the row's sums as they are stored (the norm is linear in x).
  const float* xss = nullptr;
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

// The norm prologue (Int8Args::na): 1 / rms of each row of na + nb into inv[mi]; CTA 0 stores the
// sums. The same f32 sum and sum of squares as the CUDA add_rms_norm kernel, in another order.
__device__ __forceinline__ void norm_rows(const Int8Args& a, float* inv) {
  __shared__ float part[8][kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int mi = 0; mi < a.m; ++mi) {
    const float4* a4 = reinterpret_cast<const float4*>(a.na + static_cast<int64_t>(mi) * a.k);
    const float4* b4 = reinterpret_cast<const float4*>(a.nb + static_cast<int64_t>(mi) * a.k);
    float ss = 0.f;
    for (int j = threadIdx.x; j < a.k / 4; j += kWarps * 32) {
      const float4 x = __ldg(a4 + j), y = __ldg(b4 + j);
      const float4 v = make_float4(x.x + y.x, x.y + y.y, x.z + y.z, x.w + y.w);
      if (blockIdx.x == 0)
        reinterpret_cast<float4*>(a.nsum + static_cast<int64_t>(mi) * a.k)[j] = v;
      ss += (v.x * v.x + v.y * v.y) + (v.z * v.z + v.w * v.w);
    }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (lane == 0) part[mi][warp] = ss;
  }
  __syncthreads();
  if (threadIdx.x < a.m) {
    float ss = 0.f;
    for (int w = 0; w < kWarps; ++w) ss += part[threadIdx.x][w];
    inv[threadIdx.x] = rsqrtf(ss / static_cast<float>(a.k) + a.eps);
  }
  __syncthreads();
}

// Block mb (row mi = mb / kb, block b) of x -> int8, the CPU backend's rounding
// (quantize_activations), stored in x's shared-memory layout at xq4 / xd / xs (inv: the norm
// prologue's row scales).
template <bool INTER>
__device__ __forceinline__ void quantize_x_block(const Int8Args& a, int mb, const float* inv,
                                                 int4* xq4, float* xd, float* xs) {
  const int mi = mb / a.kb, b = mb % a.kb;
  const int64_t x0 = static_cast<int64_t>(mi) * a.k + 32 * b;
  float v[32];
  if (a.na) {  // rms_norm(na + nb) · gamma, as the norm kernel rounds it (then quantized)
#pragma unroll
    for (int t = 0; t < 8; ++t) {
      const float4 x = __ldg(reinterpret_cast<const float4*>(a.na + x0) + t);
      const float4 y = __ldg(reinterpret_cast<const float4*>(a.nb + x0) + t);
      const float4 g = __ldg(reinterpret_cast<const float4*>(a.gamma + 32 * b) + t);
      v[4 * t] = (x.x + y.x) * inv[mi] * g.x, v[4 * t + 1] = (x.y + y.y) * inv[mi] * g.y;
      v[4 * t + 2] = (x.z + y.z) * inv[mi] * g.z, v[4 * t + 3] = (x.w + y.w) * inv[mi] * g.w;
    }
  } else if (a.xdt == kF32 && a.xvec) {
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
  uint32_t words[8];
  float d;
  int sum;
  quantize_block32<INTER>(v, words, d, sum);
  int4* dst = xq4 + x_slot(a.kbp, mi, b);
  dst[0] = make_int4(static_cast<int>(words[0]), static_cast<int>(words[1]),
                     static_cast<int>(words[2]), static_cast<int>(words[3]));
  dst[32] = make_int4(static_cast<int>(words[4]), static_cast<int>(words[5]),
                      static_cast<int>(words[6]), static_cast<int>(words[7]));
  xd[mb] = d, xs[mb] = d * static_cast<float>(sum);
}

// A group of 8 lanes (lanes 8j..8j+7; every lane of the warp calls this) quantizes one block of
// 32 values, 4 per lane (lane `quarter` = lane % 8 holds elements 4·quarter..4·quarter + 3), with
// quantize_block32's rounding: amax and Σq by shuffles within the group. With `store`, writes the
// lane's 4 codes into the block's code bytes at `codes` (x_slot's layout: 16 bytes, the other 16
// 32 int4 later) and, from the group's first lane, d to *d_at and d·Σq to *s_at.
template <bool INTER>
__device__ __forceinline__ void quantize8(const float (&x)[4], int quarter, bool store,
                                          int8_t* codes, float* d_at, float* s_at) {
  float amax = fmaxf(fmaxf(fabsf(x[0]), fabsf(x[1])), fmaxf(fabsf(x[2]), fabsf(x[3])));
  for (int o = 4; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float d = __fdiv_rn(amax, 127.0f);
  const float id = d != 0.f ? __fdiv_rn(1.0f, d) : 0.f;
  int q[4], sum = 0;
#pragma unroll
  for (int c = 0; c < 4; ++c) sum += q[c] = static_cast<int>(rintf(__fmul_rn(x[c], id)));
  for (int o = 4; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (!store) return;
#pragma unroll
  for (int c = 0; c < 4; ++c) {
    const int e = 4 * quarter + c;  // element of the block
    const int pos = INTER ? ((e & 1) ? 16 + (e >> 1) : e >> 1) : e;
    codes[pos < 16 ? pos : 32 * 16 + pos - 16] = static_cast<int8_t>(q[c]);
  }
  if (quarter == 0) *d_at = d, *s_at = d * static_cast<float>(sum);
}

// silu(g) · u for 4 elements, as the stitched silu · mul computes it.
__device__ __forceinline__ void swiglu4(const float4 g, const float4 u, float (&x)[4]) {
  x[0] = g.x / (1.0f + expf(-g.x)) * u.x, x[1] = g.y / (1.0f + expf(-g.y)) * u.y;
  x[2] = g.z / (1.0f + expf(-g.z)) * u.z, x[3] = g.w / (1.0f + expf(-g.w)) * u.w;
}

// x -> int8 per block of 32 into shared memory. A thread takes a whole block: its 32 loads are
// independent and in flight together (a warp-per-block loop would pay one L2 round trip per
// block in sequence, microseconds for a long x). With a.xg (quantized by quantize_x_kernel) the
// image is copied instead: k + k / 4 bytes per row from L2 rather than 4k, and no arithmetic.
// inv (shared, a float per row): the rows' 1 / rms where x is normalised (Int8Args::na, ::xss).
template <bool INTER, int MT>
__device__ __forceinline__ void quantize_x(const Int8Args& a, int4* xq4, float* xd, float* xs,
                                           float* inv) {
  if (a.xg) {
    copy_x_image(a.xg, MT, a.kb, a.kbp, xq4, xd);  // xs follows xd
    const int warp = static_cast<int>(threadIdx.x >> 5), lane = static_cast<int>(threadIdx.x & 31);
    if (a.xss && warp < a.m) {  // a warp per row: its blocks' sums of squares -> 1 / rms
      float ss = 0.f;
      for (int b = lane; b < a.kb; b += 32) ss += __ldg(a.xss + warp * a.kb + b);
      for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
      if (lane == 0) inv[warp] = rsqrtf(ss / static_cast<float>(a.k) + a.eps);
    }
    return;
  }
  if (a.swiglu) {  // x = silu(g) · u from the rows of 2k at a.x: a group of 8 lanes per block
    const int quarter = static_cast<int>(threadIdx.x % 8);
    for (int base = 0; base < a.m * a.kb; base += kWarps * 32 / 8) {  // the same for every lane
      const int mb = base + static_cast<int>(threadIdx.x / 8);
      const bool on = mb < a.m * a.kb;
      const int mi = on ? mb / a.kb : 0, b = on ? mb % a.kb : 0;
      float x[4] = {0.f, 0.f, 0.f, 0.f};
      if (on) {
        const float* g =
            static_cast<const float*>(a.x) + 2 * static_cast<int64_t>(mi) * a.k + 32 * b;
        swiglu4(__ldg(reinterpret_cast<const float4*>(g) + quarter),
                __ldg(reinterpret_cast<const float4*>(g + a.k) + quarter), x);
      }
      quantize8<INTER>(x, quarter, on, reinterpret_cast<int8_t*>(xq4 + x_slot(a.kbp, mi, b)),
                       xd + mb, xs + mb);
    }
    return;
  }
  if (a.na) norm_rows(a, inv);
  for (int mb = threadIdx.x; mb < a.m * a.kb; mb += kWarps * 32)
    quantize_x_block<INTER>(a, mb, inv, xq4, xd, xs);
}

// x quantized once for every CTA of the GEMV that follows (long rows, Int8Args::xg,
// TensorArgs::xg), into x's shared-memory image in global memory (rows: the image's row count). A
// group of 8 lanes per block of 32, a float4 each (quantize8: amax and Σq by shuffles, the CPU's
// rounding). (A thread per block, as the CTAs' prologue does it, is one long chain per thread:
// that version gained 0-1.8 % of a Mistral step against a lane-per-element one's 2.2 %.) With
// swiglu, x = silu(g) · u is formed here from the halves of the f32 rows of 2k at x, as the
// stitched silu · mul computes it.
struct XImageArgs {
  const void* x;
  int xdt, k, kb, kbp, m, rows;
  bool xvec, swiglu;
  // x = (na + nb) · gamma (f32 rows of k; add_rms_norm_quantized_matmul's long rows), the sum
  // stored to nsum and each block's sum of squares of na + nb after the image's d·Σq: the GEMV
  // applies 1 / rms to its sums (Int8Args::xss), so no CTA waits for a whole row's reduction.
  const float *na = nullptr, *nb = nullptr, *gamma = nullptr;
  float* nsum = nullptr;
  bool na_early = false, gamma_early = false;  // Int8Args's
};

template <bool INTER>
__global__ void quantize_x_kernel(const XImageArgs a, int4* img) {
  pdl_trigger();  // the GEMV after this one may take the SMs as the one before ends
  const int t = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);  // float4 t of x
  const int mb = t / 8, quarter = t % 8;
  const bool on = mb < a.m * a.kb;
  const int mi = on ? mb / a.kb : 0, b = on ? mb % a.kb : 0;
  // A norm's residual and gamma where no running kernel writes them: loaded before the wait, so
  // only the previous kernel's output (in the L2) is read after it. The residual was written
  // layers' worth of weights ago and gamma is read once per step: both come from DRAM (H100,
  // Mistral-7B: these kernels took 2.05 us after the GEMV before them, the SwiGLU's 1.28).
  const int64_t x0 = static_cast<int64_t>(mi) * a.k + 32 * b + 4 * quarter;
  float4 u{}, g{};
  if (on && a.na) {
    if (a.na_early) u = __ldg(reinterpret_cast<const float4*>(a.na + x0));
    if (a.gamma_early) g = __ldg(reinterpret_cast<const float4*>(a.gamma + 32 * b + 4 * quarter));
  }
  pdl_wait();                               // x is the previous kernel's output
  if ((t & ~31) / 8 >= a.m * a.kb) return;  // the whole warp: quantize8 shuffles over all lanes
  float x[4] = {0.f, 0.f, 0.f, 0.f}, ss = 0.f;
  if (on && a.na) {
    if (!a.na_early) u = __ldg(reinterpret_cast<const float4*>(a.na + x0));
    const float4 v = __ldg(reinterpret_cast<const float4*>(a.nb + x0));
    if (!a.gamma_early) g = __ldg(reinterpret_cast<const float4*>(a.gamma + 32 * b + 4 * quarter));
    const float4 h = make_float4(u.x + v.x, u.y + v.y, u.z + v.z, u.w + v.w);
    *reinterpret_cast<float4*>(a.nsum + x0) = h;
    ss = (h.x * h.x + h.y * h.y) + (h.z * h.z + h.w * h.w);
    x[0] = h.x * g.x, x[1] = h.y * g.y, x[2] = h.z * g.z, x[3] = h.w * g.w;
  } else if (on && a.swiglu) {
    const float* g = static_cast<const float*>(a.x) + 2 * static_cast<int64_t>(mi) * a.k + 32 * b;
    swiglu4(__ldg(reinterpret_cast<const float4*>(g) + quarter),
            __ldg(reinterpret_cast<const float4*>(g + a.k) + quarter), x);
  } else if (on) {
    if (a.xdt == kF32 && a.xvec) {
      const float4 f = __ldg(reinterpret_cast<const float4*>(static_cast<const float*>(a.x) + x0));
      x[0] = f.x, x[1] = f.y, x[2] = f.z, x[3] = f.w;
    } else {
#pragma unroll
      for (int c = 0; c < 4; ++c) x[c] = load<float>(a.xdt, a.x, x0 + c);
    }
  }
  float* xd = reinterpret_cast<float*>(img + 2 * a.rows * a.kbp);
  quantize8<INTER>(x, quarter, on, reinterpret_cast<int8_t*>(img + x_slot(a.kbp, mi, b)), xd + mb,
                   xd + a.rows * a.kb + mb);
  if (a.na) {  // the block's sum of squares, from its group of 8 lanes (every lane shuffles)
    for (int o = 4; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (on && quarter == 0) xd[2 * a.rows * a.kb + mb] = ss;
  }
}

// Rows of more than kMaxNormElements (in all) are normalised once for every CTA by
// quantize_x_kernel (XImageArgs::na), not in every CTA: each CTA would read a, b and gamma whole
// (k·m·12 bytes from L2, against k·m·4 for a plain x). H100: SmolLM2 (k = 576) 860.7 -> 909.5
// tok/s with the norm in the CTAs; Mistral-7B (k = 4096) 318.9 -> 295.2, its GEMVs 4.9 us slower
// each. That kernel leaves the row's 1 / rms to the GEMV (Int8Args::xss), so it needs no
// reduction over the row: H100, Mistral-7B 448.2 -> 450.3 tok/s against a kernel of one CTA per
// row that normalised before quantizing (session 14, alternating).
constexpr int64_t kMaxNormElements = 2048;

// acc[r][mi] += d_w·d_x·Σ q_w·q_x + m_w·s_x for block b of R weight rows (scale dw, offset wm,
// codes c) and every row of x.
template <class B, int R, int MT>
__device__ __forceinline__ void dot_block(const Int8Args& a, const int4* xq4, const float* xd,
                                          const float* xs, int b, const float (&dw)[R],
                                          const float (&wm)[R], const int (&c)[R][kCodeWords<B>],
                                          float (&acc)[R][MT]) {
#pragma unroll
  for (int mi = 0; mi < MT; ++mi) {
    if (mi >= a.m) break;
    const int4* xv = xq4 + x_slot(a.kbp, mi, b);
    const int4 x0 = xv[0], x1 = xv[32];
    const int xw[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
    const int xi = mi * a.kb + b;
    const float dx = xd[xi], sx = xs[xi];
#pragma unroll
    for (int r = 0; r < R; ++r) {
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

// Direct path: codes read from global memory (4-byte aligned blocks; 2-byte aligned ones when
// staging is off or does not fit).
template <int F, int MT>
__global__ void __launch_bounds__(kWarps * 32, kMinCtas<MT>) gemv_int8_kernel(const Int8Args a) {
  using B = Blk<F>;
  extern __shared__ int4 smem4[];
  int4* xq4 = smem4;                                           // [MT][kbp / 32][2][32] int8 x 16
  float* xd = reinterpret_cast<float*>(xq4 + 2 * MT * a.kbp);  // [MT][kb] scales
  float* xs = xd + MT * a.kb;                                  // [MT][kb] scale · Σq
  __shared__ float inv[8];                                     // rows' 1 / rms (a normed x)
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  pdl_begin();  // x is the previous kernel's output
  quantize_x<B::INTER, MT>(a, xq4, xd, xs, inv);
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
      int c[kRows][kCodeWords<B>];
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        // Rows past n re-read the last row (in bounds; their sums are never stored).
        const int64_t row = row0 + r < a.n ? row0 + r : a.n - 1;
        const uint8_t* blk = a.w + row * a.rb + static_cast<int64_t>(b) * B::BYTES;
        dw[r] = h2f(__ldg(reinterpret_cast<const uint16_t*>(blk)));
        wm[r] = B::offset16(__ldg(reinterpret_cast<const uint16_t*>(blk + 2)), dw[r]);
#pragma unroll
        for (int j = 0; j < kCodeWords<B>; ++j) c[r][j] = code_word<B>(blk + B::QS, j);
      }
      dot_block<B, kRows, MT>(a, xq4, xd, xs, b, dw, wm, c, acc);
    }
    store_rows(acc, a.m, a.n, a.xdt, a.y, row0, lane, a.xss ? inv : nullptr);
  }
}

// Staged path (2-byte aligned blocks). A warp's work is a list of steps: step t copies chunk
// t % nch (CB blocks) of each of the R rows of its row group t / nch, kStageBytes in all
// (q4_0, k = 4096, m <= 2: one whole row of 2304 bytes). A warp holds kStages steps in shared
// memory, the one it computes and kStages - 1 in flight: with 3 CTAs of 8 warps per SM that is
// ~110 KB in flight per SM, well over the ~25-40 KB that keep HBM3 busy, so the warps that finish
// their rows early do not starve the bandwidth at the end.
constexpr int kStages = 3;  // with as many CTAs per SM as fit (3 for q4_0 at k = 4096)
constexpr int kStageBytes = 2304;
template <int MT>
constexpr int kStageRows = MT >= 4 ? 2 : 1;  // m >= 4: two weight rows share each x load
template <class B, int R, int ST>
struct Stage {
  static constexpr int CB = kStageBytes / (R * B::BYTES) / 32 * 32;  // whole lane strides
  // Rows are 2-byte aligned: a chunk is copied as the 16-byte aligned span around it, which
  // starts up to 14 bytes early (+ 16); parsing reads 2 bytes past a block at most (still in it).
  static constexpr int SLOT = CB * B::BYTES + 16;
  static constexpr size_t kBytes = static_cast<size_t>(kWarps) * ST * R * SLOT;
  static_assert(CB >= 32 && CB * B::BYTES % 16 == 0, "chunks of whole lane strides and units");
};

template <int F, int MT, int ST>
__global__ void __launch_bounds__(kWarps * 32, kMinCtas<MT>)
    gemv_int8_staged_kernel(const Int8Args a) {
  using B = Blk<F>;
  constexpr int R = kStageRows<MT>, NC = kCodeWords<B>;
  using S = Stage<B, R, ST>;
  extern __shared__ int4 smem4[];
  uint8_t* stage = reinterpret_cast<uint8_t*>(smem4);  // [kWarps][ST][R][SLOT] bytes
  int4* xq4 = smem4 + S::kBytes / 16;
  float* xd = reinterpret_cast<float*>(xq4 + 2 * MT * a.kbp);
  float* xs = xd + MT * a.kb;
  __shared__ float inv[8];  // rows' 1 / rms (a normed x)
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

  // Warp gw owns the row groups gw, gw + nw, ... of R rows each (none when gw >= groups).
  const int64_t groups = (a.n + R - 1) / R;
  const int64_t gw = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  const int64_t nw = static_cast<int64_t>(gridDim.x) * kWarps;
  const int nch = (a.kb + S::CB - 1) / S::CB;
  const int64_t steps = gw < groups ? ((groups - 1 - gw) / nw + 1) * nch : 0;
  uint8_t* slots = stage + static_cast<size_t>(warp) * ST * R * S::SLOT;
  const uint8_t* wend = a.w + a.n * a.rb;

  // First byte of chunk c of row r of the warp's row group q. Rows past n re-read the last row
  // (in bounds; their sums are never stored).
  auto chunk = [&](int64_t q, int c, int r) {
    const int64_t row0 = (gw + q * nw) * R;
    const int64_t row = row0 + r < a.n ? row0 + r : a.n - 1;
    return a.w + row * a.rb + static_cast<int64_t>(c) * S::CB * B::BYTES;
  };
  // Copies of step (q, c) into slot s: per row, the 16-byte units covering its chunk.
  auto issue = [&](int64_t q, int c, int s) {
    const int nb = min(S::CB, a.kb - c * S::CB);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      copy_span(slots + (s * R + r) * S::SLOT, chunk(q, c, r), nb * B::BYTES, wend, lane);
    }
  };
  float acc[R][MT];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int mi = 0; mi < MT; ++mi) acc[r][mi] = 0.f;

  run_steps<ST>(
      steps, nch, a.early, issue, [&] { quantize_x<B::INTER, MT>(a, xq4, xd, xs, inv); },
      [&](int64_t q, int c, int s) {
        const int nb = min(S::CB, a.kb - c * S::CB);
        const uint8_t* slot = slots + s * R * S::SLOT;
        int o[R];  // where each row's chunk starts in its slot (even, < 16)
#pragma unroll
        for (int r = 0; r < R; ++r)
          o[r] = static_cast<int>(reinterpret_cast<uintptr_t>(chunk(q, c, r)) & 15);
#pragma unroll
        for (int j = 0; j < S::CB / 32; ++j) {
          const int i = 32 * j + lane;  // the lane's block in the chunk
          if (i >= nb) break;
          float dw[R], wm[R];
          int cw[R][NC];
#pragma unroll
          for (int r = 0; r < R; ++r)
            parse_staged<B>(slot + r * S::SLOT, o[r] + i * B::BYTES, dw[r], wm[r], cw[r]);
          dot_block<B, R, MT>(a, xq4, xd, xs, c * S::CB + i, dw, wm, cw, acc);
        }
        if (c == nch - 1)  // rows done
          store_rows(acc, a.m, a.n, a.xdt, a.y, (gw + q * nw) * R, lane, a.xss ? inv : nullptr);
      });
}

// Shared memory above which the staged kernel gives way to the direct one: two CTAs of it (plus
// the 1 KB the driver reserves per CTA) still fit in an H100 SM's 228 KB.
constexpr size_t kMaxStagedSmem = 113 * 1024;

constexpr int kXqThreads = 128;  // quantize_x_kernel: 16 blocks of 32 per CTA

XImageArgs image_args(const void* x, int x_dtype, int64_t m, int64_t k, int rows) {
  XImageArgs a{};
  a.x = x, a.xdt = x_dtype, a.k = static_cast<int>(k), a.kb = a.k / 32,
  a.kbp = (a.kb + 31) / 32 * 32;
  a.m = static_cast<int>(m), a.rows = rows, a.xvec = aligned16(x);
  return a;
}

void launch_image(cudaStream_t s, const XImageArgs& a, bool inter, void* image) {
  const auto grid = static_cast<unsigned>((a.m * a.kb * 8 + kXqThreads - 1) / kXqThreads);
  auto* img = static_cast<int4*>(image);
  launch_pdl(inter ? quantize_x_kernel<true> : quantize_x_kernel<false>, grid, kXqThreads, 0, s, a,
             img);
}

// smem: x's shared memory; the staged kernel adds its stages.
template <int F, int MT>
void launch_int8(cudaStream_t s, const Int8Args& a, size_t smem, bool staged) {
  auto kern = gemv_int8_kernel<F, MT>;
  int rows = kRows;  // per warp at a time
  int device = 0;    // the backend made the launch's device current (stream_for)
  LOOM_CUDA_CHECK(cudaGetDevice(&device));
  {
    using S = Stage<Blk<F>, kStageRows<MT>, kStages>;
    // Staged at every size, also where the direct kernel's two-row pairs time better alone
    // (q4_0 4096 x 4096: 8.33 vs 8.10 us, 4096 x 14336: 22.3 vs 20.6 back to back): in a decode
    // step the staged kernel's first copies overlap the small kernel before it, and a Mistral-7B
    // step's GEMVs took 1840 instead of 2083 us (kernel trace, llm_decode_bench).
    // 4-byte aligned blocks with m >= 4 (two rows per warp, chunks of 32 blocks) stay direct:
    // q4_1 14336 x 4096, m = 4: 25.2 us direct, 28.6 staged; m = 8: 38.8 / 43.7 (H100).
    if (staged && (!Blk<F>::ALIGN4 || MT <= 2) && smem + S::kBytes <= kMaxStagedSmem) {
      kern = gemv_int8_staged_kernel<F, MT, kStages>;
      rows = kStageRows<MT>;
      smem += S::kBytes;
      // (Sessions 7-12 also had a few-rows kernel, 2 CTAs per SM of 5 stages under 4 row groups
      // per warp: faster alone at 4096 x 4096, 6.6 against 7.2 us, but slower in the decode step
      // once the early weight copies and the x images came, Mistral-7B 400.4 against 404.7
      // tok/s on an H100. Removed in session 13; so was a flat split of the blocks over warps,
      // docs/benchmarks/cuda_quant.md.)
    }
  }
  // Long rows: x quantized once by a kernel of its own, then copied by every CTA, which otherwise
  // reads all of x from L2 and quantizes it itself: 5.5 of a Mistral-7B down projection's 17.6 us
  // on an H100 (k = 14336). A norm over long rows is formed by that kernel too. For several rows
  // of x, rows of half that length too: each CTA's copy of x then rivals its share of the weights
  // (H100, 14336 x 4096 q4_0: m = 4 24.52 -> 22.21 us, m = 8 38.75 -> 33.86). One row gains
  // nothing there: the k-split kernel reads only a slice of x per warp (4096 x 4096 6.57 -> 6.71,
  // Mistral-7B's output projection 504.1 -> 502.5 tok/s with the kernel).
  Int8Args b = a;
  std::shared_ptr<Storage> image;  // back to the cache on return; the stream orders its reuse
  const int min_k = xq_min_k();
  const bool long_x = min_k > 0 && (a.k >= min_k || (a.m > 1 && 2 * a.k >= min_k));
  const bool long_norm = a.na && static_cast<int64_t>(a.k) * a.m > kMaxNormElements;
  if ((!a.na && long_x) || long_norm) {
    image = scratch(device, x_image_bytes(MT, a.k));
    auto* img = reinterpret_cast<int4*>(image->data());
    b.xg = img;
    b.na = b.nb = b.gamma = nullptr, b.nsum = nullptr;  // the image holds x (or (a + b) · γ)
    if (long_norm) {
      XImageArgs xa = image_args(nullptr, kF32, a.m, a.k, MT);
      xa.na = a.na, xa.nb = a.nb, xa.gamma = a.gamma, xa.nsum = a.nsum;
      xa.na_early = a.na_early, xa.gamma_early = a.gamma_early;
      launch_image(s, xa, Blk<F>::INTER, img);
      b.xss = reinterpret_cast<const float*>(img + 2 * MT * a.kbp) + 2 * MT * a.kb;
    } else {
      launch_quantize_x(s, a.x, a.xdt, a.m, a.k, MT, Blk<F>::INTER, a.swiglu, img);
    }
  }
  // LOOM_QMM_EARLY (A/B): "one" step early always, "all" always, else all when x is an image.
  static const int early_mode = [] {
    const char* e = std::getenv("LOOM_QMM_EARLY");
    return !e ? 0 : std::string(e) == "one" ? 1 : std::string(e) == "all" ? 2 : 0;
  }();
  // One row of x: the k-split kernel where it applies (x f32 or an image; not a norm or SwiGLU
  // formed in the CTAs): H100, Mistral-7B q4_0 470.8 -> 504.5 tok/s, 14336 x 4096 14.2 -> 12.6
  // us (quant_gemv_sliced.cu). LOOM_QMM_SLICED=0: never (A/B).
  static const bool sliced = env_on("LOOM_QMM_SLICED");
  if (MT == 1 && sliced && !b.na && !(b.swiglu && !b.xg) &&
      launch_quant_gemv_int8_sliced(s, F, b.w, b.n, b.rb, b.k, a.early != 0, b.x, b.xdt, b.xg,
                                    b.xss, b.eps, b.y))
    return;
  // One wave of persistent CTAs, as many as fit on the SMs at once: x is quantized once per CTA
  // (k·m bytes of shared memory, read from L2), and a CTA beyond the resident ones would run
  // its whole share after the others, doubling the time. LOOM_QMM_INT8_CTAS caps CTAs per SM.
  static const int cap = [] {  // read once: this runs for every decode-step product
    const char* e = std::getenv("LOOM_QMM_INT8_CTAS");
    return e ? std::max(std::atoi(e), 0) : 0;
  }();
  int per_sm = resident_ctas(reinterpret_cast<const void*>(kern), device, kWarps * 32, smem);
  if (cap > 0) per_sm = std::min(per_sm, cap);
  const int64_t want = (a.n + kWarps * rows - 1) / (kWarps * rows);
  const auto grid = static_cast<unsigned>(
      std::min<int64_t>(want, static_cast<int64_t>(per_sm) * sm_count(device)));
  if (b.early && ((early_mode == 0 && b.xg) || early_mode == 2))
    b.early = kStages - 1;  // the prologue only copies x: all steps early
  launch_pdl(kern, grid, kWarps * 32, smem, s, b);
}

template <int F>
void launch_mt(cudaStream_t s, const Int8Args& a, size_t smem, int mt, bool staged) {
  switch (mt) {
    case 1:
      return launch_int8<F, 1>(s, a, smem, staged);
    case 2:
      return launch_int8<F, 2>(s, a, smem, staged);
    case 4:
      return launch_int8<F, 4>(s, a, smem, staged);
    default:
      return launch_int8<F, 8>(s, a, smem, staged);
  }
}

// LOOM_QMM_INT8_STAGE=0: q4_0 / q8_0 take the direct path too (read once, A/B timing).
bool stage_enabled() {
  static const bool on = env_on("LOOM_QMM_INT8_STAGE");
  return on;
}

}  // namespace

int xq_min_k() {
  static const int k = [] {
    const char* e = std::getenv("LOOM_QMM_XQ_MIN_K");
    return e ? std::atoi(e) : 8192;
  }();
  return k;
}

void launch_quantize_x(cudaStream_t s, const void* x, int x_dtype, int64_t m, int64_t k, int rows,
                       bool inter, bool swiglu, void* image) {
  XImageArgs a = image_args(x, x_dtype, m, k, rows);
  a.swiglu = swiglu;
  launch_image(s, a, inter, image);
}

bool quant_gemv_int8_enabled() {
  static const bool on = env_on("LOOM_QMM_INT8");
  return on;
}

namespace {

// x's shared memory in the int8 GEMV for m rows (codes, scales, d·Σq); 0: no int8 GEMV for
// these weights and rows.
size_t int8_gemv_smem(const QuantWeights& w, int64_t m, int x_dtype) {
  const int f = w.format;
  if (!quant_gemv_int8_enabled() || m < 1 || m > 8 || w.k % 32 || w.k > (1 << 24) || !w.w) return 0;
  if (f != kQ4_0 && f != kQ4_1 && f != kQ8_0 && f != kAffineU4Blocks && f != kAffineI8Blocks)
    return 0;
  if (x_dtype != kF32 && x_dtype != kF16 && x_dtype != kBF16) return 0;
  // Codes are read as half-words (18- and 34-byte blocks) or words: rows must keep that alignment.
  const int64_t align = f == kQ4_0 || f == kQ8_0 ? 2 : 4;
  if (reinterpret_cast<uintptr_t>(w.w) % align || w.row_bytes % align) return 0;
  const int mt = m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : 8;
  const int64_t kb = w.k / 32, kbp = (kb + 31) / 32 * 32;
  const size_t smem = static_cast<size_t>(mt) * static_cast<size_t>(32 * kbp) +
                      2 * sizeof(float) * static_cast<size_t>(mt) * static_cast<size_t>(kb);
  return smem > 200 * 1024 ? 0 : smem;
}

bool launch_int8_gemv(cudaStream_t s, const QuantWeights& w, const void* x, int x_dtype, int64_t m,
                      void* y, const Int8Args& norm) {
  const int f = w.format;
  const size_t smem = int8_gemv_smem(w, m, x_dtype);
  if (!smem) return false;
  const int mt = m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : 8;
  const int64_t kb = w.k / 32, kbp = (kb + 31) / 32 * 32;
  Int8Args a = norm;  // the norm prologue's fields (unset: none)
  a.w = static_cast<const uint8_t*>(w.w), a.n = w.n, a.rb = w.row_bytes;
  a.k = static_cast<int>(w.k), a.kb = static_cast<int>(kb), a.kbp = static_cast<int>(kbp);
  a.m = static_cast<int>(m);
  a.x = x, a.xdt = x_dtype, a.xvec = aligned16(x), a.y = y;
  a.early = w.constant;
  // The staged path copies the 16-byte aligned span around each row chunk: with w 16-byte
  // aligned (device allocations are) that span never starts before the weights.
  const bool staged = stage_enabled() && aligned16(w.w);
  switch (f) {
    case kQ4_0:
      launch_mt<kQ4_0>(s, a, smem, mt, staged);
      break;
    case kQ4_1:
      launch_mt<kQ4_1>(s, a, smem, mt, staged);
      break;
    case kQ8_0:
      launch_mt<kQ8_0>(s, a, smem, mt, staged);
      break;
    case kAffineU4Blocks:
      launch_mt<kAffineU4Blocks>(s, a, smem, mt, staged);
      break;
    default:
      launch_mt<kAffineI8Blocks>(s, a, smem, mt, staged);
      break;
  }
  return true;
}

}  // namespace

bool launch_quant_gemv_int8(cudaStream_t s, const QuantWeights& w, const void* x, int x_dtype,
                            int64_t m, void* y) {
  return launch_int8_gemv(s, w, x, x_dtype, m, y, Int8Args{});
}

bool launch_quant_gemv_int8_swiglu(cudaStream_t s, const QuantWeights& w, const float* p, int64_t m,
                                   float* y) {
  // x is formed where it is quantized: by quantize_x_kernel once for long rows, else in every
  // CTA's prologue by groups of 8 lanes per block of 32 (a thread per block, each with 32
  // exponentials and divisions, was slower than the silu · mul kernel it saves: SmolLM2 1210 ->
  // 1181 tok/s on an H100).
  Int8Args x{};
  x.swiglu = true;
  return launch_int8_gemv(s, w, p, kF32, m, y, x);
}

bool launch_quant_gemv_int8_add_norm(cudaStream_t s, const QuantWeights& w, const float* a,
                                     const float* b, const float* gamma, float eps, int64_t m,
                                     float* sum, float* y, bool a_early, bool gamma_early) {
  // Short rows: every CTA forms x from a and b (no norm kernel). Longer ones: one kernel forms and
  // quantizes (a + b) · gamma for the CTAs to copy, with each block's sum of squares, and the GEMV
  // scales its sums by the rows' 1 / rms (quantize_x_kernel, Int8Args::xss). (A one-CTA kernel
  // normalising a thread per block of 32 was tried before: the GEMVs gained 0.7-1.0 us, the
  // 6.3 us kernel lost more than the 2.9 us norm kernel.)
  // LOOM_QMM_NORM_XQ=0: long rows run the norm kernel, then the GEMV (matmul.cpp), for A/B runs.
  static const bool long_rows = env_on("LOOM_QMM_NORM_XQ");
  if (!long_rows && static_cast<int64_t>(w.k) * m > kMaxNormElements) return false;
  if (!aligned16(a) || !aligned16(b) || !aligned16(gamma) || !aligned16(sum)) return false;
  Int8Args norm{};
  norm.na = a, norm.nb = b, norm.gamma = gamma, norm.nsum = sum, norm.eps = eps;
  norm.na_early = a_early, norm.gamma_early = gamma_early;
  return launch_int8_gemv(s, w, nullptr, kF32, m, y, norm);
}

}  // namespace loom::backends::cuda
