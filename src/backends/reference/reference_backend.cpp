#include "backends/reference/ref_util.h"

namespace loom::backends {

const KernelTable& reference_kernels() {
  static const KernelTable table = [] {
    KernelTable t;
    ref::register_elementwise(t);
    ref::register_reduction(t);
    ref::register_normalization(t);
    ref::register_matmul(t);
    ref::register_movement(t);
    ref::register_attention(t);
    ref::register_quantization(t);
    ref::register_fft(t);
    ref::register_conv(t);
    ref::register_stitched(t);
    ref::register_sampling(t);
    return t;
  }();
  return table;
}

namespace {
class ReferenceBackend final : public Backend {
 public:
  Device device() const override { return Device::reference(); }
  const char* name() const override { return "reference"; }
  const KernelFn* kernel(ir::OpId op) const override { return reference_kernels().find(op); }
};
}  // namespace

Backend& reference_backend() {
  static ReferenceBackend b;
  return b;
}

}  // namespace loom::backends
