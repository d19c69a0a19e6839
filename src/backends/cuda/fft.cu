// fft, rfft, irfft on CUDA through cuFFT. Plans are cached per (device, layout, type) in a bounded
// LRU (plan creation costs far more than a transform) and bound to the device's stream. A
// transform over trailing axes is one multi-dimensional plan; any other axis is read in place
// through cuFFT's advanced layout (istride / idist), never transposed. Semantics follow the CPU
// backend (numpy): rfftn halves the last listed axis, irfftn does the inverse complex passes over
// the other axes first and then ignores the imaginary parts of bin 0 and bin n/2 of the real axis.
#include <cufft.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <list>
#include <map>
#include <mutex>
#include <vector>

#include "backends/cuda/device_util.cuh"

namespace loom::backends::cuda {
namespace {
namespace op = ir::op;

#define LOOM_CUFFT_CHECK(call)                                                                    \
  do {                                                                                            \
    cufftResult loom_r_ = (call);                                                                 \
    if (loom_r_ != CUFFT_SUCCESS)                                                                 \
      ::loom::fail("[cuda] ", #call, ": cuFFT error ", static_cast<int>(loom_r_), " (", __FILE__, \
                   ":", __LINE__, ")");                                                           \
  } while (0)

// One cuFFT layout: rank-k transform of n[], batched, with element strides and distances.
struct PlanKey {
  int device = 0, type = 0, rank = 1;
  std::array<long long, 3> n{}, inembed{}, onembed{};
  long long istride = 1, idist = 1, ostride = 1, odist = 1, batch = 1;
  auto tie() const {
    return std::tie(device, type, rank, n, inembed, onembed, istride, idist, ostride, odist, batch);
  }
  bool operator<(const PlanKey& o) const { return tie() < o.tie(); }
};

struct Plan {
  cufftHandle h = 0;
  int device = 0;
  std::mutex exec;  // cuFFT plans are not safe to execute from two threads at once
  ~Plan() {
    // Work queued on the stream may still use the plan's workspace.
    cudaSetDevice(device);
    cudaStreamSynchronize(stream(device));
    cufftDestroy(h);
  }
};

class PlanCache {
 public:
  static constexpr size_t kCapacity = 64;

  std::shared_ptr<Plan> get(const PlanKey& k) {
    std::lock_guard lock(mutex_);
    auto it = map_.find(k);
    if (it != map_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.second);
      return it->second.first;
    }
    auto p = std::make_shared<Plan>();
    p->device = k.device;
    LOOM_CUFFT_CHECK(cufftCreate(&p->h));
    auto n = k.n, ie = k.inembed, oe = k.onembed;
    size_t ws = 0;
    cufftResult r =
        cufftMakePlanMany64(p->h, k.rank, n.data(), ie.data(), k.istride, k.idist, oe.data(),
                            k.ostride, k.odist, static_cast<cufftType>(k.type), k.batch, &ws);
    if (r != CUFFT_SUCCESS) {
      cufftDestroy(p->h);
      p->h = 0;
      fail("[cuda] cuFFT could not plan a rank-", k.rank, " transform of ", n[0], " x batch ",
           k.batch, " (cuFFT error ", static_cast<int>(r), ")");
    }
    LOOM_CUFFT_CHECK(cufftSetStream(p->h, stream(k.device)));
    lru_.push_front(k);
    map_[k] = {p, lru_.begin()};
    if (map_.size() > kCapacity) {  // users of an evicted plan keep it alive via shared_ptr
      map_.erase(lru_.back());
      lru_.pop_back();
    }
    return p;
  }

 private:
  std::mutex mutex_;
  std::list<PlanKey> lru_;
  std::map<PlanKey, std::pair<std::shared_ptr<Plan>, std::list<PlanKey>::iterator>> map_;
};

PlanCache& cache() {
  static PlanCache* c = new PlanCache;  // never destroyed: the driver may be gone at exit
  return *c;
}

void exec(const PlanKey& k, const void* in, void* out, int direction) {
  auto p = cache().get(k);
  std::lock_guard lock(p->exec);
  auto* i = const_cast<void*>(in);
  switch (k.type) {
    case CUFFT_C2C:
      LOOM_CUFFT_CHECK(cufftExecC2C(p->h, static_cast<cufftComplex*>(i),
                                    static_cast<cufftComplex*>(out), direction));
      break;
    case CUFFT_R2C:
      LOOM_CUFFT_CHECK(
          cufftExecR2C(p->h, static_cast<cufftReal*>(i), static_cast<cufftComplex*>(out)));
      break;
    default:
      LOOM_CUFFT_CHECK(
          cufftExecC2R(p->h, static_cast<cufftComplex*>(i), static_cast<cufftReal*>(out)));
  }
}

// A transform of length 1 is the identity: a flat copy (r2c adds a zero imaginary part, c2r keeps
// the real one). cuFFT is not asked for these.
__global__ void unit_kernel(const float* in, float* out, int64_t n, int type) {
  LOOM_GRID_STRIDE(i, n) {
    if (type == CUFFT_R2C) {
      out[2 * i] = in[i];
      out[2 * i + 1] = 0.f;
    } else if (type == CUFFT_C2R) {
      out[i] = in[2 * i];
    } else {
      out[2 * i] = in[2 * i];
      out[2 * i + 1] = in[2 * i + 1];
    }
  }
}

// A 1-D transform along `axis` of contiguous arrays: `in_dims` / `out_dims` differ at most along
// the axis (r2c / c2r). Element sizes: 8 bytes for complex, 4 for real.
void transform_axis(int device, cufftType type, const std::vector<int64_t>& in_dims,
                    const std::vector<int64_t>& out_dims, int axis, int64_t n, const void* in,
                    void* out, int direction) {
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= in_dims[static_cast<size_t>(d)];
  for (size_t d = static_cast<size_t>(axis) + 1; d < in_dims.size(); ++d) inner *= in_dims[d];
  if (outer == 0 || inner == 0) return;
  int64_t nin = in_dims[static_cast<size_t>(axis)], nout = out_dims[static_cast<size_t>(axis)];
  if (n == 1) {
    if (in == out) return;
    int64_t count = outer * inner;
    unit_kernel<<<blocks_for(count), 256, 0, stream(device)>>>(
        static_cast<const float*>(in), static_cast<float*>(out), count, type);
    LOOM_CUDA_LAUNCHED();
    return;
  }
  bool r2c = type == CUFFT_R2C, c2r = type == CUFFT_C2R;
  size_t ies = r2c ? 4 : 8, oes = c2r ? 4 : 8;
  PlanKey k;
  k.device = device;
  k.type = type;
  k.n[0] = n;
  k.inembed[0] = nin;
  k.onembed[0] = nout;
  // One launch (rows batched, or interleaved lines of a single block batched), a launch per outer
  // block (lines interleaved inside it), or — complex only — a launch per inner offset (lines a
  // block apart): cuFFT needs every pointer 8-byte aligned, which odd float offsets are not.
  int64_t calls = 1;
  size_t in_step = 0, out_step = 0;  // bytes between the pointers of consecutive launches
  if (inner == 1) {
    k.idist = nin, k.odist = nout, k.batch = outer;
  } else {
    k.istride = k.ostride = inner;
    if (outer == 1) {
      k.idist = k.odist = 1, k.batch = inner;
    } else if (!r2c && !c2r && outer > inner) {
      k.idist = nin * inner, k.odist = nout * inner, k.batch = outer;
      calls = inner, in_step = ies, out_step = oes;
    } else {
      k.idist = k.odist = 1, k.batch = inner;
      calls = outer;
      in_step = static_cast<size_t>(nin * inner) * ies;
      out_step = static_cast<size_t>(nout * inner) * oes;
    }
  }
  auto* ib = static_cast<const char*>(in);
  auto* ob = static_cast<char*>(out);
  // The real side of r2c / c2r goes through an aligned staging buffer (blocks padded to 8 bytes)
  // when its pointer or block size is not a multiple of 8 bytes.
  std::shared_ptr<Storage> stage;
  size_t blk = 0, pitch = 0;
  if (r2c || c2r) {
    size_t step = r2c ? in_step : out_step;
    auto ptr = reinterpret_cast<uintptr_t>(r2c ? in : out);
    blk = calls == 1 ? static_cast<size_t>(outer * inner * (r2c ? nin : nout)) * 4 : step;
    if (ptr % 8 != 0 || step % 8 != 0) {
      pitch = (blk + 7) & ~size_t{7};
      stage = scratch(device, pitch * static_cast<size_t>(calls));
      char* sp = reinterpret_cast<char*>(stage->data());
      if (r2c) {
        LOOM_CUDA_CHECK(cudaMemcpy2DAsync(sp, pitch, in, blk, blk, static_cast<size_t>(calls),
                                          cudaMemcpyDeviceToDevice, stream(device)));
        ib = sp, in_step = pitch;
      } else {
        ob = sp, out_step = pitch;
      }
    }
  }
  for (int64_t i = 0; i < calls; ++i)
    exec(k, ib + static_cast<size_t>(i) * in_step, ob + static_cast<size_t>(i) * out_step,
         direction);
  if (stage && c2r)
    LOOM_CUDA_CHECK(cudaMemcpy2DAsync(out, blk, stage->data(), pitch, blk,
                                      static_cast<size_t>(calls), cudaMemcpyDeviceToDevice,
                                      stream(device)));
}

// The axes as a set are the last k dims (k <= 3), and `last` (if >= 0) is the final one.
// Length-1 axes take the per-axis path (see unit_kernel).
bool trailing(const std::vector<int>& axes, const std::vector<int64_t>& dims, int last) {
  int rank = static_cast<int>(dims.size());
  if (axes.size() > 3) return false;
  for (int a : axes)
    if (dims[static_cast<size_t>(a)] == 1) return false;
  std::vector<int> s = axes;
  std::sort(s.begin(), s.end());
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] != rank - static_cast<int>(s.size()) + static_cast<int>(i)) return false;
  return last < 0 || last == rank - 1;
}

// One rank-k plan over the trailing dims, batched over the leading ones.
void transform_trailing(int device, cufftType type, const std::vector<int64_t>& real_dims,
                        const std::vector<int64_t>& in_dims, const std::vector<int64_t>& out_dims,
                        int k_axes, const void* in, void* out, int direction) {
  int rank = static_cast<int>(in_dims.size());
  PlanKey k;
  k.device = device;
  k.type = type;
  k.rank = k_axes;
  long long ilen = 1, olen = 1, batch = 1;
  for (int d = 0; d < rank; ++d) {
    if (d < rank - k_axes) {
      batch *= in_dims[static_cast<size_t>(d)];
      continue;
    }
    int j = d - (rank - k_axes);
    k.n[j] = real_dims[static_cast<size_t>(d)];
    k.inembed[j] = in_dims[static_cast<size_t>(d)];
    k.onembed[j] = out_dims[static_cast<size_t>(d)];
    ilen *= in_dims[static_cast<size_t>(d)];
    olen *= out_dims[static_cast<size_t>(d)];
  }
  if (batch == 0 || ilen == 0) return;
  k.idist = ilen, k.odist = olen, k.batch = batch;
  exec(k, in, out, direction);
}

__global__ void scale_kernel(float* p, int64_t n, float s) {
  LOOM_GRID_STRIDE(i, n) { p[i] *= s; }
}

// Bin 0 and (even n) bin n/2 of the real axis become real: the imaginary parts a real signal
// cannot have are ignored, as numpy / the CPU backend do (cuFFT's C2R leaves them undefined).
__global__ void hermitian_kernel(float2* p, int64_t lines, int64_t m, int64_t inner, int64_t n) {
  LOOM_GRID_STRIDE(i, lines) {
    int64_t o = i / inner, r = i - o * inner;
    int64_t base = o * m * inner + r;
    p[base].y = 0.f;
    if (n % 2 == 0) p[base + (n / 2) * inner].y = 0.f;
  }
}

std::vector<int> axes_of(const FftAttrs& a, int rank) {
  std::vector<int> out;
  for (int64_t ax : a.axes) out.push_back(static_cast<int>(ax < 0 ? ax + rank : ax));
  return out;
}

void apply_scale(cudaStream_t s, FftScaling sc, const std::vector<int64_t>& real_dims,
                 const std::vector<int>& axes, void* data, int64_t floats) {
  if (sc == FftScaling::none) return;
  double v = 1;
  for (int ax : axes) v *= static_cast<double>(real_dims[static_cast<size_t>(ax)]);
  double f = sc == FftScaling::size ? 1 / v : 1 / std::sqrt(v);
  scale_kernel<<<blocks_for(floats), 256, 0, s>>>(static_cast<float*>(data), floats,
                                                  static_cast<float>(f));
  LOOM_CUDA_LAUNCHED();
}

int device_of(const KernelContext& c) { return c.outputs[0].device().index; }

void fft(const KernelContext& c) {
  const auto& at = c.attrs_as<FftAttrs>();
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  if (out.numel() == 0) return;
  cudaStream_t s = stream_for(c);
  int dev = device_of(c), dir = at.inverse ? CUFFT_INVERSE : CUFFT_FORWARD;
  auto dims = dims_of(x.shape());
  auto axes = axes_of(at, x.rank());
  if (trailing(axes, dims, -1)) {
    transform_trailing(dev, CUFFT_C2C, dims, dims, dims, static_cast<int>(axes.size()), x.data(),
                       out.data(), dir);
  } else {
    const void* src = x.data();
    for (int ax : axes) {  // the first pass reads x, the others run in place on out
      transform_axis(dev, CUFFT_C2C, dims, dims, ax, dims[static_cast<size_t>(ax)], src, out.data(),
                     dir);
      src = out.data();
    }
  }
  apply_scale(s, at.scaling, dims, axes, out.data(), 2 * out.numel());
}

void rfft(const KernelContext& c) {
  const auto& at = c.attrs_as<FftAttrs>();
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  if (out.numel() == 0) return;
  cudaStream_t s = stream_for(c);
  int dev = device_of(c);
  auto dims = dims_of(x.shape()), odims = dims_of(out.shape());
  auto axes = axes_of(at, x.rank());
  int last = axes.back();
  // cuFFT wants 8-byte aligned pointers; transform_axis stages a misaligned real input.
  bool aligned = reinterpret_cast<uintptr_t>(x.data()) % 8 == 0;
  if (aligned && trailing(axes, dims, last)) {
    transform_trailing(dev, CUFFT_R2C, dims, dims, odims, static_cast<int>(axes.size()), x.data(),
                       out.data(), CUFFT_FORWARD);
  } else {
    transform_axis(dev, CUFFT_R2C, dims, odims, last, dims[static_cast<size_t>(last)], x.data(),
                   out.data(), CUFFT_FORWARD);
    for (size_t i = 0; i + 1 < axes.size(); ++i)
      transform_axis(dev, CUFFT_C2C, odims, odims, axes[i], odims[static_cast<size_t>(axes[i])],
                     out.data(), out.data(), CUFFT_FORWARD);
  }
  apply_scale(s, at.scaling, dims, axes, out.data(), 2 * out.numel());
}

void irfft(const KernelContext& c) {
  const auto& at = c.attrs_as<FftAttrs>();
  const NDArray &x = c.inputs[0], &out = c.outputs[0];
  if (out.numel() == 0) return;
  auto axes = axes_of(at, x.rank());
  int last = axes.back();
  int64_t n = out.shape()[last], m = x.shape()[last];
  LOOM_CHECK(n / 2 + 1 == m, "[cuda] irfft: ", m, " bins do not make a signal of length ", n);
  cudaStream_t s = stream_for(c);
  int dev = device_of(c);
  auto idims = dims_of(x.shape()), odims = dims_of(out.shape());
  // A staging copy: the inner passes run in place and cuFFT's C2R may overwrite its input.
  size_t bytes = static_cast<size_t>(x.numel()) * 8;
  auto tmp = scratch(dev, bytes);
  LOOM_CUDA_CHECK(cudaMemcpyAsync(tmp->data(), x.data(), bytes, cudaMemcpyDeviceToDevice, s));
  for (size_t i = 0; i + 1 < axes.size(); ++i)
    transform_axis(dev, CUFFT_C2C, idims, idims, axes[i], idims[static_cast<size_t>(axes[i])],
                   tmp->data(), tmp->data(), CUFFT_INVERSE);
  int64_t inner = 1;
  for (size_t d = static_cast<size_t>(last) + 1; d < idims.size(); ++d) inner *= idims[d];
  int64_t lines = x.numel() / m;
  hermitian_kernel<<<blocks_for(lines), 256, 0, s>>>(
      static_cast<float2*>(static_cast<void*>(tmp->data())), lines, m, inner, n);
  LOOM_CUDA_LAUNCHED();
  transform_axis(dev, CUFFT_C2R, idims, odims, last, n, tmp->data(), out.data(), CUFFT_INVERSE);
  apply_scale(s, at.scaling, odims, axes, out.data(), out.numel());
}

}  // namespace

void register_fft(KernelTable& t) {
  t.set(op::fft, fft);
  t.set(op::rfft, rfft);
  t.set(op::irfft, irfft);
}

}  // namespace loom::backends::cuda
