// Host <-> device copies through the device's backend (its stream orders them after the work
// already issued, so an executable's device outputs can be copied out at any time).
#include "loom/transfer.h"

#include "backends/backend.h"

namespace loom {

NDArray to_device(const NDArray& a, const Device& device) {
  if (a.device() == device) return a;
  LOOM_CHECK(a.device().kind != Device::Kind::cuda, "[transfer] ", a.device().to_string(), " -> ",
             device.to_string(), ": copy through the host");
  NDArray c = a.contiguous();
  if (device.kind != Device::Kind::cuda) return c;
  auto& b = backends::backend_for(device);
  size_t bytes = c.nbytes();
  NDArray out(b.allocate(std::max<size_t>(bytes, 1)), c.dtype(), c.shape(),
              contiguous_strides(c.shape()), 0);
  b.copy(out.data(), device, c.data(), Device::cpu(), bytes);
  return out;
}

NDArray to_host(const NDArray& a) {
  if (a.device().kind != Device::Kind::cuda) return a;
  LOOM_CHECK(a.is_contiguous(), "[transfer] to_host of a strided device array");
  NDArray out = NDArray::empty(a.dtype(), a.shape());
  backends::backend_for(a.device())
      .copy(out.data(), Device::cpu(), a.data(), a.device(), a.nbytes());
  return out;
}

int cuda_device_count() { return backends::cuda_device_count(); }

}  // namespace loom
