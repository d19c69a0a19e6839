// The CPU backend: its own kernels where it has them, the reference kernel otherwise (lowering
// records each such fallback in the pass log, so nothing runs slowly in secret).
#include <map>
#include <mutex>

#include "backends/cpu/cpu_util.h"

namespace loom::backends {

Backend& reference_backend();
#ifdef LOOM_HAS_CUDA
namespace cuda {
Backend& backend(int index);
int device_count();
}  // namespace cuda
int cuda_device_count() { return cuda::device_count(); }
#else
int cuda_device_count() { return 0; }
#endif

namespace {
const KernelTable& cpu_kernels() {
  static const KernelTable table = [] {
    KernelTable t;
    cpu::register_elementwise(t);
    cpu::register_reduction(t);
    cpu::register_matmul(t);
    cpu::register_movement(t);
    cpu::register_attention(t);
    cpu::register_quantization(t);
    cpu::register_fft(t);
    cpu::register_conv(t);
    cpu::register_stitched(t);
    cpu::register_sampling(t);
    return t;
  }();
  return table;
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads) : pool_(threads) {}
  Device device() const override { return Device::cpu(); }
  const char* name() const override { return "cpu"; }
  const KernelFn* kernel(ir::OpId op) const override { return cpu_kernels().find(op); }
  ThreadPool* pool() const override { return &pool_; }
  KernelFn specialize(const ir::Node& node) const override {
    return node.op == ir::op::stitched ? cpu::make_stitched_kernel(node) : KernelFn{};
  }

 private:
  mutable ThreadPool pool_;
};
}  // namespace

Backend& backend_for(const Device& device, int num_threads) {
  switch (device.kind) {
    case Device::Kind::reference:
      return reference_backend();
    case Device::Kind::cpu: {
      static std::mutex m;
      static std::map<int, std::unique_ptr<CpuBackend>> backends;
      std::lock_guard lock(m);
      auto& b = backends[num_threads];
      if (!b) b = std::make_unique<CpuBackend>(num_threads);
      return *b;
    }
    case Device::Kind::cuda:
#ifdef LOOM_HAS_CUDA
      return cuda::backend(device.index);
#else
      fail("[compile] device ", device.to_string(), ": this build of Loom has no CUDA backend");
#endif
  }
  fail("[compile] unknown device");
}

}  // namespace loom::backends
