// CUDA sdpa and rope. sdpa dispatches (sdpa_launch) to cuDNN's fused attention where it takes the
// case (attention_cudnn.cpp), the flash prefill kernel (attention_flash.cu), the split-KV decode
// kernels (attention_decode.cu), or the fallback here:
// one block per (batch, head, query row), keys in chunks of the block size with an online softmax
// (running max and sum, accumulator rescaled per chunk), GQA by head groups, bool or additive
// masks, causal, and the valid KV length read from device memory (no host sync). The fallback
// serves what the fast paths do not: other head dims, f32 prefill, mixed dtypes, unaligned views.
#include "backends/cuda/attention_common.cuh"
#include "backends/cuda/attention_cudnn.h"
#include "backends/cuda/cuda_common.h"
#include "backends/cuda/pdl.cuh"
#include "backends/cuda/rope.cuh"
#include "backends/rope_kv_sdpa.h"

namespace loom::backends::cuda {
namespace {

constexpr int kThreads = 128;

template <class F>
__device__ float block_all(float v, F combine, float* sh) {
  for (int o = 16; o > 0; o >>= 1) v = combine(v, __shfl_xor_sync(0xffffffffu, v, o));
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  v = sh[0];
  for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w) v = combine(v, sh[w]);
  return v;
}

struct SdpaArgs {
  const void *q, *k, *v, *mask;
  const void* kv_len;
  void* out;
  int dq, dk, dv, dm, dn, dout;
  int64_t B, Hq, Hkv, Lq, Lk, D, Dv;
  int64_t mst[4];
  float scale;
  bool causal, mask_bool;
};

__global__ void sdpa_kernel(SdpaArgs a) {
  extern __shared__ float smem[];
  float* q = smem;        // [D]
  float* acc = q + a.D;   // [Dv]
  float* p = acc + a.Dv;  // [kThreads]
  __shared__ float red[32];
  int64_t row = blockIdx.x;  // (b, h, i)
  int64_t i = row % a.Lq, h = (row / a.Lq) % a.Hq, b = row / (a.Lq * a.Hq);
  int64_t g = h / (a.Hq / a.Hkv);
  int64_t kv_len = a.Lk;
  bool bad = false;
  if (a.kv_len) {
    kv_len = load<int64_t>(a.dn, a.kv_len, 0);
    // An invalid length cannot throw from here: the row becomes NaN rather than silently wrong.
    if (kv_len < 0 || kv_len > a.Lk) bad = true, kv_len = 0;
  }
  for (int64_t d = threadIdx.x; d < a.D; d += blockDim.x)
    q[d] = load<float>(a.dq, a.q, row * a.D + d);
  for (int64_t d = threadIdx.x; d < a.Dv; d += blockDim.x) acc[d] = 0;
  __syncthreads();
  int64_t kbase = (b * a.Hkv + g) * a.Lk;
  float m = -INFINITY, l = 0;
  for (int64_t j0 = 0; j0 < kv_len; j0 += blockDim.x) {
    int64_t j = j0 + threadIdx.x;
    float s = -INFINITY;
    if (j < kv_len) {
      float dot = 0;
      for (int64_t d = 0; d < a.D; ++d) dot += q[d] * load<float>(a.dk, a.k, (kbase + j) * a.D + d);
      s = dot * a.scale;
      bool keep = !(a.causal && j > kv_len - a.Lq + i);
      if (a.mask) {
        int64_t mo = b * a.mst[0] + h * a.mst[1] + i * a.mst[2] + j * a.mst[3];
        if (a.mask_bool)
          keep = keep && load<int64_t>(a.dm, a.mask, mo) != 0;
        else
          s += load<float>(a.dm, a.mask, mo);
      }
      if (!keep) s = -INFINITY;
    }
    float mc = block_all(
        s, [](float x, float y) { return fmaxf(x, y); }, red);
    float mn = fmaxf(m, mc);
    float pj = (mn == -INFINITY || s == -INFINITY) ? 0.f : expf(s - mn);
    float ps = block_all(
        pj, [](float x, float y) { return x + y; }, red);
    float alpha = m == -INFINITY ? 0.f : expf(m - mn);
    p[threadIdx.x] = pj;
    __syncthreads();
    int64_t cnt = min(static_cast<int64_t>(blockDim.x), kv_len - j0);
    for (int64_t d = threadIdx.x; d < a.Dv; d += blockDim.x) {
      float r = acc[d] * alpha;
      for (int64_t t = 0; t < cnt; ++t)
        if (p[t] != 0.f) r += p[t] * load<float>(a.dv, a.v, (kbase + j0 + t) * a.Dv + d);
      acc[d] = r;
    }
    l = l * alpha + ps;
    m = mn;
    __syncthreads();
  }
  for (int64_t d = threadIdx.x; d < a.Dv; d += blockDim.x)
    store(a.dout, a.out, row * a.Dv + d, bad ? NAN : (l > 0 ? acc[d] / l : 0.f));
}

void launch_fallback(const SdpaLaunch& l, cudaStream_t s) {
  SdpaArgs a{};
  a.q = l.q, a.k = l.k, a.v = l.v, a.out = l.out;
  a.dq = static_cast<int>(l.q_dtype), a.dk = static_cast<int>(l.kv_dtype);
  a.dv = static_cast<int>(l.kv_dtype), a.dout = static_cast<int>(l.out_dtype);
  a.B = l.B, a.Hq = l.Hq, a.Lq = l.Lq, a.D = l.D;
  a.Hkv = l.Hkv, a.Lk = l.Lk, a.Dv = l.Dv;
  a.scale = l.scale;
  a.causal = l.causal;
  if (l.mask) {
    a.mask = l.mask;
    a.dm = static_cast<int>(l.mask_dtype);
    a.mask_bool = l.mask_dtype == DType::boolean;
    for (int d = 0; d < 4; ++d) a.mst[d] = l.mask_strides[d];
  }
  if (l.kv_len) {
    a.kv_len = l.kv_len;
    a.dn = static_cast<int>(l.kv_len_dtype);
  }
  int64_t rows = a.B * a.Hq * a.Lq;
  LOOM_CHECK(rows < (int64_t{1} << 31), "[cuda] sdpa: too many query rows");
  size_t shmem = static_cast<size_t>(a.D + a.Dv + kThreads) * sizeof(float);
  LOOM_CHECK(shmem <= 48 * 1024, "[cuda] sdpa: head dim ", a.D, " is too large for this kernel");
  sdpa_kernel<<<static_cast<unsigned>(rows), kThreads, shmem, s>>>(a);
  LOOM_CUDA_LAUNCHED();
}

// sdpa's launch for q, k, v, out and the optional inputs (mask, kv_len) after them.
SdpaLaunch sdpa_args(const SdpaAttrs& at, const NDArray& q, const NDArray& k, const NDArray& v,
                     const NDArray& out, std::span<const NDArray> optional) {
  SdpaLaunch a;
  a.q = q.data(), a.k = k.data(), a.v = v.data(), a.out = out.data();
  a.q_dtype = q.dtype(), a.kv_dtype = k.dtype(), a.out_dtype = out.dtype();
  a.B = q.shape()[0], a.Hq = q.shape()[1], a.Lq = q.shape()[2], a.D = q.shape()[3];
  a.Hkv = k.shape()[1], a.Lk = k.shape()[2], a.Dv = v.shape()[3];
  a.scale = static_cast<float>(at.scale > 0 ? at.scale : 1.0 / std::sqrt(static_cast<double>(a.D)));
  a.causal = at.causal;
  size_t next = 0;
  if (at.has_mask) {
    const NDArray& mk = optional[next++];
    a.mask = mk.data();
    a.mask_dtype = mk.dtype();
    auto st = broadcast_strides(mk.shape(), Shape({a.B, a.Hq, a.Lq, a.Lk}));
    for (int d = 0; d < 4; ++d) a.mask_strides[d] = st[static_cast<size_t>(d)];
  }
  if (at.has_kv_len) {
    a.kv_len = optional[next].data();
    a.kv_len_dtype = optional[next].dtype();
  }
  return a;
}

void sdpa(const KernelContext& c) {
  const NDArray& out = c.outputs[0];
  SdpaLaunch a = sdpa_args(c.attrs_as<SdpaAttrs>(), c.inputs[0], c.inputs[1], c.inputs[2], out,
                           c.inputs.subspan(3));
  a.kv_settled = ((c.settled_inputs >> 1) & 3) == 3;  // k and v
  sdpa_launch(a, stream_for(c), out.device().index);
}

// rope_write_kv_sdpa(k_cache, v_cache, k, v, positions, starts, q [, mask] [, kv_len]). A decode
// step (one new row of f32 k / v / q, interleaved rope over every dim, caches written in place
// that the tensor-core decode kernel reads): that kernel rotates q as it loads it and writes the
// new key and value rows itself (attention_decode.cu), so no rope_write_kv kernel runs before it.
// Otherwise rope_write_kv's kernel (`kv`), then sdpa's, with the rotated q in scratch.
// LOOM_DECODE_ROPE_KV=0: always the pair (A/B timing).
void rope_write_kv_sdpa(const KernelContext& c, const KernelFn& kv) {
  const auto& at = c.attrs_as<RopeSdpaAttrs>();
  const NDArray &kc = c.inputs[0], &vc = c.inputs[1], &k = c.inputs[2], &v = c.inputs[3];
  const NDArray &pos = c.inputs[4], &starts = c.inputs[5], &q = c.inputs[6];
  const NDArray& out = c.outputs[2];
  const int device = out.device().index;
  static const bool fused_on = env_on("LOOM_DECODE_ROPE_KV");
  const int64_t D = q.rank() == 4 ? q.shape()[3] : 0;
  const Shape row = kc.rank() == 4 ? Shape({kc.shape()[0], kc.shape()[1], 1, D}) : Shape();
  if (fused_on && at.interleaved && (at.rotary_dim == 0 || at.rotary_dim == D) &&
      c.outputs[0].data() == kc.data() && c.outputs[1].data() == vc.data() &&
      kc.dtype() == vc.dtype() && kc.shape() == vc.shape() && kc.rank() == 4 &&
      kc.shape()[3] == D && k.dtype() == DType::f32 && v.dtype() == DType::f32 &&
      k.shape() == row && v.shape() == row && starts.numel() == 4 &&
      (pos.numel() == 1 || pos.shape() == Shape({kc.shape()[0], 1}))) {
    SdpaLaunch a = sdpa_args(at.sdpa(), q, kc, vc, out, c.inputs.subspan(7));
    a.rope_kv.k = k.data_as<float>(), a.rope_kv.v = v.data_as<float>();
    a.rope_kv.pos = pos.data(), a.rope_kv.pos_dtype = pos.dtype();
    a.rope_kv.pos_batched = pos.rank() == 2 && pos.shape()[0] != 1;
    a.rope_kv.theta = at.theta, a.rope_kv.position_scale = at.position_scale;
    a.rope_kv.starts = starts.data(), a.rope_kv.starts_dtype = starts.dtype();
    a.rope_kv.err = device_error(device);
    a.kv_settled = (c.settled_inputs & 3) == 3;  // the caches
    if (decode_rope_kv_supports(a)) return sdpa_launch(a, stream_for(c), device);
  }
  auto q_rot = scratch(device, storage_bytes(q.dtype(), q.numel()));
  rope_kv_then_sdpa(c, NDArray(q_rot, q.dtype(), q.shape(), contiguous_strides(q.shape()), 0), kv,
                    sdpa);
  // The scratch q goes back to the cache when this returns; the stream orders its reuse.
}

// One thread per rope work item (rope.cuh): a rotated pair or a pass-through dim of a row.
__global__ void rope_kernel(RopeArgs a, void* out, int dout, int64_t n) {
  pdl_begin();
  LOOM_GRID_STRIDE(t, n) {
    rope_item(a, t, [&](int64_t row, int64_t d, double v) { store(dout, out, row * a.D + d, v); });
  }
}

void rope(const KernelContext& c) {
  const NDArray& out = c.outputs[0];
  RopeArgs a = rope_args(c.attrs_as<RopeAttrs>(), c.inputs[0], c.inputs[1]);
  int64_t n = rope_items(a);
  if (n == 0) return;
  launch_pdl(rope_kernel, blocks_for(n), 256, 0, stream_for(c), a, out.data(),
             static_cast<int>(out.dtype()), n);
  LOOM_CUDA_LAUNCHED();
}

}  // namespace

const char* sdpa_path_name(SdpaPath p) {
  switch (p) {
    case SdpaPath::kFlash:
      return "flash";
    case SdpaPath::kDecode:
      return "decode";
    case SdpaPath::kCudnn:
      return "cudnn";
    case SdpaPath::kFallback:
      break;
  }
  return "fallback";
}

bool decode_rope_kv_supports(const SdpaLaunch& a) {
  return a.allow_fast && attn::decode_rope_kv_fits(a);
}

SdpaPath sdpa_path(const SdpaLaunch& a) {
  if (!a.allow_fast) return SdpaPath::kFallback;
  if (attn::decode_supports(a)) return SdpaPath::kDecode;
  // cuDNN's fused attention is 2.5-4x the flash kernel on an H100 where it applies.
  if (a.allow_cudnn && a.flash_variant < 0 && attn::cudnn_supports(a) && attn::cudnn_available())
    return SdpaPath::kCudnn;
  if (attn::flash_supports(a)) return SdpaPath::kFlash;
  return SdpaPath::kFallback;
}

int sdpa_flash_variants(int64_t d) { return attn::flash_variants(d); }
const char* sdpa_flash_variant_name(int64_t d, int v) { return attn::flash_variant_name(d, v); }

void sdpa_launch(const SdpaLaunch& a, cudaStream_t s, int device) {
  if (a.B == 0 || a.Hq == 0 || a.Lq == 0 || a.Dv == 0) return;
  switch (sdpa_path(a)) {
    case SdpaPath::kCudnn:
      if (attn::cudnn_launch(a, s, device)) return;
      // cuDNN rejected this shape (remembered) or a capture is open before its plan exists.
      return attn::flash_supports(a) ? attn::launch_flash(a, s) : launch_fallback(a, s);
    case SdpaPath::kDecode:
      return attn::launch_decode(a, s, device);
    case SdpaPath::kFlash:
      return attn::launch_flash(a, s);
    case SdpaPath::kFallback:
      return launch_fallback(a, s);
  }
}

void register_attention(KernelTable& t) {
  t.set(ir::op::sdpa, sdpa);
  t.set(ir::op::rope, rope);
  // After register_movement, which sets rope_write_kv's kernel.
  t.set(ir::op::rope_write_kv_sdpa, [kv = *t.find(ir::op::rope_write_kv)](const KernelContext& c) {
    rope_write_kv_sdpa(c, kv);
  });
}

}  // namespace loom::backends::cuda
