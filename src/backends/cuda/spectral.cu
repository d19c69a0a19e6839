// window, frames and overlap_add on CUDA, so that stft / istft / log-mel stay on the device.
// frames is a gather (reflect padding folded into the index); overlap_add gathers too (each output
// sample sums the frames covering it in frame order, like the CPU loop), so no atomics and the
// result is deterministic.
#include "backends/cuda/device_util.cuh"
#include "ops/spectral_util.h"

namespace loom::backends::cuda {
namespace {
namespace op = ir::op;

template <class E>
__global__ void frames_kernel(const E* x, E* out, int64_t n, int64_t t, int64_t f, int64_t l,
                              int64_t hop, int64_t pad) {
  LOOM_GRID_STRIDE(i, n) {
    int64_t r = i / l, j = i - r * l;
    int64_t b = r / f, fi = r - b * f;
    int64_t k = fi * hop - pad + j;  // numpy "reflect": the edge sample is not repeated
    k = k < 0 ? -k : (k >= t ? 2 * (t - 1) - k : k);
    out[i] = x[b * t + k];
  }
}

void frames(const KernelContext& c) {
  const auto& at = c.attrs_as<FramesAttrs>();
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  int64_t n = out.numel();
  if (n == 0) return;
  int64_t t = x.shape()[x.rank() - 1], f = out.shape()[out.rank() - 2];
  cudaStream_t s = stream_for(c);
  auto go = [&](auto tag) {
    using E = decltype(tag);
    frames_kernel<E><<<blocks_for(n), 256, 0, s>>>(static_cast<const E*>(x.data()),
                                                   static_cast<E*>(out.data()), n, t, f,
                                                   at.frame_length, at.hop, at.pad);
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

__global__ void store_kernel(const double* v, void* out, int dt, int64_t n) {
  LOOM_GRID_STRIDE(i, n) { store(dt, out, i, v[i]); }
}

// The values come from the same double-precision host function as the CPU backend's (the window
// is small and usually constant-folded): one upload, then a store in the output dtype.
void window(const KernelContext& c) {
  const auto& at = c.attrs_as<WindowAttrs>();
  const NDArray& out = c.outputs[0];
  auto w = spectral::window_values(at.kind, at.length, at.periodic, at.param);
  int dev = out.device().index;
  cudaStream_t s = stream_for(c);
  size_t bytes = w.size() * sizeof(double);
  auto tmp = scratch(dev, bytes);
  backend(dev).copy(tmp->data(), Device::cuda(dev), w.data(), Device::cpu(), bytes);
  auto n = static_cast<int64_t>(w.size());
  store_kernel<<<blocks_for(n), 256, 0, s>>>(
      static_cast<const double*>(static_cast<void*>(tmp->data())), out.data(),
      static_cast<int>(out.dtype()), n);
  LOOM_CUDA_LAUNCHED();
}

}  // namespace

void register_spectral(KernelTable& t) {
  t.set(op::frames, frames);
  t.set(op::overlap_add, overlap_add);
  t.set(op::window, window);
}

}  // namespace loom::backends::cuda
