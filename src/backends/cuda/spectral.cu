// window, frames and overlap_add on CUDA, so that stft / istft / log-mel stay on the device.
// frames is a gather (reflect padding folded into the index); overlap_add gathers too (each output
// sample sums the frames covering it in frame order, like the CPU loop), so no atomics and the
// result is deterministic.
#include "backends/cuda/device_util.cuh"
#include "ops/spectral_util.h"

namespace loom::backends::cuda {
namespace {
namespace op = ir::op;

// A block per frame (one 64-bit decode), threads along it.
template <class E>
__global__ void frames_kernel(const E* x, E* out, int64_t rows, int64_t t, int64_t f, int l,
                              int64_t hop, int64_t pad) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    int64_t b = r / f, start = (r - b * f) * hop - pad;
    const E* src = x + b * t;
    E* dst = out + r * l;
    for (int j = threadIdx.x; j < l; j += blockDim.x) {
      int64_t k = start + j;  // numpy "reflect": the edge sample is not repeated
      k = k < 0 ? -k : (k >= t ? 2 * (t - 1) - k : k);
      dst[j] = src[k];
    }
  }
}

void frames(const KernelContext& c) {
  const auto& at = c.attrs_as<FramesAttrs>();
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  int64_t n = out.numel();
  if (n == 0) return;
  int64_t t = x.shape()[x.rank() - 1], f = out.shape()[out.rank() - 2];
  cudaStream_t s = stream_for(c);
  int64_t rows = n / at.frame_length;
  LOOM_CHECK(at.frame_length < (int64_t{1} << 31), "[cuda] frames: frame_length too large");
  auto l = static_cast<int>(at.frame_length);
  int threads = std::min(256, (l + 31) / 32 * 32);
  auto grid = static_cast<unsigned>(std::min<int64_t>(rows, int64_t{1} << 30));
  auto go = [&](auto tag) {
    using E = decltype(tag);
    frames_kernel<E><<<grid, threads, 0, s>>>(static_cast<const E*>(x.data()),
                                              static_cast<E*>(out.data()), rows, t, f, l, at.hop,
                                              at.pad);
  };
  switch (dtype_bits(x.dtype())) {
    case 8:
      go(uint8_t{});
      break;
    case 16:
      go(uint16_t{});
      break;
    case 32:
      go(uint32_t{});
      break;
    case 64:
      go(uint64_t{});
      break;
    default:
      fail("[cuda] frames: no kernel for ", dtype_name(x.dtype()));
  }
  LOOM_CUDA_LAUNCHED();
}

__global__ void overlap_add_kernel(const float* x, float* out, int64_t n, int64_t t, int64_t f,
                                   int64_t l, int64_t hop) {
  LOOM_GRID_STRIDE(i, n) {
    int64_t b = i / t, s = i - b * t;
    // Frames q with q * hop <= s < q * hop + l.
    int64_t lo = s >= l ? (s - l) / hop + 1 : 0, hi = s / hop;
    if (hi > f - 1) hi = f - 1;
    float acc = 0.f;
    const float* fr = x + b * f * l;
    for (int64_t q = lo; q <= hi; ++q) acc += fr[q * l + s - q * hop];
    out[i] = acc;
  }
}

void overlap_add(const KernelContext& c) {
  const auto& at = c.attrs_as<FramesAttrs>();
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  int64_t n = out.numel();
  if (n == 0) return;
  int64_t f = x.shape()[x.rank() - 2], l = x.shape()[x.rank() - 1], t = out.shape()[out.rank() - 1];
  overlap_add_kernel<<<blocks_for(n), 256, 0, stream_for(c)>>>(
      x.data_as<float>(), out.data_as<float>(), n, t, f, l, at.hop);
  LOOM_CUDA_LAUNCHED();
}

// spectral::window_values on the device, in double precision (kind: 0 hann, 1 hamming,
// 2 blackman, 3 gaussian). Computed here rather than uploaded so the kernel never waits on the
// host (CUDA graph capture).
__global__ void window_kernel(void* out, int dt, int64_t n, int kind, bool periodic, double param) {
  LOOM_GRID_STRIDE(i, n) {
    double v = 1;
    if (n > 1) {
      const double m = static_cast<double>(periodic ? n : n - 1);
      const double pi = 3.14159265358979323846, k = static_cast<double>(i);
      if (kind == 0) {
        v = 0.5 - 0.5 * cos(2 * pi * k / m);
      } else if (kind == 1) {
        v = 0.54 - 0.46 * cos(2 * pi * k / m);
      } else if (kind == 2) {
        v = 0.42 - 0.5 * cos(2 * pi * k / m) + 0.08 * cos(4 * pi * k / m);
      } else {
        double z = (k - m / 2) / param;
        v = exp(-0.5 * z * z);
      }
    }
    store(dt, out, i, v);
  }
}

void window(const KernelContext& c) {
  const auto& at = c.attrs_as<WindowAttrs>();
  const NDArray& out = c.outputs[0];
  LOOM_CHECK(spectral::valid_window_kind(at.kind), "[cuda] unknown window '", at.kind, "'");
  int kind = at.kind == "hann" ? 0 : at.kind == "hamming" ? 1 : at.kind == "blackman" ? 2 : 3;
  window_kernel<<<blocks_for(at.length), 256, 0, stream_for(c)>>>(
      out.data(), static_cast<int>(out.dtype()), at.length, kind, at.periodic, at.param);
  LOOM_CUDA_LAUNCHED();
}

}  // namespace

void register_spectral(KernelTable& t) {
  t.set(op::frames, frames);
  t.set(op::overlap_add, overlap_add);
  t.set(op::window, window);
}

}  // namespace loom::backends::cuda
