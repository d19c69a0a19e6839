// The backend interface: a device, a kernel per op, threads. Lowering asks a backend for each
// node's kernel; nothing outside src/backends knows how a kernel is implemented.
#pragma once
#include <cstring>
#include <memory>
#include <vector>

#include "ir/op_registry.h"
#include "loom/device.h"
#include "loom/kernel.h"

namespace loom::backends {

// Kernels indexed by op id; an empty function means "no kernel".
struct KernelTable {
  std::vector<KernelFn> kernels;
  void set(ir::OpId op, KernelFn fn) {
    if (kernels.size() <= op) kernels.resize(static_cast<size_t>(op) + 1);
    kernels[op] = std::move(fn);
  }
  const KernelFn* find(ir::OpId op) const {
    return op < kernels.size() && kernels[op] ? &kernels[op] : nullptr;
  }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual const char* name() const = 0;
  // This backend's own kernel for `op`, or null.
  virtual const KernelFn* kernel(ir::OpId op) const = 0;
  virtual ThreadPool* pool() const { return nullptr; }
  // A kernel made once, at lowering, for one node from its attributes (a stitched region parsed
  // or compiled to device code once instead of on every run); empty: use kernel(node.op).
  virtual KernelFn specialize(const ir::Node& node) const {
    (void)node;
    return {};
  }

  // Memory on this backend's device for arenas, outputs and variables (uninitialised). Host
  // backends hand out ordinary host storage; a device backend its (cached) device memory.
  virtual std::shared_ptr<Storage> allocate(size_t bytes) const {
    return Storage::allocate(bytes, false);
  }
  // Copies `bytes` from `src` to `dst`, each on the host or on this backend's device, ordered
  // after the work already issued to the device. Returns once host destinations hold the bytes.
  virtual void copy(void* dst, const Device& dst_device, const void* src, const Device& src_device,
                    size_t bytes) const {
    if (bytes) std::memmove(dst, src, bytes);
  }
  // Waits until the device has finished the work issued to it (host backends: nothing to do).
  virtual void synchronize() const {}
  // Host memory the device copies to and from without staging (device backends: page-locked).
  virtual std::shared_ptr<Storage> allocate_host(size_t bytes) const {
    return Storage::allocate(bytes, false);
  }
  // copy() without waiting for host ends: a host source must stay unchanged, and a host
  // destination is only valid, once a marker taken after it has been waited on. Host memory must
  // come from allocate_host. Host backends copy at once.
  virtual void copy_async(void* dst, const Device& dst_device, const void* src,
                          const Device& src_device, size_t bytes) const {
    copy(dst, dst_device, src, src_device, bytes);
  }
  // A point in the work issued so far; wait_marker blocks until the device has passed it (and
  // reports device errors like copy). Host backends: null, nothing to wait for.
  virtual std::shared_ptr<void> marker() const { return nullptr; }
  virtual void wait_marker(const std::shared_ptr<void>& m) const { (void)m; }
  // Device backends: order this backend's later work after the work queued so far on a stream of
  // the caller (`wait_for_stream`), or the caller's later work after this backend's work so far
  // (`signal_stream`), without blocking the host.
  virtual void wait_for_stream(void* external_stream) const { (void)external_stream; }
  virtual void signal_stream(void* external_stream) const { (void)external_stream; }
  // True when the backend's memory is not host memory (arrays must be copied in and out).
  bool on_device() const { return device().kind == Device::Kind::cuda; }
};

// The backend for a device (created once per process; the CPU backend per thread count).
// Throws loom::Error for a device this build cannot run.
Backend& backend_for(const Device& device, int num_threads = 0);

// GPUs this build can use (0 without the CUDA backend, a driver or a device; never throws).
int cuda_device_count();

// The reference backend's kernel table: the oracle, with a kernel for every built-in op.
const KernelTable& reference_kernels();

}  // namespace loom::backends
